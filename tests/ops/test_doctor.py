"""`metallb-py doctor` against prepared clusters in the test API server (real HTTP, real
`kubernetes` client): silent on a healthy one, one line with a fix for each planted problem."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from metallb_py.cli import main
from metallb_py.doctor import ClusterView, diagnose
from metallb_py.testing.apiserver import ApiServer

ROOT = Path(__file__).resolve().parents[2]
NS = "metallb-system"

CONFIG = """\
peers:
- {peer-address: 203.0.113.1, peer-asn: 64501, my-asn: 64500}
address-pools:
- {name: lan, protocol: layer2, addresses: [192.0.2.240/28]}
- {name: public, protocol: bgp, addresses: [198.51.100.0/24]}
"""
KUBE_PROXY = """\
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clusterCIDR: 10.244.0.0/16
mode: ipvs
ipvs:
  strictARP: true
"""
KUBEADM = """\
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
networking:
  serviceSubnet: 10.96.0.0/16
  podSubnet: 10.244.0.0/16
"""


def configmap(name: str, namespace: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }


def add_node(
    api: ApiServer, name: str, ready: bool = True, taints: list[Any] | None = None
) -> None:
    api.create(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/os": "linux"}},
            "spec": {"taints": taints or []},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
        }
    )


def add_speaker_pod(api: ApiServer, node: str, running: bool = True) -> None:
    pod = api.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"speaker-{node}",
                "namespace": NS,
                "labels": {"app": "metallb", "component": "speaker"},
            },
            "spec": {"nodeName": node, "containers": [{"name": "speaker", "image": "x"}]},
        }
    )
    if running:
        pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    else:
        pod["status"] = {
            "phase": "Pending",
            "containerStatuses": [
                {
                    "name": "speaker",
                    "ready": False,
                    "restartCount": 0,
                    "image": "x",
                    "imageID": "",
                    "state": {
                        "waiting": {
                            "reason": "CreateContainerConfigError",
                            "message": 'secret "memberlist" not found',
                        }
                    },
                }
            ],
        }
    api.update_status(pod)


@pytest.fixture
def api() -> Iterator[ApiServer]:
    with ApiServer() as server:
        for obj in yaml.safe_load_all((ROOT / "manifests" / "metallb.yaml").read_text()):
            server.create(obj)
        for node in ("node-a", "node-b"):
            add_node(server, node)
            add_speaker_pod(server, node)
        server.create(configmap("config", NS, {"config": CONFIG}))
        server.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "memberlist", "namespace": NS},
                "data": {"secretkey": base64.b64encode(b"0123456789abcdefghijkl").decode()},
            }
        )
        server.create(configmap("kube-proxy", "kube-system", {"config.conf": KUBE_PROXY}))
        server.create(configmap("kubeadm-config", "kube-system", {"ClusterConfiguration": KUBEADM}))
        yield server


def doctor(api: ApiServer) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, ["doctor", "--kubeconfig", str(api.kubeconfig_path())])
    lines = [line for line in result.stdout.splitlines() if line]
    return result.exit_code, lines


def test_healthy_cluster_is_silent(api: ApiServer):
    assert doctor(api) == (0, [])


def test_ipvs_without_strict_arp(api: ApiServer):
    cm = api.get("ConfigMap", "kube-proxy", "kube-system")
    cm["data"]["config.conf"] = KUBE_PROXY.replace("strictARP: true", "strictARP: false")
    api.update(cm)
    code, lines = doctor(api)
    assert code == 1
    (line,) = lines
    assert line.startswith("kube-proxy: kube-proxy runs in IPVS mode without strictARP")
    assert "Fix: set ipvs.strictARP: true in ConfigMap kube-system/kube-proxy" in line


def test_ipvs_without_strict_arp_does_not_matter_for_bgp_only(api: ApiServer):
    cm = api.get("ConfigMap", "kube-proxy", "kube-system")
    cm["data"]["config.conf"] = KUBE_PROXY.replace("  strictARP: true\n", "  scheduler: rr\n")
    api.update(cm)
    config = api.get("ConfigMap", "config", NS)
    config["data"]["config"] = CONFIG.replace("protocol: layer2", "protocol: bgp")
    api.update(config)
    assert doctor(api) == (0, [])


def test_iptables_mode_needs_no_strict_arp(api: ApiServer):
    cm = api.get("ConfigMap", "kube-proxy", "kube-system")
    cm["data"]["config.conf"] = KUBE_PROXY.replace("mode: ipvs", 'mode: ""').replace(
        "strictARP: true", "strictARP: false"
    )
    api.update(cm)
    assert doctor(api) == (0, [])


def test_pool_overlapping_service_and_pod_networks(api: ApiServer):
    config = api.get("ConfigMap", "config", NS)
    config["data"]["config"] = CONFIG.replace("198.51.100.0/24", "10.96.0.0/24").replace(
        "192.0.2.240/28", "10.244.3.0/28"
    )
    api.update(config)
    code, lines = doctor(api)
    assert code == 1
    assert lines == [
        "address-pools: pool 'lan' (10.244.3.0/28) overlaps the Pod network (kubeadm podSubnet "
        "10.244.0.0/16): MetalLB would hand out addresses the cluster already routes internally."
        " Fix: give pool 'lan' addresses outside 10.244.0.0/16",
        "address-pools: pool 'lan' (10.244.3.0/28) overlaps the Pod network (kube-proxy "
        "clusterCIDR 10.244.0.0/16): MetalLB would hand out addresses the cluster already routes"
        " internally. Fix: give pool 'lan' addresses outside 10.244.0.0/16",
        "address-pools: pool 'public' (10.96.0.0/24) overlaps the Service network (kubeadm "
        "serviceSubnet 10.96.0.0/16): MetalLB would hand out addresses the cluster already routes"
        " internally. Fix: give pool 'public' addresses outside 10.96.0.0/16",
    ]


def test_pool_holding_a_cluster_ip_without_kubeadm_config(api: ApiServer):
    api.delete("ConfigMap", "kubeadm-config", "kube-system")
    cm = api.get("ConfigMap", "kube-proxy", "kube-system")
    cm["data"]["config.conf"] = KUBE_PROXY.replace("clusterCIDR: 10.244.0.0/16\n", "")
    api.update(cm)
    kubernetes_ip = api.get("Service", "kubernetes", "default")["spec"]["clusterIP"]
    config = api.get("ConfigMap", "config", NS)
    config["data"]["config"] = CONFIG.replace("198.51.100.0/24", f"{kubernetes_ip}/32")
    api.update(config)
    code, lines = doctor(api)
    assert code == 1
    (line,) = lines
    assert (
        f"pool 'public' contains {kubernetes_ip}, the cluster IP of Service default/kubernetes"
        in line
    )


def test_ready_node_without_speaker(api: ApiServer):
    add_node(api, "node-c")  # Ready, schedulable, but its speaker never came up
    add_node(api, "node-d", ready=False)  # not Ready: not reported
    add_node(api, "gpu-1", taints=[{"key": "gpu", "value": "true", "effect": "NoSchedule"}])
    add_node(api, "node-e")
    add_speaker_pod(api, "node-e", running=False)
    code, lines = doctor(api)
    assert code == 1
    assert lines == [
        "speaker: Ready node gpu-1 runs no speaker pod: the speaker DaemonSet does not tolerate its"
        " taint gpu:NoSchedule; it cannot announce layer2 addresses nor peer over BGP. Fix: add a"
        " matching toleration or nodeSelector to the speaker DaemonSet if the node should announce",
        "speaker: Ready node node-c runs no speaker pod; it cannot announce layer2 addresses nor"
        " peer over BGP. Fix: kubectl -n metallb-system describe daemonset speaker",
        "speaker: Ready node node-e has no running speaker: pod speaker-node-e is"
        ' CreateContainerConfigError (secret "memberlist" not found). Fix: kubectl -n'
        " metallb-system describe pod speaker-node-e (usually the memberlist Secret 'memberlist'"
        " is missing)",
    ]


def test_control_plane_taint_is_tolerated_by_the_manifests(api: ApiServer):
    taint = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
    add_node(api, "cp-1", taints=[taint])
    code, lines = doctor(api)
    assert code == 1
    (line,) = lines
    assert "Ready node cp-1 runs no speaker pod;" in line  # not blamed on the taint


def test_memberlist_secret_missing(api: ApiServer):
    api.delete("Secret", "memberlist", NS)
    code, lines = doctor(api)
    assert code == 1
    (line,) = lines
    assert line.startswith(
        "memberlist: Secret metallb-system/memberlist does not exist: speaker pods cannot start"
    )
    assert "kubectl -n metallb-system create secret generic memberlist" in line


def test_config_missing(api: ApiServer):
    api.delete("ConfigMap", "config", NS)
    code, lines = doctor(api)
    assert code == 1
    (line,) = lines
    assert line.startswith("config: ConfigMap metallb-system/config does not exist")


def test_config_invalid(api: ApiServer):
    config = api.get("ConfigMap", "config", NS)
    config["data"]["config"] = CONFIG.replace("protocol: layer2", "protocol: layer3")
    api.update(config)
    code, lines = doctor(api)
    assert code == 1
    (line,) = lines
    assert line.startswith("config: ConfigMap metallb-system/config is not a valid config")
    assert "address-pools[0].protocol" in line
    assert "metallb-py config check cm.yaml" in line


def test_not_installed(api: ApiServer):
    api.delete("DaemonSet", "speaker", NS)
    code, lines = doctor(api)
    assert code == 1
    (line,) = lines
    assert line.startswith("speaker: DaemonSet metallb-system/speaker does not exist")


def test_several_findings_one_line_each(api: ApiServer):
    api.delete("Secret", "memberlist", NS)
    api.delete("ConfigMap", "config", NS)
    add_node(api, "node-c")
    code, lines = doctor(api)
    assert code == 1
    assert [line.split(":", 1)[0] for line in lines] == ["config", "memberlist", "speaker"]
    assert all(". Fix: " in line for line in lines)


def test_unreachable_cluster_exits_2(tmp_path: Path):
    with ApiServer() as server:
        kubeconfig = server.kubeconfig_path(tmp_path / "kubeconfig")
    result = CliRunner().invoke(main, ["doctor", "--kubeconfig", str(kubeconfig)])
    assert result.exit_code == 2
    assert "cannot read the cluster" in result.stderr


def test_diagnose_is_pure_on_an_empty_view():
    findings = diagnose(ClusterView())
    assert [f.check for f in findings] == ["config", "speaker"]


def test_forbidden_reads_are_reported(api: ApiServer):
    api.fail_next(1, code=403, methods=("GET",), resource="secrets")
    code, lines = doctor(api)
    assert code == 1
    (line,) = lines
    assert line.startswith("access: cannot read Secret metallb-system/memberlist: HTTP 403")


def test_ipvs_from_kube_proxy_flags():
    command = ["kube-proxy", "--proxy-mode=ipvs"]
    ds: dict[str, Any] = {
        "spec": {"template": {"spec": {"containers": [{"name": "kube-proxy", "command": command}]}}}
    }
    view = ClusterView(kube_proxy_daemonset=ds)
    assert "kube-proxy" in [f.check for f in diagnose(view)]
    command.append("--ipvs-strict-arp=true")
    assert "kube-proxy" not in [f.check for f in diagnose(view)]

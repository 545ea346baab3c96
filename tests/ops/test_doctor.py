"""`metallb-py doctor` against prepared clusters in the test API server (real HTTP, real
`kubernetes` client): silent on a healthy one, one line with a fix for each planted problem."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from metallb_lab.apiserver import ApiServer
from metallb_py.cli import main
from metallb_py.doctor import ClusterView, diagnose

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


def configmap(
    name: str, namespace: str, data: dict[str, str], annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "data": data,
    }


def accepted_store(text: str) -> dict[str, Any]:
    """ConfigMap config-accepted as the controller writes it when it accepts `text`."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return configmap(
        "config-accepted", NS, {"config": text}, {"metallb-py.io/config-sha256": digest}
    )


def add_node(
    api: ApiServer,
    name: str,
    ready: bool = True,
    taints: list[Any] | None = None,
    labels: dict[str, str] | None = None,
    addresses: list[tuple[str, str]] = (),  # type: ignore[assignment]
) -> None:
    api.create(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/os": "linux", **(labels or {})}},
            "spec": {"taints": taints or []},
            "status": {
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                "addresses": [{"type": t, "address": a} for t, a in addresses],
            },
        }
    )


def add_controller_pod(api: ApiServer, name: str, status: dict[str, Any]) -> None:
    pod = api.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": NS,
                "labels": {"app": "metallb", "component": "controller"},
            },
            "spec": {"containers": [{"name": "controller", "image": "x"}]},
        }
    )
    pod["status"] = status
    api.update_status(pod)


def set_controller_status(api: ApiServer, **status: int) -> None:
    deployment = api.get("Deployment", "controller", NS)
    deployment["status"] = status
    api.update_status(deployment)


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


RUNNING = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}


@pytest.fixture
def api() -> Iterator[ApiServer]:
    with ApiServer() as server:
        server.ensure_namespace(NS)  # whether or not metallb.yaml carries the Namespace
        for obj in yaml.safe_load_all((ROOT / "manifests" / "metallb.yaml").read_text()):
            if obj and obj["kind"] != "Namespace":
                server.create(obj)
        for node, ip in (("node-a", "192.0.2.10"), ("node-b", "192.0.2.11")):
            add_node(server, node, addresses=[("InternalIP", ip), ("Hostname", node)])
            add_speaker_pod(server, node)
        add_controller_pod(server, "controller-1", RUNNING)
        set_controller_status(server, replicas=1, readyReplicas=1, availableReplicas=1)
        server.create(configmap("config", NS, {"config": CONFIG}))
        server.create(accepted_store(CONFIG))
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


def set_config(api: ApiServer, text: str, accepted: bool = True) -> None:
    """Change the live config; `accepted`: as the controller does once it takes it."""
    live = api.get("ConfigMap", "config", NS)
    live["data"]["config"] = text
    api.update(live)
    if accepted:
        store = api.get("ConfigMap", "config-accepted", NS)
        fresh = accepted_store(text)
        store["data"], store["metadata"]["annotations"] = (
            fresh["data"],
            fresh["metadata"]["annotations"],
        )
        api.update(store)


def doctor(api: ApiServer, *flags: str) -> tuple[int, list[str]]:
    argv = ["doctor", "--kubeconfig", str(api.kubeconfig_path()), *flags]
    result = CliRunner().invoke(main, argv)
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
    set_config(api, CONFIG.replace("protocol: layer2", "protocol: bgp"))
    assert doctor(api) == (0, [])


def test_iptables_mode_needs_no_strict_arp(api: ApiServer):
    cm = api.get("ConfigMap", "kube-proxy", "kube-system")
    cm["data"]["config.conf"] = KUBE_PROXY.replace("mode: ipvs", 'mode: ""').replace(
        "strictARP: true", "strictARP: false"
    )
    api.update(cm)
    assert doctor(api) == (0, [])


def test_pool_overlapping_service_and_pod_networks(api: ApiServer):
    set_config(
        api,
        CONFIG.replace("198.51.100.0/24", "10.96.0.0/24").replace(
            "192.0.2.240/28", "10.244.3.0/28"
        ),
    )
    code, lines = doctor(api)
    assert code == 1
    warnings = [line for line in lines if line.startswith("address-pools (warning): ")]
    assert len(warnings) == 1  # 'lan' left the nodes' /24; tested on its own elsewhere
    assert [line for line in lines if line not in warnings] == [
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
    set_config(api, CONFIG.replace("198.51.100.0/24", f"{kubernetes_ip}/32"))
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
        "speaker: Ready node node-c runs no speaker pod though the speaker DaemonSet should run"
        " there; it cannot announce layer2 addresses nor peer over BGP. Fix: kubectl -n"
        " metallb-system describe daemonset speaker",
        "speaker: Ready node node-e has no running speaker: pod speaker-node-e is"
        ' CreateContainerConfigError (secret "memberlist" not found). Fix: kubectl -n'
        " metallb-system describe pod speaker-node-e (usually the memberlist Secret 'memberlist'"
        " is missing)",
        "speaker (info): 1 Ready node(s) run no speaker because the speaker DaemonSet keeps it"
        " off them, so they never announce: gpu-1 (the speaker DaemonSet does not tolerate its"
        " taint gpu:NoSchedule). Fix: nothing if that is intended; to run speakers there, add a"
        " toleration or widen the DaemonSet's nodeSelector or node affinity; --ignore-node NAME"
        " or --ignore-node-selector SELECTOR hides this line",
    ]


def test_control_plane_taint_is_tolerated_by_the_manifests(api: ApiServer):
    taint = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
    add_node(api, "cp-1", taints=[taint])
    code, lines = doctor(api)
    assert code == 1
    (line,) = lines
    assert line.startswith("speaker: Ready node cp-1 runs no speaker pod though")


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
    assert [f.check for f in findings] == ["config", "controller", "speaker"]


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


# --- controller Deployment -----------------------------------------------------------------


def test_controller_deployment_missing(api: ApiServer):
    api.delete("Deployment", "controller", NS)
    code, lines = doctor(api)
    assert code == 1
    (line,) = lines
    assert line.startswith("controller: Deployment metallb-system/controller does not exist")


def test_controller_crash_loop_read_through_the_deployment_selector(api: ApiServer):
    api.delete("Pod", "controller-1", NS)
    set_controller_status(api, replicas=1, unavailableReplicas=1)
    add_controller_pod(
        api,
        "controller-2",
        {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "controller",
                    "ready": False,
                    "restartCount": 5,
                    "image": "x",
                    "imageID": "",
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                    "lastState": {"terminated": {"reason": "Error", "exitCode": 1}},
                }
            ],
        },
    )
    other = api.create(  # Ready, in the namespace, but not the controller's
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "helper", "namespace": NS, "labels": {"app": "other"}},
            "spec": {"containers": [{"name": "c", "image": "x"}]},
        }
    )
    other["status"] = RUNNING
    api.update_status(other)
    code, lines = doctor(api)
    assert code == 1
    assert lines == [
        "controller: Deployment metallb-system/controller has no available replica, so nothing"
        " allocates addresses (new LoadBalancer Services stay <pending>) and config changes are"
        " not taken: pod controller-2 is CrashLoopBackOff (back-off); last exit: Error, code 1."
        " Fix: the container keeps exiting: kubectl -n metallb-system logs controller-2"
        " --previous says why"
    ]


def test_controller_two_replicas(api: ApiServer):
    deployment = api.get("Deployment", "controller", NS)
    deployment["spec"]["replicas"] = 2
    api.update(deployment)
    code, lines = doctor(api)
    assert code == 1
    (line,) = lines
    assert "asks for 2 replicas, but MetalLB's controller must run as one replica" in line


# --- the config in force -------------------------------------------------------------------

NEW_CONFIG = CONFIG.replace("192.0.2.240/28", "192.0.2.224/28")


def add_event(api: ApiServer, name: str, involved: dict[str, str], reason: str, msg: str) -> None:
    api.create(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": NS},
            "involvedObject": {"namespace": NS, **involved},
            "type": "Warning",
            "reason": reason,
            "message": msg,
            "count": 1,
            "firstTimestamp": "2024-05-01T10:00:00Z",
            "lastTimestamp": "2024-05-01T10:00:00Z",
            "source": {"component": "metallb-controller"},
        }
    )


def test_refused_config_quotes_the_controllers_event(api: ApiServer):
    set_config(api, NEW_CONFIG, accepted=False)
    refused = (
        "config refused, previous config kept: 1 Service(s) would lose their IPs: default/web"
        " [192.0.2.241]: no pool holds it"
    )
    add_event(api, "config.a", {"kind": "ConfigMap", "name": "config"}, "ConfigRefused", refused)
    add_event(api, "config.b", {"kind": "Service", "name": "config"}, "ConfigRefused", "svc")
    add_event(api, "other.c", {"kind": "ConfigMap", "name": "other"}, "ConfigRefused", "other")
    code, lines = doctor(api)
    assert code == 1
    (line,) = lines
    assert line.startswith(
        "config: ConfigMap metallb-system/config is not in force: its config differs from the one"
        " the controller accepted last (ConfigMap metallb-system/config-accepted), which MetalLB"
        f" still runs; latest ConfigRefused event (2024-05-01T10:00:00Z): {refused}"
    )
    assert "metallb-py plan --live --config NEW" in line


def test_unreadable_events_are_noted_not_an_error_of_their_own(api: ApiServer):
    api.fail_next(1, code=403, methods=("GET",), resource="events")
    assert doctor(api) == (0, [])  # only needed to explain a stale config
    set_config(api, NEW_CONFIG, accepted=False)
    api.fail_next(1, code=403, methods=("GET",), resource="events")
    code, lines = doctor(api)
    assert code == 1
    (line,) = lines
    assert "(the ConfigMap's events cannot be read: HTTP 403 Forbidden)" in line


def test_accepted_store_forbidden(api: ApiServer):
    api.fail_next(1, code=403, methods=("GET",), resource="configmaps/config-accepted")
    code, lines = doctor(api)
    assert code == 1
    (line,) = lines
    assert line.startswith("access: cannot read ConfigMap metallb-system/config-accepted: HTTP 403")


def test_no_accepted_store_yet(api: ApiServer):
    api.delete("ConfigMap", "config-accepted", NS)
    set_config(api, NEW_CONFIG, accepted=False)
    assert doctor(api) == (0, [])


def test_hand_edited_accepted_store_is_a_warning(api: ApiServer):
    store = api.get("ConfigMap", "config-accepted", NS)
    store["data"]["config"] = NEW_CONFIG  # checksum still the old text's
    api.update(store)
    code, lines = doctor(api)
    assert code == 0
    (line,) = lines
    assert line.startswith(
        "config (warning): ConfigMap metallb-system/config-accepted, where the controller keeps"
        " the config it accepted last, has a metallb-py.io/config-sha256 annotation that does not"
        " match its text"
    )


# --- pools vs node addresses ---------------------------------------------------------------


def test_pool_holding_a_node_address(api: ApiServer):
    add_node(api, "node-c", addresses=[("InternalIP", "192.0.2.250")])
    add_speaker_pod(api, "node-c")
    code, lines = doctor(api)
    assert code == 1
    assert lines == [
        "address-pools: pool 'lan' contains node addresses: 192.0.2.250 (InternalIP of node"
        " node-c): the allocator can hand a node's own address to a Service, which then takes the"
        " node's traffic (and in layer2 two machines answer ARP/NDP for it). Fix: take them out"
        " of pool 'lan': replace 192.0.2.240/28 with 192.0.2.240-192.0.2.249,"
        " 192.0.2.251-192.0.2.255"
    ]


def test_layer2_pool_off_the_nodes_subnet_warns_with_exit_0(api: ApiServer):
    set_config(api, CONFIG.replace("192.0.2.240/28", "203.0.113.240/28"))
    code, lines = doctor(api)
    assert code == 0
    (line,) = lines
    assert line.startswith(
        "address-pools (warning): layer2 pool 'lan' (203.0.113.240/28) shares no /24 with any"
        " node InternalIP (nodes in 192.0.2.0/24)"
    )


# --- kube-proxy's own config among kubeadm's keys ------------------------------------------

KUBECONFIG_CONF = """\
apiVersion: v1
kind: Config
clusters:
- cluster: {certificate-authority: /var/lib/kube-proxy/ca.crt, server: https://192.0.2.1:6443}
  name: default
"""


def test_kubeadm_kube_proxy_configmap_and_daemonset(api: ApiServer):
    cm = api.get("ConfigMap", "kube-proxy", "kube-system")
    cm["data"] = {
        "config.conf": KUBE_PROXY.replace("strictARP: true", "strictARP: false"),
        "kubeconfig.conf": KUBECONFIG_CONF,  # after config.conf: once read instead of it
    }
    api.update(cm)
    labels = {"k8s-app": "kube-proxy"}
    command = [
        "/usr/local/bin/kube-proxy",
        "--config=/var/lib/kube-proxy/config.conf",
        "--hostname-override=$(NODE_NAME)",
    ]
    api.create(
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [{"name": "kube-proxy", "image": "x", "command": command}]
                    },
                },
            },
        }
    )
    code, lines = doctor(api)
    assert code == 1
    (line,) = lines
    assert line.startswith(
        "kube-proxy: kube-proxy runs in IPVS mode without strictARP (ConfigMap"
        " kube-system/kube-proxy config.conf)"
    )


# --- speakers kept off nodes on purpose ----------------------------------------------------


@pytest.fixture
def workers_only(api: ApiServer) -> ApiServer:
    """The Kontena addon's layout: speakers on workers only; one control-plane node."""
    ds = api.get("DaemonSet", "speaker", NS)
    ds["spec"]["template"]["spec"]["nodeSelector"] = {"node-role.kubernetes.io/worker": ""}
    api.update(ds)
    for name in ("node-a", "node-b"):
        node = api.get("Node", name)
        node["metadata"]["labels"]["node-role.kubernetes.io/worker"] = ""
        api.update(node)
    add_node(api, "cp-1", labels={"node-role.kubernetes.io/control-plane": ""})
    return api


def test_speakers_on_workers_only_is_not_an_error(workers_only: ApiServer):
    code, lines = doctor(workers_only)
    assert code == 0
    assert lines == [
        "speaker (info): 1 Ready node(s) run no speaker because the speaker DaemonSet keeps it off"
        " them, so they never announce: cp-1 (the speaker DaemonSet's nodeSelector"
        " node-role.kubernetes.io/worker= does not match it). Fix: nothing if that is intended;"
        " to run speakers there, add a toleration or widen the DaemonSet's nodeSelector or node"
        " affinity; --ignore-node NAME or --ignore-node-selector SELECTOR hides this line"
    ]


def test_ignore_node_flags(workers_only: ApiServer):
    assert doctor(workers_only, "--ignore-node", "cp-1") == (0, [])
    flag = "--ignore-node-selector=node-role.kubernetes.io/control-plane"
    assert doctor(workers_only, flag) == (0, [])
    add_node(workers_only, "node-c", labels={"node-role.kubernetes.io/worker": ""})
    code, lines = doctor(workers_only, "--ignore-node", "cp-1")
    assert code == 1
    (line,) = lines
    assert line.startswith("speaker: Ready node node-c runs no speaker pod though")
    assert doctor(workers_only, "--ignore-node", "cp-1", "--ignore-node", "node-c") == (0, [])


def test_speaker_required_node_affinity(api: ApiServer):
    ds = api.get("DaemonSet", "speaker", NS)
    ds["spec"]["template"]["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "edge", "operator": "DoesNotExist"}]}
                ]
            }
        }
    }
    api.update(ds)
    add_node(api, "edge-1", labels={"edge": "true"})
    code, lines = doctor(api)
    assert code == 0
    (line,) = lines
    assert line.startswith("speaker (info): 1 Ready node(s) run no speaker")
    assert "edge-1 (the speaker DaemonSet's required node affinity does not match it)" in line


def test_bad_ignore_node_selector_is_a_usage_error(api: ApiServer):
    argv = ["doctor", "--kubeconfig", str(api.kubeconfig_path())]
    result = CliRunner().invoke(main, [*argv, "--ignore-node-selector", "a in (b"])
    assert result.exit_code == 2
    assert "--ignore-node-selector" in result.stderr
    result = CliRunner().invoke(main, [*argv, "--ignore-node-selector", " "])
    assert result.exit_code == 2
    assert "an empty selector would match every node" in result.stderr

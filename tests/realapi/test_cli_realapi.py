"""`metallb-py doctor` and `metallb-py plan --live` against kube-apiserver, with the manifests
applied by both kubectls (the image's and the release's), the controller running with its
ServiceAccount token, and the objects a cluster would show for a running install (no
controller-manager or kubelet here, so the Deployment's status and the controller Pod are
written as the e2e doctor tests write them). The expected texts and IPs are written out here."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from kubernetes import client

from metallb_lab.control_plane import ControlPlane
from metallb_lab.netns import wait_for
from metallb_py.cli import main
from tests.e2e.conftest import Component
from tests.e2e.test_doctor_live import BOTH, ONLY_NEW, doctor

from .conftest import NS, admin, ensure_namespace, kubectl, read_configmap, service, set_config

pytestmark = pytest.mark.slow


def install_running(cp: ControlPlane) -> None:
    """The manifests through both kubectls (the second apply changes nothing), then what a
    running install shows: the controller Deployment available, its Pod ready, the memberlist
    Secret."""
    for binary in (str(cp.kubectl), "kubectl"):
        kubectl(cp, "apply", "-f", "manifests/", binary=binary)
    api = admin(cp)
    apps: Any = client.AppsV1Api(api)
    core: Any = client.CoreV1Api(api)
    deployment = apps.read_namespaced_deployment("controller", NS)
    deployment.status = {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}
    apps.replace_namespaced_deployment_status("controller", NS, deployment)
    pod = core.create_namespaced_pod(
        NS,
        {
            "metadata": {
                "name": "controller-1",
                "labels": {"app": "metallb", "component": "controller"},
            },
            "spec": {
                "serviceAccountName": "controller",
                "containers": [{"name": "controller", "image": "x"}],
            },
        },
    )
    pod.status = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    core.replace_namespaced_pod_status("controller-1", NS, pod)
    core.create_namespaced_secret(
        NS, {"metadata": {"name": "memberlist"}, "stringData": {"secretkey": "0123456789abcdef"}}
    )


def _stored(core: Any) -> str | None:
    store = read_configmap(core, "config-accepted")
    return None if store is None else (store.data or {}).get("config")


def _ips(core: Any, name: str, namespace: str = "apps") -> list[str]:
    svc = core.read_namespaced_service(name, namespace)
    return [i.ip for i in (svc.status.load_balancer.ingress or [])]


def test_doctor_on_kube_apiserver_sees_the_config_the_controller_refused(
    fresh_control_plane: ControlPlane, controller_of: Callable[[ControlPlane], Component]
) -> None:
    cp = fresh_control_plane
    install_running(cp)
    ensure_namespace(cp, "apps")
    core: Any = client.CoreV1Api(admin(cp))
    set_config(core, BOTH)
    web = service("web")
    web["metadata"]["annotations"] = {"metallb.universe.tf/address-pool": "old"}
    core.create_namespaced_service("apps", web)
    controller_of(cp)
    wait_for(lambda: _ips(core, "web") == ["198.51.100.0"], 60, 0.5, "web's IP from pool old")
    wait_for(lambda: _stored(core) == BOTH, 30, 0.5, "the accepted config stored")
    assert doctor(cp.kubeconfig_path) == (0, [])

    set_config(core, ONLY_NEW)  # pool old still holds web's IP: refused
    wait_for(
        lambda: any(e.reason == "ConfigRefused" for e in core.list_namespaced_event(NS).items),
        30,
        0.5,
        "ConfigRefused",
    )
    code, lines = doctor(cp.kubeconfig_path)
    assert code == 1
    (line,) = lines
    assert line.startswith(
        "config: ConfigMap metallb-system/config is not in force: its config differs from the one"
        " the controller accepted last (ConfigMap metallb-system/config-accepted), which MetalLB"
        " still runs; latest ConfigRefused event ("
    )
    assert "apps/web [198.51.100.0]" in line
    assert "metallb-py plan --live --config NEW" in line

    core.delete_namespaced_service("web", "apps")  # the blocker gone, the config is taken
    wait_for(lambda: _stored(core) == ONLY_NEW, 30, 0.5, "the new config accepted")
    assert doctor(cp.kubeconfig_path) == (0, [])


OLD = "address-pools:\n- name: a\n  protocol: layer2\n  addresses: [192.0.2.0/29]\n"
GROWN = OLD + "- name: b\n  protocol: layer2\n  addresses: [198.51.100.0/29]\n"
MOVED = "address-pools:\n- name: b\n  protocol: layer2\n  addresses: [198.51.100.0/29]\n"


def plan(kubeconfig: Path, new: Path) -> tuple[int, dict[str, Any]]:
    args = ["plan", "--live", "--kubeconfig", str(kubeconfig), "--config", str(new)]
    result = CliRunner().invoke(main, [*args, "--output", "json"])
    return result.exit_code, json.loads(result.stdout) if result.stdout.startswith("{") else {}


def test_plan_live_on_kube_apiserver(fresh_control_plane: ControlPlane, tmp_path: Path) -> None:
    cp = fresh_control_plane
    for binary in (str(cp.kubectl), "kubectl"):
        kubectl(cp, "apply", "-f", "manifests/", binary=binary)
    ensure_namespace(cp, "apps")
    core: Any = client.CoreV1Api(admin(cp))
    set_config(core, OLD)
    for name, ip in (("web", "192.0.2.0"), ("db", "192.0.2.1"), ("new", None)):
        created = core.create_namespaced_service("apps", service(name))
        if ip:  # kube-apiserver stores it with `ipMode: VIP` added
            created.status = {"loadBalancer": {"ingress": [{"ip": ip}]}}
            core.replace_namespaced_service_status(name, "apps", created)
    grown, moved = tmp_path / "grown.yaml", tmp_path / "moved.yaml"
    grown.write_text(GROWN)
    moved.write_text(MOVED)

    code, out = plan(cp.kubeconfig_path, grown)
    assert code == 0 and out["accepted"] is True
    planned = {k: v["ips"] for k, v in out["services"].items()}
    assert planned.pop("default/kubernetes") == []  # a ClusterIP Service: no IP
    assert planned == {
        "apps/web": ["192.0.2.0"],
        "apps/db": ["192.0.2.1"],
        "apps/new": ["192.0.2.2"],
    }
    code, out = plan(cp.kubeconfig_path, moved)
    assert code == 1 and out["accepted"] is False
    assert {p["service"]: p["ips"] for p in out["problems"]} == {
        "apps/web": ["192.0.2.0"],
        "apps/db": ["192.0.2.1"],
        "apps/new": ["192.0.2.2"],
    }
    # Planning changed nothing in the cluster.
    assert core.read_namespaced_config_map("config", NS).data == {"config": OLD}
    assert not _ips(core, "new")

"""`metallb-py doctor` against the real controller process: the accepted-config store and the
refusal event it writes are what doctor reads (names, checksum, event fields). The expected
texts are written out here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from metallb_lab.apiserver import ApiServer
from metallb_lab.netns import wait_for
from metallb_py.cli import main

from .conftest import NS
from .test_controller import events, ips, service, set_config

ROOT = Path(__file__).resolve().parents[2]
BOTH = """
address-pools:
- name: old
  protocol: bgp
  addresses: [198.51.100.0/28]
- name: new
  protocol: bgp
  addresses: [203.0.113.0/28]
"""
ONLY_NEW = """
address-pools:
- name: new
  protocol: bgp
  addresses: [203.0.113.0/28]
"""


def install(api: ApiServer) -> None:
    """The manifests' objects, with a controller that runs (the test API server runs no pods:
    the Deployment's status, its pod and the memberlist Secret are written by hand; the process
    is started apart)."""
    for obj in yaml.safe_load_all((ROOT / "manifests" / "metallb.yaml").read_text()):
        if obj and obj["kind"] != "Namespace":
            api.create(obj)
    deployment = api.get("Deployment", "controller", NS)
    deployment["status"] = {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}
    api.update_status(deployment)
    pod = api.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "controller-1",
                "namespace": NS,
                "labels": {"app": "metallb", "component": "controller"},
            },
            "spec": {"containers": [{"name": "controller", "image": "x"}]},
        }
    )
    pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    api.update_status(pod)
    api.create(  # the lab's controller is not told to create it
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "memberlist", "namespace": NS},
            "stringData": {"secretkey": "0123456789abcdef"},
        }
    )


def stored_text(api: ApiServer) -> Any:
    try:
        return api.get("ConfigMap", "config-accepted", NS)["data"]["config"]
    except Exception:
        return None


def doctor(kubeconfig: Path) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, ["doctor", "--kubeconfig", str(kubeconfig)])
    return result.exit_code, [line for line in result.stdout.splitlines() if line]


def test_doctor_sees_the_config_the_controller_refused(api, kubeconfig, start_controller):
    install(api)
    set_config(api, BOTH)
    api.create(service("web", meta={"annotations": {"metallb.universe.tf/address-pool": "old"}}))
    start_controller()
    wait_for(lambda: ips(api, "web") == ["198.51.100.0"], 20, what="web's IP from pool old")
    wait_for(lambda: stored_text(api) == BOTH, 20, what="the accepted config stored")
    assert doctor(kubeconfig) == (0, [])

    set_config(api, ONLY_NEW)  # pool old still holds web's IP: refused
    wait_for(lambda: events(api, NS, "ConfigRefused"), 20, what="ConfigRefused")
    code, lines = doctor(kubeconfig)
    assert code == 1
    (line,) = lines
    assert line.startswith(
        "config: ConfigMap metallb-system/config is not in force: its config differs from the one"
        " the controller accepted last (ConfigMap metallb-system/config-accepted), which MetalLB"
        " still runs; latest ConfigRefused event ("
    )
    assert "apps/web [198.51.100.0]" in line
    assert "metallb-py plan --live --config NEW" in line
    assert stored_text(api) == BOTH

    api.delete("Service", "web", "apps")  # the blocker gone, the controller takes the config
    wait_for(lambda: stored_text(api) == ONLY_NEW, 20, what="the new config accepted")
    assert doctor(kubeconfig) == (0, [])

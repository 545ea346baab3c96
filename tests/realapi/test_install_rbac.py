"""Acceptance of the real-server tier: the admin kubeconfig, `kubectl apply -f manifests/` on a
stock kube-apiserver, and the manifests' RBAC as the only rights the components get."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kubernetes import client

from metallb_lab.control_plane import ControlPlane

from .conftest import NS, admin, install, kubectl

USER_CONFIG = "address-pools:\n- name: mine\n  protocol: layer2\n  addresses: [192.0.2.64/27]\n"


def test_admin_kubeconfig_is_the_real_server(control_plane: ControlPlane) -> None:
    for binary in ("kubectl", str(control_plane.kubectl)):
        version = json.loads(kubectl(control_plane, "version", "-o", "json", binary=binary).stdout)
        assert version["serverVersion"]["gitVersion"].startswith("v1.32.")
        rights = kubectl(control_plane, "auth", "can-i", "--list", binary=binary).stdout
        assert "*.*" in rights.replace(" ", "")  # system:masters may do everything


def test_install_twice_keeps_the_users_config(control_plane: ControlPlane) -> None:
    install(control_plane)
    core: Any = client.CoreV1Api(admin(control_plane))
    core.create_namespaced_config_map(
        NS, {"metadata": {"name": "config"}, "data": {"config": USER_CONFIG}}
    )
    before = core.read_namespaced_config_map("config", NS)
    install(control_plane)
    after = core.read_namespaced_config_map("config", NS)
    assert after.data == {"config": USER_CONFIG}
    assert after.metadata.resource_version == before.metadata.resource_version
    core.delete_namespaced_config_map("config", NS)


def test_service_account_tokens_get_what_the_manifests_grant(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    install(control_plane)
    core: Any = client.CoreV1Api(admin(control_plane))
    try:
        core.create_node({"metadata": {"name": "rbac-node"}})
    except client.ApiException as e:
        assert e.status == 409
    controller = control_plane.token_kubeconfig(tmp_path / "controller", NS, "controller")
    speaker = control_plane.token_kubeconfig(tmp_path / "speaker", NS, "speaker")

    assert kubectl(control_plane, "get", "services", "-A", kubeconfig=controller).returncode == 0
    denied = kubectl(
        control_plane, "delete", "node", "rbac-node", kubeconfig=controller, check=False
    )
    assert denied.returncode != 0 and "Forbidden" in denied.stderr

    def can(kubeconfig: Path, *what: str) -> bool:
        out = kubectl(control_plane, "auth", "can-i", *what, kubeconfig=kubeconfig, check=False)
        return out.stdout.strip() == "yes"

    # The controller writes Service status, events, and only its own accepted-config store.
    assert can(controller, "update", "services", "--subresource=status")
    assert not can(controller, "update", "services")
    assert can(controller, "create", "events", "-n", "apps")
    assert can(controller, "create", "configmaps", "-n", NS)
    assert can(controller, "update", "configmaps/config-accepted", "-n", NS)
    assert not can(controller, "update", "configmaps/config", "-n", NS)
    assert not can(controller, "create", "configmaps", "-n", "default")
    # The speaker reads; it writes nothing but events.
    for what in (
        ("list", "endpointslices.discovery.k8s.io"),
        ("watch", "nodes"),
        ("list", "pods", "-n", NS),
    ):
        assert can(speaker, *what), what
    assert not can(speaker, "update", "services", "--subresource=status")
    assert not can(speaker, "update", "configmaps/config-accepted", "-n", NS)
    assert not can(speaker, "delete", "nodes")

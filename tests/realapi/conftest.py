"""The real-server tier: tests against kube-apiserver + etcd built from the Kubernetes release
(`scripts/build-control-plane.sh`), RBAC on. Skipped when the binaries are not built, unless
METALLB_PY_REAL_API=required (scripts/test.sh sets it when Go is installed, so CI cannot skip
them silently)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from metallb_lab.control_plane import ControlPlane, binaries
from metallb_lab.lab.commands import controller_args
from tests.e2e.conftest import Component

ROOT = Path(__file__).resolve().parents[2]
NS = "metallb-system"


def _bin_dir() -> Path:
    required = os.environ.get("METALLB_PY_REAL_API") == "required"
    found = binaries(required=required)
    if found is None:
        pytest.skip("no control plane built (bash scripts/build-control-plane.sh)")
    return found


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """One kube-apiserver for the tier; tests use their own namespaces and object names."""
    with ControlPlane(_bin_dir()) as cp:
        yield cp


@pytest.fixture(scope="module")
def module_control_plane() -> Iterator[ControlPlane]:
    """One kube-apiserver for a test module whose tests share the cluster's state (the
    manifests installed, one MetalLB config, the controller's view of every Service)."""
    with ControlPlane(_bin_dir()) as cp:
        yield cp


@pytest.fixture
def fresh_control_plane() -> Iterator[ControlPlane]:
    """A control plane of the test's own (for restarts and compaction)."""
    with ControlPlane(_bin_dir(), compaction_interval="2s") as cp:
        yield cp


def admin(cp: ControlPlane) -> Any:
    return config.new_client_from_config(config_file=str(cp.kubeconfig_path))


def kubectl(
    cp: ControlPlane,
    *args: str,
    kubeconfig: Path | None = None,
    binary: str = "kubectl",
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run kubectl (the image's 1.32 by default, `binary=str(cp.kubectl)` for the release's)."""
    done = subprocess.run(
        [binary, "--kubeconfig", str(kubeconfig or cp.kubeconfig_path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {done.returncode}\n{done.stderr}")
    return done


def install(cp: ControlPlane) -> None:
    """`kubectl apply -f manifests/`, as the README says (idempotent)."""
    kubectl(cp, "apply", "-f", "manifests/")


def ensure_namespace(cp: ControlPlane, name: str) -> None:
    core: Any = client.CoreV1Api(admin(cp))
    try:
        core.create_namespace({"metadata": {"name": name}})
    except client.ApiException as e:
        if e.status != 409:
            raise


def set_config(core: Any, text: str) -> None:
    """Create or replace the MetalLB ConfigMap `metallb-system/config`."""
    body = {"metadata": {"name": "config", "namespace": NS}, "data": {"config": text}}
    try:
        core.replace_namespaced_config_map("config", NS, body)
    except client.ApiException as e:
        if e.status != 404:
            raise
        core.create_namespaced_config_map(NS, body)


def service(name: str, **spec: Any) -> dict[str, Any]:
    """A LoadBalancer Service without node ports; `spec` adds or overrides fields."""
    return {
        "metadata": {"name": name},
        "spec": {
            "type": "LoadBalancer",
            "allocateLoadBalancerNodePorts": False,
            "selector": {"app": name},
            "ports": [{"port": 80, "protocol": "TCP"}],
            **spec,
        },
    }


def read_configmap(core: Any, name: str, namespace: str = NS) -> Any:
    """The ConfigMap, or None when there is none."""
    try:
        return core.read_namespaced_config_map(name, namespace)
    except client.ApiException as e:
        if e.status == 404:
            return None
        raise


def statuses(core: Any, namespace: str) -> dict[str, list[str]]:
    """Service name -> the IPs in its status."""
    out = {}
    for svc in core.list_namespaced_service(namespace).items:
        ingress = (svc.status.load_balancer and svc.status.load_balancer.ingress) or []
        out[svc.metadata.name] = [i.ip for i in ingress if i.ip]
    return out


@pytest.fixture
def controller_of(tmp_path: Path) -> Iterator[Callable[[ControlPlane], Component]]:
    """Start `metallb-py controller` with the token of the manifests' `controller`
    ServiceAccount (install the manifests first); killed when the test ends."""
    started: list[Component] = []

    def start(cp: ControlPlane) -> Component:
        kubeconfig = cp.token_kubeconfig(tmp_path / f"controller-{len(started)}", NS, "controller")
        c = Component(controller_args(kubeconfig)).start()
        started.append(c)
        return c

    yield start
    for c in started:
        c.kill()

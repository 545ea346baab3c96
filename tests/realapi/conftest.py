"""The real-server tier: tests against kube-apiserver + etcd built from the Kubernetes release
(`scripts/build-control-plane.sh`), RBAC on. Skipped when the binaries are not built, unless
METALLB_PY_REAL_API=required (scripts/test.sh sets it when Go is installed, so CI cannot skip
them silently)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from metallb_lab.control_plane import ControlPlane, binaries

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

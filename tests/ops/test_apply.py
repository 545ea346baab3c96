"""`kubectl apply -f manifests/` (and rendered installs) against the test API server."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from metallb_py.testing.apiserver import ApiServer

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")


@pytest.fixture
def api() -> Iterator[ApiServer]:
    with ApiServer() as server:
        yield server


def kubectl(api: ApiServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(api.kubeconfig_path()), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def objects_in(directory: Path) -> list[tuple[str, str, str]]:
    out = []
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                meta = doc["metadata"]
                out.append((doc["kind"], meta.get("namespace", ""), meta["name"]))
    return out


def assert_all_stored(api: ApiServer, expected: list[tuple[str, str, str]]) -> None:
    for kind, namespace, name in expected:
        stored = api.get(kind, name, namespace or None)
        assert stored["metadata"]["name"] == name, (kind, name)


def test_kubectl_apply_manifests_directory(api: ApiServer):
    first = kubectl(api, "apply", "-f", str(ROOT / "manifests"))
    assert first.returncode == 0, first.stderr
    assert "daemonset.apps/speaker created" in first.stdout
    assert "deployment.apps/controller created" in first.stdout
    assert "prometheusrule.monitoring.coreos.com/metallb created" in first.stdout
    assert_all_stored(api, objects_in(ROOT / "manifests"))
    # The stored workloads are what the files say (the server adds only defaults/metadata).
    ds = api.get("DaemonSet", "speaker", "metallb-system")
    container = ds["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["capabilities"] == {"add": ["NET_RAW"], "drop": ["ALL"]}
    again = kubectl(api, "apply", "-f", str(ROOT / "manifests"))
    assert again.returncode == 0, again.stderr
    assert "created" not in again.stdout and "configured" not in again.stdout


def test_kubectl_apply_kustomization(api: ApiServer):
    out = kubectl(api, "apply", "-k", str(ROOT / "manifests"))
    assert out.returncode == 0, out.stderr
    assert "daemonset.apps/speaker created" in out.stdout


def test_rendered_install_applies(api: ApiServer, tmp_path: Path):
    from click.testing import CliRunner

    from metallb_py.cli import main

    values = ROOT / "config-examples/helm-values-prometheus-alerts.yaml"
    result = CliRunner().invoke(main, ["render", str(values), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = kubectl(api, "apply", "-k", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert_all_stored(api, objects_in(tmp_path))
    cm = api.get("ConfigMap", "config", "metallb-system")
    assert "first-pool" in cm["data"]["config"]

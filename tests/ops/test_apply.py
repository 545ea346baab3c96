"""The install path with the real kubectl against the test API server, which by default serves
only what a stock Kubernetes 1.32 cluster does (no Prometheus operator CRDs, no PodSecurityPolicy):
`kubectl apply -f manifests/` in one pass, re-applied over the user's config, `-k`, the opt-in
Prometheus operator objects, the example config, and rendered installs."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from metallb_lab.apiserver import ApiError, ApiServer

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
PROMETHEUS = MANIFESTS / "prometheus"
EXAMPLE = ROOT / "config-examples" / "configmap-layer2.yaml"
NS = "metallb-system"

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")

Kubectl = Callable[..., subprocess.CompletedProcess[str]]

USER_CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: config
  namespace: metallb-system
data:
  config: |
    # my own pool, not the example's
    address-pools:
    - name: lan
      protocol: layer2
      addresses:
      - 198.51.100.16/28
"""


def kubectl_for(api: ApiServer, cache: Path) -> Kubectl:
    """kubectl bound to `api` (by --server) with its own discovery cache: servers of
    different tests may reuse a port and serve different groups."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", "--server", api.url, "--kubeconfig", "/dev/null",
             "--cache-dir", str(cache), *args],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    return run


@pytest.fixture
def api() -> Iterator[ApiServer]:
    with ApiServer() as server:
        yield server


@pytest.fixture
def kubectl(api: ApiServer, tmp_path: Path) -> Kubectl:
    return kubectl_for(api, tmp_path / "kube-cache")


def objects_in(*paths: Path) -> list[tuple[str, str, str]]:
    out = []
    for directory in paths:
        files = sorted(directory.glob("*.yaml")) if directory.is_dir() else [directory]
        for path in files:
            for doc in yaml.safe_load_all(path.read_text()):
                if doc:
                    meta = doc["metadata"]
                    out.append((doc["kind"], meta.get("namespace", ""), meta["name"]))
    return out


def assert_all_stored(api: ApiServer, expected: list[tuple[str, str, str]]) -> None:
    for kind, namespace, name in expected:
        stored = api.get(kind, name, namespace or None)
        assert stored["metadata"]["name"] == name, (kind, name)


def test_fresh_install_in_one_apply(api: ApiServer, kubectl: Kubectl):
    with pytest.raises(ApiError, match="not found"):
        api.get("namespaces", NS)
    first = kubectl("apply", "-f", str(MANIFESTS))
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0] == f"namespace/{NS} created"
    assert "daemonset.apps/speaker created" in first.stdout
    assert "deployment.apps/controller created" in first.stdout
    # Only the install: no config, nothing of the Prometheus operator.
    assert "configmap" not in first.stdout and "monitoring.coreos.com" not in first.stdout
    assert_all_stored(api, objects_in(MANIFESTS))
    assert api.list("configmaps", NS) == []
    ds = api.get("DaemonSet", "speaker", NS)
    container = ds["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["capabilities"] == {"add": ["NET_RAW"], "drop": ["ALL"]}
    again = kubectl("apply", "-f", str(MANIFESTS))
    assert again.returncode == 0, again.stderr
    assert "created" not in again.stdout and "configured" not in again.stdout


def test_reapplying_the_install_keeps_the_users_config(
    api: ApiServer, kubectl: Kubectl, tmp_path: Path
):
    assert kubectl("apply", "-f", str(MANIFESTS)).returncode == 0
    mine = tmp_path / "my-config.yaml"
    mine.write_text(USER_CONFIG)
    wrote = kubectl("apply", "-f", str(mine))
    assert wrote.returncode == 0, wrote.stderr
    # The controller's accepted-config store is not in the manifests either.
    api.create({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "config-accepted", "namespace": NS},
                "data": {"config": "address-pools: []\n"}})  # fmt: skip
    before = {n: api.get("configmaps", n, NS) for n in ("config", "config-accepted")}
    again = kubectl("apply", "-f", str(MANIFESTS))
    assert again.returncode == 0, again.stderr
    assert "configmap" not in again.stdout
    for name, old in before.items():
        now = api.get("configmaps", name, NS)
        assert now["data"] == old["data"], name
        assert now["metadata"]["resourceVersion"] == old["metadata"]["resourceVersion"], name
    assert api.get("configmaps", "config", NS)["data"]["config"].encode() == (
        yaml.safe_load(USER_CONFIG)["data"]["config"].encode()
    )


def test_kustomize_install(api: ApiServer, kubectl: Kubectl):
    out = kubectl("apply", "-k", str(MANIFESTS))
    assert out.returncode == 0, out.stderr
    assert f"namespace/{NS} created" in out.stdout
    assert "daemonset.apps/speaker created" in out.stdout
    assert_all_stored(api, objects_in(MANIFESTS))
    # -f and -k install the same objects.
    same = kubectl("apply", "-f", str(MANIFESTS))
    assert same.returncode == 0, same.stderr
    assert "created" not in same.stdout and "configured" not in same.stdout


def test_prometheus_objects_need_the_operator_crds(api: ApiServer, kubectl: Kubectl):
    assert kubectl("apply", "-f", str(MANIFESTS)).returncode == 0
    out = kubectl("apply", "-f", str(PROMETHEUS))
    # As on a cluster without the operator: kubectl names the missing kinds and exits 1.
    assert out.returncode == 1
    assert 'no matches for kind "PodMonitor" in version "monitoring.coreos.com/v1"' in out.stderr
    assert 'no matches for kind "PrometheusRule"' in out.stderr
    assert "ensure CRDs are installed first" in out.stderr
    assert "panic" not in out.stderr and "Traceback" not in out.stderr


def test_prometheus_objects_apply_with_the_operator_crds(tmp_path: Path):
    with ApiServer(with_monitoring_crds=True) as api:
        kubectl = kubectl_for(api, tmp_path / "kube-cache")
        assert kubectl("apply", "-f", str(MANIFESTS)).returncode == 0
        out = kubectl("apply", "-f", str(PROMETHEUS))
        assert out.returncode == 0, out.stderr
        assert "podmonitor.monitoring.coreos.com/metallb-controller created" in out.stdout
        assert "prometheusrule.monitoring.coreos.com/metallb created" in out.stdout
        assert_all_stored(api, objects_in(PROMETHEUS))
        # Still nothing of it in the plain install.
        again = kubectl("apply", "-f", str(MANIFESTS))
        assert again.returncode == 0 and "monitoring" not in again.stdout


def test_example_config_applies_and_deletes_without_the_namespace(api: ApiServer, kubectl: Kubectl):
    assert [k for k, _, _ in objects_in(EXAMPLE)] == ["ConfigMap"]
    assert kubectl("apply", "-f", str(MANIFESTS)).returncode == 0
    out = kubectl("apply", "-f", str(EXAMPLE))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "configmap/config created"
    assert "my-ip-space" in api.get("configmaps", "config", NS)["data"]["config"]
    gone = kubectl("delete", "-f", str(EXAMPLE))
    assert gone.returncode == 0, gone.stderr
    assert gone.stdout.strip() == 'configmap "config" deleted'
    assert api.get("namespaces", NS)["metadata"]["name"] == NS
    assert_all_stored(api, objects_in(MANIFESTS))


def test_example_config_before_the_install_fails_cleanly(api: ApiServer, kubectl: Kubectl):
    out = kubectl("apply", "-f", str(EXAMPLE))
    assert out.returncode == 1 and f'namespaces "{NS}" not found' in out.stderr


def test_rendered_install_applies(tmp_path: Path):
    from click.testing import CliRunner

    from metallb_py.cli import main

    values = ROOT / "config-examples/helm-values-prometheus-alerts.yaml"
    rendered = tmp_path / "rendered"
    result = CliRunner().invoke(main, ["render", str(values), "-o", str(rendered)])
    assert result.exit_code == 0, result.output
    # These values enable the PodMonitors and the PrometheusRule.
    with ApiServer(with_monitoring_crds=True) as api:
        out = kubectl_for(api, tmp_path / "kube-cache")("apply", "-k", str(rendered))
        assert out.returncode == 0, out.stderr
        assert_all_stored(api, objects_in(rendered))
        cm = api.get("ConfigMap", "config", NS)
        assert "first-pool" in cm["data"]["config"]

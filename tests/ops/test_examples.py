"""Every file in config-examples/ goes through check, convert and render with the real CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from kubernetes.client import ApiClient

from metallb_py.cli import main
from metallb_py.config import BgpType, parse_config, read_config_document

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "config-examples").glob("*.yaml"))
PREFIXES = ("configmap", "crds", "helm", "konvoy", "kontena")


def kind_of(path: Path) -> str:
    return path.name.split("-", 1)[0]


def bgp_type(path: Path) -> str:
    return "frr" if "frr" in path.name else "native"


def run(*args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(main, list(args), input=stdin)


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def config_of(configmap_text: str, mode: str):
    return parse_config(read_config_document(configmap_text).text, BgpType(mode))


def test_examples_exist_with_known_kinds_and_comments():
    assert len(EXAMPLES) >= 10
    for path in EXAMPLES:
        assert kind_of(path) in PREFIXES, path.name
        first = path.read_text().splitlines()[0]
        assert first.startswith("# ") and len(first) > 20, f"{path.name} needs a header comment"


@pytest.mark.parametrize("path", [p for p in EXAMPLES if kind_of(p) == "configmap"], ids=str)
def test_configmap_examples(path: Path):
    mode = bgp_type(path)
    checked = run("config", "check", "--bgp-type", mode, str(path))
    assert checked.exit_code == 0, checked.output
    to_crds = run(
        "config", "convert", "--bgp-type", mode, "--from", "configmap", "--to", "crds", str(path)
    )
    assert to_crds.exit_code == 0, to_crds.output
    back = run(
        "config",
        "convert",
        "--bgp-type",
        mode,
        "--from",
        "crds",
        "--to",
        "configmap",
        "-",
        stdin=to_crds.stdout,
    )
    assert back.exit_code == 0, back.output
    assert config_of(back.stdout, mode) == config_of(path.read_text(), mode)
    again = run(
        "config",
        "convert",
        "--bgp-type",
        mode,
        "--from",
        "configmap",
        "--to",
        "crds",
        "-",
        stdin=back.stdout,
    )
    assert again.exit_code == 0, again.output
    assert docs(again.stdout) == docs(to_crds.stdout)


@pytest.mark.parametrize("path", [p for p in EXAMPLES if kind_of(p) == "crds"], ids=str)
def test_crd_examples_round_trip(path: Path):
    to_cm = run("config", "convert", "--from", "crds", "--to", "configmap", str(path))
    assert to_cm.exit_code == 0, to_cm.output
    checked = run("config", "check", "-", stdin=to_cm.stdout)
    assert checked.exit_code == 0, checked.output
    back = run("config", "convert", "--from", "configmap", "--to", "crds", "-", stdin=to_cm.stdout)
    assert back.exit_code == 0, back.output
    assert docs(back.stdout) == docs(path.read_text())


def loads_into_models(objects: list[dict[str, Any]]) -> None:
    client = ApiClient()
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue
        model = client._ApiClient__deserialize(obj, f"V1{obj['kind']}")  # type: ignore[attr-defined]
        assert client.sanitize_for_serialization(model) == obj


@pytest.mark.parametrize(
    "path", [p for p in EXAMPLES if kind_of(p) in ("helm", "konvoy", "kontena")], ids=str
)
def test_addon_examples_render_and_convert(path: Path, tmp_path: Path):
    kind = kind_of(path)
    rendered = run("render", str(path), "-o", str(tmp_path))
    assert rendered.exit_code == 0, rendered.output
    files = sorted(p.name for p in tmp_path.iterdir())
    assert {"metallb.yaml", "config.yaml", "Kustomization"} <= set(files)
    for name in files:
        if name.endswith(".yaml"):
            loads_into_models(docs((tmp_path / name).read_text()))
    checked = run("config", "check", str(tmp_path / "config.yaml"))
    assert checked.exit_code == 0, checked.output
    to_cm = run("config", "convert", "--from", kind, "--to", "configmap", str(path))
    assert to_cm.exit_code == 0, to_cm.output
    assert config_of(to_cm.stdout, "native") == config_of(
        (tmp_path / "config.yaml").read_text(), "native"
    )
    to_crds = run("config", "convert", "--from", kind, "--to", "crds", str(path))
    assert to_crds.exit_code == 0, to_crds.output
    back = run(
        "config", "convert", "--from", "crds", "--to", "configmap", "-", stdin=to_crds.stdout
    )
    assert back.exit_code == 0, back.output
    assert config_of(back.stdout, "native") == config_of(to_cm.stdout, "native")


def rendered(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    result = run("render", str(path))
    assert result.exit_code == 0, result.output
    return {(d["kind"], d["metadata"]["name"]): d for d in docs(result.stdout)}


def test_kontena_bgp_places_speakers_and_peers():
    objs = rendered(ROOT / "config-examples/kontena-bgp-values.yaml")
    pod = objs[("DaemonSet", "speaker")]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {
        "kubernetes.io/os": "linux",
        "node-role.kubernetes.io/worker": "",
    }
    assert {"operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    config = parse_config(objs[("ConfigMap", "config")]["data"]["config"])
    assert [str(p.address) for p in config.peers] == ["10.80.119.142", "10.80.119.140"]
    assert config.peers[0].selects({"kubernetes.io/hostname": "metallb-cluster-worker-0"})
    assert not config.peers[0].selects({"kubernetes.io/hostname": "metallb-cluster-worker-1"})
    assert [p.name for p in config.pools] == ["default"]


def test_helm_alert_values_render_rules_and_monitors():
    objs = rendered(ROOT / "config-examples/helm-values-prometheus-alerts.yaml")
    rule = objs[("PrometheusRule", "metallb")]
    alerts = [r["alert"] for r in rule["spec"]["groups"][0]["rules"]]
    assert alerts == [
        "MetalLBStaleConfig",
        "MetalLBConfigNotLoaded",
        "MetalLBAddressPoolExhausted",
        "MetalLBAddressPoolUsage75Percent",
        "MetalLBAddressPoolUsage85Percent",
        "MetalLBAddressPoolUsage95Percent",
        "MetalLBBGPSessionDown",
    ]
    assert ("PodMonitor", "metallb-controller") in objs
    assert objs[("PodMonitor", "metallb-speaker")]["spec"]["jobLabel"] == "app.kubernetes.io/name"
    # scrapeAnnotations: false in the values
    template = objs[("Deployment", "controller")]["spec"]["template"]
    assert "annotations" not in template["metadata"]


def test_konvoy_layer2_pool():
    objs = rendered(ROOT / "config-examples/konvoy-layer2-cluster.yaml")
    config = parse_config(objs[("ConfigMap", "config")]["data"]["config"])
    (pool,) = config.pools
    assert pool.protocol.value == "layer2"
    assert sum(c.num_addresses for c in pool.cidrs) == 26  # 10.0.50.25-10.0.50.50

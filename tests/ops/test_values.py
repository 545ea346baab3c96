"""`metallb-py render`: Helm, Konvoy and Kontena values, and how bad input is reported."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from metallb_py.addons import values
from metallb_py.addons.manifests import DEFAULT_IMAGE
from metallb_py.cli import main
from metallb_py.config import ConfigError


def render(tmp_path: Path, text: str, *extra: str) -> Any:
    path = tmp_path / "values.yaml"
    path.write_text(textwrap.dedent(text))
    return CliRunner().invoke(main, ["render", str(path), *extra])


def objects(stdout: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(stdout) if d}


def errors(result: Any) -> list[str]:
    assert result.exit_code == 1, result.output
    return [line.split(": ", 1)[1] for line in result.stderr.splitlines() if ": " in line]


def test_empty_values_render_the_default_install_without_configmap(tmp_path: Path):
    result = render(tmp_path, "{}\n")
    assert result.exit_code == 0, result.output
    objs = objects(result.stdout)
    assert ("ConfigMap", "config") not in objs
    assert ("DaemonSet", "speaker") in objs and ("Deployment", "controller") in objs
    assert "no ConfigMap is rendered" in result.stderr


def test_helm_knobs_reach_the_objects(tmp_path: Path):
    result = render(
        tmp_path,
        """
        existingConfigMap: my-config
        imagePullSecrets: [{name: regcred}]
        rbac: {create: true}
        prometheus: {scrapeAnnotations: true, metricsPort: 7575}
        controller:
          logLevel: debug
          image: {repository: registry.example/metallb-py, tag: dev, pullPolicy: Always}
          nodeSelector: {role: infra}
          tolerations: [{key: dedicated, operator: Equal, value: infra, effect: NoSchedule}]
          resources: {limits: {cpu: 100m, memory: 100Mi}}
          priorityClassName: system-cluster-critical
          livenessProbe: {enabled: false}
        speaker:
          tolerateMaster: false
          memberlist: {enabled: true, mlBindPort: 7947}
          serviceAccount: {create: false, name: existing-sa}
          podAnnotations: {team: net}
        """,
    )
    assert result.exit_code == 0, result.output
    objs = objects(result.stdout)
    pod = objs[("Deployment", "controller")]["spec"]["template"]
    (c,) = pod["spec"]["containers"]
    assert c["image"] == "registry.example/metallb-py:dev" and c["imagePullPolicy"] == "Always"
    assert c["args"] == ["controller", "--port=7575", "--config=my-config", "--log-level=debug"]
    assert "livenessProbe" not in c and c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["resources"] == {"limits": {"cpu": "100m", "memory": "100Mi"}}
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux", "role": "infra"}
    assert pod["spec"]["priorityClassName"] == "system-cluster-critical"
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "7575"
    ds = objs[("DaemonSet", "speaker")]["spec"]["template"]
    assert "tolerations" not in ds["spec"]
    assert ds["spec"]["serviceAccountName"] == "existing-sa"
    assert ds["metadata"]["annotations"]["team"] == "net"
    (s,) = ds["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in s["env"]}
    assert env["METALLB_ML_BIND_PORT"] == "7947"
    assert {"containerPort": 7947, "name": "memberlist-udp", "protocol": "UDP"} in s["ports"]
    assert ("ServiceAccount", "existing-sa") not in objs
    binding = objs[("ClusterRoleBinding", "metallb-system:speaker")]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "existing-sa", "namespace": "metallb-system"}
    ]


def test_disabled_controller_and_rbac(tmp_path: Path):
    result = render(tmp_path, "controller: {enabled: false}\nrbac: {create: false}\n")
    assert result.exit_code == 0, result.output
    kinds = {k for k, _ in objects(result.stdout)}
    assert "Deployment" not in kinds
    assert not kinds & {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}


def test_alert_thresholds_and_labels_from_values(tmp_path: Path):
    result = render(
        tmp_path,
        """
        prometheus:
          prometheusRule:
            enabled: true
            additionalLabels: {release: kube-prometheus}
            staleConfig: {labels: {team: net}}
            bgpSessionDown: {enabled: false}
            addressPoolUsage:
              thresholds:
              - {percent: 50, labels: {severity: info}}
        """,
    )
    assert result.exit_code == 0, result.output
    rule = objects(result.stdout)[("PrometheusRule", "metallb")]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus"
    rules = {r["alert"]: r for r in rule["spec"]["groups"][0]["rules"]}
    assert set(rules) == {
        "MetalLBStaleConfig",
        "MetalLBConfigNotLoaded",
        "MetalLBAddressPoolExhausted",
        "MetalLBAddressPoolUsage50Percent",
    }
    # Helm merges maps over the chart defaults: the severity stays, team is added.
    assert rules["MetalLBStaleConfig"]["labels"] == {"severity": "warning", "team": "net"}
    assert rules["MetalLBAddressPoolUsage50Percent"]["expr"].endswith("* 100 > 50")


def test_unknown_keys_name_path_line_and_suggestion(tmp_path: Path):
    result = render(
        tmp_path,
        """\
        controller:
          nodeSelectr: {a: b}
        prometheus:
          prometheusRule:
            addressPoolUsage:
              thresholds:
              - percnt: 80
        """,
    )
    assert errors(result) == [
        "controller.nodeSelectr: unknown key 'nodeSelectr' in controller values: did you mean"
        " 'nodeSelector'? (line 2)",
        "prometheus.prometheusRule.addressPoolUsage.thresholds[0].percnt: unknown key 'percnt'"
        " in threshold: did you mean 'percent'? (line 7)",
    ]


def test_config_problems_point_into_the_values_file(tmp_path: Path):
    result = render(
        tmp_path,
        """\
        configInline:
          address-pools:
          - name: lan
            protocol: layer3
            addresses: [192.0.2.0/24]
        """,
    )
    (err,) = errors(result)
    assert err.startswith("configInline.address-pools[0].protocol:")
    assert err.endswith("(line 4)")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", "addon values must be a YAML mapping, got a list"),
        ("just text\n", "addon values must be a YAML mapping, got a string"),
        ("kontena-lens: {enabled: true}\n", "these are not MetalLB chart values"),
        ("nameOverride: lb\n", "not supported: metallb-py renders fixed object names"),
        ("speaker: {frr: {enabled: true}}\n", "FRR mode is not supported"),
        ("controller: {image: {repository: quay.io/metallb/controller}}\n", "upstream MetalLB"),
        ("controller: {logLevel: loud}\n", "unknown log level 'loud'"),
        ("prometheus: {metricsPort: '7472'}\n", "expected an integer"),
        ("prometheus: {podMonitor: {enabled: true, jobLabel: team}}\n", "'team' is not a label"),
        ("configInline: 'address-pools: []'\n", "configInline must be a mapping"),
        (
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\n",
            "got metallb.io/v1beta1 IPAddressPool (a MetalLB config",
        ),
        ("apiVersion: apps/v1\nkind: Deployment\n", "got apps/v1 Deployment"),
    ],
)
def test_bad_helm_values(tmp_path: Path, text: str, expected: str):
    result = render(tmp_path, text)
    assert result.exit_code == 1
    assert expected in result.stderr, result.stderr


KONVOY = """\
kind: ClusterProvisioner
apiVersion: konvoy.mesosphere.io/v1beta2
metadata: {name: lab}
---
kind: ClusterConfiguration
apiVersion: konvoy.mesosphere.io/v1beta2
spec:
  kubernetes:
    networking:
      podSubnet: 192.168.0.0/16
      serviceSubnet: 10.96.0.0/12
  addons:
  - configRepository: https://github.com/mesosphere/kubernetes-base-addons
    addonsList:
    - name: traefik
      enabled: true
    - name: metallb
      enabled: true
      values: |-
        configInline:
          address-pools:
          - name: default
            protocol: layer2
            addresses:
            - {addresses}
"""


def test_konvoy_addon_list_form_and_line_mapping(tmp_path: Path):
    ok = render(tmp_path, KONVOY.replace("{addresses}", "10.0.50.25-10.0.50.50"))
    assert ok.exit_code == 0, ok.output
    bad = render(tmp_path, KONVOY.replace("{addresses}", "10.0.50.25"))
    (err,) = errors(bad)
    assert err.startswith(
        "spec.addons[0].addonsList[1].values.configInline.address-pools[0].addresses[0]:"
    )
    assert err.endswith("(line 25)")


def test_konvoy_pool_overlapping_pod_subnet_is_refused(tmp_path: Path):
    result = render(tmp_path, KONVOY.replace("{addresses}", "192.168.1.240/28"))
    (err,) = errors(result)
    assert "overlaps spec.kubernetes.networking.podSubnet 192.168.0.0/16" in err
    assert err.endswith("(line 25)")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "kind: ClusterConfiguration\napiVersion: konvoy.mesosphere.io/v1alpha1\n",
            "apiVersion: expected one of konvoy.mesosphere.io/v1beta1",
        ),
        (
            "kind: ClusterConfiguration\napiVersion: konvoy.mesosphere.io/v1beta2\nspec:\n"
            "  addons:\n    addonsList:\n    - {name: dashboard, enabled: true}\n",
            "no addon named 'metallb' in spec.addons[].addonsList (found: dashboard)",
        ),
        (
            "kind: ClusterConfiguration\napiVersion: konvoy.mesosphere.io/v1beta2\nspec:\n"
            "  addons:\n    addonsList:\n    - {name: metallb, enabled: false}\n",
            "the metallb addon is disabled",
        ),
        (
            "kind: ClusterConfiguration\napiVersion: konvoy.mesosphere.io/v1beta2\nspec:\n"
            "  addons:\n    addonsList:\n    - {name: metallb, values: '- a'}\n",
            "chart values must be a mapping, got a list",
        ),
    ],
)
def test_bad_konvoy(tmp_path: Path, text: str, expected: str):
    result = render(tmp_path, text)
    assert result.exit_code == 1
    assert expected in result.stderr, result.stderr


def test_kontena_underscore_keys_and_config_errors_in_user_spelling(tmp_path: Path):
    result = render(
        tmp_path,
        """\
        kontena-network-lb:
          enabled: true
          address_pools:
          - name: default
            protocol: layer2
            adresses: [192.168.1.240-192.168.1.250]
        """,
    )
    errs = errors(result)
    assert any(
        e.startswith("kontena-network-lb.address_pools[0].adresses: unknown key 'adresses'")
        and e.endswith("(line 6)")
        for e in errs
    ), errs


def test_kontena_under_addons_of_a_cluster_yml(tmp_path: Path):
    result = render(
        tmp_path,
        """\
        hosts: []
        addons:
          kontena-network-lb:
            enabled: true
            peers:
            - {peer_address: 192.0.2.1, peer_asn: 64501, my_asn: 64500, hold_time: 9s}
            address_pools:
            - {name: default, protocol: bgp, addresses: [198.51.100.0/24], avoid_buggy_ips: true}
        """,
    )
    assert result.exit_code == 0, result.output
    config = objects(result.stdout)[("ConfigMap", "config")]["data"]["config"]
    assert "hold-time: 9s" in config and "avoid-buggy-ips: true" in config


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kontena-network-lb: [a]\n", "expected kontena-network-lb values (a mapping)"),
        ("kontena-network-lb: {enabled: false}\n", "the addon is disabled"),
        ("kontena-network-lb: {nodes: 3}\n", "unknown key 'nodes'"),
        ("addons: {kontena-lens: {enabled: true}}\n", "these are values for another addon"),
        (
            "kontena-network-lb:\n  peers:\n  - {peer_asn: 1, peer-asn: 1, my_asn: 2, peer_address: 192.0.2.1}\n",
            "'peer-asn' repeats 'peer_asn'",
        ),
    ],
)
def test_bad_kontena(tmp_path: Path, text: str, expected: str):
    result = render(tmp_path, text, "--format", "kontena")
    assert result.exit_code == 1
    assert expected in result.stderr, result.stderr


def test_format_mismatch_is_named():
    with pytest.raises(ConfigError, match="these look like kontena values, not konvoy"):
        values.read_values("kontena-network-lb: {}\n", "konvoy")


def test_default_image_is_ours():
    addon = values.read_values("{}\n")
    assert addon.options.controller.image == DEFAULT_IMAGE
    assert addon.options.speaker.image == DEFAULT_IMAGE


def test_render_into_another_namespace(tmp_path: Path):
    result = render(tmp_path, "configInline: {address-pools: []}\n", "--namespace", "lb")
    assert result.exit_code == 0, result.output
    objs = objects(result.stdout)
    assert ("Namespace", "lb") in objs
    for (kind, name), obj in objs.items():
        if kind in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert kind == "Namespace" or name.startswith("lb:")
            continue
        assert obj["metadata"]["namespace"] == "lb", (kind, name)
    for binding in [o for (k, _), o in objs.items() if k.endswith("Binding")]:
        assert all(s["namespace"] == "lb" for s in binding["subjects"])

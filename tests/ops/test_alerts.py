"""The PrometheusRule alerts, checked and unit-tested by the real `promtool`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from metallb_py.addons import alerts

ROOT = Path(__file__).resolve().parents[2]
TESTS = Path(__file__).with_name("prometheus-rules.test.yaml")

pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian package prometheus) is missing"
)


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def write_rules(tmp: Path, groups: list[dict[str, Any]]) -> None:
    (tmp / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))


def shipped_groups() -> list[dict[str, Any]]:
    (rule,) = list(
        yaml.safe_load_all((ROOT / "manifests/prometheus/prometheus-rules.yaml").read_text())
    )
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    return rule["spec"]["groups"]


def test_shipped_rules_check_and_pass_unit_tests(tmp_path: Path):
    write_rules(tmp_path, shipped_groups())
    shutil.copy(TESTS, tmp_path / TESTS.name)
    checked = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout
    tested = promtool("test", "rules", TESTS.name, cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_shipped_alert_names_and_severities():
    rules = shipped_groups()[0]["rules"]
    assert [(r["alert"], r.get("for"), r["labels"]["severity"]) for r in rules] == [
        ("MetalLBStaleConfig", "1m", "warning"),
        ("MetalLBConfigNotLoaded", "1m", "warning"),
        ("MetalLBAddressPoolExhausted", "1m", "alert"),
        ("MetalLBAddressPoolUsage75Percent", None, "warning"),
        ("MetalLBAddressPoolUsage85Percent", None, "warning"),
        ("MetalLBAddressPoolUsage95Percent", None, "alert"),
        ("MetalLBBGPSessionDown", "1m", "alert"),
    ]


@pytest.mark.parametrize(
    "mutant",
    [
        alerts.RuleOptions(
            address_pool_usage=(
                alerts.Threshold(74, {"severity": "warning"}),
                *alerts.DEFAULT_THRESHOLDS[1:],
            )
        ),
        alerts.RuleOptions(stale_config={"severity": "alert"}),
        alerts.RuleOptions(job="metallb-system/metallb-controller"),
        alerts.RuleOptions(bgp_session_down=None),
    ],
    ids=["threshold-74", "stale-severity", "other-job", "bgp-disabled"],
)
def test_unit_tests_catch_a_wrong_rule(tmp_path: Path, mutant: alerts.RuleOptions):
    """The unit tests must fail on rules that differ from the shipped ones (they have teeth)."""
    write_rules(tmp_path, alerts.rule_groups(mutant))
    shutil.copy(TESTS, tmp_path / TESTS.name)
    tested = promtool("test", "rules", TESTS.name, cwd=tmp_path)
    assert tested.returncode != 0


CUSTOM_TEST = """
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'metallb_allocator_addresses_in_use_total{pool="at"}'
        values: '50x2'
      - series: 'metallb_allocator_addresses_total{pool="at"}'
        values: '100x2'
      - series: 'metallb_allocator_addresses_in_use_total{pool="over"}'
        values: '51x2'
      - series: 'metallb_allocator_addresses_total{pool="over"}'
        values: '100x2'
      - series: 'metallb_bgp_session_up{job="lb",peer="192.0.2.1:179"}'
        values: '0x2'
      - series: 'metallb_k8s_client_config_stale_bool{job="lb",container="speaker",pod="s"}'
        values: '1x2'
    alert_rule_test:
      - eval_time: 0m
        alertname: MetalLBAddressPoolUsage50Percent
        exp_alerts:
          - exp_labels: {severity: page, team: net, pool: over}
            exp_annotations: {message: 'MetalLB address pool over is past 50% usage'}
      - {eval_time: 2m, alertname: MetalLBBGPSessionDown, exp_alerts: []}
      - eval_time: 2m
        alertname: MetalLBStaleConfig
        exp_alerts:
          - exp_labels: {severity: critical, job: lb, container: speaker, pod: s}
            exp_annotations:
              message: 'lb - MetalLB speaker on s has a stale config for > 1 minute'
"""


def test_custom_thresholds_labels_and_disabled_alerts(tmp_path: Path):
    opts = alerts.RuleOptions(
        address_pool_usage=(alerts.Threshold(50, {"severity": "page", "team": "net"}),),
        bgp_session_down=None,
        stale_config={"severity": "critical"},
        job="lb",
    )
    write_rules(tmp_path, alerts.rule_groups(opts))
    (tmp_path / "custom.test.yaml").write_text(CUSTOM_TEST)
    assert promtool("check", "rules", "rules.yaml", cwd=tmp_path).returncode == 0
    tested = promtool("test", "rules", "custom.test.yaml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_extra_alerts_are_appended_verbatim(tmp_path: Path):
    extra = {"alert": "MyAlert", "expr": "up == 0", "for": "5m", "labels": {"severity": "x"}}
    opts = alerts.RuleOptions(extra_alerts=(extra,))
    rules = alerts.alert_rules(opts)
    assert rules[-1] == extra
    write_rules(tmp_path, alerts.rule_groups(opts))
    checked = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert checked.returncode == 0 and "8 rules found" in checked.stdout

"""The PrometheusRule with MetalLB's alerts (chart v0.12.1 `prometheusrules.yaml`;
docs/alerts.md).

Expressions, `for` durations and default labels are upstream's; the `job` the config alerts
filter on is the value of the PodMonitor `jobLabel` pod label, `metallb` for our pods.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from metallb_py.k8s.objects import Obj

JOB = "metallb"


@dataclass(frozen=True)
class Threshold:
    percent: int
    labels: Mapping[str, str] = field(default_factory=dict)


def _warning() -> Mapping[str, str]:
    return {"severity": "warning"}


def _alert() -> Mapping[str, str]:
    return {"severity": "alert"}


DEFAULT_THRESHOLDS = (
    Threshold(75, {"severity": "warning"}),
    Threshold(85, {"severity": "warning"}),
    Threshold(95, {"severity": "alert"}),
)


@dataclass(frozen=True)
class RuleOptions:
    """`None` for one alert's labels means that alert is disabled (chart `enabled: false`)."""

    additional_labels: Mapping[str, str] = field(default_factory=dict)
    stale_config: Mapping[str, str] | None = field(default_factory=_warning)
    config_not_loaded: Mapping[str, str] | None = field(default_factory=_warning)
    address_pool_exhausted: Mapping[str, str] | None = field(default_factory=_alert)
    address_pool_usage: tuple[Threshold, ...] = DEFAULT_THRESHOLDS
    bgp_session_down: Mapping[str, str] | None = field(default_factory=_alert)
    extra_alerts: tuple[Mapping[str, Any], ...] = ()
    job: str = JOB
    name: str = "metallb"


def _message(what: str) -> str:
    return "{{ $labels.job }} - MetalLB {{ $labels.container }} on {{ $labels.pod }} " + what


def _entry(alert: str, expr: str, message: str, labels: Mapping[str, str], for_: str | None) -> Obj:
    rule: Obj = {"alert": alert, "annotations": {"message": message}, "expr": expr}
    if for_:
        rule["for"] = for_
    if labels:
        rule["labels"] = dict(labels)
    return rule


def alert_rules(opts: RuleOptions) -> list[Obj]:
    """The rule list of the single group, in the chart's order."""
    job = opts.job
    rules: list[Obj] = []
    if opts.stale_config is not None:
        rules.append(
            _entry(
                "MetalLBStaleConfig",
                f'metallb_k8s_client_config_stale_bool{{job="{job}"}} == 1',
                _message("has a stale config for > 1 minute"),
                opts.stale_config,
                "1m",
            )
        )
    if opts.config_not_loaded is not None:
        rules.append(
            _entry(
                "MetalLBConfigNotLoaded",
                f'metallb_k8s_client_config_loaded_bool{{job="{job}"}} == 0',
                _message("has not loaded for > 1 minute"),
                opts.config_not_loaded,
                "1m",
            )
        )
    if opts.address_pool_exhausted is not None:
        rules.append(
            _entry(
                "MetalLBAddressPoolExhausted",
                "metallb_allocator_addresses_in_use_total >= on(pool) "
                "metallb_allocator_addresses_total",
                # `on(pool)` keeps only `pool` on the result, so upstream's message (job,
                # container, pod) rendered as blanks; name what the alert actually knows.
                "MetalLB address pool {{ $labels.pool }} has been exhausted for > 1 minute",
                opts.address_pool_exhausted,
                "1m",
            )
        )
    for t in opts.address_pool_usage:
        rules.append(
            _entry(
                f"MetalLBAddressPoolUsage{t.percent}Percent",
                "( metallb_allocator_addresses_in_use_total / on(pool) "
                f"metallb_allocator_addresses_total ) * 100 > {t.percent}",
                f"MetalLB address pool {{{{ $labels.pool }}}} is past {t.percent}% usage",
                t.labels,
                None,
            )
        )
    if opts.bgp_session_down is not None:
        rules.append(
            _entry(
                "MetalLBBGPSessionDown",
                f'metallb_bgp_session_up{{job="{job}"}} == 0',
                _message("has BGP session {{ $labels.peer }} down for > 1 minute"),
                opts.bgp_session_down,
                "1m",
            )
        )
    rules += [dict(a) for a in opts.extra_alerts]
    return rules


def rule_groups(opts: RuleOptions) -> list[Obj]:
    """`spec.groups`, which is also a valid Prometheus rule file's `groups`."""
    return [{"name": f"{opts.name}.rules", "rules": alert_rules(opts)}]


def prometheus_rule(opts: RuleOptions, namespace: str) -> Obj:
    labels: Obj = {"app": "metallb", **opts.additional_labels}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": opts.name, "namespace": namespace, "labels": labels},
        "spec": {"groups": rule_groups(opts)},
    }

"""`metallb-py doctor`: find the cluster-side mistakes that make MetalLB silently not work.

The checks are the ones users hit most (docs/install.md, "doctor"): kube-proxy IPVS without
strictARP, pools overlapping the Service or Pod network or holding a node's own address, a
controller that is missing, not running or scaled beyond one replica, a live config the
controller refused, Ready nodes without a running speaker, the memberlist Secret missing, and a
config that is missing or does not parse. `gather` reads the cluster through the `kubernetes`
client into a `ClusterView` of plain dicts; `diagnose` is pure and turns that view into
findings, one line each with what to do. Only `error` findings make doctor exit 1; `warning`
(may be wrong, doctor cannot tell) and `info` lines do not.
"""

from __future__ import annotations

from collections.abc import Iterable

from metallb_py.doctor.config_checks import check_accepted, check_config, check_controller
from metallb_py.doctor.gather import gather
from metallb_py.doctor.network_checks import (
    check_node_addresses,
    check_overlaps,
    check_strict_arp,
    cluster_networks,
)
from metallb_py.doctor.speaker_checks import check_secret, check_speakers
from metallb_py.doctor.view import ClusterView, Finding, IgnoredNodes, Severity

__all__ = [
    "ClusterView",
    "Finding",
    "IgnoredNodes",
    "Severity",
    "cluster_networks",
    "diagnose",
    "exit_code",
    "gather",
]


def diagnose(view: ClusterView, ignore: IgnoredNodes | None = None) -> list[Finding]:
    """Every problem found, in a stable order; empty for a healthy cluster."""
    findings = [
        Finding("access", f"cannot read {what}", "run doctor with a kubeconfig allowed to read it")
        for what in view.unreadable
    ]
    checked = check_config(view)
    if checked.finding is not None:
        findings.append(checked.finding)
    findings += check_accepted(view, checked.config is not None)
    findings += check_controller(view)
    findings += check_strict_arp(view, checked.config)
    findings += check_overlaps(view, checked.config)
    findings += check_node_addresses(view, checked.config)
    findings += check_secret(view)
    findings += check_speakers(view, ignore or IgnoredNodes())
    return findings


def exit_code(findings: Iterable[Finding]) -> int:
    """1 when any finding is an error, else 0 (warnings and info lines only inform)."""
    return 1 if any(f.severity is Severity.ERROR for f in findings) else 0

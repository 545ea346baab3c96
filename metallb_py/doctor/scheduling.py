"""Where the speaker DaemonSet may run: its nodeSelector, node affinity and tolerations,
matched against a node as the scheduler does, so doctor can tell "no speaker on purpose" from
"no speaker by mistake"."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from metallb_py.k8s.objects import Obj, name_of, value_at
from metallb_py.k8s.selectors import NODE_SELECTOR_OPERATORS, requirement_from_expression

# Tolerations the DaemonSet controller adds to every DaemonSet pod (the last one only with
# hostNetwork, which the speaker uses): these taints never keep a speaker off a node.
_DAEMONSET_TOLERATIONS: tuple[Obj, ...] = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
_HOST_NETWORK_TOLERATION: Obj = {
    "key": "node.kubernetes.io/network-unavailable",
    "operator": "Exists",
    "effect": "NoSchedule",
}


def _tolerates(tolerations: Iterable[Obj], taint: Obj) -> bool:
    for t in tolerations:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        op = t.get("operator", "Equal")
        if not t.get("key") and op == "Exists":
            return True
        if t.get("key") != taint.get("key"):
            continue
        if op == "Exists" or t.get("value", "") == taint.get("value", ""):
            return True
    return False


def _term_matches(term: Mapping[str, Any], node: Obj) -> bool:
    """One nodeSelectorTerm: all its expressions and fields hold; an empty term matches nothing."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    labels = value_at(node, "metadata", "labels") or {}
    for expr in expressions:
        req = requirement_from_expression(expr, NODE_SELECTOR_OPERATORS)
        if req is None or not req.matches(labels):
            return False
    node_fields = {"metadata.name": name_of(node)}
    for expr in fields:
        req = requirement_from_expression(expr, NODE_SELECTOR_OPERATORS)
        if expr.get("key") != "metadata.name" or req is None or req.op not in ("in", "notin"):
            return False
        if not req.matches(node_fields):
            return False
    return True


def why_not_scheduled(ds: Obj, node: Obj) -> str | None:
    """The DaemonSet rule that keeps its pods off this node, if any."""
    pod_spec = value_at(ds, "spec", "template", "spec") or {}
    labels = value_at(node, "metadata", "labels") or {}
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return f"the speaker DaemonSet's nodeSelector {key}={value} does not match it"
    required = value_at(
        pod_spec, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if isinstance(required, Mapping):
        terms = required.get("nodeSelectorTerms") or []
        if not any(_term_matches(t, node) for t in terms if isinstance(t, Mapping)):
            return "the speaker DaemonSet's required node affinity does not match it"
    tolerations = [*(pod_spec.get("tolerations") or []), *_DAEMONSET_TOLERATIONS]
    if pod_spec.get("hostNetwork"):
        tolerations.append(_HOST_NETWORK_TOLERATION)
    for taint in value_at(node, "spec", "taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(
            tolerations, taint
        ):
            key = taint.get("key")
            return f"the speaker DaemonSet does not tolerate its taint {key}:{taint.get('effect')}"
    return None

"""Reading Node and speaker Pod objects: readiness, labels, and the live-node set that stands in
for membership when membership is disabled.

Upstream without memberlist has no live-speaker set, so layer2 `Cluster` Services are announced
by nobody (spec 4.5, 9.7). metallb-py falls back to "Ready Nodes that run a Running speaker Pod"
as seen through the API: slow to notice a crash (the Node turns NotReady after the node monitor
grace period, 40 s by default) but never empty while the cluster works. The speaker logs a
warning when it uses this fallback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def node_name(node: Mapping[str, Any]) -> str:
    name = _mapping(node.get("metadata")).get("name")
    return name if isinstance(name, str) else ""


def node_labels(node: Mapping[str, Any] | None) -> dict[str, str]:
    """The Node's labels; `{}` before the Node has been seen (spec 1.4)."""
    if node is None:
        return {}
    labels = _mapping(_mapping(node.get("metadata")).get("labels"))
    return {k: v for k, v in labels.items() if isinstance(k, str) and isinstance(v, str)}


def node_ready(node: Mapping[str, Any]) -> bool | None:
    """The Node's `Ready` condition: True, False (also for `Unknown`), or None when absent."""
    for entry in _list(_mapping(node.get("status")).get("conditions")):
        condition = _mapping(entry)
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return None


def pod_running_on(pod: Mapping[str, Any]) -> str:
    """The node a speaker Pod runs on, or `""` when it is not Running (or being deleted)."""
    metadata = _mapping(pod.get("metadata"))
    if metadata.get("deletionTimestamp"):
        return ""
    if _mapping(pod.get("status")).get("phase") != "Running":
        return ""
    node = _mapping(pod.get("spec")).get("nodeName")
    return node if isinstance(node, str) else ""


def fallback_live_nodes(
    nodes: Iterable[Mapping[str, Any]], speaker_pods: Iterable[Mapping[str, Any]]
) -> frozenset[str]:
    """Live-node set without membership: Nodes whose Ready condition is True and that run a
    Running, not-terminating speaker Pod (`speaker_pods` are the Pods the `--ml-labels`
    selector picks)."""
    with_speaker = {pod_running_on(p) for p in speaker_pods if isinstance(p, Mapping)}
    with_speaker.discard("")
    return frozenset(
        name
        for node in nodes
        if isinstance(node, Mapping)
        and (name := node_name(node)) in with_speaker
        and node_ready(node) is True
    )

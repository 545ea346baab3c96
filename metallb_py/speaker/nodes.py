"""The live-node set that stands in for membership when membership is disabled.

Upstream without memberlist has no live-speaker set, so layer2 `Cluster` Services are announced
by nobody. metallb-py falls back to "Ready Nodes that run a Running speaker Pod" as seen through
the API: slow to notice a crash (the Node turns NotReady after the node monitor grace period,
40 s by default) but never empty while the cluster works. The speaker logs a warning when it
uses this fallback (docs/behaviour-differences.md, "Layer2 without membership").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from metallb_py.k8s.objects import name_of, node_ready, pod_running_on


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
        and (name := name_of(node)) in with_speaker
        and node_ready(node) is True
    )

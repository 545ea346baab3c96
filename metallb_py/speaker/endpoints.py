"""One view of a Service's endpoints, from EndpointSlices or from a core v1 Endpoints object.

The speaker's decisions only need two facts per endpoint address: is it ready, and on which
node does it run. Upstream answers them differently for the two API shapes (and reads the node
of a slice endpoint only from the deprecated topology map); here both shapes are normalised
into one value with one readiness rule (docs/behaviour-differences.md, "Speaker"):

* an address is ready when it is listed as ready somewhere and as not-ready nowhere (not-ready
  wins, as upstream's BGP path does; upstream's layer2 path skips that refinement);
* a slice endpoint is ready when `conditions.ready` is true or absent;
* a slice endpoint's node is `nodeName`, falling back to `topology["kubernetes.io/hostname"]`
  (discovery v1beta1) and then `deprecatedTopology["kubernetes.io/hostname"]` (v1).

"No endpoint object at all" is `None`, not an empty value: upstream treats such a Service as
deleted, which the decision reproduces.

Objects are plain dicts in the Kubernetes JSON shape; anything of the wrong type is skipped.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from metallb_py.k8s.objects import mapping, sequence, string

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
HOSTNAME_TOPOLOGY_KEY = "kubernetes.io/hostname"


@dataclass(frozen=True)
class ServiceEndpoints:
    """The ready endpoint addresses of one Service and the node each runs on."""

    ready: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Ready address (canonical IP text, or the raw text for non-IP addresses) → node name,
    `""` when the endpoint names no node."""

    @property
    def has_ready(self) -> bool:
        return bool(self.ready)

    def ready_nodes(self) -> frozenset[str]:
        """Nodes hosting at least one ready endpoint (layer2 `Local` candidates)."""
        return frozenset(node for node in self.ready.values() if node)

    def ready_on(self, node: str) -> bool:
        """Whether `node` hosts a ready endpoint (the BGP `Local` rule)."""
        return bool(node) and node in self.ready.values()


class _Collector:
    """Accumulates (address, ready, node) sightings; not-ready wins per address."""

    def __init__(self) -> None:
        self.seen_ready: dict[str, set[str]] = {}
        self.not_ready: set[str] = set()

    def add(self, address: Any, ready: bool, node: str) -> None:
        if not isinstance(address, str) or not address:
            return
        key = _canonical(address)
        if ready:
            self.seen_ready.setdefault(key, set()).add(node)
        else:
            self.not_ready.add(key)

    def result(self) -> ServiceEndpoints:
        ready = {}
        for address in sorted(self.seen_ready):
            if address in self.not_ready:
                continue
            # One address on two nodes cannot happen with real pods; if a hand-written object
            # says so, pick deterministically (a named node before none, then by name).
            nodes = sorted(n for n in self.seen_ready[address] if n)
            ready[address] = nodes[0] if nodes else ""
        return ServiceEndpoints(MappingProxyType(ready))


def _canonical(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


def slice_service_name(slice_obj: Mapping[str, Any]) -> str:
    """The Service an EndpointSlice belongs to (`""` when unlabelled: upstream ignores it)."""
    labels = mapping(mapping(slice_obj.get("metadata")).get("labels"))
    return string(labels.get(SERVICE_NAME_LABEL))


def slice_endpoint_node(endpoint: Mapping[str, Any]) -> str:
    """`nodeName` first, then the hostname topology entries (docs/behaviour-differences.md,
    "Endpoint node identity")."""
    node = string(endpoint.get("nodeName"))
    if node:
        return node
    for key in ("topology", "deprecatedTopology"):
        node = string(mapping(endpoint.get(key)).get(HOSTNAME_TOPOLOGY_KEY))
        if node:
            return node
    return ""


def slice_endpoint_ready(endpoint: Mapping[str, Any]) -> bool:
    """`conditions.ready` true or absent (a null or missing condition means "ready")."""
    ready = mapping(endpoint.get("conditions")).get("ready")
    return ready is None or ready is True


def from_endpoint_slices(
    slices: Iterable[Mapping[str, Any]], service_name: str | None = None
) -> ServiceEndpoints | None:
    """Normalise the slices of one Service; None when there is no (labelled) slice at all.

    Slices without the `kubernetes.io/service-name` label are ignored, as are slices labelled
    for another Service when `service_name` is given.
    """
    found = False
    collector = _Collector()
    for slice_obj in slices:
        if not isinstance(slice_obj, Mapping):
            continue
        owner = slice_service_name(slice_obj)
        if not owner or (service_name is not None and owner != service_name):
            continue
        found = True
        for endpoint in sequence(slice_obj.get("endpoints")):
            if not isinstance(endpoint, Mapping):
                continue
            ready = slice_endpoint_ready(endpoint)
            node = slice_endpoint_node(endpoint)
            for address in sequence(endpoint.get("addresses")):
                collector.add(address, ready, node)
    return collector.result() if found else None


def from_endpoints(obj: Mapping[str, Any] | None) -> ServiceEndpoints | None:
    """Normalise a core v1 Endpoints object; None when there is none."""
    if not isinstance(obj, Mapping):
        return None
    collector = _Collector()
    for subset in sequence(obj.get("subsets")):
        subset_map = mapping(subset)
        for key, ready in (("addresses", True), ("notReadyAddresses", False)):
            for address in sequence(subset_map.get(key)):
                address_map = mapping(address)
                collector.add(address_map.get("ip"), ready, string(address_map.get("nodeName")))
    return collector.result()

"""The lab's plan, pure: names, documentation addresses, Services and the MetalLB config.

Everything the lab builds is decided here from (prefix, node count, mode), so the builder, the
status view, the tests and the benchmarks agree on one picture. Only documentation ranges are
used: the LAN is 192.0.2.0/24 and 2001:db8::/64, pools sit inside it (layer2 answers only where
the subnet contains the IP), endpoint addresses are 198.51.100.0/24 / 2001:db8:100::/64 data
that never reaches the wire.

The client namespace is also the LAN's router, so `--mode bgp` is an addition: FRR in the client
namespace peering with every node address (eBGP, AS 64500 against the nodes' 64512) and a `bgp`
pool outside the LAN (203.0.113.0/24, 2001:db8:ffff::/48), reached only through the routes FRR
learns; see docs/lab.md.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_PREFIX = "mlblab"
MAX_NODES = 9
METALLB_NAMESPACE = "metallb-system"
APPS_NAMESPACE = "default"
SPEAKER_LABELS = {"app": "metallb", "component": "speaker"}
SPEAKER_METRICS_PORT = 7472
NODE_API_PORT = 6443
"""Where the portal makes the host's API server reachable inside each node namespace."""
BACKEND_PORT = 80
BRIDGE = "br0"
NODE_IFACE = "eth0"
CLIENT_IPV4 = "192.0.2.1"
CLIENT_IPV6 = "2001:db8::1"
LAN_V4_PREFIXLEN = 24
LAN_V6_PREFIXLEN = 64
POOL_NAME = "lab"
POOL_V4 = "192.0.2.100-192.0.2.119"
POOL_V6 = "2001:db8::100-2001:db8::11f"
ROUTER_ASN = 64500
NODE_ASN = 64512
BGP_HOLD_TIME = 3
BFD_INTERVAL_MS = 100
BFD_DETECT_MULTIPLIER = 3
BFD_PROFILE = "lab"
"""BFD between the router and every speaker: a vanished node is dropped after 3 x 100 ms
instead of the hold time."""
"""Seconds, in the lab's peer config: a vanished node's routes are withdrawn 2-3 s after it
goes silent (MetalLB's default, 90 s, would leave a dead next hop in the client's table)."""
BGP_POOL_V4 = "203.0.113.100-203.0.113.119"
BGP_POOL_V6 = "2001:db8:ffff::100-2001:db8:ffff::11f"


class Mode(enum.StrEnum):
    LAYER2 = "layer2"
    BGP = "bgp"


AVAILABLE_MODES = frozenset({Mode.LAYER2, Mode.BGP})
"""Modes `lab up` can build."""


class ApiBackend(enum.StrEnum):
    """Which Kubernetes API server a lab runs on (docs/lab.md, "API server backends")."""

    EMBEDDED = "embedded"
    """The project's Python server (`metallb_lab.apiserver`): instant, no Go needed."""
    KUBE_APISERVER = "kube-apiserver"
    """The real one with etcd (`metallb_lab.control_plane`), RBAC on."""


class LayoutError(ValueError):
    """The requested lab cannot be planned (bad node count, unknown mode, bad prefix)."""


@dataclass(frozen=True)
class NodePlan:
    name: str
    netns: str
    ipv4: str
    ipv6: str
    bridge_port: str
    """The veth end in the client namespace, enslaved to the bridge."""

    @property
    def ipv4_cidr(self) -> str:
        return f"{self.ipv4}/{LAN_V4_PREFIXLEN}"

    @property
    def ipv6_cidr(self) -> str:
        return f"{self.ipv6}/{LAN_V6_PREFIXLEN}"

    def address(self, family: str) -> str:
        """The node's LAN address of a Service family: the BGP next hop it announces."""
        return self.ipv6 if family == "IPv6" else self.ipv4


@dataclass(frozen=True)
class ServicePlan:
    name: str
    family: str
    """"IPv4" or "IPv6", as in `spec.ipFamilies`."""
    local: bool
    """externalTrafficPolicy: Local (only nodes with a ready endpoint may announce)."""
    endpoint_nodes: tuple[str, ...]

    @property
    def traffic_policy(self) -> str:
        return "Local" if self.local else "Cluster"


@dataclass(frozen=True)
class LabLayout:
    prefix: str
    mode: Mode
    client_netns: str
    nodes: tuple[NodePlan, ...]
    services: tuple[ServicePlan, ...]

    def node(self, name: str) -> NodePlan:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes)

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (self.client_netns, *(n.netns for n in self.nodes))


def check_prefix(prefix: str) -> str:
    """Namespace prefixes are short names; the `-` separator is added by the lab."""
    if not (
        1 <= len(prefix) <= 24
        and prefix[0].isalpha()
        and all(c.isalnum() or c in "._" for c in prefix)
    ):
        raise LayoutError(f"bad lab prefix {prefix!r}: letters, digits, '.', '_' (max 24)")
    return prefix


def plan_lab(nodes: int = 3, mode: Mode = Mode.LAYER2, prefix: str = DEFAULT_PREFIX) -> LabLayout:
    """The lab for `nodes` nodes: n1..nN at 192.0.2.11.. and 2001:db8::11.., three Services.

    `web` (Cluster, IPv4, endpoints everywhere), `local` (Local, IPv4, one endpoint on the last
    node, so that node must announce it) and `web6` (Cluster, IPv6).
    """
    check_prefix(prefix)
    if not 1 <= nodes <= MAX_NODES:
        raise LayoutError(f"--nodes must be between 1 and {MAX_NODES}, not {nodes}")
    plans = tuple(
        NodePlan(
            name=f"n{i}",
            netns=f"{prefix}-n{i}",
            ipv4=f"192.0.2.{10 + i}",
            ipv6=f"2001:db8::{10 + i}",
            bridge_port=f"p{i}",
        )
        for i in range(1, nodes + 1)
    )
    names = tuple(p.name for p in plans)
    services = (
        ServicePlan("web", "IPv4", local=False, endpoint_nodes=names),
        ServicePlan("local", "IPv4", local=True, endpoint_nodes=(names[-1],)),
        ServicePlan("web6", "IPv6", local=False, endpoint_nodes=names),
    )
    return LabLayout(
        prefix=prefix,
        mode=mode,
        client_netns=f"{prefix}-client",
        nodes=plans,
        services=services,
    )


def config_text(layout: LabLayout) -> str:
    """The MetalLB ConfigMap `config` for the lab's mode.

    BGP: one peer entry without node selectors (every speaker peers with the client's router)
    with a BFD profile, and a pool outside the LAN, so the client reaches it only through
    learned routes.
    """
    if layout.mode is Mode.BGP:
        return (
            "peers:\n"
            f"- my-asn: {NODE_ASN}\n"
            f"  peer-asn: {ROUTER_ASN}\n"
            f"  peer-address: {CLIENT_IPV4}\n"
            f"  hold-time: {BGP_HOLD_TIME}s\n"
            f"  bfd-profile: {BFD_PROFILE}\n"
            "bfd-profiles:\n"
            f"- name: {BFD_PROFILE}\n"
            f"  receive-interval: {BFD_INTERVAL_MS}\n"
            f"  transmit-interval: {BFD_INTERVAL_MS}\n"
            f"  detect-multiplier: {BFD_DETECT_MULTIPLIER}\n"
            "address-pools:\n"
            f"- name: {POOL_NAME}\n"
            "  protocol: bgp\n"
            "  addresses:\n"
            f"  - {BGP_POOL_V4}\n"
            f"  - {BGP_POOL_V6}\n"
        )
    if layout.mode is not Mode.LAYER2:
        raise LayoutError(f"mode {layout.mode} is not yet available in the lab")
    return (
        "address-pools:\n"
        f"- name: {POOL_NAME}\n"
        "  protocol: layer2\n"
        "  addresses:\n"
        f"  - {POOL_V4}\n"
        f"  - {POOL_V6}\n"
    )


def endpoint_address(family: str, node_index: int) -> str:
    """A pod address per node: data in the API only, never configured on an interface."""
    if family == "IPv6":
        return str(ipaddress.IPv6Address("2001:db8:100::") + node_index)
    return f"198.51.100.{10 + node_index}"


def election_ranking(candidates: Iterable[str], ip: str) -> list[str]:
    """MetalLB's layer2 election, stated again by the lab so that the lab and the tests check the
    speakers against a rule they do not share with them (docs/lab.md, "Who must answer"): each
    candidate node's key is the SHA-256 digest of the UTF-8 text `NODE#IP`, IP written in its
    canonical form; the smallest key comes first and announces."""
    canonical = ipaddress.ip_address(ip).compressed
    keys = {node: hashlib.sha256(f"{node}#{canonical}".encode()).digest() for node in candidates}
    return sorted(keys, key=keys.__getitem__)


def expected_owner(service: ServicePlan, ip: str, live_nodes: Iterable[str]) -> str | None:
    """The node that must announce `ip` when `live_nodes` run a speaker: the election winner
    among them, restricted to nodes with an endpoint for `Local` (docs/lab.md, "Who must
    answer")."""
    candidates = set(live_nodes)
    if service.local:
        candidates &= set(service.endpoint_nodes)
    ranking = election_ranking(candidates, ip)
    return ranking[0] if ranking else None


def expected_next_hops(service: ServicePlan, live_nodes: Iterable[str]) -> tuple[str, ...]:
    """The nodes whose routes the router must hold for a bgp-mode Service: every live node for
    `Cluster` (an endpoint is ready somewhere), the live nodes with an endpoint for `Local`.
    Several nodes are one ECMP route in the client (docs/lab.md, "Who must answer")."""
    candidates = set(live_nodes)
    if service.local:
        candidates &= set(service.endpoint_nodes)
    return tuple(sorted(candidates))

"""The speaker's decisions, pure: which Services this node announces, and how.

The speaker process feeds `decide` a Service (a dict in the Kubernetes JSON shape, None when
deleted), its endpoints (`endpoints.py`), the current config, a `NodeView` (this node's name,
the live-node set, partition state, whether a BGP peer is selected here) and the
`Announcement` it currently holds for the Service; it carries out the returned decision with
the layer2 announcer or the BGP sessions. Nothing here does I/O. The rules are written down in
docs/behaviour-differences.md, "Speaker" (what stays as upstream, then what differs).

Deviations from v0.12, each listed there:
* `nodeAssigned` is emitted when this node starts announcing a Service (or its protocol or IPs
  change), not on every reconcile; in BGP mode only once this node has at least one selected
  peer. `Announcement.assigned` remembers whether it was emitted;
* a layer2 speaker in a minority partition, or without its layer2 lease, withdraws its
  `Cluster` Services (reason `minorityPartition`, docs/membership.md);
* a layer2 speaker elected for an IP that a live peer still answers for waits until that peer
  has handed it over (reason `awaitingHandover`, docs/membership.md, "Heal");
* BGP routes that collide on a prefix with different attributes resolve deterministically
  (`merge_routes`);
* the live-node set always restricts layer2 candidates; without membership it comes from the
  API (`nodes.fallback_live_nodes`) instead of being empty.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from metallb_py.allocator.ips import parse_ip_or_none
from metallb_py.config.model import (
    AddressPool,
    Community,
    Config,
    IPAddress,
    IPNetwork,
    Peer,
    Protocol,
)
from metallb_py.k8s.objects import mapping, sequence, string
from metallb_py.speaker.endpoints import ServiceEndpoints

COMPONENT = "metallb-speaker"
"""The `source.component` of the speaker's events."""
EVENT_NODE_ASSIGNED = "nodeAssigned"


class Reason(enum.StrEnum):
    """Why a Service is not announced here (upstream's strings; they appear in logs)."""

    SERVICE_DELETED = "serviceDeleted"
    NOT_LOAD_BALANCER = "notLoadBalancer"
    NO_IP_ALLOCATED = "noIPAllocated"
    INVALID_IP = "invalidIP"
    IP_NOT_ALLOWED = "ipNotAllowed"
    PROTOCOL_CHANGED = "protocolChanged"
    LOAD_BALANCER_IP_CHANGED = "loadBalancerIPChanged"
    NOT_OWNER = "notOwner"
    NO_ENDPOINTS = "noEndpoints"
    NO_LOCAL_ENDPOINTS = "noLocalEndpoints"
    MINORITY_PARTITION = "minorityPartition"
    """metallb-py only: this speaker hears fewer than half of the speakers it knows, or lost
    its layer2 lease (docs/membership.md)."""
    AWAITING_HANDOVER = "awaitingHandover"
    """metallb-py only: elected here, but a live peer still answers for the IP."""


@dataclass(frozen=True)
class Announcement:
    """What this speaker announces for one Service: its record between reconciles."""

    protocol: Protocol
    ips: tuple[IPAddress, ...]
    pool: str
    assigned: bool = True
    """True once `nodeAssigned` was emitted for it: always in layer2; in BGP only when the node
    had a selected peer (a node without peers records the Service but tells nobody)."""

    def same_target(self, other: Announcement) -> bool:
        """Same protocol and the same IPs in any order (upstream's `compareIPs`)."""
        return (
            self.protocol is other.protocol
            and len(self.ips) == len(other.ips)
            and set(self.ips) == set(other.ips)
        )


@dataclass(frozen=True)
class NodeView:
    """This speaker's node as the decision sees it."""

    name: str
    live_nodes: frozenset[str]
    """Nodes whose speaker is alive (membership, or `nodes.fallback_live_nodes`)."""
    in_minority: bool = False
    """Membership's partition verdict (docs/membership.md); always False without membership."""
    has_bgp_peers: bool = False
    """At least one config peer is selected for this node (`selected_peers`)."""
    may_start: bool = True
    """This node holds its layer2 lease now: it may start announcing a `Cluster` IP (keeping
    one needs only `not in_minority`, docs/membership.md, "Layer2 lease")."""
    claimed: frozenset[IPAddress] | None = frozenset()
    """Layer2 IPs a live peer answers for (its last heartbeat said so): this node may start
    answering for one of them only after the peer handed it over. None: a live peer is heard
    only through others, what it answers for is unknown, so nothing new starts."""


@dataclass(frozen=True)
class Announce:
    """Announce `announcement` (replacing whatever the handler had for the Service)."""

    announcement: Announcement
    replaced: Reason | None = None
    """`protocolChanged` / `loadBalancerIPChanged`: withdraw the current announcement from its
    protocol's handler first."""
    node_assigned: bool = False
    """Emit the Normal event `nodeAssigned` ("announcing from node ...")."""
    changed: bool = True
    """The record differs from the current one. False: the handler already announces exactly
    this, so the process need not call it again (no gratuitous ARP burst per reconcile)."""


@dataclass(frozen=True)
class Withdraw:
    """Stop announcing the Service (a no-op when nothing is announced) and forget its record."""

    reason: Reason
    replaced: Reason | None = None
    """The earlier step that already invalidated the current announcement, if any."""


@dataclass(frozen=True)
class Unchanged:
    """No config yet: leave whatever is announced as it is."""


Decision: TypeAlias = Announce | Withdraw | Unchanged


# --- reading the Service ------------------------------------------------------------------


@dataclass(frozen=True)
class _ServiceInputs:
    type: str
    local: bool
    ingress: tuple[Any, ...]


def traffic_local(service: Mapping[str, Any]) -> bool:
    """`externalTrafficPolicy: Local`: layer2 elects among nodes with a ready endpoint, and
    neither the minority rule nor the layer2 lease applies."""
    return mapping(service.get("spec")).get("externalTrafficPolicy") == "Local"


def _read_service(service: Mapping[str, Any]) -> _ServiceInputs:
    spec = mapping(service.get("spec"))
    load_balancer = mapping(mapping(service.get("status")).get("loadBalancer"))
    return _ServiceInputs(
        type=string(spec.get("type")) or "ClusterIP",
        local=traffic_local(service),
        ingress=tuple(sequence(load_balancer.get("ingress"))),
    )


def _ingress_ips(ingress: Sequence[Any]) -> tuple[IPAddress, ...] | None:
    """All ingress IPs, or None when any entry has no parsable `ip` (hostname-only included)."""
    ips = []
    for entry in ingress:
        ip = parse_ip_or_none(entry.get("ip")) if isinstance(entry, Mapping) else None
        if ip is None:
            return None
        ips.append(ip)
    return tuple(ips)


def pool_for(config: Config, ips: Sequence[IPAddress]) -> AddressPool | None:
    """The pool containing every one of `ips`. Unlike the allocator's ownership, .0/.255 under
    avoid-buggy-ips still count: the speaker announces what the controller assigned."""
    for pool in config.pools:
        if all(pool.contains(ip) for ip in ips):
            return pool
    return None


# --- layer2 election ---------------------------------------------------------------------


def election_order(candidates: Iterable[str], first_ip: IPAddress) -> list[str]:
    """Candidates sorted by SHA-256 of `node + "#" + first_ip` (canonical text), bytes
    ascending. Only the IP enters the hash, so every Service sharing it elects the same node."""
    text = str(first_ip)
    return sorted(
        set(candidates), key=lambda node: hashlib.sha256(f"{node}#{text}".encode()).digest()
    )


def layer2_candidates(
    local: bool, endpoints: ServiceEndpoints, live_nodes: frozenset[str]
) -> frozenset[str]:
    """`Local`: live nodes with a ready endpoint; `Cluster`: every live node."""
    if local:
        return endpoints.ready_nodes() & live_nodes
    return live_nodes


def layer2_reason(
    local: bool,
    endpoints: ServiceEndpoints,
    node: NodeView,
    ips: Sequence[IPAddress],
    answering: bool = False,
) -> Reason | None:
    """None when this node must answer for `ips`, else why not. `answering`: this node already
    answers for exactly these IPs (a peer's claim then does not stop it)."""
    if not endpoints.has_ready:
        return Reason.NOT_OWNER
    if not local and (node.in_minority or not (answering or node.may_start)):
        return Reason.MINORITY_PARTITION
    order = election_order(layer2_candidates(local, endpoints, node.live_nodes), ips[0])
    if not order or order[0] != node.name:
        return Reason.NOT_OWNER
    if not answering and (node.claimed is None or any(ip in node.claimed for ip in ips)):
        return Reason.AWAITING_HANDOVER
    return None


def answer_allowed(
    ip: IPAddress,
    claimed: frozenset[IPAddress] | None,
    lease_held: bool,
    is_local: Callable[[], bool],
) -> bool:
    """The responders' gate for one reply or gratuitous frame (docs/membership.md, "Layer2
    lease"): never for an IP a live peer says it answers for; otherwise with the layer2 lease,
    or without it for a `Local` Service's IP (`is_local`, asked only then)."""
    if claimed is not None and ip in claimed:
        return False
    return lease_held or is_local()


# --- BGP decision -------------------------------------------------------------------------


def bgp_reason(local: bool, endpoints: ServiceEndpoints, node: NodeView) -> Reason | None:
    if local and not endpoints.ready_on(node.name):
        return Reason.NO_LOCAL_ENDPOINTS
    if not endpoints.has_ready:
        return Reason.NO_ENDPOINTS
    return None


# --- the per-Service decision -------------------------------------------------------------


def decide(
    service: Mapping[str, Any] | None,
    endpoints: ServiceEndpoints | None,
    config: Config | None,
    node: NodeView,
    current: Announcement | None,
) -> Decision:
    """What this node does for one Service: withdraw it when it is gone or not a LoadBalancer;
    nothing while there is no config; withdraw it when its status has no IP, an IP that does
    not parse, or IPs no pool of the config contains; withdraw the old announcement first when
    the protocol or the IPs changed; then the layer2 election or the BGP endpoint rule.

    `endpoints` None means no Endpoints object / no EndpointSlice exists: like upstream, the
    Service is then treated as deleted.
    """
    if service is None or endpoints is None:
        return Withdraw(Reason.SERVICE_DELETED)
    svc = _read_service(service)
    if svc.type != "LoadBalancer":
        return Withdraw(Reason.NOT_LOAD_BALANCER)
    if config is None:
        return Unchanged()
    if not svc.ingress:
        return Withdraw(Reason.NO_IP_ALLOCATED)
    ips = _ingress_ips(svc.ingress)
    if ips is None:
        return Withdraw(Reason.INVALID_IP)
    pool = pool_for(config, ips)
    if pool is None:
        return Withdraw(Reason.IP_NOT_ALLOWED)

    replaced: Reason | None = None
    if current is not None:
        if current.protocol is not pool.protocol:
            replaced = Reason.PROTOCOL_CHANGED
        elif not current.same_target(Announcement(pool.protocol, ips, pool.name)):
            replaced = Reason.LOAD_BALANCER_IP_CHANGED

    if pool.protocol is Protocol.LAYER2:
        answering = current is not None and replaced is None
        reason = layer2_reason(svc.local, endpoints, node, ips, answering)
        assigned = True
    else:
        reason = bgp_reason(svc.local, endpoints, node)
        assigned = node.has_bgp_peers
    if reason is not None:
        return Withdraw(reason, replaced)

    new = Announcement(pool.protocol, ips, pool.name, assigned)
    still = current is not None and replaced is None and current.assigned
    return Announce(new, replaced, node_assigned=assigned and not still, changed=new != current)


def event_message(node_name: str) -> str:
    """The `nodeAssigned` message, Go `%q` quoting of the node name."""
    return f'announcing from node "{node_name}"'


# --- config acceptance --------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigBlocker:
    """A Service this speaker announces whose IPs no pool of the new config contains."""

    service: str
    ips: tuple[IPAddress, ...]


def config_blockers(
    config: Config,
    announced: Mapping[str, Announcement],
    current: Config | None = None,
    services: Iterable[Mapping[str, Any]] = (),
) -> tuple[ConfigBlocker, ...]:
    """Every Service the new config would orphan, sorted by key; empty → accept.

    Upstream looks only at what this node announces (and stops at the first offender). Here
    every LoadBalancer Service whose status IPs a pool of the `current` config covers counts
    too, so all speakers refuse what the controller refuses, and a restarted speaker (which
    announces nothing yet and starts from the last accepted config) judges exactly as a running
    one (docs/behaviour-differences.md).
    """
    found: dict[str, tuple[IPAddress, ...]] = {
        key: record.ips for key, record in announced.items() if pool_for(config, record.ips) is None
    }
    if current is not None:
        for service in services:
            key, ips = _status_ips(service)
            if key in found or not ips:
                continue
            if pool_for(current, ips) is not None and pool_for(config, ips) is None:
                found[key] = ips
    return tuple(ConfigBlocker(key, found[key]) for key in sorted(found))


def _status_ips(service: Mapping[str, Any]) -> tuple[str, tuple[IPAddress, ...]]:
    """`namespace/name` and the parsed ingress IPs of a LoadBalancer Service (no IPs when any
    entry does not parse, as `decide` would withdraw it)."""
    meta = mapping(service.get("metadata"))
    key = f"{meta.get('namespace') or 'default'}/{meta.get('name') or ''}"
    svc = _read_service(service)
    if svc.type != "LoadBalancer" or not svc.ingress:
        return key, ()
    return key, _ingress_ips(svc.ingress) or ()


# --- BGP routes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AdvertisedRoute:
    """One prefix to announce to every established session of this node.

    Field for field what `metallb_py.bgp.messages.Route` takes:
    `Route(r.prefix, r.localpref, r.communities)`.
    """

    prefix: IPNetwork
    localpref: int = 0
    communities: tuple[Community, ...] = ()


def service_routes(ips: Iterable[IPAddress], pool: AddressPool) -> tuple[AdvertisedRoute, ...]:
    """Per IP and per advertisement of its pool: the IP masked to the advertisement's
    aggregation length for its family, with its localpref and sorted communities."""
    routes = []
    for ip in ips:
        for adv in pool.bgp_advertisements:
            length = adv.aggregation_length if ip.version == 4 else adv.aggregation_length_v6
            prefix = ipaddress.ip_network((ip, length), strict=False)
            routes.append(
                AdvertisedRoute(prefix, adv.localpref, tuple(sorted(set(adv.communities))))
            )
    return tuple(routes)


def _prefix_order(prefix: IPNetwork) -> tuple[int, int, int]:
    return (prefix.version, int(prefix.network_address), prefix.prefixlen)


def _preference(route: AdvertisedRoute) -> tuple[int, tuple[int, ...]]:
    return (route.localpref, tuple(c.value for c in route.communities))


def merge_routes(routes: Iterable[AdvertisedRoute]) -> tuple[AdvertisedRoute, ...]:
    """One route per prefix, sorted (IPv4 first, then by address and length).

    When several routes share a prefix with different attributes (two Services aggregated into
    the same prefix by advertisements that differ), the winner is the highest localpref, then
    the greatest community list compared element-wise as 32-bit values (a longer list wins
    over its own prefix). The result is the same whatever order Services are processed in and
    on every node; upstream keeps whichever came last.
    """
    best: dict[IPNetwork, AdvertisedRoute] = {}
    for route in routes:
        held = best.get(route.prefix)
        if held is None or _preference(route) > _preference(held):
            best[route.prefix] = route
    return tuple(best[p] for p in sorted(best, key=_prefix_order))


def speaker_routes(
    config: Config, announced: Mapping[str, Announcement]
) -> tuple[AdvertisedRoute, ...]:
    """The union of the routes of every BGP Service this node announces, deduplicated.

    Services whose pool no longer exists or is no longer `bgp` contribute nothing (the next
    reconcile withdraws them).
    """
    routes: list[AdvertisedRoute] = []
    for key in sorted(announced):
        record = announced[key]
        if record.protocol is not Protocol.BGP:
            continue
        pool = config.pool(record.pool)
        if pool is None or pool.protocol is not Protocol.BGP:
            continue
        routes.extend(service_routes(record.ips, pool))
    return merge_routes(routes)


# --- BGP peer selection -------------------------------------------------------------------


def selected_peers(config: Config | None, labels: Mapping[str, str] | None) -> tuple[Peer, ...]:
    """Config peers that run on this node. `labels` None (Node not seen yet) evaluates the
    selectors against an empty label set, as upstream does."""
    if config is None:
        return ()
    node_labels = labels if labels is not None else {}
    return tuple(p for p in config.peers if p.selects(node_labels))


REMOVED_FROM_CONFIG = "removedFromConfig"
FILTERED_BY_NODE_SELECTOR = "filteredByNodeSelector"


@dataclass(frozen=True)
class SessionPlan:
    """How to move from the running sessions to the wanted ones."""

    close: tuple[tuple[Peer, str], ...]
    """Sessions to close with upstream's log reason (`removedFromConfig`,
    `filteredByNodeSelector`)."""
    open: tuple[Peer, ...]
    """Peers to start a session for, in config order."""
    keep: tuple[Peer, ...]

    @property
    def changed(self) -> bool:
        return bool(self.close or self.open)


def plan_sessions(
    running: Iterable[Peer], config: Config | None, labels: Mapping[str, str] | None
) -> SessionPlan:
    """Peers are matched by full equality: any changed field is "old removed, new added"."""
    configured = set(config.peers) if config is not None else set()
    wanted = selected_peers(config, labels)
    wanted_set = set(wanted)
    running_list = list(dict.fromkeys(running))
    running_set = set(running_list)
    close = tuple(
        (p, REMOVED_FROM_CONFIG if p not in configured else FILTERED_BY_NODE_SELECTOR)
        for p in running_list
        if p not in wanted_set
    )
    keep = tuple(p for p in running_list if p in wanted_set)
    open_ = tuple(p for p in dict.fromkeys(wanted) if p not in running_set)
    return SessionPlan(close=close, open=open_, keep=keep)

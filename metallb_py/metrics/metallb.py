"""MetalLB's metric families: exact names, types and labels (docs/alerts.md relies on them;
where a series differs from upstream's: docs/behaviour-differences.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Literal, NamedTuple

from metallb_py.metrics import Counter, Gauge, Registry, Sample


class K8sClientMetrics:
    """Work-queue and config-state metrics, shared by controller and speaker."""

    def __init__(self, registry: Registry) -> None:
        self.updates: Counter = registry.counter(
            "metallb_k8s_client_updates_total", "Number of Kubernetes object updates processed."
        )
        self.update_errors: Counter = registry.counter(
            "metallb_k8s_client_update_errors_total",
            "Number of Kubernetes object updates that failed and were retried.",
        )
        self.config_loaded: Gauge = registry.gauge(
            "metallb_k8s_client_config_loaded_bool",
            "1 once a configuration has been accepted, else 0.",
        )
        self.config_stale: Gauge = registry.gauge(
            "metallb_k8s_client_config_stale_bool",
            "1 while the latest configuration is not in force (invalid or refused), else 0.",
        )
        self.config_loaded.set(0)
        self.config_stale.set(0)


class PoolUsage(NamedTuple):
    pool: str
    addresses_total: int
    addresses_in_use: int
    services_allocated: int


def register_allocator_metrics(
    registry: Registry, usage: Callable[[], Iterable[PoolUsage]]
) -> None:
    """Pool gauges, read from the allocator at scrape time so removed pools vanish at once."""

    def pick(field: str) -> Callable[[], Iterable[Sample]]:
        return lambda: [((u.pool,), float(getattr(u, field))) for u in usage()]

    registry.pulled(
        "metallb_allocator_addresses_total",
        "Number of usable IP addresses, per pool.",
        "gauge",
        ("pool",),
        pick("addresses_total"),
    )
    registry.pulled(
        "metallb_allocator_addresses_in_use_total",
        "Number of IP addresses in use, per pool.",
        "gauge",
        ("pool",),
        pick("addresses_in_use"),
    )
    registry.pulled(
        "metallb_allocator_services_allocated_total",
        "Number of Services holding addresses, per pool.",
        "gauge",
        ("pool",),
        pick("services_allocated"),
    )


class BgpPeerStats(NamedTuple):
    peer: str
    """`host:port`, IPv6 bracketed."""
    up: bool
    updates_sent: int
    announced_prefixes: int
    pending_prefixes: int


class BfdPeerStats(NamedTuple):
    """One BFD session, labelled as FRR mode's exporter labels it (`peer` = the address)."""

    peer: str
    up: bool
    control_packets_in: int
    control_packets_out: int
    up_events: int
    down_events: int


class SpeakerMetrics:
    """Speaker families. Layer2 counters keep MetalLB's names, which have no `_total`."""

    def __init__(
        self,
        registry: Registry,
        layer2_counts: Callable[[], Mapping[str, Mapping[str, int]]] | None = None,
        bgp_peers: Callable[[], Iterable[BgpPeerStats]] | None = None,
        bfd_peers: Callable[[], Iterable[BfdPeerStats]] | None = None,
    ) -> None:
        self.announced: Gauge = registry.gauge(
            "metallb_speaker_announced",
            "1 when this node announces the Service IP with the protocol.",
            ("service", "protocol", "node", "ip"),
        )
        if layer2_counts is not None:
            counts = layer2_counts

            def per_ip(kind: str) -> Callable[[], Iterable[Sample]]:
                return lambda: [((ip,), float(n)) for ip, n in sorted(counts()[kind].items())]

            for kind, help_text in (
                ("requests_received", "Number of layer2 (ARP/NDP) requests received per IP."),
                ("responses_sent", "Number of layer2 (ARP/NDP) responses sent per IP."),
                ("gratuitous_sent", "Number of gratuitous layer2 announcements sent per IP."),
            ):
                registry.pulled(
                    f"metallb_layer2_{kind}", help_text, "counter", ("ip",), per_ip(kind)
                )
        if bgp_peers is not None:
            peers = bgp_peers

            def per_peer(field: str) -> Callable[[], Iterable[Sample]]:
                return lambda: [((p.peer,), float(getattr(p, field))) for p in peers()]

            registry.pulled(
                "metallb_bgp_session_up",
                "1 when the BGP session to the peer is established, else 0.",
                "gauge",
                ("peer",),
                per_peer("up"),
            )
            registry.pulled(
                "metallb_bgp_updates_total",
                "Number of BGP UPDATE messages sent to the peer.",
                "counter",
                ("peer",),
                per_peer("updates_sent"),
            )
            registry.pulled(
                "metallb_bgp_announced_prefixes_total",
                "Number of prefixes currently advertised to the peer.",
                "gauge",
                ("peer",),
                per_peer("announced_prefixes"),
            )
            registry.pulled(
                "metallb_bgp_pending_prefixes_total",
                "Number of prefixes that should be advertised to the peer.",
                "gauge",
                ("peer",),
                per_peer("pending_prefixes"),
            )
        if bfd_peers is not None:
            sessions = bfd_peers

            def per_session(field: str) -> Callable[[], Iterable[Sample]]:
                return lambda: [((b.peer,), float(getattr(b, field))) for b in sessions()]

            # FRR mode's names (v0.12's frr-metrics exporter); its echo and zebra counters are
            # not exposed: the native speaker has neither (docs/bgp.md, "BFD").
            families: tuple[tuple[str, Literal["counter", "gauge"], str, str], ...] = (
                ("session_up", "gauge", "up", "1 when the BFD session with the peer is Up."),
                (
                    "control_packet_input",
                    "counter",
                    "control_packets_in",
                    "Number of BFD control packets received from the peer.",
                ),
                (
                    "control_packet_output",
                    "counter",
                    "control_packets_out",
                    "Number of BFD control packets sent to the peer.",
                ),
                (
                    "session_up_events",
                    "counter",
                    "up_events",
                    "Number of times the BFD session with the peer went Up.",
                ),
                (
                    "session_down_events",
                    "counter",
                    "down_events",
                    "Number of times the BFD session with the peer went from Up to Down.",
                ),
            )
            for name, kind, field, help_text in families:
                registry.pulled(
                    f"metallb_bfd_{name}", help_text, kind, ("peer",), per_session(field)
                )

"""What `lab status` reports, pure: per node, per Service, the router, and what `lab down`
removed. `Lab.status()` (running.py) fills these; render.py draws them."""

from __future__ import annotations

from dataclasses import dataclass, field

from metallb_lab.lab.layout import (
    CLIENT_IPV4,
    LabLayout,
    Mode,
)


@dataclass(frozen=True)
class NodeStatus:
    name: str
    netns: str
    ipv4: str
    ipv6: str
    speaker: bool
    link: bool
    bgp: str = ""
    """bgp mode: the router's session state with this node (Established, Active ...)."""
    bgp_up: bool | None = None
    """bgp mode: the speaker's `metallb_bgp_session_up` for the router (None: no series)."""
    prefixes: dict[str, int] = field(default_factory=dict)
    """bgp mode: prefixes the router accepted from this node, per family (ipv4, ipv6)."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    policy: str
    ips: tuple[str, ...]
    announcers: tuple[str, ...]
    """Nodes whose speaker reports `metallb_speaker_announced` for the IP."""
    layer2: tuple[str, ...]
    """Nodes (or unknown MACs) answering ARP/NDP for the IP from the client."""
    http: str | None
    """The node that answered `curl` from the client, None when unreachable."""
    mode: str = "layer2"
    next_hops: tuple[str, ...] = ()
    """bgp mode: nodes (by next hop address) of the route the router installed for the IP."""
    next_hop_addresses: tuple[str, ...] = ()
    """bgp mode: those next hops as FRR has them (`show ip[v6] route bgp json`, in the FIB)."""
    kernel_next_hops: tuple[str, ...] = ()
    """bgp mode: nodes behind the client kernel's route for the IP (what `curl` follows)."""

    @property
    def ok(self) -> bool:
        """Reachable, and layer2: one node answers ARP/NDP; bgp: the router's route leads to
        exactly the announcing nodes and the answer came from one of them."""
        if not self.ips or self.http is None:
            return False
        if self.mode == Mode.BGP:
            return (
                bool(self.next_hops)
                and set(self.next_hops) == set(self.announcers)
                and (self.http in self.next_hops)
            )
        return len(self.layer2) == 1


@dataclass(frozen=True)
class RouterStatus:
    """bgp mode: FRR in the client namespace."""

    asn: int
    router_id: str
    bgpd: bool
    zebra: bool
    error: str = ""
    """Why the router could not be read, if it could not."""


@dataclass(frozen=True)
class LabStatus:
    layout: LabLayout
    api_url: str
    kubeconfig: str
    processes_running: int
    processes_total: int
    nodes: tuple[NodeStatus, ...]
    services: tuple[ServiceStatus, ...]
    router: RouterStatus | None = None
    apiserver: str = "embedded"
    """The API server backend (layout.ApiBackend)."""


@dataclass(frozen=True)
class DownReport:
    stopped: tuple[int, ...]
    namespaces: tuple[str, ...]
    leftover_namespaces: tuple[str, ...]
    leftover_processes: tuple[int, ...]

    @property
    def clean(self) -> bool:
        return not self.leftover_namespaces and not self.leftover_processes


def session_up(parsed: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> bool | None:
    """A speaker's `metallb_bgp_session_up` for the lab's router (None: no such series)."""
    for (name, labels), value in parsed.items():
        if name == "metallb_bgp_session_up" and dict(labels).get("peer") == f"{CLIENT_IPV4}:179":
            return value == 1
    return None

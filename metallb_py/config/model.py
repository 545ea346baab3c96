"""Typed, immutable view of a MetalLB v0.12 configuration (docs/config.md).

Every object here is produced by :func:`metallb_py.config.parse_config` and is never mutated
afterwards: the controller and the speaker compare whole objects to detect changes (a peer
that differs in any field is a different peer, docs/bgp.md), so equality must be by value.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeAlias

from metallb_py.k8s.selectors import LABEL_SELECTOR_OPERATORS, Requirement

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


class Protocol(enum.StrEnum):
    LAYER2 = "layer2"
    BGP = "bgp"


class BgpType(enum.StrEnum):
    """Which speaker implementation validates the config (`METALLB_BGP_TYPE`, docs/config.md)."""

    NATIVE = "native"
    FRR = "frr"


class SelectorOperator(enum.StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True)
class SelectorRequirement:
    key: str
    operator: SelectorOperator
    values: tuple[str, ...] = ()

    @property
    def requirement(self) -> Requirement:
        """As a label-selector requirement: one matcher serves node-selectors and selectors."""
        return Requirement(self.key, LABEL_SELECTOR_OPERATORS[self.operator.value], self.values)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return self.requirement.matches(labels)


@dataclass(frozen=True)
class NodeSelector:
    """One entry of `node-selectors`: all requirements must hold (AND)."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[SelectorRequirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(Requirement(k, "=", (v,)).matches(labels) for k, v in self.match_labels) and all(
            r.matches(labels) for r in self.match_expressions
        )


def selectors_match(selectors: tuple[NodeSelector, ...], labels: Mapping[str, str]) -> bool:
    """A peer runs on a node if any selector matches (OR); no selectors selects every node."""
    return not selectors or any(s.matches(labels) for s in selectors)


@dataclass(frozen=True, order=True)
class Community:
    """A classic 32-bit BGP community, `(A << 16) + B`."""

    value: int

    @property
    def high(self) -> int:
        return self.value >> 16

    @property
    def low(self) -> int:
        return self.value & 0xFFFF

    def __str__(self) -> str:
        return f"{self.high}:{self.low}"


@dataclass(frozen=True)
class BfdProfile:
    """BFD settings, for FRR mode and the native speaker alike; `None` means "FRR's default"
    (docs/bgp.md, "BFD")."""

    name: str
    receive_interval: int | None = None
    transmit_interval: int | None = None
    detect_multiplier: int | None = None
    echo_interval: int | None = None
    echo_mode: bool = False
    passive_mode: bool = False
    minimum_ttl: int | None = None


@dataclass(frozen=True)
class Peer:
    my_asn: int
    peer_asn: int
    address: IPAddress
    port: int = 179
    hold_time: int = 90
    """Whole seconds; 0 means no keepalives and no hold timer."""
    keepalive_time: float | None = None
    """Explicit `keepalive-time` in whole seconds, or None when not given (FRR mode only)."""
    router_id: IPAddress | None = None
    source_address: IPAddress | None = None
    password: str = ""
    bfd_profile: str = ""
    ebgp_multihop: bool = False
    node_selectors: tuple[NodeSelector, ...] = ()
    graceful_restart_time: int | None = None
    """Restart time in whole seconds (1-4095) advertised in the BGP Graceful Restart capability
    (`graceful-restart: true`, `graceful-restart-time`); None: no capability, as v0.12
    (docs/bgp.md, "Graceful restart")."""

    @property
    def effective_keepalive(self) -> float:
        """Keepalive interval in seconds: as configured, else exactly hold/3, as upstream."""
        if self.keepalive_time is not None:
            return self.keepalive_time
        return self.hold_time / 3

    @property
    def is_ibgp(self) -> bool:
        return self.my_asn == self.peer_asn

    @property
    def endpoint(self) -> str:
        """`host:port` as used in the `peer` metric label (IPv6 in brackets)."""
        if self.address.version == 6:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"

    def selects(self, node_labels: Mapping[str, str]) -> bool:
        return selectors_match(self.node_selectors, node_labels)


@dataclass(frozen=True)
class BgpAdvertisement:
    aggregation_length: int = 32
    aggregation_length_v6: int = 128
    localpref: int = 0
    communities: tuple[Community, ...] = ()
    """Resolved communities, de-duplicated and sorted ascending."""
    community_strings: tuple[str, ...] = field(default=(), compare=False)
    """The strings as written (aliases or literals), kept for round-tripping the config."""


@dataclass(frozen=True)
class AddressPool:
    name: str
    protocol: Protocol
    cidrs: tuple[IPNetwork, ...]
    """Every address entry expanded to CIDRs, in configuration order (ranges ascending)."""
    addresses: tuple[str, ...] = ()
    """The `addresses` entries as written."""
    avoid_buggy_ips: bool = False
    auto_assign: bool = True
    bgp_advertisements: tuple[BgpAdvertisement, ...] = ()
    """Empty for layer2 pools; at least one (the default) for bgp pools."""

    def contains(self, ip: IPAddress) -> bool:
        return any(ip in net for net in self.cidrs)


@dataclass(frozen=True)
class Config:
    peers: tuple[Peer, ...] = ()
    bgp_communities: Mapping[str, Community] = field(default_factory=lambda: MappingProxyType({}))
    pools: tuple[AddressPool, ...] = ()
    bfd_profiles: tuple[BfdProfile, ...] = ()

    def pool(self, name: str) -> AddressPool | None:
        for p in self.pools:
            if p.name == name:
                return p
        return None

    def __hash__(self) -> int:
        return hash(
            (self.peers, tuple(self.bgp_communities.items()), self.pools, self.bfd_profiles)
        )

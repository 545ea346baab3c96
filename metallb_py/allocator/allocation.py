"""What the allocator takes and hands out: a Service's ports and sharing keys (`Usage`), what it
holds (`Allocation`), why a pool change is refused (`Blocker`, `PoolChange`) and the per-pool
gauges (`PoolStats`). Immutable values, cheap to build 50,000 times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from metallb_py.allocator.ips import go_quote, go_quote_list, ip_text
from metallb_py.config.model import IPAddress


class AllocatorError(ValueError):
    """An assignment or allocation that cannot be made; the message is user-facing."""


class Port(NamedTuple):
    """One `spec.ports[]` entry; two ports conflict when protocol and number are equal."""

    protocol: str
    port: int

    def __str__(self) -> str:
        return f"{self.protocol}/{self.port}"


class Usage(NamedTuple):
    """How a Service wants to use an IP: the inputs of the sharing check."""

    ports: tuple[Port, ...] = ()
    sharing_key: str = ""
    """Annotation `metallb.universe.tf/allow-shared-ip`; empty means no sharing."""
    backend_key: str = ""
    """Sorted `k=v` selector pairs for `externalTrafficPolicy: Local`, else empty."""


class Allocation(NamedTuple):
    """What one Service holds. A NamedTuple: immutable and cheap to build 50,000 times."""

    service: str
    pool: str
    ips: tuple[IPAddress, ...]
    """In assignment order: as requested, or the order the pool's CIDRs were visited."""
    ports: tuple[Port, ...]
    sharing_key: str
    backend_key: str
    keys: tuple[int, ...] = ()
    """The allocator's integer keys of `ips` (see `ips.ip_key`)."""
    held: bool = False
    """Kept although no pool of the config owns the IPs (`Allocator.hold`); `pool` is empty."""

    @property
    def usage(self) -> Usage:
        return Usage(self.ports, self.sharing_key, self.backend_key)


class Blocker(NamedTuple):
    """A Service whose current IPs the proposed pools cannot own.

    `causes` is the raw finding per IP (the pool containing it, if any, and whether
    avoid-buggy-ips rules it out); `reason` turns it into text only when asked, so checking a
    config that 60,000 Services block stays cheap."""

    service: str
    ips: tuple[IPAddress, ...]
    causes: tuple[tuple[str | None, bool], ...]

    @property
    def reason(self) -> str:
        reasons: list[str] = []
        owners: list[str] = []
        for ip, (pool, buggy) in zip(self.ips, self.causes, strict=True):
            if pool is None:
                reasons.append(f"{ip_text(ip)} is not in any pool")
            elif buggy:
                reasons.append(
                    f"{ip_text(ip)} ends in .0 or .255 and pool {go_quote(pool)} sets "
                    "avoid-buggy-ips"
                )
            else:
                owners.append(pool)
        if not reasons and len(set(owners)) > 1:
            reasons.append(
                "the addresses are in different pools " + ", ".join(map(go_quote, owners))
            )
        return "; ".join(reasons) or "no pool owns these addresses"

    def __str__(self) -> str:
        return (
            f"service {go_quote(self.service)} cannot own "
            f"{go_quote_list(self.ips)} under new config: {self.reason}"
        )


@dataclass(frozen=True, slots=True)
class PoolChange:
    accepted: bool
    blockers: tuple[Blocker, ...] = ()
    """Every blocking Service, sorted by key; empty when accepted."""
    reason: str = ""
    """Why the pool set itself is unusable (overlap), independent of any Service."""

    @property
    def message(self) -> str:
        if self.accepted:
            return "accepted"
        if self.reason:
            return f"new config not usable: {self.reason}"
        return "new config not compatible with assigned IPs: " + "; ".join(
            str(b) for b in self.blockers
        )


@dataclass(frozen=True, slots=True)
class PoolStats:
    """The three `metallb_allocator_*` gauges of one pool (docs/alerts.md uses them)."""

    addresses_total: int
    addresses_in_use: int
    services_allocated: int

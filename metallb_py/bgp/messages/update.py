"""A received UPDATE as values: path attributes, and the malformed parts RFC 7606 lets the session
survive (`UpdateProblem`, `ErrorAction`). `update_decode.py` builds these from bytes."""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field

from metallb_py.bgp.messages.notification import BgpError, error_name
from metallb_py.bgp.messages.wire import IPAddress, IPNetwork


@dataclass(frozen=True)
class AsPathSegment:
    type: int
    asns: tuple[int, ...]


@dataclass(frozen=True)
class MpReach:
    afi: int
    safi: int
    next_hops: tuple[IPAddress, ...]
    """Parsed for IPv4/IPv6 unicast; empty for other families (raw kept in `next_hop_raw`)."""
    nlri: tuple[IPNetwork, ...]
    next_hop_raw: bytes = b""
    nlri_raw: bytes = b""


@dataclass(frozen=True)
class MpUnreach:
    afi: int
    safi: int
    withdrawn: tuple[IPNetwork, ...]
    withdrawn_raw: bytes = b""


@dataclass(frozen=True)
class RawAttribute:
    flags: int
    type: int
    value: bytes


@dataclass(frozen=True)
class PathAttributes:
    origin: int | None = None
    as_path: tuple[AsPathSegment, ...] | None = None
    next_hop: ipaddress.IPv4Address | None = None
    med: int | None = None
    local_pref: int | None = None
    atomic_aggregate: bool = False
    communities: tuple[int, ...] = ()
    as4_path: tuple[AsPathSegment, ...] | None = None
    mp_reach: MpReach | None = None
    mp_unreach: MpUnreach | None = None
    other: tuple[RawAttribute, ...] = ()
    """Attributes this speaker does not interpret (aggregator, extended communities, ...)."""


class ErrorAction(enum.IntEnum):
    """How a malformed UPDATE is handled (RFC 7606 section 2), weakest first: when several
    errors meet in one UPDATE, the strongest applies (section 3 (h))."""

    ATTRIBUTE_DISCARD = 1
    """The malformed attribute is dropped and the UPDATE processed without it."""
    TREAT_AS_WITHDRAW = 2
    """Every route the UPDATE announces is taken as withdrawn; the session stays up."""
    SESSION_RESET = 3
    """NOTIFICATION and close: never carried in `Update.problems`, raised as `BgpError`."""

    @property
    def label(self) -> str:
        """The RFC's name: "attribute discard", "treat-as-withdraw", "session reset"."""
        return _ACTION_LABELS[self]


_ACTION_LABELS = {
    ErrorAction.ATTRIBUTE_DISCARD: "attribute discard",
    ErrorAction.TREAT_AS_WITHDRAW: "treat-as-withdraw",
    ErrorAction.SESSION_RESET: "session reset",
}


@dataclass(frozen=True)
class UpdateProblem:
    """A malformed part of a received UPDATE that RFC 7606 handles without a session reset.

    `code`, `subcode` and `data` are the NOTIFICATION RFC 4271 alone would have sent: they name
    the error in logs, and become the NOTIFICATION when RFC 7606 section 5.2 asks for a reset.
    """

    action: ErrorAction
    code: int
    subcode: int
    data: bytes = b""
    detail: str = ""

    @property
    def name(self) -> str:
        return error_name(self.code, self.subcode)

    def as_error(self) -> BgpError:
        return BgpError(self.code, self.subcode, self.data, self.detail)

    def __str__(self) -> str:
        text = f"{self.code}/{self.subcode} {self.name}"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass(frozen=True)
class Update:
    withdrawn: tuple[ipaddress.IPv4Network, ...] = ()
    attributes: PathAttributes = field(default_factory=PathAttributes)
    nlri: tuple[ipaddress.IPv4Network, ...] = ()
    problems: tuple[UpdateProblem, ...] = ()
    """Errors handled per RFC 7606 without a reset; empty for a well-formed UPDATE."""

    @property
    def action(self) -> ErrorAction | None:
        """The strongest handling its problems ask for, None when there are none."""
        return max((p.action for p in self.problems), default=None)

    @property
    def treat_as_withdraw(self) -> bool:
        """RFC 7606: the routes in `nlri` and `attributes.mp_reach` count as withdrawn."""
        return self.action is ErrorAction.TREAT_AS_WITHDRAW

    @property
    def is_end_of_rib(self) -> bool:
        """RFC 4724 End-of-RIB: an empty UPDATE (IPv4) or an empty MP_UNREACH_NLRI alone."""
        a = self.attributes
        if self.withdrawn or self.nlri or self.problems:
            return False
        if a == PathAttributes():
            return True
        return (
            a.mp_unreach is not None
            and not a.mp_unreach.withdrawn
            and not a.mp_unreach.withdrawn_raw
            and a == PathAttributes(mp_unreach=a.mp_unreach)
        )

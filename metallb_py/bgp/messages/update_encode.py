"""UPDATE encoding: the routes a session announces, their path attributes, and the packing of
announcements and withdrawals into as few UPDATEs as fit the 4096-byte maximum (IPv4 in the NLRI
field, IPv6 in MP_REACH_NLRI; RFC 4271 4.3, RFC 4760, RFC 4724 End-of-RIB).

A community reaches the codec as anything with an integer `value` (`CommunityValue`; the
config's `Community` is one): the codec sits below the config and does not import it, and the
config keeps its `A:B` parsing and printing. Only the 32-bit value goes on the wire.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from metallb_py.bgp.messages.wire import (
    AFI_IPV6,
    AS_TRANS,
    FLAG_EXTENDED_LENGTH,
    FLAG_OPTIONAL,
    FLAG_TRANSITIVE,
    HEADER_LEN,
    IPV4_UNICAST,
    MAX_MESSAGE_LEN,
    SAFI_UNICAST,
    AfiSafi,
    AttrType,
    IPNetwork,
    MessageType,
    Origin,
    SegmentType,
    frame,
)

MAX_COMMUNITIES = 900
"""Enough communities to still leave room for prefixes in one 4096-byte UPDATE."""


class CommunityValue(Protocol):
    """A classic 32-bit BGP community (RFC 1997), `(A << 16) + B`, as the codec needs it."""

    @property
    def value(self) -> int: ...


def encode_update(withdrawn: bytes = b"", attributes: bytes = b"", nlri: bytes = b"") -> bytes:
    """Frame already-encoded fields; raises ValueError beyond 4096 bytes."""
    body = (
        len(withdrawn).to_bytes(2, "big")
        + withdrawn
        + len(attributes).to_bytes(2, "big")
        + attributes
        + nlri
    )
    return frame(MessageType.UPDATE, body)


def encode_attribute(flags: int, code: int, value: bytes) -> bytes:
    """One path attribute, switching to the extended length form when the value needs it."""
    if len(value) > 255:
        return bytes([flags | FLAG_EXTENDED_LENGTH, code]) + len(value).to_bytes(2, "big") + value
    return bytes([flags & ~FLAG_EXTENDED_LENGTH, code, len(value)]) + value


def encode_prefix(prefix: IPNetwork) -> bytes:
    plen = prefix.prefixlen
    return bytes([plen]) + prefix.network_address.packed[: (plen + 7) // 8]


def _encode_as_path(asns: Sequence[int], width: int) -> bytes:
    if not asns:
        return b""
    return bytes([SegmentType.AS_SEQUENCE, len(asns)]) + b"".join(
        a.to_bytes(width, "big") for a in asns
    )


@dataclass(frozen=True, order=True)
class RouteAttributes:
    """What can differ between two announced prefixes of one session."""

    localpref: int = 0
    communities: tuple[int, ...] = ()
    """Community values, sorted and unique."""


@dataclass(frozen=True)
class Route:
    """One prefix to announce; communities are kept sorted and unique (as upstream sends them)."""

    prefix: IPNetwork
    localpref: int = 0
    communities: tuple[CommunityValue, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.localpref <= 0xFFFFFFFF:
            raise ValueError(f"localpref {self.localpref} out of range")
        by_value = {c.value: c for c in reversed(self.communities)}  # the first of equal ones
        normal = tuple(by_value[v] for v in sorted(by_value))
        if len(normal) > MAX_COMMUNITIES:
            raise ValueError(f"{len(normal)} communities; at most {MAX_COMMUNITIES} fit")
        if normal != self.communities:
            object.__setattr__(self, "communities", normal)

    @property
    def attributes(self) -> RouteAttributes:
        return RouteAttributes(self.localpref, tuple(c.value for c in self.communities))


@dataclass(frozen=True)
class UpdateContext:
    """What the session negotiated and learned about its local side; decides the attributes."""

    my_asn: int
    ibgp: bool
    four_octet_as: bool
    """The peer announced the 4-octet AS capability."""
    next_hop_v4: ipaddress.IPv4Address | None = None
    next_hop_v6: ipaddress.IPv6Address | None = None
    link_local_v6: ipaddress.IPv6Address | None = None
    """Sent as the second IPv6 next hop (32-byte form) when set."""

    def can_send(self, version: int) -> bool:
        return (self.next_hop_v4 if version == 4 else self.next_hop_v6) is not None


def common_attributes(ctx: UpdateContext, attrs: RouteAttributes, version: int) -> bytes:
    """Path attributes in ascending type order, except MP_REACH_NLRI: the packer puts it first,
    as RFC 7606 5.1 requires (so a receiver finds the NLRI even behind a malformed attribute)."""
    wk = FLAG_TRANSITIVE
    out = [encode_attribute(wk, AttrType.ORIGIN, bytes([Origin.INCOMPLETE]))]
    as4_path = b""
    if ctx.ibgp:
        as_path = b""
    elif ctx.four_octet_as:
        as_path = _encode_as_path([ctx.my_asn], 4)
    elif ctx.my_asn > 0xFFFF:
        as_path = _encode_as_path([AS_TRANS], 2)
        as4_path = _encode_as_path([ctx.my_asn], 4)
    else:
        as_path = _encode_as_path([ctx.my_asn], 2)
    out.append(encode_attribute(wk, AttrType.AS_PATH, as_path))
    if version == 4:
        if ctx.next_hop_v4 is None:
            raise ValueError("no IPv4 next hop for IPv4 routes")
        out.append(encode_attribute(wk, AttrType.NEXT_HOP, ctx.next_hop_v4.packed))
    if ctx.ibgp:
        out.append(encode_attribute(wk, AttrType.LOCAL_PREF, attrs.localpref.to_bytes(4, "big")))
    if attrs.communities:
        value = b"".join(c.to_bytes(4, "big") for c in attrs.communities)
        out.append(encode_attribute(FLAG_OPTIONAL | FLAG_TRANSITIVE, AttrType.COMMUNITIES, value))
    if as4_path:
        out.append(encode_attribute(FLAG_OPTIONAL | FLAG_TRANSITIVE, AttrType.AS4_PATH, as4_path))
    return b"".join(out)


def _mp_next_hop(ctx: UpdateContext) -> bytes:
    if ctx.next_hop_v6 is None:
        raise ValueError("no IPv6 next hop for IPv6 routes")
    nh = ctx.next_hop_v6.packed
    if ctx.link_local_v6 is not None:
        nh += ctx.link_local_v6.packed
    return nh


# Fixed bytes of every UPDATE: header, withdrawn length, path attribute length.
_UPDATE_OVERHEAD = HEADER_LEN + 2 + 2
_MP_ATTR_HEAD = 4  # flags, type, 2-byte (extended) length: the conservative size


def _bins(items: Sequence[bytes], capacity: int) -> list[list[bytes]]:
    """First-fit decreasing over byte strings: the fewest groups of total size <= capacity.

    Items are small (at most 17 bytes) next to the capacity (about 4000), so filling by size
    classes leaves every group but the last within one small item of full.
    """
    by_size: dict[int, list[bytes]] = defaultdict(list)
    for item in items:
        by_size[len(item)].append(item)
    bins: list[list[bytes]] = []
    free: list[int] = []
    for size in sorted(by_size, reverse=True):
        if size > capacity:
            raise ValueError(f"a {size}-byte prefix does not fit in {capacity} bytes")
        pending = by_size[size]
        start = 0
        for i in range(len(bins)):
            if start >= len(pending):
                break
            room = free[i] // size
            if room:
                take = pending[start : start + room]
                bins[i].extend(take)
                free[i] -= size * len(take)
                start += len(take)
        per_bin = capacity // size
        while start < len(pending):
            take = pending[start : start + per_bin]
            bins.append(list(take))
            free.append(capacity - size * len(take))
            start += len(take)
    return bins


def pack_announcements(routes: Iterable[Route], ctx: UpdateContext) -> list[bytes]:
    """UPDATEs announcing `routes`: one group per (family, attributes), each packed full."""
    groups: dict[tuple[int, RouteAttributes], list[bytes]] = defaultdict(list)
    for route in routes:
        groups[(route.prefix.version, route.attributes)].append(encode_prefix(route.prefix))
    messages: list[bytes] = []
    for (version, attrs), prefixes in sorted(groups.items(), key=lambda kv: kv[0]):
        common = common_attributes(ctx, attrs, version)
        if version == 4:
            capacity = MAX_MESSAGE_LEN - _UPDATE_OVERHEAD - len(common)
            for group in _bins(prefixes, capacity):
                messages.append(encode_update(attributes=common, nlri=b"".join(group)))
        else:
            mp_head = struct.pack("!HB", AFI_IPV6, SAFI_UNICAST)
            nh = _mp_next_hop(ctx)
            mp_fixed = mp_head + bytes([len(nh)]) + nh + b"\0"
            capacity = (
                MAX_MESSAGE_LEN - _UPDATE_OVERHEAD - len(common) - _MP_ATTR_HEAD - len(mp_fixed)
            )
            for group in _bins(prefixes, capacity):
                mp = encode_attribute(
                    FLAG_OPTIONAL, AttrType.MP_REACH_NLRI, mp_fixed + b"".join(group)
                )
                messages.append(encode_update(attributes=mp + common))
    return messages


def pack_withdrawals(prefixes: Iterable[IPNetwork]) -> list[bytes]:
    """UPDATEs withdrawing `prefixes`: IPv4 in the withdrawn routes field, IPv6 in
    MP_UNREACH_NLRI, each message as full as 4096 bytes allow."""
    v4: list[bytes] = []
    v6: list[bytes] = []
    for prefix in prefixes:
        (v4 if prefix.version == 4 else v6).append(encode_prefix(prefix))
    messages = [
        encode_update(withdrawn=b"".join(group))
        for group in _bins(v4, MAX_MESSAGE_LEN - _UPDATE_OVERHEAD)
    ]
    head = struct.pack("!HB", AFI_IPV6, SAFI_UNICAST)
    capacity = MAX_MESSAGE_LEN - _UPDATE_OVERHEAD - _MP_ATTR_HEAD - len(head)
    for group in _bins(v6, capacity):
        mp = encode_attribute(FLAG_OPTIONAL, AttrType.MP_UNREACH_NLRI, head + b"".join(group))
        messages.append(encode_update(attributes=mp))
    return messages


def encode_end_of_rib(family: AfiSafi) -> bytes:
    """RFC 4724 End-of-RIB marker for a family."""
    if family == IPV4_UNICAST:
        return encode_update()
    value = struct.pack("!HB", family[0], family[1])
    return encode_update(
        attributes=encode_attribute(FLAG_OPTIONAL, AttrType.MP_UNREACH_NLRI, value)
    )

"""UPDATE decoding: RFC 4271 6.3 and RFC 4760 validation with RFC 7606's error handling.

One walk over the path attributes collects values and, for malformed ones that can be skipped,
`UpdateProblem`s ("treat-as-withdraw" or "attribute discard"); what leaves the UPDATE unparseable
as a whole raises `BgpError`. docs/bgp.md tells which error gets which handling.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import cast

from metallb_py.bgp.messages.notification import (
    BgpError,
    ErrorCode,
    UpdateSubcode,
    update_error,
)
from metallb_py.bgp.messages.update import (
    AsPathSegment,
    ErrorAction,
    MpReach,
    MpUnreach,
    PathAttributes,
    RawAttribute,
    Update,
    UpdateProblem,
)
from metallb_py.bgp.messages.wire import (
    AFI_IPV4,
    FLAG_EXTENDED_LENGTH,
    FLAG_OPTIONAL,
    FLAG_PARTIAL,
    FLAG_TRANSITIVE,
    IPV4_UNICAST,
    IPV6_UNICAST,
    AttrType,
    IPAddress,
    IPNetwork,
    Origin,
    SegmentType,
)

# Expected (optional, transitive) bits of the attributes this codec knows (RFC 4271 6.3).
_KNOWN_FLAGS: dict[int, tuple[bool, bool]] = {
    AttrType.ORIGIN: (False, True),
    AttrType.AS_PATH: (False, True),
    AttrType.NEXT_HOP: (False, True),
    AttrType.MULTI_EXIT_DISC: (True, False),
    AttrType.LOCAL_PREF: (False, True),
    AttrType.ATOMIC_AGGREGATE: (False, True),
    AttrType.AGGREGATOR: (True, True),
    AttrType.COMMUNITIES: (True, True),
    AttrType.ORIGINATOR_ID: (True, False),
    AttrType.CLUSTER_LIST: (True, False),
    AttrType.MP_REACH_NLRI: (True, False),
    AttrType.MP_UNREACH_NLRI: (True, False),
    AttrType.EXTENDED_COMMUNITIES: (True, True),
    AttrType.AS4_PATH: (True, True),
    AttrType.AS4_AGGREGATOR: (True, True),
    AttrType.LARGE_COMMUNITY: (True, True),
}
_FIXED_LENGTHS: dict[int, int] = {
    AttrType.ORIGIN: 1,
    AttrType.NEXT_HOP: 4,
    AttrType.MULTI_EXIT_DISC: 4,
    AttrType.LOCAL_PREF: 4,
    AttrType.ATOMIC_AGGREGATE: 0,
    AttrType.ORIGINATOR_ID: 4,
    AttrType.AS4_AGGREGATOR: 8,
}
# Lengths that must be a non-zero multiple (RFC 7606 7.8, 7.10, 7.14; RFC 8092 6).
_LENGTH_MULTIPLES: dict[int, int] = {
    AttrType.COMMUNITIES: 4,
    AttrType.CLUSTER_LIST: 4,
    AttrType.EXTENDED_COMMUNITIES: 8,
    AttrType.LARGE_COMMUNITY: 12,
}
_MP_ATTRIBUTES = frozenset({AttrType.MP_REACH_NLRI, AttrType.MP_UNREACH_NLRI})
# RFC 7606 3 (f), 7.6, 7.7 and RFC 6793 6: attributes that do not affect route selection are
# dropped when malformed ("attribute discard"); every other known one is "treat-as-withdraw"
# (3 (c), 3 (e), 7.1-7.5, 7.8-7.10, 7.14; RFC 8092 6 for LARGE_COMMUNITY).
_DISCARD_WHEN_MALFORMED = frozenset(
    {
        AttrType.ATOMIC_AGGREGATE,
        AttrType.AGGREGATOR,
        AttrType.AS4_PATH,
        AttrType.AS4_AGGREGATOR,
    }
)
# RFC 7606 7.5, 7.9, 7.10: from an external neighbor these are discarded, whatever they hold.
_INTERNAL_ONLY = frozenset({AttrType.LOCAL_PREF, AttrType.ORIGINATOR_ID, AttrType.CLUSTER_LIST})


def decode_update(body: bytes, *, four_octet_as: bool = True, external: bool = False) -> Update:
    """Validate an UPDATE body: RFC 4271 6.3 and RFC 4760, with RFC 7606's error handling.

    Errors that leave the UPDATE unparseable as a whole raise `BgpError` (session reset): field
    lengths that overrun the message (7606 3 (b)), syntactically wrong NLRI or withdrawn routes
    (5.3), a malformed or repeated MP_REACH_NLRI / MP_UNREACH_NLRI (3 (g), 5.3, 7.11), and an
    unrecognized well-known attribute (RFC 4271, unchanged). Malformed path attributes that can
    be skipped are returned in `Update.problems` as "treat-as-withdraw" or "attribute discard";
    unless, per 7606 5.2, the UPDATE announces nothing while carrying attributes other than
    MP_UNREACH_NLRI: then its routes cannot be known to be found, and a treat-as-withdraw error
    resets the session. `external` (an eBGP neighbor) discards LOCAL_PREF, ORIGINATOR_ID and
    CLUSTER_LIST unread (7606 7.5, 7.9, 7.10).
    """
    if len(body) < 4:
        raise update_error(UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, "UPDATE shorter than 4 bytes")
    wlen = int.from_bytes(body[:2], "big")
    if 2 + wlen + 2 > len(body):
        raise update_error(
            UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
            f"withdrawn routes length {wlen} overruns the message",
        )
    withdrawn_raw = body[2 : 2 + wlen]
    alen = int.from_bytes(body[2 + wlen : 4 + wlen], "big")
    if 4 + wlen + alen > len(body):
        raise update_error(
            UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
            f"total path attribute length {alen} overruns the message",
        )
    attrs_raw = body[4 + wlen : 4 + wlen + alen]
    nlri_raw = body[4 + wlen + alen :]
    try:
        withdrawn = _decode_prefixes(withdrawn_raw, 4)
        nlri = _decode_prefixes(nlri_raw, 4)
    except _PrefixError as exc:
        raise update_error(UpdateSubcode.INVALID_NETWORK_FIELD, str(exc)) from None
    parsed = _AttributeParser(four_octet_as, external)
    attributes = parsed.run(attrs_raw)
    problems = parsed.problems
    mp_reach = attributes.mp_reach
    if nlri or mp_reach is not None:
        # RFC 7606 3 (d): a missing well-known mandatory attribute is treat-as-withdraw.
        # NEXT_HOP is only needed by NLRI in the NLRI field (RFC 4760 3).
        needed = [AttrType.ORIGIN, AttrType.AS_PATH] + ([AttrType.NEXT_HOP] if nlri else [])
        for code in needed:
            if code not in parsed.seen:
                problems.append(
                    UpdateProblem(
                        ErrorAction.TREAT_AS_WITHDRAW,
                        ErrorCode.UPDATE_MESSAGE,
                        UpdateSubcode.MISSING_WELL_KNOWN_ATTRIBUTE,
                        bytes([code]),
                        f"{code.name} missing" + (" for IPv4 NLRI" if code == 3 else ""),
                    )
                )
    reachable = bool(nlri) or (mp_reach is not None and bool(mp_reach.nlri or mp_reach.nlri_raw))
    only_unreach = parsed.seen <= {AttrType.MP_UNREACH_NLRI} and not parsed.truncated
    strongest = max(problems, key=lambda p: p.action, default=None)
    if (
        strongest is not None
        and strongest.action is ErrorAction.TREAT_AS_WITHDRAW
        and not reachable
        and not only_unreach
    ):
        # RFC 7606 5.2: no reachable NLRI, yet attributes besides MP_UNREACH_NLRI: the routes
        # cannot be known to be all found, so treat-as-withdraw becomes a session reset.
        raise strongest.as_error()
    return Update(
        cast(tuple[ipaddress.IPv4Network, ...], withdrawn),
        attributes,
        cast(tuple[ipaddress.IPv4Network, ...], nlri),
        tuple(problems),
    )


class _MalformedValueError(Exception):
    """An attribute value that is wrong; the parser turns it into this attribute's action."""

    def __init__(self, subcode: UpdateSubcode, detail: str, data: bytes = b"") -> None:
        super().__init__(detail)
        self.subcode = subcode
        self.detail = detail
        self.data = data


class _AttributeParser:
    """Walks the path attribute list once, collecting values and RFC 7606 problems."""

    def __init__(self, four_octet_as: bool, external: bool) -> None:
        self.four_octet_as = four_octet_as
        self.external = external
        self.seen: set[int] = set()
        self.values: dict[str, object] = {}
        self.other: list[RawAttribute] = []
        self.problems: list[UpdateProblem] = []
        self.truncated = False
        """The list ended inside an attribute (RFC 7606 4): the rest was not read."""

    def problem(
        self, action: ErrorAction, subcode: UpdateSubcode, detail: str, data: bytes = b""
    ) -> None:
        self.problems.append(UpdateProblem(action, ErrorCode.UPDATE_MESSAGE, subcode, data, detail))

    def run(self, raw: bytes) -> PathAttributes:
        pos = 0
        while pos < len(raw):
            flags = raw[pos]
            head = 4 if flags & FLAG_EXTENDED_LENGTH else 3
            if pos + head > len(raw):
                # RFC 7606 4: too few bytes left for an attribute header: treat-as-withdraw,
                # the NLRI field is found through the total path attribute length.
                self.truncated = True
                self.problem(
                    ErrorAction.TREAT_AS_WITHDRAW,
                    UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
                    f"{len(raw) - pos} bytes left in the attribute list, too few for an "
                    "attribute header",
                )
                break
            code = raw[pos + 1]
            length = int.from_bytes(raw[pos + 2 : pos + head], "big")
            start = pos + head
            end = start + length
            if end > len(raw):
                self.truncated = True  # RFC 7606 4, as above
                self.problem(
                    ErrorAction.TREAT_AS_WITHDRAW,
                    UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
                    f"attribute {code} length {length} overruns the attribute list",
                )
                break
            self.attribute(flags, code, raw[pos:end], raw[start:end])
            pos = end
        return PathAttributes(**self.values, other=tuple(self.other))  # type: ignore[arg-type]

    def attribute(self, flags: int, code: int, whole: bytes, value: bytes) -> None:
        if code in self.seen:
            if code in _MP_ATTRIBUTES:  # RFC 7606 3 (g)
                raise update_error(
                    UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
                    f"{AttrType(code).name} appears twice",
                )
            # RFC 7606 3 (g): any other repeated attribute is discarded after its first copy.
            self.problem(
                ErrorAction.ATTRIBUTE_DISCARD,
                UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
                f"attribute {code} appears twice; the later copy is discarded",
            )
            return
        self.seen.add(code)
        expected = _KNOWN_FLAGS.get(code)
        optional = bool(flags & FLAG_OPTIONAL)
        if expected is None:
            if not optional:  # RFC 4271 6.3, not relaxed by RFC 7606
                raise update_error(
                    UpdateSubcode.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                    f"unknown well-known attribute {code}",
                    whole,
                )
            self.other.append(RawAttribute(flags, code, value))
            return
        attr = AttrType(code)
        if self.external and attr in _INTERNAL_ONLY:
            return
        action = (
            ErrorAction.ATTRIBUTE_DISCARD
            if attr in _DISCARD_WHEN_MALFORMED
            else ErrorAction.TREAT_AS_WITHDRAW
        )
        transitive = bool(flags & FLAG_TRANSITIVE)
        partial_ok = expected == (True, True)
        if (optional, transitive) != expected or (flags & FLAG_PARTIAL and not partial_ok):
            self.problem(
                action,
                UpdateSubcode.ATTRIBUTE_FLAGS_ERROR,
                f"flags {flags:#04x} invalid for {attr.name}",
                whole,
            )
            if attr not in _MP_ATTRIBUTES:
                return
            # RFC 7606 3 (c) asks treat-as-withdraw; that needs the NLRI of the attribute
            # (3 (j)), so it is still parsed, and a reset follows if it does not parse.
        fixed = _FIXED_LENGTHS.get(code)
        if attr is AttrType.AGGREGATOR:
            fixed = 8 if self.four_octet_as else 6  # RFC 7606 7.7
        multiple = _LENGTH_MULTIPLES.get(code)
        if (fixed is not None and len(value) != fixed) or (
            multiple and (not value or len(value) % multiple)
        ):
            self.problem(
                action,
                UpdateSubcode.ATTRIBUTE_LENGTH_ERROR,
                f"length {len(value)} invalid for {attr.name}",
                whole,
            )
            return
        try:
            decoded = _decode_known_attribute(attr, value, whole, self.four_octet_as)
        except _MalformedValueError as exc:
            self.problem(action, exc.subcode, exc.detail, exc.data)
            return
        if decoded is None:
            self.other.append(RawAttribute(flags, code, value))
        elif decoded[0]:
            self.values[decoded[0]] = decoded[1]


_MARTIAN_NEXT_HOPS = tuple(
    ipaddress.IPv4Network(n) for n in ("0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4")
)


def _decode_known_attribute(
    code: AttrType, value: bytes, whole: bytes, four_octet_as: bool
) -> tuple[str, object] | None:
    """(PathAttributes field, decoded value), ("", None) for a value dropped on purpose, or
    None for attributes kept raw. Raises `_MalformedValueError` for a wrong value (the caller
    applies the attribute's RFC 7606 action) and `BgpError` where only a reset will do."""
    if code is AttrType.ORIGIN:
        if value[0] > Origin.INCOMPLETE:
            raise _MalformedValueError(UpdateSubcode.INVALID_ORIGIN, f"ORIGIN {value[0]}", whole)
        return "origin", value[0]
    if code is AttrType.AS_PATH:
        segments = _decode_as_path(value, 4 if four_octet_as else 2)
        if segments is None:  # RFC 7606 7.2
            raise _MalformedValueError(UpdateSubcode.MALFORMED_AS_PATH, "malformed AS_PATH")
        return "as_path", segments
    if code is AttrType.NEXT_HOP:
        # Not a host address: syntactically incorrect (RFC 4271 6.3), so treat-as-withdraw
        # (RFC 7606 3 (e), 7.3). The semantic checks of 6.3 are not made: routes are not used.
        hop = ipaddress.IPv4Address(value)
        if any(hop in net for net in _MARTIAN_NEXT_HOPS):
            raise _MalformedValueError(UpdateSubcode.INVALID_NEXT_HOP, f"NEXT_HOP {hop}", whole)
        return "next_hop", hop
    if code is AttrType.MULTI_EXIT_DISC:
        return "med", int.from_bytes(value, "big")
    if code is AttrType.LOCAL_PREF:
        return "local_pref", int.from_bytes(value, "big")
    if code is AttrType.ATOMIC_AGGREGATE:
        return "atomic_aggregate", True
    if code is AttrType.COMMUNITIES:
        return "communities", tuple(
            int.from_bytes(value[i : i + 4], "big") for i in range(0, len(value), 4)
        )
    if code is AttrType.AS4_PATH:
        if four_octet_as:
            return "", None  # RFC 6793: a NEW speaker discards AS4_PATH from a NEW speaker
        segments = _decode_as_path(value, 4)
        if segments is None:  # RFC 6793 6: attribute discard
            raise _MalformedValueError(UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, "malformed AS4_PATH")
        return "as4_path", segments
    if code is AttrType.MP_REACH_NLRI:
        return "mp_reach", _decode_mp_reach(value, whole)
    if code is AttrType.MP_UNREACH_NLRI:
        return "mp_unreach", _decode_mp_unreach(value, whole)
    return None


def _decode_as_path(value: bytes, width: int) -> tuple[AsPathSegment, ...] | None:
    segments = []
    pos = 0
    while pos < len(value):
        if pos + 2 > len(value):
            return None
        stype, count = value[pos], value[pos + 1]
        if stype not in SegmentType._value2member_map_ or count == 0:
            return None
        end = pos + 2 + count * width
        if end > len(value):
            return None
        asns = tuple(
            int.from_bytes(value[i : i + width], "big") for i in range(pos + 2, end, width)
        )
        segments.append(AsPathSegment(stype, asns))
        pos = end
    return tuple(segments)


def _optional_error(detail: str, whole: bytes) -> BgpError:
    return update_error(UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, detail, whole)


def _decode_mp_reach(value: bytes, whole: bytes) -> MpReach:
    if len(value) < 5:
        raise _optional_error("MP_REACH_NLRI shorter than 5 bytes", whole)
    afi, safi, nh_len = struct.unpack("!HBB", value[:4])
    if 4 + nh_len + 1 > len(value):
        raise _optional_error(f"MP_REACH_NLRI next hop length {nh_len} overruns", whole)
    nh_raw = value[4 : 4 + nh_len]
    nlri_raw = value[4 + nh_len + 1 :]
    if (afi, safi) == IPV6_UNICAST:
        if nh_len not in (16, 32):
            raise _optional_error(f"IPv6 next hop length {nh_len}", whole)
        hops: tuple[IPAddress, ...] = tuple(
            ipaddress.IPv6Address(nh_raw[i : i + 16]) for i in range(0, nh_len, 16)
        )
        nlri = _decode_mp_prefixes(nlri_raw, 6, whole)
        return MpReach(afi, safi, hops, nlri, nh_raw, b"")
    if (afi, safi) == IPV4_UNICAST:
        if nh_len not in (4, 16, 32):  # 16/32: RFC 8950 IPv6 next hop for IPv4 NLRI
            raise _optional_error(f"IPv4 unicast next hop length {nh_len}", whole)
        if nh_len == 4:
            hops = (ipaddress.IPv4Address(nh_raw),)
        else:
            hops = tuple(ipaddress.IPv6Address(nh_raw[i : i + 16]) for i in range(0, nh_len, 16))
        nlri = _decode_mp_prefixes(nlri_raw, 4, whole)
        return MpReach(afi, safi, hops, nlri, nh_raw, b"")
    return MpReach(afi, safi, (), (), nh_raw, nlri_raw)


def _decode_mp_unreach(value: bytes, whole: bytes) -> MpUnreach:
    if len(value) < 3:
        raise _optional_error("MP_UNREACH_NLRI shorter than 3 bytes", whole)
    afi, safi = struct.unpack("!HB", value[:3])
    raw = value[3:]
    if (afi, safi) in (IPV4_UNICAST, IPV6_UNICAST):
        version = 4 if afi == AFI_IPV4 else 6
        prefixes = _decode_mp_prefixes(raw, version, whole)
        return MpUnreach(afi, safi, prefixes)
    return MpUnreach(afi, safi, (), raw)


class _PrefixError(Exception):
    """An NLRI field that does not parse; the caller picks the NOTIFICATION subcode."""


def _decode_mp_prefixes(raw: bytes, version: int, whole: bytes) -> tuple[IPNetwork, ...]:
    # RFC 4760 7: bad NLRI inside MP_(UN)REACH_NLRI is an Optional Attribute Error.
    try:
        return _decode_prefixes(raw, version)
    except _PrefixError as exc:
        raise _optional_error(f"IPv{version} NLRI: {exc}", whole) from None


def _decode_prefixes(raw: bytes, version: int) -> tuple[IPNetwork, ...]:
    width = 4 if version == 4 else 16
    max_len = width * 8
    out: list[IPNetwork] = []
    pos = 0
    while pos < len(raw):
        plen = raw[pos]
        if plen > max_len:
            raise _PrefixError(f"prefix length {plen} exceeds {max_len}")
        nbytes = (plen + 7) // 8
        if pos + 1 + nbytes > len(raw):
            raise _PrefixError(f"/{plen} prefix overruns the field")
        packed = raw[pos + 1 : pos + 1 + nbytes].ljust(width, b"\0")
        net: IPNetwork
        if version == 4:
            net = ipaddress.IPv4Network((packed, plen), strict=False)
        else:
            net = ipaddress.IPv6Network((packed, plen), strict=False)
        out.append(net)
        pos += 1 + nbytes
    return tuple(out)

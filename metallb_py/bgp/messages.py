"""BGP-4 wire codec: bytes in, values out, no I/O.

Covers what an active, announce-only speaker needs (RFC 4271 BGP-4, RFC 4760 multiprotocol
IPv6, RFC 6793 4-octet AS, RFC 2918/7313 route refresh, RFC 1997 communities, RFC 4486/8203
Cease subcodes). Decoding validates per RFC 4271 section 6 and raises exactly one exception
type, :class:`BgpError`, which carries the NOTIFICATION the session must send back: a peer
that sends garbage gets told what was wrong instead of seeing the connection vanish. Malformed
path attributes in an UPDATE that can be skipped follow RFC 7606 instead: the UPDATE is returned
with its `problems` ("treat-as-withdraw" or "attribute discard") and the session stays up.

Packing: announcements that share path attributes go into as few UPDATEs as fit the 4096-byte
BGP maximum (IPv4 in the NLRI field, IPv6 in MP_REACH_NLRI); withdrawals are split the same way.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias, cast

from metallb_py.config.model import Community, IPAddress, IPNetwork

MARKER = b"\xff" * 16
HEADER_LEN = 19
MAX_MESSAGE_LEN = 4096
BGP_VERSION = 4
AS_TRANS = 23456
"""RFC 6793: the 2-octet stand-in for a 4-octet AS number."""
MAX_COMMUNITIES = 900
"""Enough communities to still leave room for prefixes in one 4096-byte UPDATE."""

Family: TypeAlias = tuple[int, int]
"""(AFI, SAFI)."""
AFI_IPV4 = 1
AFI_IPV6 = 2
SAFI_UNICAST = 1
IPV4_UNICAST: Family = (AFI_IPV4, SAFI_UNICAST)
IPV6_UNICAST: Family = (AFI_IPV6, SAFI_UNICAST)


class MessageType(enum.IntEnum):
    OPEN = 1
    UPDATE = 2
    NOTIFICATION = 3
    KEEPALIVE = 4
    ROUTE_REFRESH = 5


class CapabilityCode(enum.IntEnum):
    MULTIPROTOCOL = 1
    ROUTE_REFRESH = 2
    FOUR_OCTET_AS = 65
    ROUTE_REFRESH_OLD = 128
    """Pre-standard Cisco route refresh, still sent by some routers."""


class AttrType(enum.IntEnum):
    ORIGIN = 1
    AS_PATH = 2
    NEXT_HOP = 3
    MULTI_EXIT_DISC = 4
    LOCAL_PREF = 5
    ATOMIC_AGGREGATE = 6
    AGGREGATOR = 7
    COMMUNITIES = 8
    ORIGINATOR_ID = 9
    CLUSTER_LIST = 10
    MP_REACH_NLRI = 14
    MP_UNREACH_NLRI = 15
    EXTENDED_COMMUNITIES = 16
    AS4_PATH = 17
    AS4_AGGREGATOR = 18
    LARGE_COMMUNITY = 32


class Origin(enum.IntEnum):
    IGP = 0
    EGP = 1
    INCOMPLETE = 2


class SegmentType(enum.IntEnum):
    AS_SET = 1
    AS_SEQUENCE = 2
    AS_CONFED_SEQUENCE = 3
    AS_CONFED_SET = 4


FLAG_OPTIONAL = 0x80
FLAG_TRANSITIVE = 0x40
FLAG_PARTIAL = 0x20
FLAG_EXTENDED_LENGTH = 0x10


# --- Errors --------------------------------------------------------------------------------


class ErrorCode(enum.IntEnum):
    MESSAGE_HEADER = 1
    OPEN_MESSAGE = 2
    UPDATE_MESSAGE = 3
    HOLD_TIMER_EXPIRED = 4
    FSM = 5
    CEASE = 6
    ROUTE_REFRESH = 7


class HeaderSubcode(enum.IntEnum):
    CONNECTION_NOT_SYNCHRONIZED = 1
    BAD_MESSAGE_LENGTH = 2
    BAD_MESSAGE_TYPE = 3


class OpenSubcode(enum.IntEnum):
    UNSPECIFIC = 0
    UNSUPPORTED_VERSION = 1
    BAD_PEER_AS = 2
    BAD_BGP_IDENTIFIER = 3
    UNSUPPORTED_OPTIONAL_PARAMETER = 4
    UNACCEPTABLE_HOLD_TIME = 6
    UNSUPPORTED_CAPABILITY = 7


class UpdateSubcode(enum.IntEnum):
    MALFORMED_ATTRIBUTE_LIST = 1
    UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE = 2
    MISSING_WELL_KNOWN_ATTRIBUTE = 3
    ATTRIBUTE_FLAGS_ERROR = 4
    ATTRIBUTE_LENGTH_ERROR = 5
    INVALID_ORIGIN = 6
    INVALID_NEXT_HOP = 8
    OPTIONAL_ATTRIBUTE_ERROR = 9
    INVALID_NETWORK_FIELD = 10
    MALFORMED_AS_PATH = 11


class FsmSubcode(enum.IntEnum):
    UNSPECIFIED = 0
    UNEXPECTED_IN_OPENSENT = 1
    UNEXPECTED_IN_OPENCONFIRM = 2
    UNEXPECTED_IN_ESTABLISHED = 3


class CeaseSubcode(enum.IntEnum):
    MAXIMUM_PREFIXES = 1
    ADMINISTRATIVE_SHUTDOWN = 2
    PEER_DECONFIGURED = 3
    ADMINISTRATIVE_RESET = 4
    CONNECTION_REJECTED = 5
    OTHER_CONFIGURATION_CHANGE = 6
    CONNECTION_COLLISION_RESOLUTION = 7
    OUT_OF_RESOURCES = 8
    HARD_RESET = 9


class RouteRefreshSubcode(enum.IntEnum):
    INVALID_MESSAGE_LENGTH = 1


ERROR_NAMES: dict[int, str] = {
    1: "Message Header Error",
    2: "OPEN Message Error",
    3: "UPDATE Message Error",
    4: "Hold Timer Expired",
    5: "Finite State Machine Error",
    6: "Cease",
    7: "ROUTE-REFRESH Message Error",
}

SUBCODE_NAMES: dict[tuple[int, int], str] = {
    (1, 1): "Connection Not Synchronized",
    (1, 2): "Bad Message Length",
    (1, 3): "Bad Message Type",
    (2, 0): "Unspecific",
    (2, 1): "Unsupported Version Number",
    (2, 2): "Bad Peer AS",
    (2, 3): "Bad BGP Identifier",
    (2, 4): "Unsupported Optional Parameter",
    (2, 5): "Authentication Failure (deprecated)",
    (2, 6): "Unacceptable Hold Time",
    (2, 7): "Unsupported Capability",
    (3, 0): "Unspecific",
    (3, 1): "Malformed Attribute List",
    (3, 2): "Unrecognized Well-known Attribute",
    (3, 3): "Missing Well-known Attribute",
    (3, 4): "Attribute Flags Error",
    (3, 5): "Attribute Length Error",
    (3, 6): "Invalid ORIGIN Attribute",
    (3, 7): "AS Routing Loop (deprecated)",
    (3, 8): "Invalid NEXT_HOP Attribute",
    (3, 9): "Optional Attribute Error",
    (3, 10): "Invalid Network Field",
    (3, 11): "Malformed AS_PATH",
    (5, 0): "Unspecified Error",
    (5, 1): "Receive Unexpected Message in OpenSent State",
    (5, 2): "Receive Unexpected Message in OpenConfirm State",
    (5, 3): "Receive Unexpected Message in Established State",
    (6, 1): "Maximum Number of Prefixes Reached",
    (6, 2): "Administrative Shutdown",
    (6, 3): "Peer De-configured",
    (6, 4): "Administrative Reset",
    (6, 5): "Connection Rejected",
    (6, 6): "Other Configuration Change",
    (6, 7): "Connection Collision Resolution",
    (6, 8): "Out of Resources",
    (6, 9): "Hard Reset",
    (7, 1): "Invalid Message Length",
}


def error_name(code: int, subcode: int) -> str:
    """The RFC name of a NOTIFICATION, e.g. `UPDATE Message Error / Malformed AS_PATH`."""
    major = ERROR_NAMES.get(code, f"Unknown Error Code {code}")
    if (code, subcode) in SUBCODE_NAMES:
        return f"{major} / {SUBCODE_NAMES[(code, subcode)]}"
    if subcode == 0:
        return major
    return f"{major} / Unknown Subcode {subcode}"


class BgpError(Exception):
    """Something the peer sent violates the protocol; `notification()` is the answer to send."""

    def __init__(self, code: int, subcode: int, data: bytes = b"", detail: str = "") -> None:
        self.code = int(code)
        self.subcode = int(subcode)
        self.data = bytes(data)
        self.detail = detail
        super().__init__(str(self))

    @property
    def name(self) -> str:
        return error_name(self.code, self.subcode)

    def notification(self) -> bytes:
        return encode_notification(self.code, self.subcode, self.data)

    def __str__(self) -> str:
        text = f"{self.code}/{self.subcode} {self.name}"
        return f"{text}: {self.detail}" if self.detail else text


def _header_error(subcode: HeaderSubcode, data: bytes, detail: str) -> BgpError:
    return BgpError(ErrorCode.MESSAGE_HEADER, subcode, data, detail)


def _open_error(subcode: OpenSubcode, detail: str, data: bytes = b"") -> BgpError:
    return BgpError(ErrorCode.OPEN_MESSAGE, subcode, data, detail)


def _update_error(subcode: UpdateSubcode, detail: str, data: bytes = b"") -> BgpError:
    return BgpError(ErrorCode.UPDATE_MESSAGE, subcode, data, detail)


# --- Message values ------------------------------------------------------------------------


@dataclass(frozen=True)
class Capability:
    code: int
    value: bytes = b""


@dataclass(frozen=True)
class Open:
    version: int
    my_as: int
    hold_time: int
    bgp_id: ipaddress.IPv4Address
    capabilities: tuple[Capability, ...] = ()

    @property
    def four_octet_as(self) -> int | None:
        """The AS from the 4-octet AS capability, None when the peer lacks it."""
        for cap in self.capabilities:
            if cap.code == CapabilityCode.FOUR_OCTET_AS:
                return int.from_bytes(cap.value, "big")
        return None

    @property
    def asn(self) -> int:
        """The peer's real AS: the 4-octet capability wins over the 2-octet My AS field."""
        four = self.four_octet_as
        return self.my_as if four is None else four

    @property
    def families(self) -> frozenset[Family]:
        """Multiprotocol families offered; RFC 4760: no MP capability at all means IPv4 unicast."""
        found = set()
        any_mp = False
        for cap in self.capabilities:
            if cap.code == CapabilityCode.MULTIPROTOCOL:
                any_mp = True
                afi, _, safi = struct.unpack("!HBB", cap.value)
                found.add((afi, safi))
        return frozenset(found) if any_mp else frozenset({IPV4_UNICAST})

    @property
    def route_refresh(self) -> bool:
        return any(
            c.code in (CapabilityCode.ROUTE_REFRESH, CapabilityCode.ROUTE_REFRESH_OLD)
            for c in self.capabilities
        )


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


@dataclass(frozen=True)
class Notification:
    code: int
    subcode: int
    data: bytes = b""

    @property
    def name(self) -> str:
        return error_name(self.code, self.subcode)

    @property
    def shutdown_message(self) -> str | None:
        """RFC 8203/9003 shutdown communication carried by Cease 6/2 and 6/4, if any."""
        if self.code != ErrorCode.CEASE or self.subcode not in (2, 4) or not self.data:
            return None
        length = self.data[0]
        if length == 0 or len(self.data) < 1 + length:
            return None
        return self.data[1 : 1 + length].decode("utf-8", errors="replace")

    def __str__(self) -> str:
        text = f"{self.code}/{self.subcode} {self.name}"
        message = self.shutdown_message
        return f'{text} "{message}"' if message else text


@dataclass(frozen=True)
class Keepalive:
    pass


@dataclass(frozen=True)
class RouteRefresh:
    afi: int
    safi: int
    subtype: int = 0


Message: TypeAlias = Open | Update | Notification | Keepalive | RouteRefresh


# --- Decoding ------------------------------------------------------------------------------

_MIN_LENGTH = {
    MessageType.OPEN: 29,
    MessageType.UPDATE: 23,
    MessageType.NOTIFICATION: 21,
    MessageType.KEEPALIVE: 19,
    MessageType.ROUTE_REFRESH: 19,  # a wrong length is a ROUTE-REFRESH error (RFC 7313)
}


def decode_header(header: bytes) -> tuple[MessageType, int]:
    """Validate a 19-byte header (RFC 4271 6.1); returns (type, total length)."""
    if len(header) != HEADER_LEN:
        raise _header_error(
            HeaderSubcode.BAD_MESSAGE_LENGTH, b"", f"header is {len(header)} bytes, not 19"
        )
    if header[:16] != MARKER:
        raise _header_error(
            HeaderSubcode.CONNECTION_NOT_SYNCHRONIZED, b"", "marker is not all ones"
        )
    length = int.from_bytes(header[16:18], "big")
    type_code = header[18]
    if type_code not in MessageType._value2member_map_:
        raise _header_error(
            HeaderSubcode.BAD_MESSAGE_TYPE, bytes([type_code]), f"unknown type {type_code}"
        )
    mtype = MessageType(type_code)
    too_short = length < _MIN_LENGTH[mtype]
    if too_short or length > MAX_MESSAGE_LEN or (mtype is MessageType.KEEPALIVE and length != 19):
        raise _header_error(
            HeaderSubcode.BAD_MESSAGE_LENGTH,
            header[16:18],
            f"length {length} is invalid for {mtype.name}",
        )
    return mtype, length


def decode_message(data: bytes, *, four_octet_as: bool = True, external: bool = False) -> Message:
    """Decode one whole message (header included).

    `four_octet_as` says whether 4-octet AS numbers were negotiated: it decides how AS_PATH and
    AGGREGATOR in an UPDATE are read. `external`: the message comes from an eBGP neighbor
    (see `decode_update`).
    """
    try:
        mtype, length = decode_header(bytes(data[:HEADER_LEN]))
        if length != len(data):
            raise _header_error(
                HeaderSubcode.BAD_MESSAGE_LENGTH,
                bytes(data[16:18]),
                f"header says {length} bytes, message has {len(data)}",
            )
        body = bytes(data[HEADER_LEN:])
        if mtype is MessageType.OPEN:
            return decode_open(body)
        if mtype is MessageType.UPDATE:
            return decode_update(body, four_octet_as=four_octet_as, external=external)
        if mtype is MessageType.NOTIFICATION:
            return Notification(body[0], body[1], body[2:])
        if mtype is MessageType.KEEPALIVE:
            return Keepalive()
        return decode_route_refresh(body)
    except BgpError:
        raise
    except (ValueError, IndexError, struct.error) as exc:  # a check above was not strict enough
        raise BgpError(ErrorCode.MESSAGE_HEADER, 0, b"", f"undecodable message: {exc}") from exc


def decode_open(body: bytes) -> Open:
    """Validate an OPEN body (RFC 4271 6.2, RFC 5492, RFC 9072 extended parameters)."""
    if len(body) < 10:
        raise _open_error(OpenSubcode.UNSPECIFIC, "OPEN shorter than 10 bytes")
    version, my_as, hold_time, bgp_id_raw, params_len = struct.unpack("!BHHIB", body[:10])
    if version != BGP_VERSION:
        raise _open_error(
            OpenSubcode.UNSUPPORTED_VERSION,
            f"version {version}",
            struct.pack("!H", BGP_VERSION),
        )
    if my_as == 0:
        raise _open_error(OpenSubcode.BAD_PEER_AS, "My AS is 0")
    if hold_time in (1, 2):
        raise _open_error(
            OpenSubcode.UNACCEPTABLE_HOLD_TIME, f"hold time {hold_time}s (must be 0 or >= 3)"
        )
    if bgp_id_raw == 0:
        raise _open_error(OpenSubcode.BAD_BGP_IDENTIFIER, "BGP Identifier is 0.0.0.0")
    params = body[10:]
    extended = len(params) >= 3 and params_len == 255 and params[0] == 255
    if extended:  # RFC 9072: non-extended type 255, then a 2-byte length
        params_len = int.from_bytes(params[1:3], "big")
        params = params[3:]
    if params_len != len(params):
        raise _open_error(
            OpenSubcode.UNSPECIFIC,
            f"optional parameters length {params_len} but {len(params)} bytes follow",
        )
    capabilities: list[Capability] = []
    pos = 0
    head = 3 if extended else 2
    while pos < len(params):
        if pos + head > len(params):
            raise _open_error(OpenSubcode.UNSPECIFIC, "truncated optional parameter")
        ptype = params[pos]
        plen = int.from_bytes(params[pos + 1 : pos + head], "big")
        value = params[pos + head : pos + head + plen]
        if len(value) != plen:
            raise _open_error(
                OpenSubcode.UNSPECIFIC, f"optional parameter length {plen} overruns the OPEN"
            )
        if ptype != 2:
            raise _open_error(
                OpenSubcode.UNSUPPORTED_OPTIONAL_PARAMETER,
                f"optional parameter type {ptype}",
                params[pos : pos + head + plen],
            )
        capabilities.extend(_decode_capabilities(value))
        pos += head + plen
    return Open(
        version,
        my_as,
        hold_time,
        ipaddress.IPv4Address(bgp_id_raw),
        tuple(capabilities),
    )


_CAPABILITY_LENGTHS: dict[int, int] = {
    CapabilityCode.MULTIPROTOCOL: 4,
    CapabilityCode.ROUTE_REFRESH: 0,
    CapabilityCode.FOUR_OCTET_AS: 4,
    CapabilityCode.ROUTE_REFRESH_OLD: 0,
}


def _decode_capabilities(value: bytes) -> list[Capability]:
    caps = []
    pos = 0
    while pos < len(value):
        if pos + 2 > len(value):
            raise _open_error(OpenSubcode.UNSPECIFIC, "truncated capability")
        code, clen = value[pos], value[pos + 1]
        cvalue = value[pos + 2 : pos + 2 + clen]
        if len(cvalue) != clen:
            raise _open_error(
                OpenSubcode.UNSPECIFIC,
                f"capability {code} length {clen} overruns its parameter",
            )
        expected = _CAPABILITY_LENGTHS.get(code)
        if expected is not None and clen != expected:
            raise _open_error(
                OpenSubcode.UNSPECIFIC,
                f"capability {code} has length {clen}, expected {expected}",
            )
        if code == CapabilityCode.FOUR_OCTET_AS and int.from_bytes(cvalue, "big") == 0:
            raise _open_error(OpenSubcode.BAD_PEER_AS, "4-octet AS capability carries AS 0")
        caps.append(Capability(code, cvalue))
        pos += 2 + clen
    return caps


def validate_peer_open(
    received: Open, *, peer_asn: int, local_id: ipaddress.IPv4Address, ibgp: bool
) -> None:
    """The checks that need configuration: the AS we expect, and iBGP identifier clash."""
    if received.asn != peer_asn:
        raise _open_error(
            OpenSubcode.BAD_PEER_AS, f"peer announced AS {received.asn}, expected {peer_asn}"
        )
    if ibgp and received.bgp_id == local_id:
        raise _open_error(
            OpenSubcode.BAD_BGP_IDENTIFIER,
            f"iBGP peer uses our own BGP Identifier {local_id}",
        )


def decode_route_refresh(body: bytes) -> RouteRefresh:
    if len(body) != 4:
        raise BgpError(
            ErrorCode.ROUTE_REFRESH,
            RouteRefreshSubcode.INVALID_MESSAGE_LENGTH,
            _frame(MessageType.ROUTE_REFRESH, body),
            f"ROUTE-REFRESH body is {len(body)} bytes, expected 4",
        )
    afi, subtype, safi = struct.unpack("!HBB", body)
    return RouteRefresh(afi, safi, subtype)


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
        raise _update_error(UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, "UPDATE shorter than 4 bytes")
    wlen = int.from_bytes(body[:2], "big")
    if 2 + wlen + 2 > len(body):
        raise _update_error(
            UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
            f"withdrawn routes length {wlen} overruns the message",
        )
    withdrawn_raw = body[2 : 2 + wlen]
    alen = int.from_bytes(body[2 + wlen : 4 + wlen], "big")
    if 4 + wlen + alen > len(body):
        raise _update_error(
            UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
            f"total path attribute length {alen} overruns the message",
        )
    attrs_raw = body[4 + wlen : 4 + wlen + alen]
    nlri_raw = body[4 + wlen + alen :]
    try:
        withdrawn = _decode_prefixes(withdrawn_raw, 4)
        nlri = _decode_prefixes(nlri_raw, 4)
    except _PrefixError as exc:
        raise _update_error(UpdateSubcode.INVALID_NETWORK_FIELD, str(exc)) from None
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
                raise _update_error(
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
                raise _update_error(
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
    return _update_error(UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, detail, whole)


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


# --- Encoding ------------------------------------------------------------------------------


def _frame(mtype: MessageType, body: bytes) -> bytes:
    length = HEADER_LEN + len(body)
    if length > MAX_MESSAGE_LEN:
        raise ValueError(f"{mtype.name} of {length} bytes exceeds {MAX_MESSAGE_LEN}")
    return MARKER + length.to_bytes(2, "big") + bytes([mtype]) + body


def encode_keepalive() -> bytes:
    return _frame(MessageType.KEEPALIVE, b"")


def encode_notification(code: int, subcode: int, data: bytes = b"") -> bytes:
    return _frame(MessageType.NOTIFICATION, bytes([code, subcode]) + data[: MAX_MESSAGE_LEN - 21])


def encode_route_refresh(afi: int, safi: int, subtype: int = 0) -> bytes:
    return _frame(MessageType.ROUTE_REFRESH, struct.pack("!HBB", afi, subtype, safi))


def encode_open(
    my_asn: int,
    hold_time: int,
    router_id: ipaddress.IPv4Address,
    *,
    families: Sequence[Family] = (IPV4_UNICAST, IPV6_UNICAST),
    route_refresh: bool = True,
) -> bytes:
    """OPEN with one capabilities parameter: MP families, route refresh, 4-octet AS."""
    caps = b"".join(
        bytes([CapabilityCode.MULTIPROTOCOL, 4]) + struct.pack("!HBB", afi, 0, safi)
        for afi, safi in families
    )
    if route_refresh:
        caps += bytes([CapabilityCode.ROUTE_REFRESH, 0])
    caps += bytes([CapabilityCode.FOUR_OCTET_AS, 4]) + my_asn.to_bytes(4, "big")
    params = bytes([2, len(caps)]) + caps
    two_octet_as = my_asn if my_asn <= 0xFFFF else AS_TRANS
    body = struct.pack("!BHHIB", BGP_VERSION, two_octet_as, hold_time, int(router_id), len(params))
    return _frame(MessageType.OPEN, body + params)


def encode_update(withdrawn: bytes = b"", attributes: bytes = b"", nlri: bytes = b"") -> bytes:
    """Frame already-encoded fields; raises ValueError beyond 4096 bytes."""
    body = (
        len(withdrawn).to_bytes(2, "big")
        + withdrawn
        + len(attributes).to_bytes(2, "big")
        + attributes
        + nlri
    )
    return _frame(MessageType.UPDATE, body)


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


# --- Routes and packing --------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class RouteAttributes:
    """What can differ between two announced prefixes of one session."""

    localpref: int = 0
    communities: tuple[Community, ...] = ()


@dataclass(frozen=True)
class Route:
    """One prefix to announce; communities are kept sorted and unique (as upstream sends them)."""

    prefix: IPNetwork
    localpref: int = 0
    communities: tuple[Community, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.localpref <= 0xFFFFFFFF:
            raise ValueError(f"localpref {self.localpref} out of range")
        normal = tuple(sorted(set(self.communities)))
        if len(normal) > MAX_COMMUNITIES:
            raise ValueError(f"{len(normal)} communities; at most {MAX_COMMUNITIES} fit")
        if normal != self.communities:
            object.__setattr__(self, "communities", normal)

    @property
    def attributes(self) -> RouteAttributes:
        return RouteAttributes(self.localpref, self.communities)


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
        value = b"".join(c.value.to_bytes(4, "big") for c in attrs.communities)
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


def encode_end_of_rib(family: Family) -> bytes:
    """RFC 4724 End-of-RIB marker for a family."""
    if family == IPV4_UNICAST:
        return encode_update()
    value = struct.pack("!HB", family[0], family[1])
    return encode_update(
        attributes=encode_attribute(FLAG_OPTIONAL, AttrType.MP_UNREACH_NLRI, value)
    )

"""What every BGP message shares on the wire: the 19-byte header, the 4096-byte limit, and the
type and attribute numbers (RFC 4271 4.1, 4.3; RFC 4760; RFC 6793). No validation here (that is
`header.py`), so every other module of the codec can depend on this one."""

from __future__ import annotations

import enum
import ipaddress
from typing import TypeAlias

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
"""The same unions the config uses; aliases, so a value of one is a value of the other without
the codec importing the config."""

MARKER = b"\xff" * 16
HEADER_LEN = 19
MAX_MESSAGE_LEN = 4096
BGP_VERSION = 4
AS_TRANS = 23456
"""RFC 6793: the 2-octet stand-in for a 4-octet AS number."""

AfiSafi: TypeAlias = tuple[int, int]
"""(AFI, SAFI)."""
AFI_IPV4 = 1
AFI_IPV6 = 2
SAFI_UNICAST = 1
IPV4_UNICAST: AfiSafi = (AFI_IPV4, SAFI_UNICAST)
IPV6_UNICAST: AfiSafi = (AFI_IPV6, SAFI_UNICAST)


class MessageType(enum.IntEnum):
    OPEN = 1
    UPDATE = 2
    NOTIFICATION = 3
    KEEPALIVE = 4
    ROUTE_REFRESH = 5


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


def frame(mtype: MessageType, body: bytes) -> bytes:
    """Header + body; raises ValueError beyond `MAX_MESSAGE_LEN` (a bug of ours, never input)."""
    length = HEADER_LEN + len(body)
    if length > MAX_MESSAGE_LEN:
        raise ValueError(f"{mtype.name} of {length} bytes exceeds {MAX_MESSAGE_LEN}")
    return MARKER + length.to_bytes(2, "big") + bytes([mtype]) + body

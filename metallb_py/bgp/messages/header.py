"""Header validation (RFC 4271 6.1) and the two messages that are little more than a header:
KEEPALIVE and ROUTE-REFRESH (RFC 2918, RFC 7313)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from metallb_py.bgp.messages.notification import (
    BgpError,
    ErrorCode,
    HeaderSubcode,
    RouteRefreshSubcode,
    header_error,
)
from metallb_py.bgp.messages.wire import HEADER_LEN, MARKER, MAX_MESSAGE_LEN, MessageType, frame

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
        raise header_error(
            HeaderSubcode.BAD_MESSAGE_LENGTH, b"", f"header is {len(header)} bytes, not 19"
        )
    if header[:16] != MARKER:
        raise header_error(HeaderSubcode.CONNECTION_NOT_SYNCHRONIZED, b"", "marker is not all ones")
    length = int.from_bytes(header[16:18], "big")
    type_code = header[18]
    if type_code not in MessageType._value2member_map_:
        raise header_error(
            HeaderSubcode.BAD_MESSAGE_TYPE, bytes([type_code]), f"unknown type {type_code}"
        )
    mtype = MessageType(type_code)
    too_short = length < _MIN_LENGTH[mtype]
    if too_short or length > MAX_MESSAGE_LEN or (mtype is MessageType.KEEPALIVE and length != 19):
        raise header_error(
            HeaderSubcode.BAD_MESSAGE_LENGTH,
            header[16:18],
            f"length {length} is invalid for {mtype.name}",
        )
    return mtype, length


@dataclass(frozen=True)
class Keepalive:
    pass


@dataclass(frozen=True)
class RouteRefresh:
    afi: int
    safi: int
    subtype: int = 0


def encode_keepalive() -> bytes:
    return frame(MessageType.KEEPALIVE, b"")


def encode_route_refresh(afi: int, safi: int, subtype: int = 0) -> bytes:
    return frame(MessageType.ROUTE_REFRESH, struct.pack("!HBB", afi, subtype, safi))


def decode_route_refresh(body: bytes) -> RouteRefresh:
    if len(body) != 4:
        raise BgpError(
            ErrorCode.ROUTE_REFRESH,
            RouteRefreshSubcode.INVALID_MESSAGE_LENGTH,
            frame(MessageType.ROUTE_REFRESH, body),
            f"ROUTE-REFRESH body is {len(body)} bytes, expected 4",
        )
    afi, subtype, safi = struct.unpack("!HBB", body)
    return RouteRefresh(afi, safi, subtype)

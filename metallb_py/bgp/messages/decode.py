"""One whole message in, one value out: the header checks, then the decoder of its type."""

from __future__ import annotations

import struct
from typing import TypeAlias

from metallb_py.bgp.messages.header import (
    Keepalive,
    RouteRefresh,
    decode_header,
    decode_route_refresh,
)
from metallb_py.bgp.messages.notification import (
    BgpError,
    ErrorCode,
    HeaderSubcode,
    Notification,
    header_error,
)
from metallb_py.bgp.messages.open_message import Open, decode_open
from metallb_py.bgp.messages.update import Update
from metallb_py.bgp.messages.update_decode import decode_update
from metallb_py.bgp.messages.wire import HEADER_LEN, MessageType

Message: TypeAlias = Open | Update | Notification | Keepalive | RouteRefresh


def decode_message(data: bytes, *, four_octet_as: bool = True, external: bool = False) -> Message:
    """Decode one whole message (header included).

    `four_octet_as` says whether 4-octet AS numbers were negotiated: it decides how AS_PATH and
    AGGREGATOR in an UPDATE are read. `external`: the message comes from an eBGP neighbor
    (see `decode_update`).
    """
    try:
        mtype, length = decode_header(bytes(data[:HEADER_LEN]))
        if length != len(data):
            raise header_error(
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

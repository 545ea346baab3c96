"""NOTIFICATION: the error codes and their RFC names, the message itself, and `BgpError`, the one
exception the decoder raises, which carries the NOTIFICATION the session sends back (RFC 4271
4.5, 6; RFC 4486 and RFC 8203/9003 for Cease)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from metallb_py.bgp.messages.wire import MAX_MESSAGE_LEN, MessageType, frame


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


def encode_notification(code: int, subcode: int, data: bytes = b"") -> bytes:
    """Data beyond what fits in 4096 bytes is cut (RFC 4271 leaves its length to the error)."""
    return frame(MessageType.NOTIFICATION, bytes([code, subcode]) + data[: MAX_MESSAGE_LEN - 21])


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


def header_error(subcode: HeaderSubcode, data: bytes, detail: str) -> BgpError:
    return BgpError(ErrorCode.MESSAGE_HEADER, subcode, data, detail)


def open_error(subcode: OpenSubcode, detail: str, data: bytes = b"") -> BgpError:
    return BgpError(ErrorCode.OPEN_MESSAGE, subcode, data, detail)


def update_error(subcode: UpdateSubcode, detail: str, data: bytes = b"") -> BgpError:
    return BgpError(ErrorCode.UPDATE_MESSAGE, subcode, data, detail)

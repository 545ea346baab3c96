"""The BFD control packet (RFC 5880 section 4.1): encode, and decode with the reception checks
of RFC 5880 section 6.8.6 that need nothing but the packet.

Authentication is not supported: a packet with the A bit is discarded (a peer configured for
authentication never reaches Up, which is the safe failure; docs/bgp.md, "BFD"). The checks
that need a session (a Your Discriminator naming no session) or the IP header (TTL) belong to
the session and the transport.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

VERSION = 1
MANDATORY_LENGTH = 24
MIN_AUTH_LENGTH = 26
"""The mandatory section plus the smallest authentication section (type, length, key id ...)."""
_FORMAT = struct.Struct("!BBBBIIIII")

FLAG_POLL = 0x20
FLAG_FINAL = 0x10
FLAG_CONTROL_PLANE_INDEPENDENT = 0x08
FLAG_AUTH = 0x04
FLAG_DEMAND = 0x02
FLAG_MULTIPOINT = 0x01


class State(enum.IntEnum):
    ADMIN_DOWN = 0
    DOWN = 1
    INIT = 2
    UP = 3


class Diag(enum.IntEnum):
    """Why the sender's session last changed state (RFC 5880 section 4.1)."""

    NONE = 0
    DETECTION_TIME_EXPIRED = 1
    ECHO_FAILED = 2
    NEIGHBOR_SIGNALED_DOWN = 3
    FORWARDING_PLANE_RESET = 4
    PATH_DOWN = 5
    CONCATENATED_PATH_DOWN = 6
    ADMINISTRATIVELY_DOWN = 7
    REVERSE_CONCATENATED_PATH_DOWN = 8


@dataclass(frozen=True)
class ControlPacket:
    """One BFD control packet; intervals in microseconds as on the wire."""

    state: State
    my_discriminator: int
    your_discriminator: int
    desired_min_tx: int
    required_min_rx: int
    detect_mult: int
    diag: int = Diag.NONE
    """An int, not only `Diag`: codes 9-31 are valid on the wire (assigned later or unassigned)."""
    required_min_echo_rx: int = 0
    poll: bool = False
    final: bool = False
    control_plane_independent: bool = False
    demand: bool = False


class DiscardRule(enum.Enum):
    """The reasons RFC 5880 section 6.8.6 gives for discarding a received control packet."""

    TOO_SHORT = "shorter than the 24-byte mandatory section"
    BAD_VERSION = "version is not 1"
    LENGTH_TOO_SMALL = "length field below 24 (26 with authentication)"
    LENGTH_BEYOND_PAYLOAD = "length field larger than the UDP payload"
    DETECT_MULT_ZERO = "detect multiplier is 0"
    MULTIPOINT = "multipoint bit set"
    MY_DISCRIMINATOR_ZERO = "my discriminator is 0"
    YOUR_DISCRIMINATOR_ZERO = "your discriminator is 0 while the state is not Down or AdminDown"
    AUTHENTICATION = "authentication present (not supported)"
    POLL_AND_FINAL = "poll and final both set"


class DiscardedError(ValueError):
    """A received packet that must be dropped, and the rule that drops it."""

    def __init__(self, rule: DiscardRule) -> None:
        super().__init__(rule.value)
        self.rule = rule


def encode(packet: ControlPacket) -> bytes:
    flags = (
        (FLAG_POLL if packet.poll else 0)
        | (FLAG_FINAL if packet.final else 0)
        | (FLAG_CONTROL_PLANE_INDEPENDENT if packet.control_plane_independent else 0)
        | (FLAG_DEMAND if packet.demand else 0)
    )
    return _FORMAT.pack(
        (VERSION << 5) | (packet.diag & 0x1F),
        (packet.state << 6) | flags,
        packet.detect_mult,
        MANDATORY_LENGTH,
        packet.my_discriminator,
        packet.your_discriminator,
        packet.desired_min_tx,
        packet.required_min_rx,
        packet.required_min_echo_rx,
    )


def decode(data: bytes) -> ControlPacket:
    """The packet in `data` (one UDP payload); raises `DiscardedError` with the rule that drops it,
    checked in RFC 5880's order."""
    if len(data) < MANDATORY_LENGTH:
        raise DiscardedError(DiscardRule.TOO_SHORT)
    vers_diag, state_flags, detect_mult, length, my_disc, your_disc, tx, rx, echo_rx = (
        _FORMAT.unpack_from(data)
    )
    if vers_diag >> 5 != VERSION:
        raise DiscardedError(DiscardRule.BAD_VERSION)
    auth = bool(state_flags & FLAG_AUTH)
    if length < (MIN_AUTH_LENGTH if auth else MANDATORY_LENGTH):
        raise DiscardedError(DiscardRule.LENGTH_TOO_SMALL)
    if length > len(data):
        raise DiscardedError(DiscardRule.LENGTH_BEYOND_PAYLOAD)
    if detect_mult == 0:
        raise DiscardedError(DiscardRule.DETECT_MULT_ZERO)
    if state_flags & FLAG_MULTIPOINT:
        raise DiscardedError(DiscardRule.MULTIPOINT)
    if my_disc == 0:
        raise DiscardedError(DiscardRule.MY_DISCRIMINATOR_ZERO)
    state = State(state_flags >> 6)
    if your_disc == 0 and state not in (State.DOWN, State.ADMIN_DOWN):
        raise DiscardedError(DiscardRule.YOUR_DISCRIMINATOR_ZERO)
    if auth:
        raise DiscardedError(DiscardRule.AUTHENTICATION)
    poll, final = bool(state_flags & FLAG_POLL), bool(state_flags & FLAG_FINAL)
    if poll and final:
        raise DiscardedError(DiscardRule.POLL_AND_FINAL)
    return ControlPacket(
        state=state,
        my_discriminator=my_disc,
        your_discriminator=your_disc,
        desired_min_tx=tx,
        required_min_rx=rx,
        detect_mult=detect_mult,
        diag=vers_diag & 0x1F,
        required_min_echo_rx=echo_rx,
        poll=poll,
        final=final,
        control_plane_independent=bool(state_flags & FLAG_CONTROL_PLANE_INDEPENDENT),
        demand=bool(state_flags & FLAG_DEMAND),
    )

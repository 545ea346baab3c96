"""OPEN and its capabilities (RFC 4271 4.2, 6.2; RFC 5492 capabilities; RFC 4760 multiprotocol;
RFC 6793 4-octet AS; RFC 2918/7313 route refresh; RFC 4724 graceful restart; RFC 9072 extended
optional parameters)."""

from __future__ import annotations

import enum
import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from metallb_py.bgp.messages.notification import OpenSubcode, open_error
from metallb_py.bgp.messages.wire import (
    AS_TRANS,
    BGP_VERSION,
    IPV4_UNICAST,
    IPV6_UNICAST,
    AfiSafi,
    MessageType,
    frame,
)


class CapabilityCode(enum.IntEnum):
    MULTIPROTOCOL = 1
    ROUTE_REFRESH = 2
    GRACEFUL_RESTART = 64
    FOUR_OCTET_AS = 65
    ROUTE_REFRESH_OLD = 128
    """Pre-standard Cisco route refresh, still sent by some routers."""


@dataclass(frozen=True)
class Capability:
    code: int
    value: bytes = b""


MAX_RESTART_TIME = 0xFFF
"""The Restart Time field is 12 bits (RFC 4724 3)."""
GR_RESTART_STATE = 0x8
"""The Restart State (R) bit of the 4-bit Restart Flags."""
GR_FORWARDING_STATE = 0x80
"""The Forwarding State (F) bit of a family's flags."""


@dataclass(frozen=True)
class GracefulRestart:
    """The Graceful Restart capability (RFC 4724 3; docs/bgp.md, "Graceful restart").

    `restarted` is the Restart State bit (the sender restarted: its peer must not wait for its
    End-of-RIB before sending routes); `families` pairs each (AFI, SAFI) the sender restarts
    gracefully with its Forwarding State bit (forwarding for that family survived the restart).
    """

    restart_time: int
    """Seconds the peer keeps our routes after the session drops (0-4095)."""
    restarted: bool = False
    families: tuple[tuple[AfiSafi, bool], ...] = ()

    def encode(self) -> bytes:
        """The capability's value (flags and restart time, then one 4-byte tuple per family)."""
        if not 0 <= self.restart_time <= MAX_RESTART_TIME:
            raise ValueError(f"restart time {self.restart_time} does not fit 12 bits")
        flags = GR_RESTART_STATE if self.restarted else 0
        value = struct.pack("!H", flags << 12 | self.restart_time)
        for (afi, safi), forwarding in self.families:
            value += struct.pack("!HBB", afi, safi, GR_FORWARDING_STATE if forwarding else 0)
        return value

    @classmethod
    def decode(cls, value: bytes) -> GracefulRestart | None:
        """Read a received capability leniently, as RFC 4724 sets no error for it: fewer than
        2 bytes is no capability (None), an incomplete trailing tuple is ignored."""
        if len(value) < 2:
            return None
        head = int.from_bytes(value[:2], "big")
        families = tuple(
            ((afi, safi), bool(flags & GR_FORWARDING_STATE))
            for afi, safi, flags in struct.iter_unpack(
                "!HBB", value[2 : 2 + (len(value) - 2) // 4 * 4]
            )
        )
        return cls(head & MAX_RESTART_TIME, bool(head >> 12 & GR_RESTART_STATE), families)


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
    def families(self) -> frozenset[AfiSafi]:
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
    def graceful_restart(self) -> GracefulRestart | None:
        """The peer's Graceful Restart capability; of several, the last counts (RFC 4724 3)."""
        found = None
        for cap in self.capabilities:
            if cap.code == CapabilityCode.GRACEFUL_RESTART:
                found = GracefulRestart.decode(cap.value)
        return found

    @property
    def route_refresh(self) -> bool:
        return any(
            c.code in (CapabilityCode.ROUTE_REFRESH, CapabilityCode.ROUTE_REFRESH_OLD)
            for c in self.capabilities
        )


def encode_open(
    my_asn: int,
    hold_time: int,
    router_id: ipaddress.IPv4Address,
    *,
    families: Sequence[AfiSafi] = (IPV4_UNICAST, IPV6_UNICAST),
    route_refresh: bool = True,
    graceful_restart: GracefulRestart | None = None,
) -> bytes:
    """OPEN with one capabilities parameter: MP families, route refresh, graceful restart (when
    given), 4-octet AS."""
    caps = b"".join(
        bytes([CapabilityCode.MULTIPROTOCOL, 4]) + struct.pack("!HBB", afi, 0, safi)
        for afi, safi in families
    )
    if route_refresh:
        caps += bytes([CapabilityCode.ROUTE_REFRESH, 0])
    if graceful_restart is not None:
        value = graceful_restart.encode()
        caps += bytes([CapabilityCode.GRACEFUL_RESTART, len(value)]) + value
    caps += bytes([CapabilityCode.FOUR_OCTET_AS, 4]) + my_asn.to_bytes(4, "big")
    params = bytes([2, len(caps)]) + caps
    two_octet_as = my_asn if my_asn <= 0xFFFF else AS_TRANS
    body = struct.pack("!BHHIB", BGP_VERSION, two_octet_as, hold_time, int(router_id), len(params))
    return frame(MessageType.OPEN, body + params)


def decode_open(body: bytes) -> Open:
    """Validate an OPEN body (RFC 4271 6.2, RFC 5492, RFC 9072 extended parameters)."""
    if len(body) < 10:
        raise open_error(OpenSubcode.UNSPECIFIC, "OPEN shorter than 10 bytes")
    version, my_as, hold_time, bgp_id_raw, params_len = struct.unpack("!BHHIB", body[:10])
    if version != BGP_VERSION:
        raise open_error(
            OpenSubcode.UNSUPPORTED_VERSION,
            f"version {version}",
            struct.pack("!H", BGP_VERSION),
        )
    if my_as == 0:
        raise open_error(OpenSubcode.BAD_PEER_AS, "My AS is 0")
    if hold_time in (1, 2):
        raise open_error(
            OpenSubcode.UNACCEPTABLE_HOLD_TIME, f"hold time {hold_time}s (must be 0 or >= 3)"
        )
    if bgp_id_raw == 0:
        raise open_error(OpenSubcode.BAD_BGP_IDENTIFIER, "BGP Identifier is 0.0.0.0")
    params = body[10:]
    extended = len(params) >= 3 and params_len == 255 and params[0] == 255
    if extended:  # RFC 9072: non-extended type 255, then a 2-byte length
        params_len = int.from_bytes(params[1:3], "big")
        params = params[3:]
    if params_len != len(params):
        raise open_error(
            OpenSubcode.UNSPECIFIC,
            f"optional parameters length {params_len} but {len(params)} bytes follow",
        )
    capabilities: list[Capability] = []
    pos = 0
    head = 3 if extended else 2
    while pos < len(params):
        if pos + head > len(params):
            raise open_error(OpenSubcode.UNSPECIFIC, "truncated optional parameter")
        ptype = params[pos]
        plen = int.from_bytes(params[pos + 1 : pos + head], "big")
        value = params[pos + head : pos + head + plen]
        if len(value) != plen:
            raise open_error(
                OpenSubcode.UNSPECIFIC, f"optional parameter length {plen} overruns the OPEN"
            )
        if ptype != 2:
            raise open_error(
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
            raise open_error(OpenSubcode.UNSPECIFIC, "truncated capability")
        code, clen = value[pos], value[pos + 1]
        cvalue = value[pos + 2 : pos + 2 + clen]
        if len(cvalue) != clen:
            raise open_error(
                OpenSubcode.UNSPECIFIC,
                f"capability {code} length {clen} overruns its parameter",
            )
        expected = _CAPABILITY_LENGTHS.get(code)
        if expected is not None and clen != expected:
            raise open_error(
                OpenSubcode.UNSPECIFIC,
                f"capability {code} has length {clen}, expected {expected}",
            )
        if code == CapabilityCode.FOUR_OCTET_AS and int.from_bytes(cvalue, "big") == 0:
            raise open_error(OpenSubcode.BAD_PEER_AS, "4-octet AS capability carries AS 0")
        caps.append(Capability(code, cvalue))
        pos += 2 + clen
    return caps


def validate_peer_open(
    received: Open, *, peer_asn: int, local_id: ipaddress.IPv4Address, ibgp: bool
) -> None:
    """The checks that need configuration: the AS we expect, and iBGP identifier clash."""
    if received.asn != peer_asn:
        raise open_error(
            OpenSubcode.BAD_PEER_AS, f"peer announced AS {received.asn}, expected {peer_asn}"
        )
    if ibgp and received.bgp_id == local_id:
        raise open_error(
            OpenSubcode.BAD_BGP_IDENTIFIER,
            f"iBGP peer uses our own BGP Identifier {local_id}",
        )

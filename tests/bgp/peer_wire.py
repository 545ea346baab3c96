"""The peer's side of the wire, independent of the codec under test.

What a test peer sends is built with scapy's BGP layer (`scapy.contrib.bgp`) or written byte by
byte with its derivation; what our session sends is read with scapy into the small values below
(`SeenOpen`, `SeenUpdate`, ...). So a session test passes only if our bytes mean what another
implementation thinks they mean, not merely what our own decoder reads back.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeAlias

KEEPALIVE = bytes.fromhex("ff" * 16 + "0013" + "04")
"""RFC 4271 4.4: the marker (16 x 0xff), length 19 (header only), type 4."""


@functools.cache
def scapy_bgp() -> ModuleType:
    """scapy's BGP layer in 4-octet AS mode (AS_PATH read and written with 4-byte ASNs)."""
    from scapy.config import conf

    conf.contribs["bgp"] = {"use_2_bytes_asn": False}
    conf.max_list_count = max(conf.max_list_count, 4096)  # a full UPDATE holds ~800 prefixes
    from scapy.contrib import bgp

    bgp.bgp_module_conf.use_2_bytes_asn = False
    return bgp


@contextlib.contextmanager
def two_octet_asn() -> Iterator[ModuleType]:
    """scapy's BGP layer reading and writing 2-byte ASNs, for sessions without the capability."""
    bgp = scapy_bgp()
    bgp.bgp_module_conf.use_2_bytes_asn = True
    try:
        yield bgp
    finally:
        bgp.bgp_module_conf.use_2_bytes_asn = False


# --- what a peer sends -----------------------------------------------------------------------


def open_message(
    asn: int = 64500,
    hold_time: int = 90,
    bgp_id: str = "192.0.2.1",
    *,
    version: int = 4,
    families: Sequence[tuple[int, int]] = ((1, 1), (2, 1)),
    route_refresh: bool = True,
    four_octet_as: bool = True,
    graceful_restart: GracefulRestartCap | None = None,
) -> bytes:
    """An OPEN as many routers send it: one capability per optional parameter (RFC 5492 allows
    both forms; our encoder puts all capabilities in one)."""
    bgp = scapy_bgp()
    caps: list[Any] = [bgp.BGPCapMultiprotocol(afi=afi, safi=safi) for afi, safi in families]
    if route_refresh:
        caps.append(bgp.BGPCapGeneric(code=2, length=0))
    if graceful_restart is not None:
        caps.append(graceful_restart_capability(*graceful_restart))
    if four_octet_as:
        caps.append(bgp.BGPCapFourBytesASN(asn=asn))
    my_as = asn if asn <= 0xFFFF else 23456  # AS_TRANS (RFC 6793)
    params = [bgp.BGPOptParam(param_type=2, param_value=c) for c in caps]
    body = bgp.BGPOpen(
        version=version, my_as=my_as, hold_time=hold_time, bgp_id=bgp_id, opt_params=params
    )
    return bytes(bgp.BGPHeader(type=1) / body)


GracefulRestartCap: TypeAlias = tuple[int, int, Sequence[tuple[int, int, int]]]
"""(restart flags (4 bits: R = 8, N = 4), restart time, ((afi, safi, flags), ...))."""


def graceful_restart_capability(
    flags: int, restart_time: int, entries: Sequence[tuple[int, int, int]]
) -> Any:
    """RFC 4724 capability 64 as scapy writes it (F bit of a family: flags 0x80)."""
    bgp = scapy_bgp()
    tuples = [
        bgp.BGPCapGracefulRestart.GRTuple(afi=afi, safi=safi, flags=f) for afi, safi, f in entries
    ]
    return bgp.BGPCapGracefulRestart(restart_flags=flags, restart_time=restart_time, entries=tuples)


def read_graceful_restart(value: bytes) -> GracefulRestartCap:
    """A capability-64 value as scapy reads it. scapy's entry list stops after the first tuple
    (the rest becomes its payload), so each 4-byte tuple is read with scapy on its own."""
    bgp = scapy_bgp()
    cap = bgp.BGPCapGracefulRestart(bytes([64, len(value)]) + value)
    entries = []
    for i in range(2, len(value) - 3, 4):
        entry = bgp.BGPCapGracefulRestart.GRTuple(value[i : i + 4])
        entries.append((entry.afi, entry.safi, entry.flags))
    return cap.restart_flags, cap.restart_time, tuple(entries)


def notification(code: int, subcode: int, data: bytes = b"") -> bytes:
    bgp = scapy_bgp()
    body = bgp.BGPNotification(error_code=code, error_subcode=subcode, data=data)
    return bytes(bgp.BGPHeader(type=3) / body)


def route_refresh(afi: int, safi: int) -> bytes:
    bgp = scapy_bgp()
    return bytes(bgp.BGPHeader(type=5) / bgp.BGPRouteRefresh(afi=afi, safi=safi))


def attribute(code: int, layer: Any, flags: int = 0x40) -> Any:
    return scapy_bgp().BGPPathAttr(type_flags=flags, type_code=code, attribute=layer)


def update_v4(
    prefixes: Sequence[str],
    *,
    next_hop: str = "192.0.2.1",
    as_path: Sequence[int] = (64500,),
    communities: Sequence[int] = (),
    med: int | None = None,
    local_pref: int | None = None,
) -> bytes:
    """An IPv4 unicast UPDATE with ORIGIN IGP, one AS_SEQUENCE, NEXT_HOP and the optional ones."""
    bgp = scapy_bgp()
    segments = [bgp.BGPPAAS4BytesPath.ASPathSegment(segment_type=2, segment_value=list(as_path))]
    attrs = [
        attribute(1, bgp.BGPPAOrigin(origin=0)),
        attribute(2, bgp.BGPPAAS4BytesPath(segments=segments if as_path else [])),
        attribute(3, bgp.BGPPANextHop(next_hop=next_hop)),
    ]
    if med is not None:
        attrs.append(attribute(4, bgp.BGPPAMultiExitDisc(med=med), flags=0x80))
    if local_pref is not None:
        attrs.append(attribute(5, bgp.BGPPALocalPref(local_pref=local_pref)))
    if communities:
        # scapy models COMMUNITIES as one community; the value is given raw instead.
        from scapy.packet import Raw

        value = b"".join(c.to_bytes(4, "big") for c in communities)
        attrs.append(attribute(8, Raw(value), flags=0xC0))
    nlri = [bgp.BGPNLRI_IPv4(prefix=p) for p in prefixes]
    return bytes(bgp.BGPHeader(type=2) / bgp.BGPUpdate(path_attr=attrs, nlri=nlri))


def update_v6(prefixes: Sequence[str], *, next_hop: str = "2001:db8::1") -> bytes:
    """An IPv6 unicast UPDATE: MP_REACH_NLRI (RFC 4760), ORIGIN IGP, an empty AS_PATH."""
    bgp = scapy_bgp()
    mp = bgp.BGPPAMPReachNLRI(
        afi=2,
        safi=1,
        nh_addr_len=16,
        nh_v6_addr=next_hop,
        nlri=[bgp.BGPNLRI_IPv6(prefix=p) for p in prefixes],
    )
    attrs = [
        attribute(14, mp, flags=0x80),
        attribute(1, bgp.BGPPAOrigin(origin=0)),
        attribute(2, bgp.BGPPAAS4BytesPath(segments=[])),
    ]
    return bytes(bgp.BGPHeader(type=2) / bgp.BGPUpdate(path_attr=attrs))


def withdraw_v4(prefixes: Sequence[str]) -> bytes:
    bgp = scapy_bgp()
    withdrawn = [bgp.BGPNLRI_IPv4(prefix=p) for p in prefixes]
    return bytes(bgp.BGPHeader(type=2) / bgp.BGPUpdate(withdrawn_routes=withdrawn))


def withdraw_v6(prefixes: Sequence[str]) -> bytes:
    bgp = scapy_bgp()
    specific = bgp.BGPPAMPUnreachNLRI_IPv6(
        withdrawn_routes=[bgp.BGPNLRI_IPv6(prefix=p) for p in prefixes]
    )
    mp = bgp.BGPPAMPUnreachNLRI(afi=2, safi=1, afi_safi_specific=specific)
    return bytes(bgp.BGPHeader(type=2) / bgp.BGPUpdate(path_attr=[attribute(15, mp, flags=0x80)]))


END_OF_RIB_V4 = bytes.fromhex("ff" * 16 + "0017" + "02" + "0000" + "0000")
"""RFC 4724: an UPDATE with no withdrawn routes (length 0) and no attributes (length 0)."""


def sample_messages() -> list[bytes]:
    """Well-formed messages of every type as another implementation writes them: seeds for the
    decoder's property tests and for `python -m bench.fuzz bgp`."""
    return [
        open_message(),
        open_message(4200000001, 3, "192.0.2.2"),
        open_message(64500, 0, "192.0.2.3", route_refresh=False, four_octet_as=False),
        KEEPALIVE,
        notification(6, 2, b"\x03bye"),
        notification(3, 1),
        route_refresh(2, 1),
        END_OF_RIB_V4,
        update_v4(["198.51.100.0/24", "203.0.113.7/32"], communities=[7, 64512 << 16 | 1]),
        update_v4(["198.51.100.128/25"], med=5, local_pref=300, as_path=()),
        update_v6(["2001:db8:5::/64", "2001:db8:6::1/128"]),
        withdraw_v4(["198.51.100.0/24"]),
        withdraw_v6(["2001:db8:5::/64"]),
        withdraw_v6([]),  # IPv6 End-of-RIB
    ]


# --- what our session sends, as scapy reads it -----------------------------------------------


@dataclass(frozen=True)
class SeenOpen:
    version: int
    my_as: int
    hold_time: int
    bgp_id: str
    capabilities: tuple[tuple[int, bytes], ...]

    @property
    def asn(self) -> int:
        """The 4-octet AS capability's value, else My AS."""
        four = [v for code, v in self.capabilities if code == 65]
        return int.from_bytes(four[0], "big") if four else self.my_as


@dataclass(frozen=True)
class SeenUpdate:
    withdrawn: tuple[str, ...]
    nlri: tuple[str, ...]
    attribute_codes: tuple[int, ...]
    mp_reach_nlri: tuple[str, ...] = ()
    mp_unreach: tuple[str, ...] = ()

    @property
    def is_end_of_rib(self) -> bool:
        """RFC 4724: no routes, and no attributes or only an empty MP_UNREACH_NLRI."""
        if self.withdrawn or self.nlri or self.mp_reach_nlri or self.mp_unreach:
            return False
        return self.attribute_codes in ((), (15,))

    @property
    def announced(self) -> tuple[str, ...]:
        return self.nlri + self.mp_reach_nlri


@dataclass(frozen=True)
class SeenNotification:
    code: int
    subcode: int
    data: bytes = b""


@dataclass(frozen=True)
class SeenKeepalive:
    pass


@dataclass(frozen=True)
class SeenRouteRefresh:
    afi: int
    safi: int


Seen: TypeAlias = SeenOpen | SeenUpdate | SeenNotification | SeenKeepalive | SeenRouteRefresh


def read_message(data: bytes) -> Seen:
    """One whole message from our session, read by scapy; AssertionError if scapy cannot."""
    bgp = scapy_bgp()
    pkt = bgp.BGPHeader(data)
    assert pkt.len == len(data), f"length field {pkt.len} for {len(data)} bytes"
    if pkt.type == 1:
        return _seen_open(pkt[bgp.BGPOpen])
    if pkt.type == 2:
        return _seen_update(pkt[bgp.BGPUpdate])
    if pkt.type == 3:
        note = pkt[bgp.BGPNotification]
        return SeenNotification(note.error_code, note.error_subcode, bytes(note.data or b""))
    if pkt.type == 4:
        assert len(data) == 19, data.hex()
        return SeenKeepalive()
    if pkt.type == 5:
        refresh = pkt[bgp.BGPRouteRefresh]
        return SeenRouteRefresh(refresh.afi, refresh.safi)
    raise AssertionError(f"message type {pkt.type}: {data.hex()}")


def _seen_open(layer: Any) -> SeenOpen:
    bgp = scapy_bgp()
    caps: list[tuple[int, bytes]] = []
    for param in layer.opt_params:
        assert param.param_type == 2, param.param_type
        raw = bytes(param.param_value)  # scapy shows one capability, then the rest raw
        while raw:
            cap = bgp.BGPCapability(raw)
            caps.append((cap.code, raw[2 : 2 + cap.length]))
            raw = raw[2 + cap.length :]
    return SeenOpen(layer.version, layer.my_as, layer.hold_time, str(layer.bgp_id), tuple(caps))


def _seen_update(layer: Any) -> SeenUpdate:
    bgp = scapy_bgp()
    reach: list[str] = []
    unreach: list[str] = []
    for attr in layer.path_attr:
        if attr.type_code == 14:
            mp = attr.attribute
            assert isinstance(mp, bgp.BGPPAMPReachNLRI), attr
            reach += [_prefix(n.prefix) for n in mp.nlri]
        elif attr.type_code == 15:
            specific = attr.attribute.afi_safi_specific
            routes = getattr(specific, "withdrawn_routes", None) or []
            unreach += [_prefix(n.prefix) for n in routes]
    return SeenUpdate(
        withdrawn=tuple(_prefix(n.prefix) for n in layer.withdrawn_routes),
        nlri=tuple(_prefix(n.prefix) for n in layer.nlri),
        attribute_codes=tuple(a.type_code for a in layer.path_attr),
        mp_reach_nlri=tuple(reach),
        mp_unreach=tuple(unreach),
    )


def _prefix(text: str) -> str:
    return str(ipaddress.ip_network(text))

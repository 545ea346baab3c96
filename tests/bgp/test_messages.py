"""The pure codec: encodings checked against an independent decoder (scapy), every RFC 4271
section 6 validation that still resets the session mapped to its NOTIFICATION (the errors RFC
7606 handles without one: test_update_errors.py), and the 4096-byte packing.

Round trips through our own decoder stay where they test the decoder too; each has a check by
scapy (`tests/bgp/peer_wire.py`) or hand-written bytes beside it."""

from __future__ import annotations

import ipaddress
import math
import random
import struct

import pytest

from metallb_py.bgp import messages as m
from metallb_py.config.model import Community
from tests.bgp.peer_wire import (
    END_OF_RIB_V4,
    KEEPALIVE,
    SeenNotification,
    SeenOpen,
    SeenRouteRefresh,
    SeenUpdate,
    notification,
    open_message,
    read_message,
    route_refresh,
    scapy_bgp,
    two_octet_asn,
)

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address
NET = ipaddress.ip_network


def ctx(**kw) -> m.UpdateContext:
    base = dict(
        my_asn=64512,
        ibgp=False,
        four_octet_as=True,
        next_hop_v4=V4("192.0.2.11"),
        next_hop_v6=V6("2001:db8::11"),
    )
    base.update(kw)
    return m.UpdateContext(**base)  # type: ignore[arg-type]


def header(length: int, mtype: int, marker: bytes = m.MARKER) -> bytes:
    return marker + length.to_bytes(2, "big") + bytes([mtype])


def update_body(withdrawn: bytes = b"", attrs: bytes = b"", nlri: bytes = b"") -> bytes:
    return (
        len(withdrawn).to_bytes(2, "big") + withdrawn + len(attrs).to_bytes(2, "big") + attrs + nlri
    )


def frame(mtype: int, body: bytes) -> bytes:
    return header(19 + len(body), mtype) + body


ORIGIN = bytes([0x40, 1, 1, 2])
AS_PATH = bytes([0x40, 2, 6, 2, 1]) + (64500).to_bytes(4, "big")
NEXT_HOP = bytes([0x40, 3, 4]) + V4("192.0.2.1").packed


# --- OPEN -------------------------------------------------------------------------------------


def test_open_has_the_capabilities_and_as_trans_for_a_4_octet_asn() -> None:
    data = m.encode_open(4200000001, 90, V4("192.0.2.11"))
    decoded = m.decode_message(data)
    assert isinstance(decoded, m.Open)
    assert decoded.my_as == m.AS_TRANS
    assert decoded.asn == 4200000001
    assert decoded.hold_time == 90
    assert decoded.bgp_id == V4("192.0.2.11")
    assert decoded.families == {m.IPV4_UNICAST, m.IPV6_UNICAST}
    assert decoded.route_refresh

    bgp = scapy_bgp()
    pkt = bgp.BGPHeader(data)
    open_layer = pkt[bgp.BGPOpen]
    assert open_layer.my_as == 23456
    assert open_layer.hold_time == 90
    assert open_layer.bgp_id == "192.0.2.11"
    # One capabilities parameter (as upstream): MP IPv4, MP IPv6, route refresh, 4-octet AS.
    # scapy models one capability per parameter, so it shows the first and the total length.
    [param] = open_layer.opt_params
    assert (param.param_type, param.param_length) == (2, 6 + 6 + 2 + 6)
    assert param.param_value.code == 1
    seen = read_message(data)
    assert isinstance(seen, SeenOpen)
    assert seen.capabilities == (
        (1, bytes.fromhex("00010001")),  # AFI 1 (IPv4), reserved, SAFI 1 (unicast)
        (1, bytes.fromhex("00020001")),  # AFI 2 (IPv6)
        (2, b""),  # route refresh
        (65, (4200000001).to_bytes(4, "big")),
    )


def test_open_with_a_2_octet_asn_keeps_it_in_my_as() -> None:
    data = m.encode_open(64512, 0, V4("192.0.2.11"))
    decoded = m.decode_message(data)
    assert isinstance(decoded, m.Open)
    assert decoded.my_as == 64512
    assert decoded.asn == 64512
    assert decoded.hold_time == 0
    seen = read_message(data)
    assert isinstance(seen, SeenOpen)
    assert (seen.my_as, seen.asn, seen.hold_time) == (64512, 64512, 0)


def test_an_open_written_by_scapy_decodes() -> None:
    """One capability per optional parameter, as many routers send it."""
    decoded = m.decode_message(open_message(4200000001, 3, "192.0.2.2", route_refresh=False))
    assert isinstance(decoded, m.Open)
    assert (decoded.my_as, decoded.asn, decoded.hold_time) == (23456, 4200000001, 3)
    assert decoded.bgp_id == V4("192.0.2.2")
    assert decoded.families == {m.IPV4_UNICAST, m.IPV6_UNICAST}
    assert not decoded.route_refresh


def test_open_without_capabilities_means_ipv4_unicast_and_2_octet() -> None:
    body = struct.pack("!BHHIB", 4, 64500, 180, int(V4("192.0.2.1")), 0)
    decoded = m.decode_message(frame(1, body))
    assert isinstance(decoded, m.Open)
    assert decoded.families == {m.IPV4_UNICAST}
    assert decoded.four_octet_as is None
    assert not decoded.route_refresh


def open_body(
    *,
    version: int = 4,
    my_as: int = 64500,
    hold: int = 90,
    bgp_id: str = "192.0.2.1",
    params: bytes | None = None,
    params_len: int | None = None,
) -> bytes:
    if params is None:
        caps = bytes([65, 4]) + (64500).to_bytes(4, "big")
        params = bytes([2, len(caps)]) + caps
    plen = len(params) if params_len is None else params_len
    return struct.pack("!BHHIB", version, my_as, hold, int(V4(bgp_id)), plen) + params


@pytest.mark.parametrize(
    ("body", "code", "subcode", "data"),
    [
        (open_body(version=3), 2, 1, b"\x00\x04"),
        (open_body(my_as=0), 2, 2, b""),
        (open_body(hold=1), 2, 6, b""),
        (open_body(hold=2), 2, 6, b""),
        (open_body(bgp_id="0.0.0.0"), 2, 3, b""),
        (open_body(params=bytes([1, 2, 0, 0])), 2, 4, bytes([1, 2, 0, 0])),
        (open_body(params=bytes([2, 6, 65, 10, 0, 0, 0, 1])), 2, 0, b""),  # capability overrun
        (open_body(params=bytes([2, 4, 1, 2, 0, 1])), 2, 0, b""),  # MP capability of length 2
        (open_body(params=bytes([2, 6, 65, 4, 0, 0, 0, 0])), 2, 2, b""),  # 4-octet AS 0
        (open_body(params_len=9), 2, 0, b""),  # parameter length disagrees with the message
        (open_body(params=bytes([2, 9, 65, 4])), 2, 0, b""),  # parameter overruns
    ],
)
def test_open_validation(body: bytes, code: int, subcode: int, data: bytes) -> None:
    with pytest.raises(m.BgpError) as info:
        m.decode_message(frame(1, body))
    assert (info.value.code, info.value.subcode, info.value.data) == (code, subcode, data)
    assert info.value.notification() == notification(code, subcode, data)


def test_open_hold_time_zero_and_three_are_fine() -> None:
    for hold in (0, 3):
        decoded = m.decode_message(frame(1, open_body(hold=hold)))
        assert isinstance(decoded, m.Open) and decoded.hold_time == hold


def test_open_unknown_capabilities_are_skipped() -> None:
    caps = bytes([64, 2, 0, 120]) + bytes([73, 3, 1, 97, 0]) + bytes([65, 4, 0, 0, 251, 244])
    decoded = m.decode_message(frame(1, open_body(params=bytes([2, len(caps)]) + caps)))
    assert isinstance(decoded, m.Open)
    assert decoded.asn == 64500
    assert [c.code for c in decoded.capabilities] == [64, 73, 65]


def test_open_extended_optional_parameters_rfc9072() -> None:
    caps = bytes([65, 4]) + (64500).to_bytes(4, "big")
    params = (
        bytes([255])
        + (3 + len(caps)).to_bytes(2, "big")
        + bytes([2])
        + len(caps).to_bytes(2, "big")
        + caps
    )
    decoded = m.decode_message(frame(1, open_body(params=params, params_len=255)))
    assert isinstance(decoded, m.Open) and decoded.asn == 64500


def test_peer_open_checks_asn_and_ibgp_identifier() -> None:
    received = m.decode_message(open_message(64500, 90, "192.0.2.1"))
    assert isinstance(received, m.Open)
    m.validate_peer_open(received, peer_asn=64500, local_id=V4("192.0.2.11"), ibgp=False)
    with pytest.raises(m.BgpError) as info:
        m.validate_peer_open(received, peer_asn=64501, local_id=V4("192.0.2.11"), ibgp=False)
    assert (info.value.code, info.value.subcode) == (2, 2)
    assert "Bad Peer AS" in str(info.value)
    with pytest.raises(m.BgpError) as info:
        m.validate_peer_open(received, peer_asn=64500, local_id=V4("192.0.2.1"), ibgp=True)
    assert (info.value.code, info.value.subcode) == (2, 3)
    # eBGP peers may share an identifier with us (RFC 6286).
    m.validate_peer_open(received, peer_asn=64500, local_id=V4("192.0.2.1"), ibgp=False)


# --- header, KEEPALIVE, NOTIFICATION, ROUTE-REFRESH ------------------------------------------


@pytest.mark.parametrize(
    ("data", "code", "subcode", "err_data"),
    [
        (header(19, 4, marker=b"\0" * 16), 1, 1, b""),
        (header(5000, 4), 1, 2, (5000).to_bytes(2, "big")),
        (header(18, 4), 1, 2, (18).to_bytes(2, "big")),
        (header(20, 4) + b"\0", 1, 2, (20).to_bytes(2, "big")),  # KEEPALIVE must be 19
        (header(28, 1) + b"\0" * 9, 1, 2, (28).to_bytes(2, "big")),  # OPEN below 29
        (header(22, 2) + b"\0" * 3, 1, 2, (22).to_bytes(2, "big")),  # UPDATE below 23
        (header(20, 3) + b"\x06", 1, 2, (20).to_bytes(2, "big")),  # NOTIFICATION below 21
        (header(19, 9), 1, 3, b"\x09"),
        (header(19, 0), 1, 3, b"\x00"),
        (header(30, 4), 1, 2, (30).to_bytes(2, "big")),
        (header(25, 2) + b"\0" * 4, 1, 2, (25).to_bytes(2, "big")),  # length != bytes given
    ],
)
def test_header_validation(data: bytes, code: int, subcode: int, err_data: bytes) -> None:
    with pytest.raises(m.BgpError) as info:
        m.decode_message(data)
    assert (info.value.code, info.value.subcode, info.value.data) == (code, subcode, err_data)


def test_keepalive_and_notification_round_trip() -> None:
    assert m.decode_message(m.encode_keepalive()) == m.Keepalive()
    assert len(m.encode_keepalive()) == 19
    n = m.decode_message(m.encode_notification(6, 2, b"\x04bye!"))
    assert isinstance(n, m.Notification)
    assert n.name == "Cease / Administrative Shutdown"
    assert n.shutdown_message == "bye!"
    assert str(n) == '6/2 Cease / Administrative Shutdown "bye!"'
    # Independent: the bytes other implementations write.
    assert m.encode_keepalive() == KEEPALIVE
    assert m.encode_notification(6, 2, b"\x04bye!") == notification(6, 2, b"\x04bye!")
    assert read_message(m.encode_notification(6, 3)) == SeenNotification(6, 3)


@pytest.mark.parametrize(
    ("code", "subcode", "name"),
    [
        (1, 1, "Message Header Error / Connection Not Synchronized"),
        (2, 2, "OPEN Message Error / Bad Peer AS"),
        (3, 11, "UPDATE Message Error / Malformed AS_PATH"),
        (4, 0, "Hold Timer Expired"),
        (5, 3, "Finite State Machine Error / Receive Unexpected Message in Established State"),
        (6, 3, "Cease / Peer De-configured"),
        (6, 8, "Cease / Out of Resources"),
        (7, 1, "ROUTE-REFRESH Message Error / Invalid Message Length"),
        (6, 77, "Cease / Unknown Subcode 77"),
        (42, 1, "Unknown Error Code 42 / Unknown Subcode 1"),
    ],
)
def test_error_names(code: int, subcode: int, name: str) -> None:
    assert m.error_name(code, subcode) == name


def test_route_refresh() -> None:
    rr = m.decode_message(m.encode_route_refresh(2, 1))
    assert rr == m.RouteRefresh(2, 1, 0)
    assert read_message(m.encode_route_refresh(2, 1)) == SeenRouteRefresh(2, 1)
    assert m.decode_message(route_refresh(1, 1)) == m.RouteRefresh(1, 1, 0)
    bad = frame(5, b"\x00\x01\x00\x01\x00")
    with pytest.raises(m.BgpError) as info:
        m.decode_message(bad)
    assert (info.value.code, info.value.subcode, info.value.data) == (7, 1, bad)


# --- UPDATE decoding --------------------------------------------------------------------------


def decode_update(body: bytes, four_octet_as: bool = True) -> m.Update:
    decoded = m.decode_message(frame(2, body), four_octet_as=four_octet_as)
    assert isinstance(decoded, m.Update)
    return decoded


def test_update_decodes_the_usual_attributes() -> None:
    nlri = bytes([24, 198, 51, 100])
    comm = bytes([0xC0, 8, 8]) + (7).to_bytes(4, "big") + (64512 << 16 | 1).to_bytes(4, "big")
    lp = bytes([0x40, 5, 4]) + (300).to_bytes(4, "big")
    med = bytes([0x80, 4, 4]) + (5).to_bytes(4, "big")
    u = decode_update(update_body(attrs=ORIGIN + AS_PATH + NEXT_HOP + med + lp + comm, nlri=nlri))
    a = u.attributes
    assert u.nlri == (NET("198.51.100.0/24"),)
    assert a.origin == 2
    assert a.as_path == (m.AsPathSegment(2, (64500,)),)
    assert a.next_hop == V4("192.0.2.1")
    assert (a.med, a.local_pref, a.communities) == (5, 300, (7, 64512 << 16 | 1))


def test_update_end_of_rib_markers() -> None:
    assert decode_update(update_body()).is_end_of_rib
    eor6 = m.decode_message(m.encode_end_of_rib(m.IPV6_UNICAST))
    assert isinstance(eor6, m.Update) and eor6.is_end_of_rib
    assert not decode_update(update_body(withdrawn=bytes([24, 198, 51, 100]))).is_end_of_rib
    assert m.encode_end_of_rib(m.IPV4_UNICAST) == END_OF_RIB_V4
    seen = read_message(m.encode_end_of_rib(m.IPV6_UNICAST))
    assert isinstance(seen, SeenUpdate) and seen.is_end_of_rib and seen.attribute_codes == (15,)


def test_update_with_2_octet_as_path() -> None:
    as_path = bytes([0x40, 2, 4, 2, 1]) + (64500).to_bytes(2, "big")
    u = decode_update(
        update_body(attrs=ORIGIN + as_path + NEXT_HOP, nlri=bytes([32, 192, 0, 2, 7])),
        four_octet_as=False,
    )
    assert u.attributes.as_path == (m.AsPathSegment(2, (64500,)),)


def attr(flags: int, code: int, value: bytes) -> bytes:
    return bytes([flags, code, len(value)]) + value


BAD_ORIGIN_FLAGS = attr(0xC0, 1, b"\x02")
BAD_NEXT_HOP = attr(0x40, 3, bytes(4))
UNKNOWN_WELL_KNOWN = attr(0x40, 99, b"x")
P24 = bytes([24, 198, 51, 100])


@pytest.mark.parametrize(
    ("body", "subcode", "data"),
    [
        # lengths that overrun the message (RFC 7606 3 (b) keeps the reset)
        (b"\x00\x05\x00\x00", 1, b""),
        (b"\x00\x00\x00\x09" + ORIGIN, 1, b""),
        # an attribute overrunning the list, or a stub of one, in an UPDATE that announces
        # nothing (RFC 7606 5.2; with NLRI it is treat-as-withdraw: test_update_errors.py)
        (update_body(attrs=ORIGIN + bytes([0x40, 2, 9, 2, 1])), 1, b""),
        (update_body(attrs=bytes([0x40])), 1, b""),
        (
            update_body(withdrawn=P24, attrs=BAD_ORIGIN_FLAGS + AS_PATH + NEXT_HOP),
            4,
            BAD_ORIGIN_FLAGS,
        ),
        (update_body(withdrawn=P24, attrs=BAD_NEXT_HOP), 8, BAD_NEXT_HOP),
        # unknown well-known attribute (RFC 4271, not relaxed by RFC 7606)
        (
            update_body(attrs=ORIGIN + AS_PATH + NEXT_HOP + UNKNOWN_WELL_KNOWN, nlri=P24),
            2,
            UNKNOWN_WELL_KNOWN,
        ),
        # network fields (RFC 7606 5.3)
        (update_body(attrs=ORIGIN + AS_PATH + NEXT_HOP, nlri=bytes([33, 1, 2, 3, 4, 5])), 10, b""),
        (update_body(attrs=ORIGIN + AS_PATH + NEXT_HOP, nlri=bytes([24, 198, 51])), 10, b""),
        (update_body(withdrawn=bytes([40, 1, 2, 3, 4, 5])), 10, b""),
    ],
)
def test_update_validation(body: bytes, subcode: int, data: bytes) -> None:
    with pytest.raises(m.BgpError) as info:
        m.decode_message(frame(2, body))
    assert (info.value.code, info.value.subcode, info.value.data) == (3, subcode, data)


def test_update_mp_reach_errors_are_optional_attribute_errors() -> None:
    bad_nh = attr(0x80, 14, struct.pack("!HBB", 2, 1, 5) + bytes(5) + b"\0")
    bad_nlri = attr(
        0x80, 14, struct.pack("!HBB", 2, 1, 16) + V6("2001:db8::1").packed + b"\0" + bytes([129])
    )
    for mp in (bad_nh, bad_nlri):
        with pytest.raises(m.BgpError) as info:
            m.decode_message(frame(2, update_body(attrs=ORIGIN + AS_PATH + mp)))
        assert (info.value.code, info.value.subcode, info.value.data) == (3, 9, mp)


def test_update_unknown_optional_attributes_are_kept() -> None:
    other = attr(0xC0, 99, b"abc")
    u = decode_update(update_body(attrs=ORIGIN + AS_PATH + NEXT_HOP + other, nlri=P24))
    assert u.attributes.other == (m.RawAttribute(0xC0, 99, b"abc"),)


# --- encoding and packing ---------------------------------------------------------------------


def routes_v6(n: int, **kw) -> list[m.Route]:
    base = int(V6("2001:db8:100::"))
    return [m.Route(ipaddress.IPv6Network((base + i, 128)), **kw) for i in range(n)]


def all_prefixes(messages: list[bytes], four_octet_as: bool = True) -> list[m.IPNetwork]:
    """The announced prefixes as our decoder reads them, checked against scapy's reading."""
    out: list[m.IPNetwork] = []
    seen: list[str] = []
    for data in messages:
        u = m.decode_message(data, four_octet_as=four_octet_as)
        assert isinstance(u, m.Update)
        out += list(u.nlri)
        if u.attributes.mp_reach:
            out += list(u.attributes.mp_reach.nlri)
        independent = read_message(data)
        assert isinstance(independent, SeenUpdate)
        seen += independent.announced
    assert seen == [str(p) for p in out]
    return out


def scapy_attributes(data: bytes) -> dict:
    """Path attributes by type code, as scapy reads an UPDATE (4-octet AS mode)."""
    bgp = scapy_bgp()
    return {a.type_code: a for a in bgp.BGPHeader(data)[bgp.BGPUpdate].path_attr}


def community_values(attr) -> tuple[int, ...]:
    """scapy models COMMUNITIES as one community followed by raw bytes: read the whole value."""
    raw = bytes(attr.attribute)
    return tuple(int.from_bytes(raw[i : i + 4], "big") for i in range(0, len(raw), 4))


def test_ebgp_ipv4_update_attributes_checked_by_scapy() -> None:
    route = m.Route(NET("198.51.100.0/24"), 300, (Community(64512 << 16 | 1), Community(7)))
    [data] = m.pack_announcements([route], ctx())
    bgp = scapy_bgp()
    upd = bgp.BGPHeader(data)[bgp.BGPUpdate]
    attrs = {a.type_code: a for a in upd.path_attr}
    assert sorted(attrs) == [1, 2, 3, 8]  # no LOCAL_PREF on eBGP
    assert attrs[1].attribute.origin == 2
    seg = attrs[2].attribute.segments[0]
    assert (seg.segment_type, seg.segment_value) == (2, [64512])
    assert attrs[3].attribute.next_hop == "192.0.2.11"
    # scapy models COMMUNITIES as one community followed by raw bytes.
    assert attrs[8].attribute.community == 7
    assert bytes(attrs[8].attribute.payload) == (64512 << 16 | 1).to_bytes(4, "big")
    assert [str(n.prefix) for n in upd.nlri] == ["198.51.100.0/24"]
    order = [a.type_code for a in upd.path_attr]
    assert order == sorted(order)


def test_ibgp_update_has_local_pref_and_empty_as_path() -> None:
    route = m.Route(NET("198.51.100.0/24"), 0)
    [data] = m.pack_announcements([route], ctx(ibgp=True))
    u = m.decode_message(data)
    assert isinstance(u, m.Update)
    assert u.attributes.as_path == ()
    assert u.attributes.local_pref == 0
    attrs = scapy_attributes(data)
    assert sorted(attrs) == [1, 2, 3, 5]
    assert attrs[2].attribute.segments == [] and attrs[5].attribute.local_pref == 0


def test_2_octet_peer_gets_as_trans_and_as4_path() -> None:
    [data] = m.pack_announcements(
        [m.Route(NET("198.51.100.0/24"))], ctx(my_asn=4200000001, four_octet_as=False)
    )
    u = m.decode_message(data, four_octet_as=False)
    assert isinstance(u, m.Update)
    assert u.attributes.as_path == (m.AsPathSegment(2, (m.AS_TRANS,)),)
    assert u.attributes.as4_path == (m.AsPathSegment(2, (4200000001,)),)
    with two_octet_asn() as bgp:
        upd = bgp.BGPHeader(data)[bgp.BGPUpdate]
        codes = [a.type_code for a in upd.path_attr]
        assert codes == [1, 2, 3, 17]
        assert upd.path_attr[1].attribute.segments[0].segment_value == [23456]


def test_2_octet_peer_with_2_octet_asn_gets_a_plain_as_path() -> None:
    [data] = m.pack_announcements([m.Route(NET("198.51.100.0/24"))], ctx(four_octet_as=False))
    u = m.decode_message(data, four_octet_as=False)
    assert isinstance(u, m.Update)
    assert u.attributes.as_path == (m.AsPathSegment(2, (64512,)),)
    assert u.attributes.as4_path is None
    with two_octet_asn() as bgp:
        upd = bgp.BGPHeader(data)[bgp.BGPUpdate]
        assert [a.type_code for a in upd.path_attr] == [1, 2, 3]
        assert upd.path_attr[1].attribute.segments[0].segment_value == [64512]


def test_ipv6_routes_go_in_mp_reach_with_global_and_link_local_next_hop() -> None:
    c = ctx(link_local_v6=V6("fe80::1"))
    [data] = m.pack_announcements(routes_v6(3), c)
    u = m.decode_message(data)
    assert isinstance(u, m.Update)
    assert u.nlri == () and u.attributes.next_hop is None
    mp = u.attributes.mp_reach
    assert mp is not None and (mp.afi, mp.safi) == (2, 1)
    assert mp.next_hops == (V6("2001:db8::11"), V6("fe80::1"))
    assert len(mp.nlri) == 3
    bgp = scapy_bgp()
    upd = bgp.BGPHeader(data)[bgp.BGPUpdate]
    mp_attr = next(a for a in upd.path_attr if a.type_code == 14).attribute
    assert mp_attr.nh_v6_global == "2001:db8::11"
    assert mp_attr.nh_v6_link_local == "fe80::1"
    # RFC 7606 5.1: MP_REACH_NLRI first, the rest in ascending order (RFC 4271 4.3).
    assert [a.type_code for a in upd.path_attr] == [14, 1, 2]


def test_mp_reach_comes_first_also_before_as4_path_and_communities() -> None:
    c = ctx(my_asn=4200000001, four_octet_as=False)
    [data] = m.pack_announcements(routes_v6(1, communities=(Community(5),)), c)
    with two_octet_asn() as bgp:
        upd = bgp.BGPHeader(data)[bgp.BGPUpdate]
        assert [a.type_code for a in upd.path_attr] == [14, 1, 2, 8, 17]


def test_10k_ipv6_routes_pack_into_the_minimal_number_of_4096_byte_updates() -> None:
    routes = routes_v6(10_000, communities=(Community(1),))
    msgs = m.pack_announcements(routes, ctx())
    assert all(len(d) <= m.MAX_MESSAGE_LEN for d in msgs)
    per_message_overhead = len(m.pack_announcements(routes[:1], ctx())[0]) - 17
    capacity = m.MAX_MESSAGE_LEN - per_message_overhead - 1  # 1: extended attribute length
    assert len(msgs) == math.ceil(10_000 * 17 / capacity)
    got = all_prefixes(msgs)
    assert sorted(got) == sorted(r.prefix for r in routes)


def test_ipv4_packing_is_minimal_and_complete() -> None:
    base = int(V4("10.0.0.0"))  # pure encoding: no packet leaves the process
    routes = [m.Route(ipaddress.IPv4Network((base + i, 32))) for i in range(5000)]
    msgs = m.pack_announcements(routes, ctx())
    assert all(len(d) <= 4096 for d in msgs)
    overhead = len(m.pack_announcements(routes[:1], ctx())[0]) - 5
    assert len(msgs) == math.ceil(5000 * 5 / (4096 - overhead))
    assert sorted(all_prefixes(msgs)) == sorted(r.prefix for r in routes)


def test_mixed_prefix_lengths_fill_every_message_but_the_last() -> None:
    rng = random.Random(7)
    prefixes = {
        ipaddress.IPv6Network((int(V6("2001:db8::")) + (rng.getrandbits(96) << 0), 128)).supernet(
            new_prefix=rng.randint(32, 128)
        )
        for _ in range(4000)
    }
    routes = [m.Route(p) for p in prefixes]
    msgs = m.pack_announcements(routes, ctx())
    assert all(len(d) <= 4096 for d in msgs)
    sizes = sorted(len(d) for d in msgs)
    assert all(s > 4096 - 17 - 1 for s in sizes[1:])  # only one message may be less than full
    assert sorted(all_prefixes(msgs)) == sorted(prefixes)


def test_routes_are_grouped_by_attributes() -> None:
    routes = [
        m.Route(NET("198.51.100.1/32"), 100),
        m.Route(NET("198.51.100.2/32"), 200),
        m.Route(NET("198.51.100.3/32"), 100),
        m.Route(NET("198.51.100.4/32"), 100, (Community(5),)),
        m.Route(NET("2001:db8::1/128"), 100),
    ]
    msgs = m.pack_announcements(routes, ctx(ibgp=True))
    assert len(msgs) == 4
    seen = {}
    by_scapy: dict[str, tuple[int, tuple[int, ...]]] = {}
    for d in msgs:
        u = m.decode_message(d)
        assert isinstance(u, m.Update)
        nets = list(u.nlri) + list(u.attributes.mp_reach.nlri if u.attributes.mp_reach else [])
        for n in nets:
            seen[str(n)] = (u.attributes.local_pref, u.attributes.communities)
        attrs = scapy_attributes(d)
        independent = read_message(d)
        assert isinstance(independent, SeenUpdate)
        for prefix in independent.announced:
            comms = community_values(attrs[8]) if 8 in attrs else ()
            by_scapy[prefix] = (attrs[5].attribute.local_pref, comms)
    assert seen == {
        "198.51.100.1/32": (100, ()),
        "198.51.100.2/32": (200, ()),
        "198.51.100.3/32": (100, ()),
        "198.51.100.4/32": (100, (5,)),
        "2001:db8::1/128": (100, ()),
    }
    assert by_scapy == seen


def test_withdrawals_of_10k_routes_are_split_under_4096_bytes() -> None:
    base = int(V4("10.0.0.0"))
    v4 = [ipaddress.IPv4Network((base + i, 32)) for i in range(10_000)]
    v6 = [r.prefix for r in routes_v6(10_000)]
    msgs = m.pack_withdrawals(v4 + v6)
    assert all(len(d) <= 4096 for d in msgs)
    n4 = math.ceil(10_000 * 5 / (4096 - 23))
    n6 = math.ceil(10_000 * 17 / (4096 - 23 - 4 - 3))
    assert len(msgs) == n4 + n6
    got4: list[m.IPNetwork] = []
    got6: list[m.IPNetwork] = []
    scapy4: list[str] = []
    scapy6: list[str] = []
    for d in msgs:
        u = m.decode_message(d)
        assert isinstance(u, m.Update) and not u.nlri
        got4 += list(u.withdrawn)
        if u.attributes.mp_unreach:
            got6 += list(u.attributes.mp_unreach.withdrawn)
        independent = read_message(d)
        assert isinstance(independent, SeenUpdate) and not independent.announced
        scapy4 += independent.withdrawn
        scapy6 += independent.mp_unreach
    assert sorted(got4) == v4
    assert sorted(got6) == sorted(v6)
    assert scapy4 == [str(p) for p in got4] and scapy6 == [str(p) for p in got6]
    # (Upstream's single withdraw message would have been 50,023 bytes for the IPv4 part.)


def test_many_communities_use_the_extended_length_and_still_fit() -> None:
    comms = tuple(Community(i) for i in range(m.MAX_COMMUNITIES))
    msgs = m.pack_announcements(
        [m.Route(NET("198.51.100.0/24"), 0, comms), *routes_v6(50, communities=comms)], ctx()
    )
    assert all(len(d) <= 4096 for d in msgs)
    for d in msgs:
        u = m.decode_message(d)
        assert isinstance(u, m.Update) and len(u.attributes.communities) == m.MAX_COMMUNITIES
        [comm] = [a for a in scapy_bgp().BGPHeader(d).path_attr if a.type_code == 8]
        assert comm.type_flags & 0x10 and comm.attr_ext_len == 4 * 900  # extended length
        assert community_values(comm) == tuple(range(900))
    with pytest.raises(ValueError, match="communities"):
        m.Route(
            NET("198.51.100.0/24"), 0, tuple(Community(i) for i in range(m.MAX_COMMUNITIES + 1))
        )


def test_route_normalises_communities() -> None:
    r = m.Route(NET("198.51.100.0/24"), 5, (Community(9), Community(1), Community(9)))
    assert r.communities == (Community(1), Community(9))
    assert r == m.Route(NET("198.51.100.0/24"), 5, (Community(1), Community(9)))
    with pytest.raises(ValueError):
        m.Route(NET("198.51.100.0/24"), -1)


def test_no_next_hop_for_a_family_is_an_error() -> None:
    with pytest.raises(ValueError, match="IPv6 next hop"):
        m.pack_announcements(routes_v6(1), ctx(next_hop_v6=None))
    with pytest.raises(ValueError, match="IPv4 next hop"):
        m.pack_announcements([m.Route(NET("198.51.100.0/24"))], ctx(next_hop_v4=None))

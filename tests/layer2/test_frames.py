"""The pure frame codec, checked against scapy's independent dissectors and with hypothesis."""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import ARP, Dot1Q, Ether

from metallb_py.layer2 import frames

OUR_MAC = bytes.fromhex("020000000011")
OUR_MAC_TEXT = "02:00:00:00:00:11"
PEER_MAC_TEXT = "02:00:00:00:00:01"
PEER_MAC = bytes.fromhex("020000000001")
OUR_LL = ipaddress.IPv6Address("fe80::11").packed
V4 = ipaddress.IPv4Address("192.0.2.100")
V6 = ipaddress.IPv6Address("2001:db8::100")
ANNOUNCED = {V4.packed: str(V4), V6.packed: str(V6)}


def arp_request(target: str = "192.0.2.100", dst: str = "ff:ff:ff:ff:ff:ff", **kw) -> bytes:
    fields = {"op": 1, "hwsrc": PEER_MAC_TEXT, "psrc": "192.0.2.1", "pdst": target, **kw}
    return bytes(Ether(dst=dst, src=PEER_MAC_TEXT) / ARP(**fields))


def neighbor_solicitation(
    target: str = "2001:db8::100",
    src: str = "2001:db8::1",
    dst: str | None = None,
    slla: str | None = PEER_MAC_TEXT,
    hlim: int = 255,
) -> bytes:
    # Solicited-node group ff02::1:ffXX:XXXX (RFC 4291 2.7.1) and its MAC 33:33 + the low 32
    # bits (RFC 2464 7), worked out here rather than with the helpers under test.
    low24 = int(ipaddress.IPv6Address(target)) & 0xFFFFFF
    group = ipaddress.IPv6Address(int(ipaddress.IPv6Address("ff02::1:ff00:0")) | low24)
    dst = dst or str(group)
    eth_dst = "33:33:" + ipaddress.IPv6Address(dst).packed[12:].hex(":")
    pkt = (
        Ether(dst=eth_dst, src=PEER_MAC_TEXT)
        / IPv6(src=src, dst=dst, hlim=hlim)
        / ICMPv6ND_NS(tgt=target)
    )
    if slla is not None:
        pkt = pkt / ICMPv6NDOptSrcLLAddr(lladdr=slla)
    return bytes(pkt)


# --- ARP ---------------------------------------------------------------------------------------


def test_arp_request_gets_unicast_reply_from_our_mac() -> None:
    result = frames.arp_reply_for(arp_request(), OUR_MAC, ANNOUNCED)
    assert isinstance(result, frames.Reply)
    assert result.ip == "192.0.2.100"
    reply = Ether(result.frame)
    assert reply.dst == PEER_MAC_TEXT and reply.src == OUR_MAC_TEXT
    arp = reply[ARP]
    assert (arp.op, arp.hwsrc, arp.psrc) == (2, OUR_MAC_TEXT, "192.0.2.100")
    assert (arp.hwdst, arp.pdst) == (PEER_MAC_TEXT, "192.0.2.1")


def test_arp_request_unicast_to_us_is_answered_other_unicast_is_not() -> None:
    assert isinstance(
        frames.arp_reply_for(arp_request(dst=OUR_MAC_TEXT), OUR_MAC, ANNOUNCED), frames.Reply
    )
    other = frames.arp_reply_for(arp_request(dst="02:00:00:00:00:99"), OUR_MAC, ANNOUNCED)
    assert isinstance(other, frames.Ignored)


def test_arp_ignores_replies_unannounced_targets_and_non_ipv4() -> None:
    assert frames.arp_reply_for(arp_request(op=2), OUR_MAC, ANNOUNCED) == frames.Ignored(
        "not a request"
    )
    assert frames.arp_reply_for(arp_request("192.0.2.101"), OUR_MAC, ANNOUNCED) == frames.Ignored(
        "target not announced"
    )
    assert isinstance(
        frames.arp_reply_for(arp_request(hwlen=8), OUR_MAC, ANNOUNCED), frames.Ignored
    )
    assert isinstance(
        frames.arp_reply_for(arp_request(ptype=0x86DD), OUR_MAC, ANNOUNCED), frames.Ignored
    )


def test_arp_vlan_tagged_request_is_ignored() -> None:
    tagged = bytes(
        Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC_TEXT)
        / Dot1Q(vlan=7)
        / ARP(op=1, hwsrc=PEER_MAC_TEXT, psrc="192.0.2.1", pdst="192.0.2.100")
    )
    assert frames.arp_reply_for(tagged, OUR_MAC, ANNOUNCED) == frames.Ignored("VLAN tagged")


def test_arp_multicast_requester_is_not_answered() -> None:
    frame = arp_request(hwsrc="01:00:5e:00:00:01")
    assert isinstance(frames.arp_reply_for(frame, OUR_MAC, ANNOUNCED), frames.Ignored)


def test_arp_padding_is_accepted_truncation_is_not() -> None:
    frame = arp_request()
    assert isinstance(frames.arp_reply_for(frame + b"\x00" * 18, OUR_MAC, ANNOUNCED), frames.Reply)
    for cut in range(len(frame)):
        assert frames.arp_reply_for(frame[:cut], OUR_MAC, ANNOUNCED) == frames.Ignored("truncated")


def test_gratuitous_arp_request_and_reply() -> None:
    request, reply = frames.build_gratuitous_arp(OUR_MAC, V4.packed)
    for raw, op in ((request, 1), (reply, 2)):
        pkt = Ether(raw)
        assert pkt.dst == "ff:ff:ff:ff:ff:ff" and pkt.src == OUR_MAC_TEXT
        arp = pkt[ARP]
        assert arp.op == op
        assert (arp.hwsrc, arp.psrc, arp.pdst) == (OUR_MAC_TEXT, "192.0.2.100", "192.0.2.100")
        assert arp.hwdst == "ff:ff:ff:ff:ff:ff"


def _scapy_checksum(pkt: Ether) -> int:
    """scapy's own checksum for the same message, recomputed from scratch."""
    rebuilt = pkt.copy()
    del rebuilt[ICMPv6ND_NA].cksum
    return int(Ether(bytes(rebuilt))[ICMPv6ND_NA].cksum)


# --- NDP ---------------------------------------------------------------------------------------


def test_solicited_node_group_and_mac() -> None:
    ip = ipaddress.IPv6Address("2001:db8::12:3456").packed
    group = frames.solicited_node_multicast(ip)
    assert ipaddress.IPv6Address(group) == ipaddress.IPv6Address("ff02::1:ff12:3456")
    assert frames.multicast_mac(group).hex(":") == "33:33:ff:12:34:56"


def test_neighbor_solicitation_is_parsed_with_source_link_layer_address() -> None:
    ns = frames.parse_neighbor_solicitation(neighbor_solicitation())
    assert isinstance(ns, frames.NeighborSolicitation)
    assert ns.target == V6.packed
    assert ns.source_lladdr == PEER_MAC
    assert ipaddress.IPv6Address(ns.src_ip) == ipaddress.IPv6Address("2001:db8::1")


def test_solicited_na_flags_target_option_and_checksum() -> None:
    result = frames.na_reply_for(neighbor_solicitation(), OUR_MAC, OUR_LL, ANNOUNCED)
    assert isinstance(result, frames.Reply)
    assert result.ip == "2001:db8::100"
    pkt = Ether(result.frame)
    assert pkt.dst == PEER_MAC_TEXT and pkt.src == OUR_MAC_TEXT
    ip6 = pkt[IPv6]
    assert ip6.hlim == 255 and ip6.dst == "2001:db8::1" and ip6.src == "2001:db8::100"
    na = pkt[ICMPv6ND_NA]
    assert (na.R, na.S, na.O) == (0, 1, 0)
    assert na.tgt == "2001:db8::100"
    assert pkt[ICMPv6NDOptDstLLAddr].lladdr == OUR_MAC_TEXT
    assert _scapy_checksum(pkt) == na.cksum


def test_unsolicited_na_to_all_nodes() -> None:
    pkt = Ether(frames.build_unsolicited_na(OUR_MAC, V6.packed))
    assert pkt.dst == "33:33:00:00:00:01"
    assert pkt[IPv6].dst == "ff02::1" and pkt[IPv6].hlim == 255
    na = pkt[ICMPv6ND_NA]
    assert (na.R, na.S, na.O) == (0, 0, 1)
    assert pkt[ICMPv6NDOptDstLLAddr].lladdr == OUR_MAC_TEXT
    assert _scapy_checksum(pkt) == na.cksum


def test_unicast_ns_to_the_target_is_answered() -> None:
    frame = bytes(
        Ether(dst=OUR_MAC_TEXT, src=PEER_MAC_TEXT)
        / IPv6(src="2001:db8::1", dst="2001:db8::100", hlim=255)
        / ICMPv6ND_NS(tgt="2001:db8::100")
        / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC_TEXT)
    )
    assert isinstance(frames.na_reply_for(frame, OUR_MAC, OUR_LL, ANNOUNCED), frames.Reply)


def test_ns_rejections() -> None:
    def reason(frame: bytes) -> str:
        result = frames.na_reply_for(frame, OUR_MAC, OUR_LL, ANNOUNCED)
        assert isinstance(result, frames.Ignored), result
        return result.reason

    assert reason(neighbor_solicitation(slla=None)) == "no source link-layer address option"
    assert reason(neighbor_solicitation(src="::", slla=None)) == "unspecified source (DAD)"
    assert reason(neighbor_solicitation("2001:db8::101")) == "target not announced"
    assert reason(neighbor_solicitation(hlim=64)) == "hop limit is not 255"
    assert reason(neighbor_solicitation(src="fe80::11")) == "sent from our own address"
    assert reason(neighbor_solicitation(dst="ff02::1")).startswith("destination is neither")
    bad = bytearray(neighbor_solicitation())
    bad[14 + 40 + 2] ^= 0xFF
    assert reason(bytes(bad)) == "bad ICMPv6 checksum"
    # A target link-layer option instead of the source one: dropped, as upstream.
    tlla = (
        Ether(dst="33:33:ff:00:01:00", src=PEER_MAC_TEXT)
        / IPv6(src="2001:db8::1", dst="ff02::1:ff00:100", hlim=255)
        / ICMPv6ND_NS(tgt="2001:db8::100")
        / ICMPv6NDOptDstLLAddr(lladdr=PEER_MAC_TEXT)
    )
    assert reason(bytes(tlla)) == "no source link-layer address option"


def test_ns_with_zero_length_option_is_ignored() -> None:
    frame = bytearray(neighbor_solicitation())
    frame[14 + 40 + 24 + 1] = 0  # option length 0 is forbidden (RFC 4861 4.6)
    frame[14 + 40 + 2 : 14 + 40 + 4] = b"\x00\x00"
    icmp = bytes(frame[54:])
    frame[56:58] = struct.pack("!H", reference_icmpv6_checksum(frame[22:38], frame[38:54], icmp))
    assert frames.parse_neighbor_solicitation(bytes(frame)) == frames.Ignored("bad option length")


# --- checksum and robustness (hypothesis) --------------------------------------------------------


def _reference_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def reference_icmpv6_checksum(src: bytes | bytearray, dst: bytes | bytearray, icmp: bytes) -> int:
    """RFC 4443 2.3: over the pseudo-header (source, destination, upper-layer length, next
    header 58) and the message with a zero checksum field."""
    pseudo = bytes(src) + bytes(dst) + struct.pack("!IxxxB", len(icmp), 58)
    return _reference_checksum(pseudo + icmp[:2] + b"\x00\x00" + icmp[4:])


@given(st.binary(max_size=200))
def test_checksum_matches_the_word_loop(data: bytes) -> None:
    assert frames.checksum16(data) == _reference_checksum(data)


@given(st.binary(max_size=300))
@settings(max_examples=500)
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    for prefix in (b"", b"\xff" * 6 + PEER_MAC + b"\x08\x06", b"\x33" * 6 + PEER_MAC + b"\x86\xdd"):
        frame = prefix + data
        assert isinstance(
            frames.arp_reply_for(frame, OUR_MAC, ANNOUNCED), frames.Reply | frames.Ignored
        )
        assert isinstance(
            frames.na_reply_for(frame, OUR_MAC, OUR_LL, ANNOUNCED), frames.Reply | frames.Ignored
        )


@given(st.data())
@settings(max_examples=500)
def test_mutated_valid_frames_never_raise(data: st.DataObject) -> None:
    base = bytearray(data.draw(st.sampled_from([arp_request(), neighbor_solicitation()])))
    for _ in range(data.draw(st.integers(0, 8))):
        pos = data.draw(st.integers(0, len(base) - 1))
        base[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(base)))
    frame = bytes(base[:cut])
    arp = frames.arp_reply_for(frame, OUR_MAC, ANNOUNCED)
    na = frames.na_reply_for(frame, OUR_MAC, OUR_LL, ANNOUNCED)
    # Whatever gets answered is a well-formed reply for an announced IP.
    if isinstance(arp, frames.Reply):
        assert Ether(arp.frame)[ARP].psrc == arp.ip
    if isinstance(na, frames.Reply):
        assert Ether(na.frame)[ICMPv6ND_NA].tgt == na.ip


@given(
    target=st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address),
    src=st.integers(1, 2**128 - 1).map(ipaddress.IPv6Address),
    mac=st.binary(min_size=6, max_size=6).map(lambda b: bytes([b[0] & 0xFE]) + b[1:]),
)
def test_built_ns_round_trips(
    target: ipaddress.IPv6Address, src: ipaddress.IPv6Address, mac: bytes
) -> None:
    frame = neighbor_solicitation(str(target), str(src), slla=mac.hex(":"))
    ns = frames.parse_neighbor_solicitation(frame)
    if target.is_multicast:
        assert ns == frames.Ignored("multicast target")
        return
    assert isinstance(ns, frames.NeighborSolicitation)
    assert ns.target == target.packed and ns.src_ip == src.packed and ns.source_lladdr == mac

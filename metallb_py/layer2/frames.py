"""Ethernet/ARP and Ethernet/IPv6/ICMPv6 neighbour-discovery frames, parsed and built with `struct`.

Pure functions on `bytes`: no sockets, no clocks. Addresses are packed (`bytes` of 4, 6 or 16)
because the responders look them up in dicts on every frame; `ipaddress` objects stay out of the
hot path. A frame that is malformed, or that a responder must not answer, yields `Ignored`
(with a reason for logs and tests) instead of raising: nothing a peer sends may crash a responder.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import NamedTuple

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_HLEN = 14
ARP_LEN = 28
IPV6_HLEN = 40
IPPROTO_ICMPV6 = 58
ARP_REQUEST = 1
ARP_REPLY = 2
ICMPV6_NEIGHBOR_SOLICITATION = 135
ICMPV6_NEIGHBOR_ADVERTISEMENT = 136
ND_OPT_SOURCE_LINKADDR = 1
ND_OPT_TARGET_LINKADDR = 2
ND_HOP_LIMIT = 255

BROADCAST_MAC = b"\xff" * 6
ZERO_MAC = b"\x00" * 6
ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")
ALL_NODES_MAC = bytes.fromhex("333300000001")
UNSPECIFIED_V6 = b"\x00" * 16
_SOLICITED_NODE_PREFIX = bytes.fromhex("ff0200000000000000000001ff")

# Ethernet header + ARP body for Ethernet/IPv4 in one go.
_ETH_ARP = struct.Struct("!6s6sHHHBBH6s4s6s4s")
# Ethernet header + IPv6 header (version/class/flow, payload length, next header, hop limit).
_ETH_IPV6 = struct.Struct("!6s6sHIHBB16s16s")
_ICMP_HEAD = struct.Struct("!BBH")
_NA = struct.Struct("!BBHI16sBB6s")  # NA, then a target link-layer address option
_NA_LEN = _NA.size  # 32: 24 bytes of NA + an 8-byte target link-layer address option
_ARP_HEAD_IPV4 = (1, 0x0800, 6, 4)


class Ignored(NamedTuple):
    """A frame that gets no answer, and why (for debug logs and tests)."""

    reason: str


class ArpPacket(NamedTuple):
    eth_dst: bytes
    eth_src: bytes
    op: int
    sender_mac: bytes
    sender_ip: bytes
    target_mac: bytes
    target_ip: bytes


class NeighborSolicitation(NamedTuple):
    eth_dst: bytes
    eth_src: bytes
    src_ip: bytes
    dst_ip: bytes
    target: bytes
    source_lladdr: bytes | None


class Reply(NamedTuple):
    """A frame to send, and the service IP (text) it answers for, for the counters."""

    frame: bytes
    ip: str


def is_multicast_mac(mac: bytes) -> bool:
    """Group bit set (includes broadcast): never a valid unicast reply destination."""
    return bool(mac[0] & 1)


# --- ARP -------------------------------------------------------------------------------------


def parse_arp(frame: bytes) -> ArpPacket | Ignored:
    """Ethernet + ARP for Ethernet/IPv4; trailing bytes (minimum-frame padding) are allowed."""
    if len(frame) < ETH_HLEN + ARP_LEN:
        return Ignored("truncated")
    (dst, src, ethertype, htype, ptype, hlen, plen, op, smac, sip, tmac, tip) = (
        _ETH_ARP.unpack_from(frame)
    )
    if ethertype != ETH_P_ARP:
        return Ignored("not ARP" if ethertype != ETH_P_8021Q else "VLAN tagged")
    if (htype, ptype, hlen, plen) != _ARP_HEAD_IPV4:
        return Ignored("not Ethernet/IPv4 ARP")
    return ArpPacket(dst, src, op, smac, sip, tmac, tip)


# Bytes 12..22 of an Ethernet/IPv4 ARP request and reply: EtherType, htype, ptype, hlen, plen, op.
_REQUEST_TYPE = struct.pack("!HHHBBH", ETH_P_ARP, *_ARP_HEAD_IPV4, ARP_REQUEST)
_REPLY_TYPE = struct.pack("!HHHBBH", ETH_P_ARP, *_ARP_HEAD_IPV4, ARP_REPLY)
_TRUNCATED = Ignored("truncated")
_NOT_ANNOUNCED = Ignored("target not announced")
_WRONG_DESTINATION = Ignored("Ethernet destination is neither broadcast nor us")
_NOT_UNICAST = Ignored("requester MAC is not unicast")
_OURS = Ignored("our own request")


def arp_reply_for(frame: bytes, our_mac: bytes, announced: Mapping[bytes, str]) -> Reply | Ignored:
    """The responder's whole decision for one received frame (docs/layer2.md, "Responders").

    This is the per-request hot path, so it compares raw slices instead of building an
    `ArpPacket`; `parse_arp` names the reason when the frame is not an Ethernet/IPv4 request.
    """
    if len(frame) < ETH_HLEN + ARP_LEN:
        return _TRUNCATED
    if frame[12:22] != _REQUEST_TYPE:
        pkt = parse_arp(frame)
        return pkt if type(pkt) is Ignored else Ignored("not a request")
    dst = frame[0:6]
    if dst != BROADCAST_MAC and dst != our_mac:  # noqa: PLR1714 (faster than a tuple test)
        return _WRONG_DESTINATION
    target_ip = frame[38:42]
    ip = announced.get(target_ip)
    if ip is None:
        return _NOT_ANNOUNCED
    sender_mac = frame[22:28]
    if sender_mac[0] & 1 or sender_mac == ZERO_MAC:
        return _NOT_UNICAST
    if sender_mac == our_mac:
        return _OURS
    # Ethernet to the requester; ARP reply: we (our MAC, the service IP) -> the requester.
    reply = b"".join(
        (sender_mac, our_mac, _REPLY_TYPE, our_mac, target_ip, sender_mac, frame[28:32])
    )
    return Reply(reply, ip)


def build_arp(
    op: int,
    *,
    eth_dst: bytes,
    eth_src: bytes,
    sender_mac: bytes,
    sender_ip: bytes,
    target_mac: bytes,
    target_ip: bytes,
) -> bytes:
    head = (eth_dst, eth_src, ETH_P_ARP, *_ARP_HEAD_IPV4, op)
    return _ETH_ARP.pack(*head, sender_mac, sender_ip, target_mac, target_ip)


def build_gratuitous_arp(our_mac: bytes, ip: bytes) -> tuple[bytes, bytes]:
    """The gratuitous request and reply (docs/layer2.md): both broadcast, sender IP = target IP."""
    fields = {
        "eth_dst": BROADCAST_MAC,
        "eth_src": our_mac,
        "sender_mac": our_mac,
        "sender_ip": ip,
        "target_mac": BROADCAST_MAC,
        "target_ip": ip,
    }
    return build_arp(ARP_REQUEST, **fields), build_arp(ARP_REPLY, **fields)


# --- IPv6 neighbour discovery ----------------------------------------------------------------


def solicited_node_multicast(ip: bytes) -> bytes:
    """ff02::1:ffXX:XXXX for the low 24 bits of an IPv6 address (RFC 4291 2.7.1)."""
    return _SOLICITED_NODE_PREFIX + ip[13:16]


def multicast_mac(group: bytes) -> bytes:
    """33:33 followed by the low 32 bits of an IPv6 multicast address (RFC 2464 7)."""
    return b"\x33\x33" + group[12:16]


def checksum16(data: bytes) -> int:
    """Internet checksum: ones-complement of the ones-complement sum of 16-bit words.

    2**16 is 1 modulo 0xFFFF, so the word sum is the whole buffer as one integer modulo 0xFFFF;
    one C-level big-int operation instead of a Python loop over words.
    """
    if len(data) % 2:
        data += b"\x00"
    total = int.from_bytes(data, "big") % 0xFFFF
    if total == 0 and any(data):
        total = 0xFFFF
    return ~total & 0xFFFF


def _pseudo_header(src: bytes, dst: bytes, length: int) -> bytes:
    return src + dst + struct.pack("!II", length, IPPROTO_ICMPV6)


def icmpv6_checksum(src: bytes, dst: bytes, message: bytes) -> int:
    """Checksum of an ICMPv6 message whose checksum field is zero (RFC 4443 2.3)."""
    return checksum16(_pseudo_header(src, dst, len(message)) + message)


def icmpv6_checksum_ok(src: bytes, dst: bytes, message: bytes) -> bool:
    """A message with its checksum in place sums to all-ones."""
    return checksum16(_pseudo_header(src, dst, len(message)) + message) == 0


def parse_neighbor_solicitation(frame: bytes) -> NeighborSolicitation | Ignored:
    """Ethernet + IPv6 + ICMPv6 NS, validated as RFC 4861 7.1.1 asks (hop limit 255, code 0,
    checksum, length, well-formed options), without IPv6 extension headers."""
    if len(frame) < ETH_HLEN + IPV6_HLEN + 24:
        return Ignored("truncated")
    (dst_mac, src_mac, ethertype, vtf, payload_len, next_header, hop_limit, src, dst) = (
        _ETH_IPV6.unpack_from(frame)
    )
    if ethertype != ETH_P_IPV6:
        return Ignored("not IPv6" if ethertype != ETH_P_8021Q else "VLAN tagged")
    if vtf >> 28 != 6:
        return Ignored("not IP version 6")
    if next_header != IPPROTO_ICMPV6:
        return Ignored("not ICMPv6 (or has extension headers)")
    if hop_limit != ND_HOP_LIMIT:
        return Ignored("hop limit is not 255")
    end = ETH_HLEN + IPV6_HLEN + payload_len
    if payload_len < 24 or end > len(frame):
        return Ignored("bad payload length")
    icmp = frame[ETH_HLEN + IPV6_HLEN : end]
    icmp_type, code, _ = _ICMP_HEAD.unpack_from(icmp)
    if icmp_type != ICMPV6_NEIGHBOR_SOLICITATION:
        return Ignored("not a neighbor solicitation")
    if code != 0:
        return Ignored("bad ICMPv6 code")
    if not icmpv6_checksum_ok(src, dst, icmp):
        return Ignored("bad ICMPv6 checksum")
    target = icmp[8:24]
    if target[0] == 0xFF:
        return Ignored("multicast target")
    lladdr: bytes | None = None
    pos = 24
    while pos < len(icmp):
        if pos + 2 > len(icmp):
            return Ignored("truncated option")
        opt_type, opt_len = icmp[pos], icmp[pos + 1]
        if opt_len == 0 or pos + opt_len * 8 > len(icmp):
            return Ignored("bad option length")
        if opt_type == ND_OPT_SOURCE_LINKADDR and lladdr is None:
            if opt_len != 1:
                return Ignored("source link-layer option is not Ethernet")
            lladdr = icmp[pos + 2 : pos + 8]
        pos += opt_len * 8
    if src == UNSPECIFIED_V6:
        # Duplicate address detection: such probes carry no source link-layer option.
        return Ignored("unspecified source (DAD)")
    return NeighborSolicitation(dst_mac, src_mac, src, dst, target, lladdr)


def build_neighbor_advertisement(
    src_mac: bytes,
    dst_mac: bytes,
    src_ip: bytes,
    dst_ip: bytes,
    target: bytes,
    *,
    solicited: bool,
    override: bool,
    router: bool = False,
) -> bytes:
    """Ethernet + IPv6 (hop limit 255) + NA with a target link-layer address option = src_mac."""
    flags = (router << 31) | (solicited << 30) | (override << 29)
    option = (ND_OPT_TARGET_LINKADDR, 1, src_mac)
    message = _NA.pack(ICMPV6_NEIGHBOR_ADVERTISEMENT, 0, 0, flags, target, *option)
    csum = icmpv6_checksum(src_ip, dst_ip, message)
    header = _ETH_IPV6.pack(
        dst_mac,
        src_mac,
        ETH_P_IPV6,
        6 << 28,
        _NA_LEN,
        IPPROTO_ICMPV6,
        ND_HOP_LIMIT,
        src_ip,
        dst_ip,
    )
    return header + message[:2] + struct.pack("!H", csum) + message[4:]


def build_unsolicited_na(our_mac: bytes, target: bytes) -> bytes:
    """Unsolicited NA (docs/layer2.md): to ff02::1, Solicited=0, Override=1, from the target."""
    return build_neighbor_advertisement(
        our_mac,
        ALL_NODES_MAC,
        target,
        ALL_NODES,
        target,
        solicited=False,
        override=True,
    )


def na_reply_for(
    frame: bytes, our_mac: bytes, our_link_local: bytes, announced: Mapping[bytes, str]
) -> Reply | Ignored:
    """The NDP responder's whole decision for one received frame (docs/layer2.md, "Responders").

    The advertisement is sourced from the service IP, as Linux does for its own addresses;
    upstream uses the interface's link-local address, which `ndisc6` discards for a global
    target (see docs/behaviour-differences.md).
    """
    ns = parse_neighbor_solicitation(frame)
    if type(ns) is Ignored:
        return ns
    assert isinstance(ns, NeighborSolicitation)
    ip = announced.get(ns.target)
    if ip is None:
        return Ignored("target not announced")
    if ns.dst_ip != ns.target and ns.dst_ip != solicited_node_multicast(ns.target):
        return Ignored("destination is neither the target nor its solicited-node group")
    if ns.eth_dst != our_mac and ns.eth_dst != multicast_mac(ns.dst_ip):
        return Ignored("Ethernet destination does not match")
    if ns.source_lladdr is None:
        return Ignored("no source link-layer address option")
    if is_multicast_mac(ns.source_lladdr) or ns.source_lladdr == ZERO_MAC:
        return Ignored("source link-layer address is not unicast")
    if ns.src_ip == our_link_local:
        return Ignored("sent from our own address")
    reply = build_neighbor_advertisement(
        our_mac,
        ns.source_lladdr,
        ns.target,
        ns.src_ip,
        ns.target,
        solicited=True,
        override=False,
    )
    return Reply(reply, ip)

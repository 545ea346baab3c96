"""Classic BPF socket filters, so the kernel drops every frame but the ones a responder answers.

Without a filter, a packet socket wakes Python for every ARP frame (or every IPv6 packet) on the
interface. The programs below run in the kernel and pass only ARP requests / ICMPv6 neighbor
solicitations that arrived from the wire (not our own outgoing frames), untagged, addressed to
this host, broadcast (ARP) or multicast (NDP). Python re-validates everything it receives anyway.
"""

from __future__ import annotations

import ctypes
import socket
import struct
from typing import NamedTuple

SO_ATTACH_FILTER = 26

# Instruction classes and modes (linux/filter.h, linux/bpf_common.h).
_LD, _RET, _JMP = 0x00, 0x06, 0x05
_W, _H, _B = 0x00, 0x08, 0x10
_ABS = 0x20
_JEQ = 0x10
_K = 0x00
# Ancillary data loads: SKF_AD_OFF + SKF_AD_PKTTYPE / SKF_AD_VLAN_TAG_PRESENT.
_SKF_AD_OFF = -0x1000
_AD_PKTTYPE = _SKF_AD_OFF + 4
_AD_VLAN_TAG_PRESENT = _SKF_AD_OFF + 48
# skb->pkt_type values (linux/if_packet.h).
PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST, PACKET_OUTGOING = 0, 1, 2, 3, 4

SNAP_LEN = 1514


class Insn(NamedTuple):
    code: int
    jt: int
    jf: int
    k: int


def _ld(size: int, offset: int) -> Insn:
    return Insn(_LD | size | _ABS, 0, 0, offset & 0xFFFFFFFF)


def _ret(k: int) -> Insn:
    return Insn(_RET | _K, 0, 0, k)


def _require(checks: list[tuple[int, int, tuple[int, ...]]]) -> list[Insn]:
    """Load each (size, offset) and accept only one of the listed values, else drop.

    Every failed comparison jumps to the final `ret 0`; the program ends `ret SNAP_LEN; ret 0`.
    """
    body: list[tuple[Insn, tuple[int, ...]]] = []
    for size, offset, values in checks:
        body.append((_ld(size, offset), values))
    program: list[Insn] = []
    # Length of the program so far is needed to compute forward jumps to the drop instruction.
    total = sum(1 + len(values) for _, values in body) + 2
    for load, values in body:
        program.append(load)
        for i, value in enumerate(values):
            here = len(program)
            last = i == len(values) - 1
            to_next_check = len(values) - i - 1  # skip the remaining comparisons on match
            to_drop = total - 1 - here - 1
            program.append(Insn(_JMP | _JEQ | _K, to_next_check, to_drop if last else 0, value))
    program.append(_ret(SNAP_LEN))
    program.append(_ret(0))
    return program


def arp_request_filter() -> list[Insn]:
    """Untagged ARP requests received as broadcast or unicast to us."""
    return _require(
        [
            (_W, _AD_VLAN_TAG_PRESENT, (0,)),
            (_W, _AD_PKTTYPE, (PACKET_BROADCAST, PACKET_HOST)),
            (_H, 12, (0x0806,)),
            (_H, 20, (1,)),
        ]
    )


def neighbor_solicitation_filter() -> list[Insn]:
    """Untagged IPv6 packets without extension headers, hop limit 255, ICMPv6 type 135."""
    return _require(
        [
            (_W, _AD_VLAN_TAG_PRESENT, (0,)),
            (_W, _AD_PKTTYPE, (PACKET_MULTICAST, PACKET_HOST)),
            (_H, 12, (0x86DD,)),
            (_B, 20, (58,)),
            (_B, 21, (255,)),
            (_B, 54, (135,)),
        ]
    )


def encode(program: list[Insn]) -> bytes:
    """struct sock_filter[] as the kernel expects it."""
    return b"".join(struct.pack("=HBBI", *insn) for insn in program)


def attach(sock: socket.socket, program: list[Insn]) -> None:
    """SO_ATTACH_FILTER: the kernel copies the program, so the buffer may die afterwards."""
    code = encode(program)
    buf = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(program), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)

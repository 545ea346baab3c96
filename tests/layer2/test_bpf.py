"""The kernel filters: interpreted here instruction by instruction, and attached to a real socket."""

from __future__ import annotations

import struct
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, IPv6
from scapy.layers.l2 import Ether

from metallb_lab import netns
from metallb_py.layer2 import bpf

from .test_frames import arp_request, neighbor_solicitation


def run_filter(
    program: list[bpf.Insn], frame: bytes, pkttype: int = bpf.PACKET_BROADCAST, vlan: bool = False
) -> int:
    """A classic-BPF interpreter for the instructions bpf.py emits (ld abs, jeq k, ret k)."""
    pc = 0
    acc = 0
    for _ in range(len(program) + 1):
        code, jt, jf, k = program[pc]
        cls = code & 0x07
        if cls == 0x06:  # ret
            return k
        if cls == 0x00:  # ld abs
            assert code & 0xE0 == 0x20, "only absolute loads are expected"
            size = {0x00: 4, 0x08: 2, 0x10: 1}[code & 0x18]
            offset = k - 2**32 if k & 0x80000000 else k
            if offset == bpf._AD_PKTTYPE:
                acc = pkttype
            elif offset == bpf._AD_VLAN_TAG_PRESENT:
                acc = int(vlan)
            elif offset < 0:
                raise AssertionError(f"unknown ancillary load {offset}")
            elif offset + size > len(frame):
                return 0  # the kernel drops the packet on an out-of-bounds load
            else:
                acc = int.from_bytes(frame[offset : offset + size], "big")
            pc += 1
        elif cls == 0x05:  # jmp
            assert code == 0x15, "only jeq k is expected"
            pc += 1 + (jt if acc == k else jf)
        else:
            raise AssertionError(f"unexpected instruction {code:#x}")
    raise AssertionError("program did not terminate")


ARP_FILTER = bpf.arp_request_filter()
NS_FILTER = bpf.neighbor_solicitation_filter()


def test_arp_filter_passes_requests_only() -> None:
    assert run_filter(ARP_FILTER, arp_request()) == bpf.SNAP_LEN
    assert run_filter(ARP_FILTER, arp_request(), pkttype=bpf.PACKET_HOST) == bpf.SNAP_LEN
    assert run_filter(ARP_FILTER, arp_request(op=2)) == 0
    assert run_filter(ARP_FILTER, arp_request(), pkttype=bpf.PACKET_OUTGOING) == 0
    assert run_filter(ARP_FILTER, arp_request(), pkttype=bpf.PACKET_OTHERHOST) == 0
    assert run_filter(ARP_FILTER, arp_request(), vlan=True) == 0
    assert run_filter(ARP_FILTER, neighbor_solicitation()) == 0
    assert run_filter(ARP_FILTER, arp_request()[:21]) == 0


def test_ns_filter_passes_solicitations_only() -> None:
    ns = neighbor_solicitation()
    assert run_filter(NS_FILTER, ns, pkttype=bpf.PACKET_MULTICAST) == bpf.SNAP_LEN
    assert run_filter(NS_FILTER, ns, pkttype=bpf.PACKET_HOST) == bpf.SNAP_LEN
    assert run_filter(NS_FILTER, ns, pkttype=bpf.PACKET_OUTGOING) == 0
    assert run_filter(NS_FILTER, ns, pkttype=bpf.PACKET_MULTICAST, vlan=True) == 0
    assert run_filter(NS_FILTER, neighbor_solicitation(hlim=64), bpf.PACKET_MULTICAST) == 0
    na = bytes(
        Ether(dst="33:33:00:00:00:01")
        / IPv6(dst="ff02::1", hlim=255)
        / ICMPv6ND_NA(tgt="2001:db8::1")
    )
    assert run_filter(NS_FILTER, na, pkttype=bpf.PACKET_MULTICAST) == 0
    assert run_filter(NS_FILTER, arp_request(), pkttype=bpf.PACKET_MULTICAST) == 0


@given(st.binary(max_size=120), st.sampled_from([0, 1, 2, 3, 4]), st.booleans())
@settings(max_examples=300)
def test_filters_never_pass_what_the_parsers_call_another_type(
    data: bytes, pkttype: int, vlan: bool
) -> None:
    """Whatever the kernel passes has the right type; the parsers do the rest of the checks."""
    for prefix in (b"\xff" * 12 + b"\x08\x06\x00\x01\x08\x00\x06\x04\x00\x01", b"\x33" * 12):
        frame = prefix + data
        if run_filter(ARP_FILTER, frame, pkttype, vlan):
            assert frame[12:14] == b"\x08\x06" and frame[20:22] == b"\x00\x01"
            assert not vlan and pkttype in (bpf.PACKET_HOST, bpf.PACKET_BROADCAST)
        if run_filter(NS_FILTER, frame, pkttype, vlan):
            assert frame[12:14] == b"\x86\xdd" and frame[20] == 58 and frame[54] == 135
            assert not vlan and pkttype in (bpf.PACKET_HOST, bpf.PACKET_MULTICAST)


def test_encoding_is_the_kernel_struct_layout() -> None:
    code = bpf.encode(ARP_FILTER)
    assert len(code) == 8 * len(ARP_FILTER)
    assert struct.unpack_from("=HBBI", code, 8 * (len(ARP_FILTER) - 1)) == (0x06, 0, 0, 0)


@pytest.mark.netns
def test_attached_filter_on_a_real_socket(topo: netns.Topology) -> None:
    """Frames sent over a veth: only the ARP request and the NS reach the filtered sockets."""
    a = topo.add_ns("a")
    b = topo.add_ns("b")
    topo.veth(a, "v0", b, "v1")
    probe = r"""
import select, socket, time
from metallb_py.layer2 import bpf
socks = []
for ethertype, program in ((0x0806, bpf.arp_request_filter()),
                           (0x86DD, bpf.neighbor_solicitation_filter())):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    bpf.attach(s, program)
    s.bind(("v1", ethertype))
    socks.append(s)
print("ready", flush=True)
seen = []
deadline = time.monotonic() + 3
while time.monotonic() < deadline:
    ready, _, _ = select.select(socks, [], [], 0.2)
    for s in ready:
        seen.append(s.recv(2048).hex())
print(" ".join(seen), flush=True)
"""
    proc = subprocess.Popen(b.argv([sys.executable, "-c", probe]), stdout=subprocess.PIPE)
    topo.processes.append(proc)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready"
    sent = {
        "request": arp_request(),
        "reply": arp_request(op=2),
        "ns": neighbor_solicitation(),
        "ns-hlim": neighbor_solicitation(hlim=1),
        "na": bytes(
            Ether(dst="33:33:00:00:00:01")
            / IPv6(dst="ff02::1", hlim=255)
            / ICMPv6ND_NA(tgt="2001:db8::1")
        ),
        "ns-no-slla": bytes(
            Ether(dst="33:33:ff:00:01:00")
            / IPv6(src="2001:db8::1", dst="ff02::1:ff00:100", hlim=255)
            / ICMPv6ND_NS(tgt="2001:db8::100")
        ),
    }
    sender = f"""
import socket
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("v0", 0))
for frame in {[f.hex() for f in sent.values()]!r}:
    s.send(bytes.fromhex(frame))
"""
    a.run([sys.executable, "-c", sender])
    out, _ = proc.communicate(timeout=10)
    received = {bytes.fromhex(h) for h in out.decode().split()}
    assert sent["request"] in received
    assert sent["ns"] in received
    assert sent["ns-no-slla"] in received  # the parser, not the filter, drops it
    for name in ("reply", "ns-hlim", "na"):
        assert sent[name] not in received, name

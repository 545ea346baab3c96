"""Malformed and hostile BFD packets: every discard rule sent with scapy from the router's
namespace into a live session with FRR (dropped, counted by reason, the session stays Up), a
valid packet with the wrong TTL, a bounded burst of random datagrams; and a bounded fuzz of the
decoder alone, checked against scapy's parser."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from scapy.contrib.bfd import BFD

from metallb_lab.routers import PeeringLink
from metallb_py.bfd.packet import ControlPacket, DiscardedError, DiscardRule, decode, encode
from metallb_py.bfd.packet import State as BfdState
from tests.bfd.test_frr import FAST, start_frr, up_with_frr
from tests.bgp.conftest import run, until

FUZZ_COUNT = 20_000


def bfd_bytes(**fields: Any) -> bytes:
    base: dict[str, Any] = {"sta": 1, "my_discriminator": 7, "your_discriminator": 0}
    base.update(fields)
    return bytes(BFD(**base))


def with_length(wire: bytes, length: int) -> bytes:
    return wire[:3] + bytes([length]) + wire[4:]


MALFORMED: dict[str, bytes] = {
    DiscardRule.TOO_SHORT.value: bfd_bytes()[:20],
    DiscardRule.BAD_VERSION.value: bfd_bytes(version=2),
    DiscardRule.LENGTH_TOO_SMALL.value: with_length(bfd_bytes(), 20),
    DiscardRule.LENGTH_BEYOND_PAYLOAD.value: with_length(bfd_bytes(), 40),
    DiscardRule.DETECT_MULT_ZERO.value: bfd_bytes(detect_mult=0),
    DiscardRule.MULTIPOINT.value: bfd_bytes(flags="M"),
    DiscardRule.MY_DISCRIMINATOR_ZERO.value: bfd_bytes(my_discriminator=0),
    DiscardRule.YOUR_DISCRIMINATOR_ZERO.value: bfd_bytes(sta=3),
    DiscardRule.AUTHENTICATION.value: bfd_bytes(flags="A", optional_auth=b"\x01\x05\x01ab"),
    DiscardRule.POLL_AND_FINAL.value: bfd_bytes(flags="PF"),
}


def send_from(
    link: PeeringLink, src: str, dst: str, ttl: int, payloads: list[bytes], port: int = 3784
) -> None:
    argv = [sys.executable, "-m", "tests.bfd.send_raw", src, dst, str(port), str(ttl)]
    argv += [p.hex() for p in payloads]
    subprocess.run(
        link.router.argv(argv),
        check=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
        capture_output=True,
    )


@pytest.mark.netns
@pytest.mark.parametrize("family", [4, 6])
def test_malformed_packets_are_dropped_and_the_session_stays_up(
    link: PeeringLink, frr_dir: Path, family: int
) -> None:
    node, peer = (link.node_v4, link.router_v4) if family == 4 else (link.node_v6, link.router_v6)
    frr = start_frr(link, frr_dir, node, bfd_transmit_ms=100, bfd_receive_ms=100)

    async def scenario() -> None:
        sessions, bfd = await up_with_frr(link, frr, peer, node, FAST)
        try:
            assert sessions.bfd_service is not None
            stats = sessions.bfd_service.stats
            before = dict(stats.dropped)
            await asyncio.to_thread(send_from, link, peer, node, 255, list(MALFORMED.values()))
            await until(
                lambda: all(stats.dropped.get(r, 0) > before.get(r, 0) for r in MALFORMED),
                10,
                "every malformed packet counted",
            )
            # A packet that would take the session Down (state Down, our discriminator),
            # from FRR's address but with TTL 254: not from the link, dropped (RFC 5881 GTSM).
            hostile = bfd_bytes(
                sta=1,
                my_discriminator=bfd.session.remote_discriminator,
                your_discriminator=bfd.session.my_discriminator,
            )
            rule = "TTL not 255 on the single-hop port"
            await asyncio.to_thread(send_from, link, peer, node, 254, [hostile])
            await until(lambda: stats.dropped.get(rule, 0) >= 1, 10, "the TTL 254 packet dropped")
            # A bounded burst of random datagrams (some decode; none from a known discriminator)
            rng = random.Random(14)
            noise = [rng.randbytes(rng.randint(0, 48)) for _ in range(200)]
            await asyncio.to_thread(send_from, link, peer, node, 255, noise)
            await asyncio.sleep(0.5)
            assert bfd.session.state is BfdState.UP
            assert bfd.session.counters.down_events == 0
            (session,) = sessions.sessions.values()
            assert session.stats.up and session.stats.established_count == 1
            assert frr.bfd_peer(node).get("status") == "up"
        finally:
            await sessions.close_all()

    run(scenario())


def test_decoder_fuzz_is_bounded_and_agrees_with_scapy() -> None:
    """Random bytes and bit-flipped valid packets: decode returns a packet or raises
    DiscardedError, nothing else; what it accepts scapy reads the same way, and re-encoding
    gives the same mandatory section (with the length 24 we always send)."""
    rng = random.Random(5880)
    valid = encode(ControlPacket(BfdState.UP, 0x01020304, 0x0A0B0C0D, 100_000, 100_000, 3))
    accepted = 0
    for i in range(FUZZ_COUNT):
        if i % 2:
            data = rng.randbytes(rng.randint(0, 40))
        else:
            flipped = bytearray(valid + rng.randbytes(rng.choice((0, 0, 4))))
            for _ in range(rng.randint(1, 4)):
                flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
            data = bytes(flipped)
        try:
            packet = decode(data)
        except DiscardedError:
            continue
        accepted += 1
        seen = BFD(data[:24])
        assert (seen.version, seen.sta, seen.detect_mult) == (1, packet.state, packet.detect_mult)
        assert (seen.my_discriminator, seen.your_discriminator) == (
            packet.my_discriminator,
            packet.your_discriminator,
        )
        assert (seen.min_tx_interval, seen.min_rx_interval) == (
            packet.desired_min_tx,
            packet.required_min_rx,
        )
        assert 24 <= seen.len <= len(data) and seen.detect_mult > 0
        assert not seen.flags.M and not seen.flags.A
        assert encode(packet) == data[:3] + bytes([24]) + data[4:24]  # all but the length
    assert accepted > 100  # the flips kept enough packets valid to test acceptance

"""`BfdPeer` and `BfdService` with stand-in sockets (no namespace needed): the packet counter
the `metallb_bfd_control_packet_output` metric shows counts packets that left, as FRR's
`control-packet-output` does (bfdd counts a packet only once its send succeeded); a flood of
strangers' packets leaves no state behind."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import random
import socket
import tracemalloc
from collections.abc import Callable

from metallb_py.bfd.packet import ControlPacket, State, encode
from metallb_py.bfd.session import Settings
from metallb_py.bfd.transport import SINGLE_HOP_PORT, BfdPeer, BfdService, ReceiveStats

SETTINGS = Settings(desired_min_tx=100_000, required_min_rx=100_000, detect_mult=3)


class FailingSocket:
    """A sending socket whose sends fail while `down` is set, and are recorded otherwise."""

    def __init__(self) -> None:
        self.down = False
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> int:
        if self.down:
            raise OSError(errno.ENETUNREACH, "Network is unreachable")
        self.sent.append(data)
        return len(data)

    def close(self) -> None:
        pass


class StubService:
    """What `BfdPeer` asks of its service."""

    def __init__(self, sock: FailingSocket) -> None:
        self.loop = asyncio.get_running_loop()
        self.stats = ReceiveStats()
        self._sock = sock

    def new_discriminator(self) -> int:
        return 0x1234

    def run_in(self, make: Callable[[], socket.socket]) -> FailingSocket:
        return self._sock


def test_failed_sends_are_not_counted_as_output() -> None:
    async def scenario() -> None:
        sock = FailingSocket()
        peer = BfdPeer(
            StubService(sock),  # type: ignore[arg-type]
            ipaddress.ip_address("192.0.2.1"),
            None,
            False,
            SETTINGS,
            254,
            lambda *_: None,
        )
        try:
            assert len(sock.sent) == 1  # the first Down goes out at once
            assert peer.session.counters.packets_out == 1
            sock.down = True
            await asyncio.sleep(2.1)  # slow start: one packet every 0.75-1 s
            assert peer.send_errors >= 2
            assert peer.session.counters.packets_out == len(sock.sent) == 1
            sock.down = False
            await asyncio.sleep(1.1)
            assert peer.session.counters.packets_out == len(sock.sent) >= 2
        finally:
            peer.close()

    asyncio.run(scenario())


def test_a_flood_of_strangers_leaves_no_state_behind() -> None:
    """10,000 well-formed packets with random Your Discriminators from the peer's address,
    and packets naming our discriminator from an address that is no peer of ours: all
    dropped by reason, the session untouched, and no state kept per packet (the drop table
    has one entry per reason; memory flat)."""

    async def scenario() -> None:
        service = BfdService(lambda make: FailingSocket())  # type: ignore[arg-type,return-value]
        peer = BfdPeer(
            service,
            ipaddress.ip_address("192.0.2.1"),
            None,
            False,
            SETTINGS,
            254,
            lambda *_: None,
        )
        service.peers.append(peer)
        mine = peer.session.my_discriminator
        rng = random.Random(5880)

        def flood(count: int) -> None:
            for _ in range(count):
                your = rng.randrange(1, 1 << 32)
                if your == mine:
                    continue
                wire = encode(ControlPacket(State.UP, rng.randrange(1, 1 << 32), your, 1, 1, 3))
                service._datagram(wire, 255, "192.0.2.1", SINGLE_HOP_PORT)

        try:
            flood(1_000)  # warm-up: every lazily built thing exists after it
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            flood(10_000)
            grown = tracemalloc.get_traced_memory()[0] - before
            tracemalloc.stop()
            assert grown < 64 * 1024, grown
            stranger = encode(ControlPacket(State.DOWN, 9, mine, 1_000_000, 100_000, 3))
            for source in ("192.0.2.99", "2001:db8::99", "198.51.100.1"):
                service._datagram(stranger, 255, source, SINGLE_HOP_PORT)
            assert list(service.stats.dropped) == ["no session for this peer and discriminator"]
            assert peer.session.counters.packets_in == 0
            assert peer.session.remote_discriminator == 0
            assert peer.session.state is State.DOWN
        finally:
            peer.close()

    asyncio.run(scenario())

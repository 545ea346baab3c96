"""`BfdPeer` with a sending socket that fails (no namespace needed): the packet counter the
`metallb_bfd_control_packet_output` metric shows counts packets that left, as FRR's
`control-packet-output` does (bfdd counts a packet only once its send succeeded)."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from collections.abc import Callable

from metallb_py.bfd.session import Settings
from metallb_py.bfd.transport import BfdPeer, ReceiveStats

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

"""A hand-made BGP peer for tests: one script per accepted connection, so a test can make the
session meet exactly the malformed input it wants and watch what comes back.

The peer is independent of the codec under test: it sends messages built with scapy (or written
byte by byte) and reads the session's messages with scapy (`tests/bgp/peer_wire.py`)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tests.bgp.peer_wire import (
    KEEPALIVE,
    GracefulRestartCap,
    Seen,
    SeenKeepalive,
    SeenNotification,
    SeenOpen,
    SeenUpdate,
    open_message,
    read_message,
)

Script = Callable[["PeerConn"], Awaitable[None]]


@dataclass
class PeerConn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    received: list[Seen] = field(default_factory=list)

    async def read(self, timeout: float = 10.0) -> Seen:
        async with asyncio.timeout(timeout):
            header = await self.reader.readexactly(19)
            length = int.from_bytes(header[16:18], "big")  # RFC 4271 4.1: after the marker
            body = await self.reader.readexactly(length - 19)
        msg = read_message(header + body)
        self.received.append(msg)
        return msg

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def expect_open(self) -> SeenOpen:
        msg = await self.read()
        assert isinstance(msg, SeenOpen), msg
        return msg

    async def establish(
        self,
        asn: int = 64500,
        hold: int = 90,
        bgp_id: str = "192.0.2.1",
        graceful_restart: GracefulRestartCap | None = None,
    ) -> SeenOpen:
        """Play a well-behaved peer up to Established."""
        their_open = await self.expect_open()
        self.send(open_message(asn, hold, bgp_id, graceful_restart=graceful_restart))
        self.send(KEEPALIVE)
        msg = await self.read()
        assert isinstance(msg, SeenKeepalive), msg
        return their_open

    async def until_end_of_rib(self, families: int = 2, timeout: float = 10.0) -> None:
        """Read the session's initial table up to its End-of-RIB markers (one per family)."""
        async with asyncio.timeout(timeout):
            while (
                sum(isinstance(x, SeenUpdate) and x.is_end_of_rib for x in self.received) < families
            ):
                await self.read(timeout)

    async def until_notification(self, timeout: float = 10.0) -> SeenNotification:
        """Skip UPDATEs/KEEPALIVEs until the session's NOTIFICATION arrives."""
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.read(timeout)
                if isinstance(msg, SeenNotification):
                    return msg

    async def until_eof(self, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while await self.reader.read(4096):
                pass

    def close(self) -> None:
        self.writer.transport.abort()


class ScriptedPeer:
    """Listens on a given socket; connection i runs scripts[i], later ones `default`."""

    def __init__(self, scripts: list[Script], default: Script | None = None) -> None:
        self.scripts = list(scripts)
        self.default = default or hold_established
        self.connections = 0
        self.errors: list[BaseException] = []
        self.done: list[asyncio.Event] = [asyncio.Event() for _ in range(len(scripts) + 1)]
        self.server: asyncio.Server | None = None

    async def start(self, sock: socket.socket) -> None:
        sock.listen(8)
        self.server = await asyncio.start_server(self._handle, sock=sock)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self.connections
        self.connections += 1
        script = self.scripts[index] if index < len(self.scripts) else self.default
        conn = PeerConn(reader, writer)
        try:
            await script(conn)
        except Exception as exc:
            self.errors.append(exc)
        finally:
            conn.close()
            if index < len(self.done):
                self.done[index].set()

    async def wait_connections(self, n: int, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while self.connections < n:
                await asyncio.sleep(0.01)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def hold_established(conn: PeerConn) -> None:
    await conn.establish()
    await conn.until_eof(timeout=3600)

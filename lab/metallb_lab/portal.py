"""Reach a TCP port on the host's loopback from inside network namespaces.

Speakers in the lab and in tests run inside node namespaces, while the test API server runs on
the host's 127.0.0.1. Rather than adding addresses or routes to the host, a portal process
opens a listening socket *inside* each namespace (a socket keeps the namespace it was created
in, so the process switches into the namespace with setns(2) just for that call) and forwards
each connection to the target on the host's loopback. Only loopback traffic is involved.

    python -m metallb_lab.portal --target 127.0.0.1:PORT --listen NS=127.0.0.1:6443 ...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import socket
import sys
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Run the body with this thread in network namespace `name` (from `ip netns add`)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


def listen_in(namespace: str, host: str, port: int) -> socket.socket:
    with in_netns(namespace):
        sock = socket.create_server((host, port), reuse_port=False)
    sock.setblocking(False)
    return sock


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def serve(target: tuple[str, int], listeners: list[socket.socket]) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    servers = [await asyncio.start_server(handle, sock=s) for s in listeners]
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True, help="host:port on the host's loopback")
    parser.add_argument("--listen", action="append", default=[], help="NS=host:port (repeat)")
    args = parser.parse_args(argv)
    target = _address(args.target)
    if not target[0].startswith("127.") and target[0] != "::1":
        parser.error("the target must be a loopback address")
    listeners = []
    for spec in args.listen:
        ns, _, addr = spec.partition("=")
        listeners.append(listen_in(ns, *_address(addr)))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(target, listeners))
    return 0


if __name__ == "__main__":
    sys.exit(main())

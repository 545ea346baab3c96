"""The lab's backend: answers every HTTP request with its node's name.

One process per node namespace listens on the Service IPs (configured on `lo`), so the client
sees which node the layer2 owner is by the body it gets back. Any request line is answered;
nothing is parsed beyond the end of the headers.

    python -m metallb_lab.lab.backend --name n1 --listen 192.0.2.100:80 --listen [2001:db8::100]:80
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys

MAX_HEADER = 16384
READ_TIMEOUT = 5.0


def response(name: str) -> bytes:
    body = f"{name}\n".encode()
    head = (
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"bad --listen {text!r}: want HOST:PORT or [V6]:PORT")
    return host.strip("[]"), int(port)


async def serve(name: str, addresses: list[tuple[str, int]]) -> None:
    payload = response(name)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            writer.write(payload)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError):
                writer.close()

    servers = []
    for host, port in addresses:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(512)
        servers.append(await asyncio.start_server(handle, sock=sock, limit=MAX_HEADER))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"backend {name} listening on {addresses}", flush=True)
    await stop.wait()
    for server in servers:
        server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True, help="answered in every response body")
    parser.add_argument("--listen", action="append", default=[], help="HOST:PORT (repeat)")
    args = parser.parse_args(argv)
    try:
        addresses = [parse_listen(a) for a in args.listen]
    except ValueError as e:
        parser.error(str(e))
    if not addresses:
        parser.error("at least one --listen is needed")
    try:
        asyncio.run(serve(args.name, addresses))
    except OSError as e:
        print(f"backend {args.name}: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

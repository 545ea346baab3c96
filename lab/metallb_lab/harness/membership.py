"""`python -m metallb_lab.harness.membership`: one membership instance without Kubernetes, for
tests and debugging (peers given on the command line, status written to a JSON file on every
change). The transport itself is `metallb_py.speaker.membership`."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import signal
import time

import click

from metallb_py.speaker.heartbeat import Timing, View
from metallb_py.speaker.membership import DEFAULT_PORT, SECRET_ENV, Membership


def _write_status(path: str, membership: Membership, view: View) -> None:
    status = {
        "node": membership.node,
        "live": sorted(view.live_nodes),
        "minority": view.in_minority,
        "settled": view.settled,
        "alive": view.alive,
        "known": view.known,
        "leased": view.leased,
        "may_answer": view.may_answer,
        "link_up": view.link_up,
        "changed_at": time.monotonic(),
        "stats": dict(membership.stats),
    }
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(status, f)
    os.replace(tmp, path)


def _parse_peer(text: str) -> tuple[str, str]:
    node, sep, address = text.partition("=")
    if not sep or not node or not address:
        raise click.BadParameter(f"{text!r}: expected NODE=ADDRESS")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise click.BadParameter(f"{address!r} is not an IP address") from None
    return node, address


async def _serve(
    membership: Membership, status_file: str | None, duration: float | None, peers: dict[str, str]
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if status_file is not None:
        path = status_file
        membership.on_change = lambda view: _write_status(path, membership, view)
    await membership.start()
    membership.set_peers(peers)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), duration)
    await membership.stop()


@click.command()
@click.option("--node", required=True, help="This speaker's node name.")
@click.option("--bind", "bind_host", default="", help="Bind address (default: all, dual-stack).")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.option("--peer", "peers", multiple=True, help="NODE=ADDRESS, repeatable.")
@click.option("--interval", default=Timing().interval, show_default=True, type=float)
@click.option("--dead-after", default=Timing().dead_after, show_default=True, type=float)
@click.option("--status-file", default=None, help="JSON status, rewritten on every change.")
@click.option("--duration", default=None, type=float, help="Exit after this many seconds.")
def main(
    *,
    node: str,
    bind_host: str,
    port: int,
    peers: tuple[str, ...],
    interval: float,
    dead_after: float,
    status_file: str | None,
    duration: float | None,
) -> None:
    """Run one membership instance (secret from METALLB_ML_SECRET_KEY)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    membership = Membership(
        node,
        secret=os.environ.get(SECRET_ENV) or None,
        bind_host=bind_host,
        port=port,
        timing=Timing(interval=interval, dead_after=dead_after),
    )
    asyncio.run(_serve(membership, status_file, duration, dict(map(_parse_peer, peers))))


if __name__ == "__main__":
    main()

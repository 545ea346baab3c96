"""`python -m metallb_lab.harness.layer2`: the layer2 engine alone, driven by line commands
on stdin.

For tests, benchmarks and debugging on a node (or in a namespace) without Kubernetes. Each
command gets one JSON line on stdout; the first line, `{"ready": ...}`, says the responders are up.

    announce KEY IP [IP ...]   announce exactly these IPs for KEY
    withdraw KEY               stop announcing KEY
    refresh IP                 re-run the gratuitous schedule for IP
    block IP / unblock IP      refuse / allow answers for IP through the gate (as the speaker's
                               layer2 lease does), without withdrawing it
    scan                       rescan interfaces now
    state                      announced IPs, placement, responders, joined NDP groups
    stats                      the counters, and why frames were ignored
    quit                       exit (so does end of input, SIGTERM and SIGINT)
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import signal
import sys
import threading
from typing import Any

import click

from metallb_py.layer2.announcer import SCAN_INTERVAL, Announcer
from metallb_py.layer2.responder import Layer2Error


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, sort_keys=True) + "\n")
    sys.stdout.flush()


def describe(announcer: Announcer) -> dict[str, Any]:
    """A JSON-friendly picture of the engine's state."""
    return {
        "services": {k: sorted(map(str, v)) for k, v in announcer.services().items()},
        "placement": {str(ip): sorted(names) for ip, names in announcer.placement().items()},
        "arp": {name: sorted(r.targets.values()) for name, r in announcer.arp.items()},
        "ndp": {name: sorted(r.targets.values()) for name, r in announcer.ndp.items()},
        "groups": {
            name: sorted(str(ipaddress.IPv6Address(g)) for g in r.joined_groups())
            for name, r in announcer.ndp.items()
        },
    }


def counters(announcer: Announcer) -> dict[str, Any]:
    responders = [*announcer.arp.values(), *announcer.ndp.values()]
    return {
        "stats": announcer.stats.snapshot(),
        "ignored": {f"{r.kind}/{r.name}": dict(r.ignored) for r in responders if r.ignored},
        "send_errors": sum(r.send_errors for r in responders),
        "membership_errors": sum(r.membership_errors for r in announcer.ndp.values()),
        "membership_sockets": {name: r.membership_sockets() for name, r in announcer.ndp.items()},
    }


BLOCKED: set[str] = set()
"""IPs the gate refuses (`block` / `unblock`)."""


def gate(ip: str) -> bool:
    return ip not in BLOCKED


def handle(announcer: Announcer, line: str) -> dict[str, Any] | None:
    """Run one command; None means quit."""
    words = line.split()
    if not words:
        return {"ok": True}
    command, args = words[0], words[1:]
    try:
        if command == "announce" and len(args) >= 1:
            announcer.announce(args[0], [ipaddress.ip_address(a) for a in args[1:]])
        elif command == "withdraw" and len(args) == 1:
            announcer.withdraw(args[0])
        elif command == "refresh" and len(args) == 1:
            announcer.refresh(ipaddress.ip_address(args[0]))
        elif command in ("block", "unblock") and len(args) == 1:
            text = str(ipaddress.ip_address(args[0]))
            if command == "block":
                BLOCKED.add(text)
            else:
                BLOCKED.discard(text)
        elif command == "state":
            return {"ok": True, **describe(announcer)}
        elif command == "stats":
            return {"ok": True, **counters(announcer)}
        elif command == "quit":
            return None
        else:
            return {"ok": False, "error": f"unknown command or wrong arguments: {line.strip()}"}
    except ValueError as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": True}


def _pump_stdin(loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[bytes]) -> None:
    """Blocking reads in a daemon thread: works for pipes, files and terminals alike, and
    never holds the process up at exit. Raw `os.read` (not the buffered `sys.stdin`) so that
    interpreter shutdown never waits for a lock this thread holds. b"" means end of input."""
    buffer = b""
    try:
        while chunk := os.read(0, 65536):
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                loop.call_soon_threadsafe(lines.put_nowait, raw + b"\n")
    except OSError:
        pass
    finally:
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(lines.put_nowait, b"")


async def serve(announcer: Announcer) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with announcer:
        lines: asyncio.Queue[bytes] = asyncio.Queue()
        threading.Thread(target=_pump_stdin, args=(loop, lines), daemon=True).start()
        _emit({"ready": True, **describe(announcer)})
        stopped = asyncio.ensure_future(stop.wait())
        try:
            while True:
                read = asyncio.ensure_future(lines.get())
                done, _ = await asyncio.wait({read, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if read not in done:
                    read.cancel()
                    break
                raw = read.result()
                if not raw:
                    break
                line = raw.decode(errors="replace")
                if line.split()[:1] == ["scan"]:
                    await announcer.scan()
                    _emit({"ok": True})
                    continue
                result = handle(announcer, line)
                if result is None:
                    break
                _emit(result)
        finally:
            stopped.cancel()


@click.command()
@click.option("-i", "--interface", "interfaces", multiple=True, help="Only these interfaces.")
@click.option(
    "--all-interfaces/--subnet-interfaces",
    default=False,
    help="Answer on every qualifying interface (upstream) instead of those whose subnet "
    "contains the IP.",
)
@click.option("--scan-interval", type=float, default=SCAN_INTERVAL, show_default=True)
@click.option("-v", "--verbose", count=True)
def main(
    interfaces: tuple[str, ...], all_interfaces: bool, scan_interval: float, verbose: int
) -> None:
    """Run ARP/NDP responders driven by commands on stdin (see the module docstring)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    announcer = Announcer(
        only_interfaces=interfaces or None,
        restrict_to_subnet=not all_interfaces,
        scan_interval=scan_interval,
        gate=gate,
    )
    try:
        asyncio.run(serve(announcer))
    except Layer2Error as exc:
        raise click.ClickException(str(exc)) from None


if __name__ == "__main__":
    main(prog_name="python -m metallb_lab.harness.layer2")

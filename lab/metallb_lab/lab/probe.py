"""Failover probe: a fresh TCP connection + HTTP GET to a Service IP every 10 ms.

Runs inside the client namespace (`ip netns exec CLIENT python -m metallb_lab.lab.probe ...`).
Every `interval` it opens a new connection (each with its own deadline, so one lost SYN never
delays the next probe), sends a GET and reads the answering node's name. It prints one JSON
line `{"event": "ready", ...}` after the first answer, then, once `--settle` answers came from a
node other than the first one (or after `--max-seconds`), one line with every sample. The
data path is measured as a client sees it: the new owner must answer ARP *and* the client's
neighbour cache must move to it (gratuitous ARP), nothing else in the probe refreshes it.

`analyse` (pure) turns samples into the failover gap; `ProbeProcess` runs the probe from the
caller's side (the demo, the failover bench) and collects its lines. Times are CLOCK_MONOTONIC,
shared by every process on the machine whatever its network namespace, so the caller can pass
the moment it crashed the owner.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from metallb_lab.lab import processes
from metallb_lab.lab.commands import python_command, target_of
from metallb_lab.lab.state import LabError

Sample = tuple[float, float, str | None]
"""(sent, finished, answering node or None when the attempt failed or timed out)."""


@dataclass(frozen=True)
class Failover:
    old_owner: str
    new_owner: str | None
    last_old: float
    """Send time of the last probe the old owner answered."""
    first_new: float | None
    """Send time of the first probe the new owner answered."""
    failed: int
    """Probes sent in between that got no answer."""

    @property
    def gap(self) -> float | None:
        """Seconds without answers, as the client saw it (probe resolution: one interval)."""
        return None if self.first_new is None else self.first_new - self.last_old

    def since(self, moment: float) -> float | None:
        return None if self.first_new is None else self.first_new - moment


def analyse(samples: Sequence[Sample], crash_at: float | None = None) -> Failover | None:
    """The failover in `samples`: the owner before `crash_at` (else the first to answer) and
    the first other node to answer after its last answer. None without any answer."""
    answered = sorted((s for s in samples if s[2] is not None), key=lambda s: s[0])
    if not answered:
        return None
    before = [s for s in answered if crash_at is not None and s[0] < crash_at]
    old = (before[-1] if before else answered[0])[2]
    assert old is not None
    last_old = max(s[0] for s in answered if s[2] == old)
    after = [s for s in answered if s[0] > last_old and s[2] != old]
    first = after[0] if after else None
    failed = sum(
        1
        for s in samples
        if s[2] is None and s[0] > last_old and (first is None or s[0] < first[0])
    )
    return Failover(
        old_owner=old,
        new_owner=first[2] if first else None,
        last_old=last_old,
        first_new=first[0] if first else None,
        failed=failed,
    )


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median and max of repeated measurements (seconds)."""
    return {"n": len(values), "median": statistics.median(values), "max": max(values)}


async def _attempt(host: str, port: int, timeout: float) -> str | None:
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n")
            data = await reader.read(4096)
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n")[0]:
            return None
        return body.decode(errors="replace").strip() or None
    except (TimeoutError, OSError):
        return None
    finally:
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()


async def probe(
    host: str, port: int, interval: float, timeout: float, max_seconds: float, settle: int
) -> list[Sample]:
    samples: list[Sample] = []
    first: str | None = None
    others = 0
    done = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()

    async def one(sent: float) -> None:
        nonlocal first, others
        try:
            node = await _attempt(host, port, timeout)
        except asyncio.CancelledError:  # still waiting when the probe ends: unanswered
            samples.append((sent, time.monotonic(), None))
            raise
        samples.append((sent, time.monotonic(), node))
        if node is None:
            return
        if first is None:
            first = node
            print(json.dumps({"event": "ready", "node": node, "t": sent}), flush=True)
        elif node != first:
            others += 1
            if others >= settle:
                done.set()

    start = time.monotonic()
    next_at = start
    while not done.is_set() and time.monotonic() - start < max_seconds:
        task = asyncio.create_task(one(time.monotonic()))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        next_at += interval
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), max(0.0, next_at - time.monotonic()))
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return samples


class ProbeProcess:
    """`metallb_lab.lab.probe` running in the client namespace against one Service IP."""

    def __init__(self, lab_id: str, client_netns: str, ip: str, **options: float) -> None:
        args = [f"--target={target_of(ip)}"]
        for key, value in options.items():
            args.append(f"--{key.replace('_', '-')}={value}")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", client_netns, *python_command("metallb_lab.lab.probe", *args)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, processes.MARKER_ENV: lab_id},
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.lines.put(json.loads(line))
        self.lines.put({"event": "exit"})

    def wait(self, event: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if msg.get("event") == event:
                return msg
            if msg.get("event") == "exit":
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise LabError(f"the probe exited before {event!r}: {err.strip()}")
        raise LabError(f"the probe sent no {event!r} within {timeout:.0f} s")

    def samples(self, timeout: float) -> list[tuple[float, float, str | None]]:
        done = self.wait("done", timeout)
        return [(float(a), float(b), c) for a, b, c in done["samples"]]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True, help="IP:PORT or [IPv6]:PORT")
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--timeout", type=float, default=1.0, help="per probe, seconds")
    parser.add_argument("--max-seconds", type=float, default=30.0)
    parser.add_argument(
        "--settle", type=int, default=5, help="stop after this many answers from a new node"
    )
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    if not host or not port.isdigit():
        parser.error("--target must be IP:PORT")
    if not 0.001 <= args.interval <= 1 or not 0 < args.max_seconds <= 600:
        parser.error("--interval must be in [0.001, 1] and --max-seconds in (0, 600]")
    samples = asyncio.run(
        probe(
            host.strip("[]"),
            int(port),
            args.interval,
            args.timeout,
            args.max_seconds,
            args.settle,
        )
    )
    print(json.dumps({"event": "done", "samples": samples}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

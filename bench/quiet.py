"""Waiting for a quiet machine before a timed measurement: other engineers run test suites on
the same cores, and a timing bench on a busy machine measures the machine."""

from __future__ import annotations

import os
import time

from metallb_lab.progress import Progress

QUIET_LOAD = 1.5
"""1-minute load average below which a measurement starts."""
QUIET_WAIT = 300.0
"""How long a bench waits for that by default before measuring anyway."""


def wait_quiet(progress: Progress, limit: float = QUIET_LOAD, timeout: float = QUIET_WAIT) -> float:
    """Wait (at most `timeout`) until the 1-minute load is below `limit`; the load then, which
    the report prints (above the limit when the wait timed out)."""
    start = time.monotonic()
    next_say = start
    while (load := os.getloadavg()[0]) >= limit:
        waited = time.monotonic() - start
        if waited >= timeout:
            progress.say(f"load {load:.2f} still >= {limit} after {waited:.0f} s: measuring")
            return load
        if time.monotonic() >= next_say:
            progress.say(
                f"waiting for a quiet machine: load {load:.2f} >= {limit} ({waited:.0f} s)"
            )
            next_say = time.monotonic() + 10
        time.sleep(1.0)
    return load

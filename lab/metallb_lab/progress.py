"""Progress lines for long work (benches, the lab): a run never stays quiet for long.

`step()` prints what starts and, while it runs, `still <step> (N s)` every `every` seconds from a
daemon thread, whatever the work is blocked in; `count()` reports done/total at most every
`every` seconds. Lines go to stderr by default, so a bench's stdout stays its result (JSON or
a table); the lab's commands pass their own `write`.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator

EVERY = 5.0
"""Seconds: the longest a run stays quiet."""


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Progress:
    """Lines `<name>: <text>` (just `<text>` without a name) through `write`."""

    def __init__(
        self, name: str = "", every: float = EVERY, write: Callable[[str], None] = _stderr
    ) -> None:
        self.name = name
        self.every = every
        self.write = write
        self._lock = threading.Lock()
        self._step: str | None = None
        self._step_started = 0.0
        self._last_line = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def say(self, text: str) -> None:
        with self._lock:
            self.write(f"{self.name}: {text}" if self.name else text)
            self._last_line = time.monotonic()

    def count(self, done: int, total: int, what: str) -> None:
        """`what: done/total`, unless a line went out less than `every` seconds ago (the last
        one, done == total, always goes out)."""
        if done >= total or time.monotonic() - self._last_line >= self.every:
            self.say(f"{what}: {done}/{total}")

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        """Announce `what`; until the block ends, a `still ...` line whenever it is quiet for
        `every` seconds."""
        self.say(what)
        with self._lock:
            self._step, self._step_started = what, time.monotonic()
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._step = None

    def _watch(self) -> None:
        while not self._stop.wait(self.every / 5):
            with self._lock:
                step, started, quiet = self._step, self._step_started, self._last_line
            now = time.monotonic()
            if step is not None and now - quiet >= self.every:
                self.say(f"still {step} ({now - started:.0f} s)")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)

"""SIGTERM and SIGINT end a long-running lab program through its clean-up code.

Python dies on SIGTERM without running `finally` blocks or leaving `with` blocks, so a bench or a
lab command stopped by `timeout` or `kill` would leave its namespaces and processes behind
(children started in a session of their own never see the signal). Inside `stop_on_signals()`
both signals raise `Stopped` in the main thread instead. `Stopped` is a BaseException, so
`except Exception` handlers let it through to the `finally` blocks and `with` exits that clean up.
The first signal starts the clean-up; later ones are ignored until it is done (every clean-up is
bounded in time), so a second Ctrl-C cannot cut it short; clean-up code itself runs with
signals deferred (`signals_deferred`). docs/lab.md, "Stopping".
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT)
stopping = threading.Event()
"""Set by the first signal: waits running in worker threads, which never see `Stopped` raised,
give up early through `raise_if_stopping()` (netns.wait_for does)."""
_stopped_by: list[int] = []


class Stopped(BaseException):
    """A SIGTERM or SIGINT arrived; raised where the main thread was."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"stopped by {self.name}")

    @property
    def exit_code(self) -> int:
        """What a shell reports for a process killed by the signal: 128 + its number."""
        return 128 + self.signum


def _ignore(signum: int, frame: FrameType | None) -> None:
    """A later signal while cleaning up: the clean-up finishes first."""


def _stop(signum: int, frame: FrameType | None) -> None:
    for sig in SIGNALS:
        signal.signal(sig, _ignore)
    _stopped_by.append(signum)
    stopping.set()
    raise Stopped(signum)


def raise_if_stopping() -> None:
    """In a loop that may run in a worker thread: end it once a signal stopped the program."""
    if stopping.is_set():
        raise Stopped(_stopped_by[0] if _stopped_by else signal.SIGTERM)


@contextlib.contextmanager
def _handled_by(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, earlier in previous.items():
            signal.signal(sig, earlier)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGINT raise `Stopped` in the main thread while the block runs."""
    try:
        with _handled_by(_stop):
            yield
    finally:
        stopping.clear()
        _stopped_by.clear()


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """For clean-up that must not be cut short (removing namespaces, a lab): a SIGTERM or
    SIGINT during the block is held and delivered again once the block is done, to whatever
    handles it then (`stop_on_signals`, pytest, or the default). Outside the main thread,
    where handlers cannot be set, the block just runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    try:
        with _handled_by(lambda signum, frame: held.append(signum)):
            yield
    finally:
        if held:
            signal.raise_signal(held[0])


def run_stoppable(name: str, main: Callable[[], int | None]) -> int:
    """Run a program's `main` under `stop_on_signals`: its exit status, or, when a signal
    stopped it, one line on stderr once its clean-up ran and 128 + the signal's number."""
    with stop_on_signals():
        try:
            return main() or 0
        except Stopped as stop:
            print(f"{name}: {stop}; cleaned up", file=sys.stderr, flush=True)
            return stop.exit_code

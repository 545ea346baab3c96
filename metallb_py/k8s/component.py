"""What the controller and the speaker processes share: the hand-off from informer threads to
the event loop, MetalLB's outcome handling of a processed queue item, and running until a
signal. Each process keeps only its own decisions."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

from metallb_py.k8s.workqueue import Outcome, WorkQueue
from metallb_py.metrics.metallb import K8sClientMetrics

K = TypeVar("K", bound=Hashable)


def call_in_loop(
    loop: asyncio.AbstractEventLoop | None, fn: Callable[..., object], *args: object
) -> None:
    """Run `fn(*args)` on the loop's thread; a no-op before start and after shutdown."""
    if loop is not None and not loop.is_closed():
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(fn, *args)


def finish_item(
    queue: WorkQueue[K],
    metrics: K8sClientMetrics,
    item: K,
    outcome: Outcome,
    reprocess_all: Callable[[], None],
) -> None:
    """Spec section 0: count the update; retry errors with backoff, forget the rest; on
    reprocess-all re-queue every known object."""
    metrics.updates.inc()
    if outcome is Outcome.ERROR:
        metrics.update_errors.inc()
        queue.add_rate_limited(item)
    else:
        queue.forget(item)
    if outcome is Outcome.REPROCESS_ALL:
        reprocess_all()
    queue.done(item)


def run_until_signal(run: Callable[[], Awaitable[None]], stop: Callable[[], None]) -> None:
    """`asyncio.run(run())`, with SIGTERM/SIGINT calling `stop` for a clean shutdown."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        await run()

    asyncio.run(main())

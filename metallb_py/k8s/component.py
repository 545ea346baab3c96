"""What the controller and the speaker processes share: the hand-off from informer threads to
the event loop, MetalLB's outcome handling of a processed queue item, and running until a
signal. Each process keeps only its own decisions."""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import gc
import logging
import os
import queue
import signal
import threading
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from metallb_py.k8s.outcome import Outcome
from metallb_py.k8s.workqueue import WorkQueue
from metallb_py.logs import kv
from metallb_py.metrics.metallb import K8sClientMetrics

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

log = logging.getLogger(__name__)

STOP_GRACE = 0.5
"""Seconds `run` has after SIGTERM to finish on its own (the speaker's goodbyes take
milliseconds) before it is cancelled. The Pods get 0 s (controller) and 2 s (speaker) before
SIGKILL; the rest of the second is for closing informers, events and the metrics server."""
CANCEL_WAIT = 0.1
"""Seconds the tasks still pending when `run` ended get to react to their cancellation."""


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
    """MetalLB's handling of a processed item: count the update; retry errors with backoff,
    forget the rest; on reprocess-all re-queue every known object (`outcome.Outcome`)."""
    metrics.updates.inc()
    if outcome is Outcome.ERROR:
        metrics.update_errors.inc()
        queue.add_rate_limited(item)
    else:
        queue.forget(item)
    if outcome is Outcome.REPROCESS_ALL:
        reprocess_all()
    queue.done(item)


def run_until_signal(
    run: Callable[[], Awaitable[None]], stop: Callable[[], None], grace: float = STOP_GRACE
) -> None:
    """Run `run()` on a new event loop until it returns; SIGTERM/SIGINT call `stop`.

    Unlike `asyncio.run`, the way out is bounded: `run` is cancelled `grace` seconds after the
    first signal (at once on a second one), the tasks left over get CANCEL_WAIT seconds, and
    calls still blocked in worker threads (`asyncio.to_thread`: an API request to a hung
    server) are abandoned, not joined: their threads are daemons (`DaemonThreadExecutor`).
    Returns normally after a signal, even when `run` had to be cancelled.
    """
    # The process ends after this: skip the interpreter's final garbage collection, which
    # takes 0.2-0.3 s with the kubernetes client loaded (the memory goes back to the OS anyway;
    # nothing here relies on a finalizer of cyclic garbage to flush or release anything).
    atexit.unregister(gc.freeze)  # once is enough, however often this runs (tests)
    atexit.register(gc.freeze)
    loop = asyncio.new_event_loop()
    executor = DaemonThreadExecutor(thread_name_prefix="blocking")
    loop.set_default_executor(executor)
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(_run_and_watch_signals(run, stop, grace))
    finally:
        try:
            _cancel_leftover_tasks(loop)
            loop.run_until_complete(_bounded(loop.shutdown_asyncgens()))
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
            asyncio.set_event_loop(None)
            loop.close()


async def _run_and_watch_signals(
    run: Callable[[], Awaitable[None]], stop: Callable[[], None], grace: float
) -> None:
    async def body() -> None:
        await run()

    loop = asyncio.get_running_loop()
    task = asyncio.create_task(body(), name="run")
    signals = 0

    def give_up() -> None:
        if not task.done():
            log.warning(
                "shutdown: not finished %.1f s after the signal; cancelling what is left",
                grace,
                extra=kv(op="shutdown"),
            )
            task.cancel()

    def on_signal(sig: signal.Signals) -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            give_up()
            return
        log.info("shutdown: %s received", sig.name, extra=kv(op="shutdown"))
        stop()
        loop.call_later(grace, give_up)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    await asyncio.wait({task})
    if task.cancelled() and signals:
        return
    task.result()  # re-raise what ended `run` (a start-up error)


async def _bounded(aw: Awaitable[None]) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(aw, CANCEL_WAIT)


def _cancel_leftover_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks `run` left behind and give them CANCEL_WAIT seconds to unwind."""
    tasks = asyncio.all_tasks(loop)
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    done, pending = loop.run_until_complete(asyncio.wait(tasks, timeout=CANCEL_WAIT))
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.warning(
                "task %s failed while stopping: %r",
                task.get_name(),
                task.exception(),
                extra=kv(op="shutdown"),
            )
    if pending:
        log.warning(
            "shutdown: %d task(s) did not stop in time: %s",
            len(pending),
            ", ".join(sorted(t.get_name() for t in pending)),
            extra=kv(op="shutdown"),
        )


class DaemonThreadExecutor(concurrent.futures.ThreadPoolExecutor):
    """A thread pool (the event loop's default executor, hence `asyncio.to_thread`) whose
    workers are daemon threads.

    The stdlib's workers are joined when the interpreter exits, so one call blocked in the API
    (a hung server, a 30 s request timeout) would hold a stopping process for its whole
    timeout. Nothing needs such an answer at exit; the calls made this way are single requests,
    so abandoning one leaves no half-written state. Subclassing keeps `set_default_executor`
    happy; only the public `submit`/`shutdown` are replaced.
    """

    def __init__(self, max_workers: int | None = None, thread_name_prefix: str = "") -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self._limit = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self._prefix = thread_name_prefix or "daemon-pool"
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._jobs.put(_Job(future, fn, args, kwargs))
            if not self._idle.acquire(blocking=False) and len(self._workers) < self._limit:
                worker = threading.Thread(
                    target=self._work, name=f"{self._prefix}_{len(self._workers)}", daemon=True
                )
                worker.start()
                self._workers.append(worker)
        return future

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                self._jobs.put(None)  # wake the next worker too
                return
            job.run()
            del job
            self._idle.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            if cancel_futures:
                while True:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is not None:
                        job.future.cancel()
            self._jobs.put(None)
        if wait:
            for worker in self._workers:
                worker.join()


class _Job:
    __slots__ = ("args", "fn", "future", "kwargs")

    def __init__(
        self,
        future: concurrent.futures.Future[Any],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.future, self.fn, self.args, self.kwargs = future, fn, args, kwargs

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)

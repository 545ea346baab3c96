"""What the controller and the speaker processes share: their frame (`ConfigProcess`: API
client, metrics and readiness, the work queue, events, and the informers a config is judged
with), the hand-off from informer threads to the event loop, MetalLB's outcome handling of a
processed queue item, and running until a signal. Each process keeps only its own decisions."""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import gc
import itertools
import logging
import os
import queue
import signal
import threading
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kubernetes import client

from metallb_py.config import BgpType
from metallb_py.k8s import accepted
from metallb_py.k8s.informer import Informer, OnChange
from metallb_py.k8s.objects import Obj
from metallb_py.k8s.outcome import Outcome
from metallb_py.k8s.workqueue import WorkQueue
from metallb_py.k8s.writes import EventRecorder
from metallb_py.logs import kv
from metallb_py.metrics import Registry
from metallb_py.metrics.metallb import K8sClientMetrics
from metallb_py.metrics.server import MetricsServer

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

log = logging.getLogger(__name__)

STOP_GRACE = 0.5
"""Seconds `run` has after SIGTERM to finish on its own (the speaker's goodbyes take
milliseconds) before it is cancelled. The Pods get 0 s (controller) and 2 s (speaker) before
SIGKILL; the rest of the second is for closing informers, events and the metrics server."""
CANCEL_WAIT = 0.1
"""Seconds the tasks still pending when `run` ended get to react to their cancellation."""


Item = tuple[str, str]
"""A work-queue item: ("service", "ns/name"), CONFIG_ITEM, or an item of one process's own."""
CONFIG_ITEM: Item = ("config", "")
BLOCKERS_LOGGED = 5
"""A refused config logs one line per attempt naming this many blockers (an event names all)."""
BLOCKER_RECHECK_DELAY = 0.5
"""A refused config is judged again this long after one of its blockers changed: at once in
human terms, yet a mass deletion of blockers costs a couple of attempts a second, not one each."""


@dataclass(frozen=True, kw_only=True)
class ComponentSettings:
    """The flags both processes have; `ControllerSettings` and `SpeakerSettings` add theirs."""

    namespace: str
    config_name: str = "config"
    host: str = ""
    port: int = 7472
    bgp_type: BgpType = BgpType.NATIVE
    enable_pprof: bool = False


S = TypeVar("S", bound=ComponentSettings)


class ConfigProcess(Generic[S]):
    """The frame of the controller and the speaker processes: the API client, the metrics
    server and readiness, one work queue with MetalLB's outcome handling, events, and the
    caches a config is judged with (every Service, the config ConfigMap and the store of the
    last accepted config, `metallb_py.k8s.accepted`).

    Informer threads only enqueue keys (`_enqueue`, a thread-safe hand-off to the loop); the
    process's worker reads objects from the caches. A subclass adds its decisions, its own
    informers (`informers`) and what re-queues every object (`_reprocess_all`); it clears
    `_ready_reason` once it is ready.
    """

    def __init__(
        self,
        settings: S,
        api_client: Any,
        component: str,
        logger: logging.Logger,
        event_host: str = "",
    ) -> None:
        self.settings = settings
        self.api_client = api_client
        self.log = logger
        self.core = client.CoreV1Api(api_client)
        self.registry = Registry()
        self.k8s_metrics = K8sClientMetrics(self.registry)
        self.queue: WorkQueue[Item] = WorkQueue()
        self.events = EventRecorder(self.core, component, host=event_host)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = asyncio.Event()
        self._ready_reason = "informer caches not synced"
        self._blockers: set[str] = set()
        """Services named by the last refused config: their changes retry the config at once."""
        self._last_config_problem = ""
        self._configmap_seen = False
        """A ConfigMap (or a stored config) was ever seen: its absence is then stale."""
        self.configmap_key = f"{settings.namespace}/{settings.config_name}"
        self.store_key = f"{settings.namespace}/{accepted.store_name(settings.config_name)}"
        self.services = Informer(
            "services", self.core.list_service_for_all_namespaces, self._on_service
        )
        self.configmaps = self._one_configmap("configmap", settings.config_name, self._on_configmap)
        self.store = self._one_configmap(
            "accepted-config", accepted.store_name(settings.config_name), self._on_store
        )
        self.metrics_server = MetricsServer(
            self.registry,
            settings.host,
            settings.port,
            readiness=self._readiness,
            enable_pprof=settings.enable_pprof,
        )

    def _one_configmap(self, informer_name: str, name: str, on_change: OnChange) -> Informer:
        return Informer(
            informer_name,
            self.core.list_namespaced_config_map,
            on_change,
            kwargs={
                "namespace": self.settings.namespace,
                "field_selector": f"metadata.name={name}",
            },
        )

    def informers(self) -> list[Informer]:
        """Every informer of the process, started by `_start_informers`, stopped by `close`."""
        return [self.services, self.configmaps, self.store]

    # -- readiness and life cycle ---------------------------------------------------------------

    def _readiness(self) -> tuple[bool, str]:
        """Ready once the subclass cleared `_ready_reason`; "no config yet" is not a readiness
        problem (logs, events and `config_loaded_bool` show it)."""
        if self._ready_reason:
            return False, self._ready_reason
        return True, "ok"

    def _start_serving(self) -> None:
        """The first step of `run`: the loop the informers hand off to, and liveness."""
        self._loop = asyncio.get_running_loop()
        self.metrics_server.start()

    async def _start_informers(self) -> bool:
        """Start every informer and wait until their caches are synced; False when `stop` came
        first."""
        informers = self.informers()
        for informer in informers:
            informer.start()
        while not all(informer.synced for informer in informers):
            if self._stop.is_set():
                return False
            await asyncio.sleep(0.05)
        return True

    async def run(self) -> None:
        """The process from start-up to `stop`."""
        raise NotImplementedError

    def serve(self) -> None:
        """Run until SIGTERM/SIGINT (`run_until_signal`), then close, also when `run` failed
        (a start-up error, re-raised for the caller to report)."""
        try:
            run_until_signal(self.run, self.stop)
        finally:
            self.close()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        for informer in self.informers():
            informer.stop()
        self.events.stop()
        self.metrics_server.stop()

    # -- informer callbacks (informer threads) ------------------------------------------------

    def _enqueue(self, *items: Item) -> None:
        call_in_loop(self._loop, self._add_all, items)

    def _add_all(self, items: tuple[Item, ...]) -> None:
        for item in items:
            self.queue.add(item)

    def _on_service(self, key: str, old: Obj | None, new: Obj | None) -> None:
        self._enqueue(("service", key))

    def _on_configmap(self, key: str, old: Obj | None, new: Obj | None) -> None:
        self._enqueue(CONFIG_ITEM)

    def _on_store(self, key: str, old: Obj | None, new: Obj | None) -> None:
        """The store changed: nothing to do unless the process keeps it (the controller)."""

    # -- the queue ------------------------------------------------------------------------------

    def _reprocess_all(self) -> None:
        for key in self.services.list_keys():
            self.queue.add(("service", key))

    def _finish(self, item: Item, outcome: Outcome) -> None:
        finish_item(self.queue, self.k8s_metrics, item, outcome, self._reprocess_all)
        if item[0] == "service" and item[1] in self._blockers:
            # Judged after the blocker's own change was processed (a deleted one released).
            self.queue.add_after(CONFIG_ITEM, BLOCKER_RECHECK_DELAY)

    # -- config ---------------------------------------------------------------------------------

    @staticmethod
    def _first_blockers(described: Iterable[str]) -> str:
        """What a refusal's log line names: the first BLOCKERS_LOGGED blockers."""
        return "; ".join(itertools.islice(described, BLOCKERS_LOGGED))

    def _read_store(self) -> accepted.StoredConfig:
        """The store at start-up (a garbled one is logged and ignored); a stored config or a
        ConfigMap seen now makes a later absence of the ConfigMap stale."""
        stored = accepted.read_stored(self.store.get(self.store_key), self.settings.bgp_type)
        self._configmap_seen = (
            stored.text is not None or self.configmaps.get(self.configmap_key) is not None
        )
        if stored.problem:
            self.log.warning(
                "ignoring the stored accepted config",
                extra=kv(op="startup", store=self.store_key, error=stored.problem),
            )
        return stored


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

    # The loop would leave SIG_DFL behind; whoever ran us in-process (a test run) gets its own back.
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await asyncio.wait({task})
    finally:
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, handler)
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

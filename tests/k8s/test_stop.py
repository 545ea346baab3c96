"""Stopping is prompt (issue 11): informers, the event recorder, the metrics server and
`run_until_signal` each return within a fraction of a second, also when the API server is
silent or hung, and never wait for an answer nobody needs any more."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import socket
import threading
import time
from types import SimpleNamespace

import pytest
from kubernetes import client

from metallb_lab.apiserver import ApiServer
from metallb_lab.netns import wait_for
from metallb_py.k8s import informer as informer_module
from metallb_py.k8s.component import DaemonThreadExecutor, run_until_signal
from metallb_py.k8s.informer import Informer
from metallb_py.k8s.writes import EventRecorder
from metallb_py.metrics import Registry
from metallb_py.metrics.server import MetricsServer


@pytest.fixture
def api():
    # No bookmarks for a minute: an idle watch stays silent, as against a real API server.
    with ApiServer(bookmark_interval=60) as server:
        yield server


@pytest.fixture
def core(api):
    c = api.client()
    yield client.CoreV1Api(c)
    c.close()


def timed(fn, *args, **kwargs) -> float:
    started = time.monotonic()
    fn(*args, **kwargs)
    return time.monotonic() - started


# --- informer --------------------------------------------------------------------------------


def test_informer_stop_interrupts_a_silent_watch(api, core):
    inf = Informer("services", core.list_service_for_all_namespaces, lambda *a: None)
    inf.start()
    assert inf.wait_synced(10)
    wait_for(lambda: api.watch_count() >= 1, 5, what="the watch")
    time.sleep(0.1)  # the thread is now blocked reading the silent stream
    assert timed(inf.stop, timeout=5) < 0.5
    assert not inf._thread.is_alive()  # it ended (closing its own response), not abandoned


def test_shutting_down_a_response_without_urllib3_shutdown_unblocks_its_reader(api, core):
    """urllib3 before 2.3 has no `HTTPResponse.shutdown`: the socket under http.client's
    response is shut down instead (the pool's connection no longer holds it)."""
    resp = core.list_service_for_all_namespaces(
        watch=True, timeout_seconds=60, _preload_content=False
    )

    def read() -> None:
        with contextlib.suppress(Exception):  # end of stream in the middle of a chunk
            resp._fp.read(1 << 20)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.1)
    assert reader.is_alive()
    informer_module._shutdown(SimpleNamespace(_fp=resp._fp, connection=None))
    reader.join(2)
    assert not reader.is_alive()
    resp.close()


def test_informer_stop_does_not_wait_for_a_hung_request(api, core):
    """A list still waiting for its answer cannot be interrupted: stop() abandons the (daemon)
    thread after its short wait instead of waiting out the request timeout."""
    api.delay(5)
    inf = Informer("services", core.list_service_for_all_namespaces, lambda *a: None)
    inf.start()
    time.sleep(0.2)
    assert timed(inf.stop) < 0.5
    assert inf._thread.daemon
    assert not inf.synced


def test_informer_stop_before_start_returns(core):
    """A process that failed to start closes informers it never started."""
    inf = Informer("services", core.list_service_for_all_namespaces, lambda *a: None)
    assert timed(inf.stop) < 0.1


# --- events ----------------------------------------------------------------------------------


def test_event_recorder_stop_drops_what_it_cannot_send_in_time(api, core):
    obj = api.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "s", "namespace": "default"},
            "spec": {"ports": [{"port": 80}]},
        }
    )
    rec = EventRecorder(core, "metallb-controller")
    api.delay(2)  # the first event hangs in the API server, the others wait behind it
    for i in range(5):
        rec.event(obj, "Normal", "Test", f"event {i}")
    assert timed(rec.stop, timeout=0.2) < 0.5
    api.delay(0)
    # The one in flight lands whole (or not at all); the four behind it are dropped, unsent.
    wait_for(lambda: rec.dropped_at_stop == 4, 5, what="the queued events dropped")
    assert len(api.list("events", "default")) <= 1


# --- metrics server --------------------------------------------------------------------------


def test_metrics_server_stops_at_once_and_frees_its_port():
    srv = MetricsServer(Registry(), "127.0.0.1", 0).start()
    port = srv.port
    assert timed(srv.stop) < 0.2
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


def test_metrics_server_stop_before_start_returns():
    srv = MetricsServer(Registry(), "127.0.0.1", 0)
    assert timed(srv.stop) < 0.2


# --- run_until_signal ------------------------------------------------------------------------


def test_sigterm_returns_without_waiting_for_a_blocked_worker_thread():
    """`run` waits for a call blocked in a worker thread after SIGTERM (a status write to a hung
    API server): it is cancelled after the grace and the thread is abandoned, not joined."""
    release = threading.Event()
    stopped = asyncio.Event()
    stops: list[float] = []
    threads: list[threading.Thread] = []

    def blocked() -> None:
        threads.append(threading.current_thread())
        release.wait(30)

    async def run() -> None:
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
        await stopped.wait()
        await asyncio.to_thread(blocked)

    def stop() -> None:
        stops.append(time.monotonic())
        stopped.set()

    try:
        started = time.monotonic()
        run_until_signal(run, stop, grace=0.3)
        returned = time.monotonic()
        assert len(stops) == 1
        assert 0.3 <= returned - stops[0] < 0.6
        assert returned - started < 1.0
        assert threads and threads[0].is_alive() and threads[0].daemon
    finally:
        release.set()


def test_second_signal_cancels_at_once():
    async def run() -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
        loop.call_later(0.1, os.kill, os.getpid(), signal.SIGINT)
        await asyncio.sleep(30)  # ignores stop()

    assert timed(run_until_signal, run, lambda: None, grace=10) < 1.0


def test_run_errors_are_raised():
    async def run() -> None:
        raise RuntimeError("cannot start")

    with pytest.raises(RuntimeError, match="cannot start"):
        run_until_signal(run, lambda: None)


def test_clean_run_leaves_no_task_behind():
    leftovers: list[asyncio.Task[None]] = []

    async def forever() -> None:
        await asyncio.sleep(30)

    async def run() -> None:
        leftovers.append(asyncio.create_task(forever()))
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.2)

    assert timed(run_until_signal, run, lambda: None) < 1.0
    assert leftovers[0].cancelled()


def test_the_callers_signal_handlers_are_back_afterwards():
    """Found in CI: the loop left SIGTERM at SIG_DFL, so a later SIGTERM to the test run killed
    it without clean-up (and a signal test further on saw the wrong handler)."""

    def mine(signum: int, frame: object) -> None:
        raise AssertionError("not expected to run")

    async def run() -> None:
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.2)

    before = signal.signal(signal.SIGTERM, mine)
    try:
        run_until_signal(run, lambda: None)
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, before)


# --- the executor ----------------------------------------------------------------------------


def test_daemon_executor_runs_calls_and_reuses_idle_threads():
    pool = DaemonThreadExecutor(max_workers=4, thread_name_prefix="t")
    try:
        for i in range(5):
            assert pool.submit(pow, 2, i).result(5) == 2**i
        with pytest.raises(ZeroDivisionError):
            pool.submit(divmod, 1, 0).result(5)
        assert len(pool._workers) == 1  # one call at a time: one thread, reused
        assert all(t.daemon for t in pool._workers)
    finally:
        pool.shutdown()
    assert not any(t.is_alive() for t in pool._workers)
    with pytest.raises(RuntimeError):
        pool.submit(pow, 2, 2)


def test_daemon_executor_shutdown_does_not_wait_for_blocked_calls_and_cancels_queued_ones():
    release = threading.Event()
    pool = DaemonThreadExecutor(max_workers=1)
    try:
        running = pool.submit(release.wait, 30)
        queued = pool.submit(pow, 2, 2)
        assert timed(pool.shutdown, wait=False, cancel_futures=True) < 0.1
        assert queued.cancelled()
        assert not running.done()
    finally:
        release.set()
    assert running.result(5) is True


def test_daemon_executor_is_accepted_as_the_default_executor():
    loop = asyncio.new_event_loop()
    pool = DaemonThreadExecutor()
    try:
        loop.set_default_executor(pool)
        assert loop.run_until_complete(asyncio.to_thread(threading.current_thread)).daemon
    finally:
        pool.shutdown()
        loop.close()
    assert isinstance(pool, concurrent.futures.ThreadPoolExecutor)

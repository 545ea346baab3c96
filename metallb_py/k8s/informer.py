"""List+watch of one kind of object into a cache of plain dicts.

Runs in a worker thread (the `kubernetes` client blocks). Objects are kept as the API's JSON
dicts, the shape the pure logic reads. The informer survives whatever the API server does:

* a watch that ends (timeout, dropped connection) resumes from the last resourceVersion;
* `410 Gone` (as an HTTP status or as an ERROR watch event) forces a fresh list;
* any other failure (outage, 5xx, refused connection) is retried with capped, jittered backoff;
* during an outage the cache keeps its objects: nothing is reported deleted because the API
  server cannot be reached, which is what keeps Services from losing their IPs.

After each list the differences against the cache are reported, so a re-list after a long outage
delivers exactly the objects that changed meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes.client.exceptions import ApiException

from metallb_py.k8s.objects import Obj

OnChange = Callable[[str, Obj | None, Obj | None], None]
"""on_change(key, old, new): new None = deleted, old None = added."""

log = logging.getLogger(__name__)

STOP_WAIT = 0.1
"""Seconds `Informer.stop` waits for the thread (which normally ends within milliseconds)."""


def object_key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace") or ""
    name = meta.get("name") or ""
    return f"{ns}/{name}" if ns else name


class Informer:
    def __init__(
        self,
        name: str,
        list_func: Callable[..., Any],
        on_change: OnChange,
        *,
        kwargs: dict[str, Any] | None = None,
        watch_timeout: int = 300,
        backoff_initial: float = 0.2,
        backoff_cap: float = 30.0,
    ) -> None:
        self.name = name
        self._list_func = list_func
        self._kwargs = dict(kwargs or {})
        self._on_change = on_change
        self._watch_timeout = watch_timeout
        self._backoff_initial = backoff_initial
        self._backoff_cap = backoff_cap
        self._cache: dict[str, Obj] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, name=f"informer-{name}", daemon=True)
        self.resource_version = ""
        self.lists = 0
        """How many full lists were done (1 + re-lists after 410/errors); for tests and logs."""

    # -- public API -------------------------------------------------------------------------

    def start(self) -> Informer:
        self._thread.start()
        return self

    def stop(self, timeout: float = STOP_WAIT) -> None:
        """Stop at once: the read the thread is blocked in returns (its socket is shut down) and
        the thread closes its own response. Waits at most `timeout` for the thread; a request
        still connecting or awaiting its headers cannot be interrupted, and the thread is a
        daemon, so it is abandoned rather than waited for (its answer is not needed any more)."""
        self._stop.set()
        resp = self._response
        if resp is not None:
            _shutdown(resp)
        if self._thread.ident is None:  # never started (the process failed to start)
            return
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.debug("informer %s: thread still in a request after stop; abandoned", self.name)

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def wait_synced(self, timeout: float | None = None) -> bool:
        return self._synced.wait(timeout)

    def get(self, key: str) -> Obj | None:
        with self._lock:
            return self._cache.get(key)

    def list_keys(self) -> list[str]:
        with self._lock:
            return list(self._cache)

    def items(self) -> list[Obj]:
        with self._lock:
            return list(self._cache.values())

    # -- the loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        delay = self._backoff_initial
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list:
                    self._list()
                    need_list = False
                    delay = self._backoff_initial
                if self._stop.is_set():
                    break
                need_list = self._watch()
                continue
            except ApiException as e:
                if self._stop.is_set():
                    break
                if e.status == 410:
                    log.info("informer %s: resourceVersion expired, re-listing", self.name)
                    need_list = True
                    continue
                log.warning("informer %s: API error %s: %s", self.name, e.status, e.reason)
            except Exception as e:
                if self._stop.is_set():
                    break
                # A broken connection does not invalidate the resourceVersion: resume the watch
                # from it (a re-list happens only if the server says 410).
                log.warning("informer %s: %s: %s", self.name, type(e).__name__, e)
            # Failure path: wait with jitter, growing up to the cap.
            self._stop.wait(delay * (0.5 + random.random()))
            delay = min(self._backoff_cap, delay * 2)

    def _list(self) -> None:
        resp = self._list_func(**self._kwargs, _preload_content=False, _request_timeout=30)
        self._response = resp
        try:
            if self._stop.is_set():
                return
            body = json.loads(resp.data)
        finally:
            self._response = None
            resp.release_conn()
        items = body.get("items") or []
        kind = (body.get("kind") or "").removesuffix("List")
        api_version = body.get("apiVersion")
        fresh: dict[str, Obj] = {}
        for item in items:
            # List items carry no kind/apiVersion; restore them so cached objects are complete.
            item.setdefault("kind", kind)
            if api_version:
                item.setdefault("apiVersion", api_version)
            fresh[object_key(item)] = item
        changes: list[tuple[str, Obj | None, Obj | None]] = []
        with self._lock:
            for key, gone in self._cache.items():
                if key not in fresh:
                    changes.append((key, gone, None))
            for key, item in fresh.items():
                known = self._cache.get(key)
                if known is None or _rv(known) != _rv(item):
                    changes.append((key, known, item))
            self._cache = fresh
            self.resource_version = (body.get("metadata") or {}).get("resourceVersion", "")
            self.lists += 1
        self._synced.set()
        for key, before, after in changes:
            self._emit(key, before, after)

    def _watch(self) -> bool:
        """Watch until the stream ends. Returns True when a re-list is needed."""
        resp = self._list_func(
            **self._kwargs,
            watch=True,
            resource_version=self.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self._watch_timeout,
            _preload_content=False,
            _request_timeout=(10, self._watch_timeout + 30),
        )
        self._response = resp
        try:
            if self._stop.is_set():  # stop() ran before the response was published
                return False
            for line in _lines(resp):
                if self._stop.is_set():
                    return False
                event = json.loads(line)
                etype = event.get("type")
                obj = event.get("object") or {}
                if etype == "ERROR":
                    code = obj.get("code")
                    log.info("informer %s: watch error %s: %s", self.name, code, obj.get("message"))
                    return True
                rv = (obj.get("metadata") or {}).get("resourceVersion")
                if etype == "BOOKMARK":
                    if rv:
                        self.resource_version = rv
                    continue
                key = object_key(obj)
                new: Obj | None
                with self._lock:
                    old = self._cache.get(key)
                    if etype == "DELETED":
                        self._cache.pop(key, None)
                        new = None
                    else:
                        self._cache[key] = obj
                        new = obj
                    if rv:
                        self.resource_version = rv
                if etype == "DELETED" and old is None:
                    continue
                self._emit(key, old, new)
        finally:
            self._response = None
            self._close(resp)
        return False

    def _emit(self, key: str, old: Obj | None, new: Obj | None) -> None:
        try:
            self._on_change(key, old, new)
        except Exception:
            log.exception("informer %s: change handler failed for %s", self.name, key)

    @staticmethod
    def _close(resp: Any) -> None:
        """Called by the informer thread only: closing from another thread would wait for the
        lock of the buffered reader that thread is blocked in."""
        try:
            resp.close()
            resp.release_conn()
        except Exception:
            log.debug("closing a watch response failed", exc_info=True)


def _shutdown(resp: Any) -> None:
    """Shut down the reading side of a response's socket from another thread: a read blocked in
    it returns at once (end of stream). Does not close anything (see `Informer._close`)."""
    with contextlib.suppress(Exception):
        resp.shutdown()  # urllib3 >= 2.3 keeps the socket's shutdown for exactly this
        return
    # Older urllib3: the socket under the http.client response (the pool's connection has
    # already dropped it when the server answered `Connection: close`, as watches do).
    fp = getattr(getattr(resp, "_fp", None), "fp", None)
    sock = getattr(getattr(fp, "raw", None), "_sock", None)
    if sock is None:
        sock = getattr(getattr(resp, "connection", None), "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RD)


def _rv(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


def _lines(resp: Any) -> Iterator[bytes]:
    """Split a streamed HTTP body into lines (one watch event per line)."""
    buf = b""
    for chunk in resp.stream(amt=65536, decode_content=True):
        buf += chunk
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            line, buf = buf[:nl], buf[nl + 1 :]
            if line.strip():
                yield line
    if buf.strip():
        yield buf

"""Writes to the API: Service status and Events.

Status goes through the `services/status` subresource (the only write RBAC allows the controller
on Services). On 409 the Service is re-read; when only its status or metadata moved on (someone
else wrote status, a label changed) the write is retried on the fresh object, but when the spec or
annotations changed the decision may no longer hold, so the caller re-queues instead and reconciles
the new version.

Events are sent from a background thread so a slow API server never stalls the reconcile loop;
repeats of the same event on the same object are folded into one Event with a growing `count`
(as client-go's recorder does), so a flapping Service cannot flood the namespace. At exit, events
still queued after a short grace are dropped (`EventRecorder.stop`).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import queue
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from metallb_py.k8s.objects import Obj

log = logging.getLogger(__name__)

STOP_WAIT = 0.2
"""Seconds `EventRecorder.stop` keeps sending queued events before dropping the rest."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _decision_inputs(svc: Obj) -> tuple[Any, Any, Any]:
    meta = svc.get("metadata") or {}
    return meta.get("uid"), svc.get("spec"), meta.get("annotations")


class StatusConflictError(Exception):
    """The Service changed in a way that invalidates the status about to be written."""


def write_service_status(
    core: Any, svc: Obj, load_balancer: Obj, attempts: int = 5, timeout: float = 30
) -> Obj | None:
    """PUT `status.loadBalancer` for `svc`. Returns the stored object, or None if it is gone.

    Raises StatusConflictError when the Service's spec/annotations changed since `svc` was read, and
    ApiException for other failures (the caller retries with backoff).
    """
    meta = svc.get("metadata") or {}
    name, namespace = meta.get("name", ""), meta.get("namespace", "")
    body = copy.deepcopy(svc)
    for attempt in range(attempts):
        body.setdefault("status", {})["loadBalancer"] = load_balancer
        try:
            resp = core.replace_namespaced_service_status(
                name, namespace, body, _preload_content=False, _request_timeout=timeout
            )
            stored: Obj = json.loads(resp.data)
            return stored
        except ApiException as e:
            if e.status == 404:
                return None
            if e.status != 409 or attempt == attempts - 1:
                raise
        resp = core.read_namespaced_service(
            name, namespace, _preload_content=False, _request_timeout=timeout
        )
        fresh: Obj = json.loads(resp.data)
        if _decision_inputs(fresh) != _decision_inputs(svc):
            raise StatusConflictError(
                f"service {namespace}/{name} changed while writing its status"
            )
        body = fresh
    raise AssertionError("unreachable")


@dataclass
class _Folded:
    name: str
    namespace: str
    count: int
    first_seen: float


class EventRecorder:
    """Posts core/v1 Events for a component (`metallb-controller`, `metallb-speaker`)."""

    FOLD_WINDOW = 600.0
    MAX_BACKLOG = 1000

    def __init__(self, core: Any, component: str, host: str = "") -> None:
        self._core = core
        self._component = component
        self._host = host
        self._queue: queue.Queue[tuple[Obj, str, str, str] | None] = queue.Queue()
        self._folded: dict[tuple[str, str, str, str, str], _Folded] = {}
        self._thread = threading.Thread(target=self._run, name=f"events-{component}", daemon=True)
        self._deadline: float | None = None
        """Set by `stop`: events still queued after it are dropped."""
        self.sent = 0
        self.dropped = 0
        self.dropped_at_stop = 0
        self._thread.start()

    def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        if self._queue.qsize() >= self.MAX_BACKLOG:
            self.dropped += 1
            log.warning("event backlog full; dropping %s %s", reason, message)
            return
        self._queue.put((obj, type_, reason, message))

    def flush(self, timeout: float = 10) -> None:
        """Wait until every queued event has been sent (or given up on)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self, timeout: float = STOP_WAIT) -> None:
        """Send what is queued for at most `timeout` seconds, then drop the rest: at exit an
        Event is not worth a SIGKILL. One Event is one request, so none is left half-written;
        a request still in flight is abandoned with the (daemon) thread."""
        self._deadline = time.monotonic() + timeout
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive() or self.dropped_at_stop:
            log.info(
                "events not sent at exit: %d dropped%s",
                self.dropped_at_stop,
                ", one still in flight" if self._thread.is_alive() else "",
            )

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._deadline is not None and time.monotonic() >= self._deadline:
                    self.dropped_at_stop += 1
                    continue
                self._send(*item)
            except Exception as e:
                log.warning("sending event failed: %s", e)
            finally:
                self._queue.task_done()

    def _send(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        key = (meta.get("uid") or "", namespace, meta.get("name") or "", reason, message)
        now = _now()
        folded = self._folded.get(key)
        if folded is not None and time.monotonic() - folded.first_seen < self.FOLD_WINDOW:
            folded.count += 1
            try:
                self._core.patch_namespaced_event(
                    folded.name,
                    folded.namespace,
                    {"count": folded.count, "lastTimestamp": now},
                    _preload_content=False,
                    _request_timeout=10,
                )
                self.sent += 1
                return
            except ApiException as e:
                if e.status != 404:
                    raise
        name = f"{meta.get('name', 'object')}.{secrets.token_hex(8)}"
        body: Obj = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", "v1"),
                "kind": obj.get("kind", ""),
                "name": meta.get("name", ""),
                "namespace": namespace,
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {
                "component": self._component,
                **({"host": self._host} if self._host else {}),
            },
            "reportingComponent": self._component,
            "reportingInstance": self._host,
        }
        self._core.create_namespaced_event(
            namespace, body, _preload_content=False, _request_timeout=10
        )
        self.sent += 1
        if len(self._folded) > 10000:  # bound memory; folding restarts from scratch
            self._folded.clear()
        self._folded[key] = _Folded(name, namespace, 1, time.monotonic())

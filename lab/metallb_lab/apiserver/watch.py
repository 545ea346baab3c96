"""The watch side of the store: one recorded write (`Change`) and the queue of one watch
request (`Watcher`).

The store offers every change to the matching watchers while it holds its lock, so a watcher sees
exactly the changes after its starting version, in order; the watch's HTTP thread drains the
queue. A watcher sees an object through its own selectors: an object that starts matching arrives
as ADDED, one that stops matching as DELETED (docs/apiserver.md, "Semantics", **Watch**).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from metallb_lab import Obj
from metallb_lab.apiserver.errors import ApiError
from metallb_lab.apiserver.resources import ResourceType
from metallb_lab.apiserver.selectors import FieldSelector, LabelSelector

Key = tuple[str, str]
"""(namespace, name); namespace "" for cluster-scoped objects."""


@dataclass(frozen=True)
class Change:
    """One stored write: `obj` is the new state (the final state for DELETED)."""

    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    key: Key
    obj: Obj
    prev: Obj | None


def with_rv(obj: Obj, rv: int) -> Obj:
    return {**obj, "metadata": {**obj.get("metadata", {}), "resourceVersion": str(rv)}}


class Watcher:
    """The queue of one watch request; filled under the store lock, drained by its HTTP thread."""

    def __init__(
        self,
        rt: ResourceType,
        namespace: str | None,
        label: LabelSelector,
        fields: FieldSelector,
        *,
        bookmarks: bool,
        max_queue: int,
    ) -> None:
        self.rt = rt
        self.namespace = namespace
        self.label = label
        self.fields = fields
        self.bookmarks = bookmarks
        self.max_queue = max_queue
        self.cond = threading.Condition()
        self.queue: deque[tuple[str, Obj]] = deque()
        self.closed = False
        self.close_reason = ""
        self.bookmark_requested = False
        self.error: ApiError | None = None

    def _matches(self, key: Key, obj: Obj | None) -> Obj | None:
        """The object as this watch shows it, or None when filtered out."""
        if obj is None or (self.namespace is not None and key[0] != self.namespace):
            return None
        view = self.rt.view(obj)
        if self.label.matches(view) and self.fields.matches(view):
            return view
        return None

    def offer(self, change: Change) -> None:
        """Queue what this watch must see of one change (called with the store lock held)."""
        new = None if change.type == "DELETED" else self._matches(change.key, change.obj)
        old = self._matches(change.key, change.prev) if change.prev is not None else None
        if change.type == "DELETED":
            old = self._matches(change.key, change.obj)
            event = ("DELETED", old) if old is not None else None
        elif old is None and new is not None:
            event = ("ADDED", new)
        elif old is not None and new is not None:
            event = ("MODIFIED", new)
        elif old is not None:
            event = ("DELETED", with_rv(old, change.rv))
        else:
            event = None
        if event is not None:
            self.push(*event)

    def push(self, kind: str, obj: Obj) -> None:
        with self.cond:
            if self.closed:
                return
            if len(self.queue) >= self.max_queue:
                # A consumer this slow is cut off, as the real watch cache does.
                self.closed = True
                self.close_reason = "overflow"
            else:
                self.queue.append((kind, obj))
            self.cond.notify_all()

    def close(self, reason: str) -> None:
        with self.cond:
            if not self.closed:
                self.closed = True
                self.close_reason = reason
            self.cond.notify_all()

    def request_bookmark(self) -> None:
        with self.cond:
            self.bookmark_requested = True
            self.cond.notify_all()

    def take(self, timeout: float) -> list[tuple[str, Obj]]:
        """Everything queued, waiting up to `timeout` seconds for something to arrive."""
        with self.cond:
            if not self.queue and not self.closed and not self.bookmark_requested:
                self.cond.wait(timeout)
            items = list(self.queue)
            self.queue.clear()
            return items

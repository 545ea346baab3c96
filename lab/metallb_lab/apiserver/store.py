"""The in-memory object store: resourceVersions, watch history, watchers, and the verbs.

One lock guards everything; every write takes the next global resourceVersion (as etcd does), is
recorded in its resource's bounded history and handed to the matching watchers while the lock is
held, so a watch started from any retained version sees exactly the changes after it, in order.
Stored objects are never modified in place; readers get shared snapshots and must copy before
changing them.

This module is the transactional part: the lock, the versions, the history and the order of the
steps of each verb. What a write does to an object is in writes.py (pure), the PATCH formats in
patch.py, a watch's queue in watch.py, defaulting and validation per kind in strategies.py.
"""

from __future__ import annotations

import builtins
import copy
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from metallb_lab import Obj
from metallb_lab.apiserver import errors
from metallb_lab.apiserver.errors import ApiError
from metallb_lab.apiserver.patch import APPLY_PATCH, apply_patch, check_apply_patch
from metallb_lab.apiserver.resources import ResourceTable, ResourceType
from metallb_lab.apiserver.selectors import FieldSelector, LabelSelector
from metallb_lab.apiserver.services import ClusterConfig
from metallb_lab.apiserver.strategies import Strategies
from metallb_lab.apiserver.watch import Change, Key, Watcher, with_rv
from metallb_lab.apiserver.writes import (
    check_create,
    check_delete_preconditions,
    check_name_matches,
    decode_body,
    decode_continue,
    delete_response,
    encode_continue,
    marked_for_deletion,
    parse_rv,
    prepare_create,
    same,
    updated_object,
)


@dataclass
class Storage:
    type: ResourceType
    objects: dict[Key, Obj] = field(default_factory=dict)
    history: deque[Change] = field(default_factory=deque)
    compacted: int = 0  # changes with rv <= compacted are no longer in `history`
    watchers: set[Watcher] = field(default_factory=set)


@dataclass
class ListResult:
    items: list[Obj]
    resource_version: int
    continue_token: str | None = None
    remaining: int | None = None


class Store:
    """All objects of all served resources, with Kubernetes write semantics."""

    def __init__(
        self,
        table: ResourceTable,
        cluster: ClusterConfig | None = None,
        history_size: int = 10_000,
        max_watch_queue: int = 100_000,
    ) -> None:
        self.table = table
        self.strategies = Strategies(cluster or ClusterConfig())
        self.history_size = history_size
        self.max_watch_queue = max_watch_queue
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.rv = 1
        # False while the server is "down": a watch registered then is born closed (checked under
        # the lock, so no watch slips between an outage starting and open watches being cut).
        self.watch_gate: Callable[[], bool] = lambda: True
        self.storages: dict[str, Storage] = {
            key: Storage(rt) for key, rt in table.storage_types.items()
        }

    # --- helpers ---------------------------------------------------------------------------------

    def storage(self, rt: ResourceType) -> Storage:
        return self.storages[rt.storage_key]

    def _key(self, rt: ResourceType, namespace: str | None, name: str) -> Key:
        return (namespace or "" if rt.namespaced else "", name)

    def _record(self, st: Storage, kind: str, key: Key, obj: Obj, prev: Obj | None) -> Obj:
        self.rv += 1
        stored = with_rv(obj, self.rv)
        if kind == "DELETED":
            st.objects.pop(key, None)
        else:
            st.objects[key] = stored
        change = Change(self.rv, kind, key, stored, prev)
        st.history.append(change)
        while len(st.history) > self.history_size:
            st.compacted = st.history.popleft().rv
        for watcher in list(st.watchers):
            watcher.offer(change)
        key_text = f"{key[0]}/{key[1]}"
        self.strategies.commit(st.type, key_text, prev, None if kind == "DELETED" else stored)
        self.changed.notify_all()
        return stored

    def _wait_for_rv(self, rv: int) -> None:
        """A version from the future: wait a little for it, then 504 as upstream does."""
        deadline = time.monotonic() + 3.0
        while self.rv < rv:
            left = deadline - time.monotonic()
            if left <= 0:
                raise errors.timeout(f"Too large resource version: {rv}, current: {self.rv}", 1)
            self.changed.wait(left)

    def _snapshot(self, st: Storage, rv: int) -> dict[Key, Obj]:
        """The objects as they were at `rv` (which must not be compacted)."""
        if rv >= self.rv:
            return st.objects
        objects = dict(st.objects)
        for change in reversed(st.history):
            if change.rv <= rv:
                break
            if change.type == "ADDED":
                objects.pop(change.key, None)
            elif change.prev is not None:
                objects[change.key] = change.prev
        return objects

    def _check_namespace(self, rt: ResourceType, namespace: str, creating: bool) -> None:
        if not rt.namespaced:
            return
        ns = self.storages["namespaces"].objects.get(("", namespace))
        if ns is None:
            raise errors.not_found("", "namespaces", namespace)
        if creating and ns["metadata"].get("deletionTimestamp"):
            raise errors.forbidden(
                rt.group,
                rt.plural,
                "",
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated",
            )

    def _decode_body(self, rt: ResourceType, body: Any, namespace: str | None) -> Obj:
        return decode_body(rt, self.table.storage_type(rt), body, namespace)

    # --- reads -----------------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        with self.lock:
            obj = self.storage(rt).objects.get(self._key(rt, namespace, name))
            if obj is None:
                raise errors.not_found(rt.group, rt.plural, name)
            return rt.view(obj)

    def list(
        self,
        rt: ResourceType,
        namespace: str | None,
        label: LabelSelector | None = None,
        fields: FieldSelector | None = None,
        *,
        resource_version: str | None = None,
        resource_version_match: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> ListResult:
        label = label or LabelSelector()
        fields = fields or FieldSelector()
        with self.lock:
            st = self.storage(rt)
            start_after = ""
            if continue_token:
                if resource_version:
                    raise errors.bad_request(
                        "specifying resource version is not allowed when using continue"
                    )
                at, start_after = decode_continue(continue_token)
                if at < st.compacted:
                    raise errors.expired(
                        "The provided continue parameter is too old to display a consistent "
                        "list result. You can start a new list without the continue parameter, "
                        "or use the continue token in this response to retrieve the remainder of "
                        "the results. Continuing with the provided token results in an "
                        "inconsistent list - objects that were created, modified, or deleted "
                        "between the time the first chunk was returned and now may show up in "
                        "the list."
                    )
            else:
                at = self._list_rv(st, resource_version, resource_version_match)
            objects = self._snapshot(st, at)
            keys = sorted(
                (k for k in objects if namespace is None or k[0] == namespace),
                key=lambda k: f"{k[0]}/{k[1]}",
            )
            pinned = fields.exact_name()
            matched: list[Obj] = []
            token = None
            remaining = None
            for index, key in enumerate(keys):
                if start_after and f"{key[0]}/{key[1]}" <= start_after:
                    continue
                if pinned is not None and key[1] != pinned:
                    continue
                view = rt.view(objects[key])
                if not (label.matches(view) and fields.matches(view)):
                    continue
                if limit and len(matched) >= limit:
                    rest = [k for k in keys[index:] if pinned is None or k[1] == pinned]
                    more = [
                        k
                        for k in rest
                        if label.matches(v := rt.view(objects[k])) and fields.matches(v)
                    ]
                    if more:
                        last = matched[-1]["metadata"]
                        token = encode_continue(at, f"{last.get('namespace', '')}/{last['name']}")
                        if label.empty and fields.empty:
                            remaining = len(more)
                    break
                matched.append(view)
            return ListResult(matched, at, token, remaining)

    def _list_rv(self, st: Storage, rv: str | None, match: str | None) -> int:
        if match and match not in ("Exact", "NotOlderThan"):
            raise errors.bad_request(f'resourceVersionMatch: Unsupported value: "{match}"')
        if not rv:
            if match:
                raise errors.bad_request(
                    "resourceVersionMatch is forbidden unless resourceVersion is provided"
                )
            return self.rv
        wanted = parse_rv(rv)
        if wanted == 0:
            if match == "Exact":
                raise errors.bad_request(
                    'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'
                )
            return self.rv
        if wanted > self.rv:
            self._wait_for_rv(wanted)
        if match == "Exact":
            if wanted < st.compacted:
                raise errors.expired("The resourceVersion for the provided list is too old.")
            return wanted
        return self.rv

    # --- writes ----------------------------------------------------------------------------------

    def create(
        self, rt: ResourceType, namespace: str | None, body: Any, dry_run: bool = False
    ) -> Obj:
        with self.lock:
            obj = self._decode_body(rt, body, namespace)
            return self._create(rt, obj, dry_run)

    def _create(self, rt: ResourceType, obj: Obj, dry_run: bool) -> Obj:
        st = self.storage(rt)
        check_create(obj)
        meta = obj["metadata"]
        namespace = meta.get("namespace", "")
        self._check_namespace(rt, namespace, creating=True)
        prepare_create(obj, lambda name: self._key(rt, namespace, name) in st.objects)
        self.strategies.prepare_create(rt, st.type, obj)
        self.strategies.validate(rt, st.type, obj, None, "")
        key = self._key(rt, namespace, meta["name"])
        if key in st.objects:
            raise errors.already_exists(rt.group, rt.plural, meta["name"])
        if dry_run:
            return rt.view(obj)
        return rt.view(self._record(st, "ADDED", key, obj, None))

    def update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str = "",
        dry_run: bool = False,
    ) -> tuple[Obj, bool]:
        """PUT; returns (object, created)."""
        with self.lock:
            obj = self._decode_body(rt, body, namespace)
            return self._update(rt, namespace, name, obj, subresource=subresource, dry_run=dry_run)

    def _update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        obj: Obj,
        *,
        subresource: str,
        dry_run: bool,
        allow_create: bool = True,
    ) -> tuple[Obj, bool]:
        st = self.storage(rt)
        check_name_matches(obj, name)
        key = self._key(rt, namespace, name)
        old = st.objects.get(key)
        if old is None:
            if allow_create and rt.create_on_update and not subresource:
                if obj["metadata"].get("resourceVersion"):
                    raise errors.not_found(rt.group, rt.plural, name)
                return self._create(rt, obj, dry_run), True
            raise errors.not_found(rt.group, rt.plural, name)
        sent_rv = obj["metadata"].get("resourceVersion")
        if sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.group, rt.plural, name)
        new = updated_object(rt, st.type, old, obj, subresource)
        self.strategies.prepare_update(rt, st.type, new, old, subresource)
        self.strategies.validate(rt, st.type, new, old, subresource)
        if same(new, old):
            return rt.view(old), False
        if dry_run:
            return rt.view(new), False
        stored = self._record(st, "MODIFIED", key, new, old)
        if stored["metadata"].get("deletionTimestamp") and not stored["metadata"].get("finalizers"):
            self._record(st, "DELETED", key, stored, stored)
        return rt.view(stored), False

    def patch(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        patch_type: str,
        body: Any,
        *,
        subresource: str = "",
        dry_run: bool = False,
        field_manager: str | None = None,
    ) -> tuple[Obj, bool]:
        """PATCH in any of the four formats; returns (object, created)."""
        with self.lock:
            st = self.storage(rt)
            current = st.objects.get(self._key(rt, namespace, name))
            if patch_type == APPLY_PATCH:
                check_apply_patch(body, field_manager)
                if current is None:
                    if subresource:
                        raise errors.not_found(rt.group, rt.plural, name)
                    obj = self._decode_body(rt, body, namespace)
                    obj["metadata"].setdefault("name", name)
                    check_name_matches(obj, name)
                    return self._create(rt, obj, dry_run), True
            if current is None:
                raise errors.not_found(rt.group, rt.plural, name)
            view = copy.deepcopy(rt.view(current))
            patched = apply_patch(rt, view, patch_type, body)
            if not isinstance(patched, dict):
                raise errors.bad_request("the patch did not produce an object")
            obj = self._decode_body(rt, patched, namespace)
            return self._update(
                rt,
                namespace,
                name,
                obj,
                subresource=subresource,
                dry_run=dry_run,
                allow_create=False,
            )

    def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        options: Obj | None = None,
        *,
        dry_run: bool = False,
    ) -> Obj:
        """DELETE; returns the response body (the object, or a Success Status)."""
        with self.lock:
            st = self.storage(rt)
            key = self._key(rt, namespace, name)
            old = st.objects.get(key)
            if old is None:
                raise errors.not_found(rt.group, rt.plural, name)
            check_delete_preconditions(rt, old, options)
            meta = old["metadata"]
            if dry_run:
                return delete_response(rt, old)
            if meta.get("finalizers") and st.type.storage_key != "namespaces":
                if meta.get("deletionTimestamp"):
                    return rt.view(old)
                return rt.view(self._record(st, "MODIFIED", key, marked_for_deletion(old), old))
            if st.type.storage_key == "namespaces":
                self._empty_namespace(name)
            gone = self._record(st, "DELETED", key, old, old)
            return delete_response(rt, gone)

    def _empty_namespace(self, namespace: str) -> None:
        """What the namespace controller does, done at once: every object in it is deleted."""
        for st in self.storages.values():
            if not st.type.namespaced:
                continue
            for key in sorted(k for k in st.objects if k[0] == namespace):
                obj = st.objects[key]
                self._record(st, "DELETED", key, obj, obj)

    def delete_collection(
        self,
        rt: ResourceType,
        namespace: str | None,
        label: LabelSelector | None = None,
        fields: FieldSelector | None = None,
        *,
        options: Obj | None = None,
        dry_run: bool = False,
    ) -> builtins.list[Obj]:
        with self.lock:
            listed = self.list(rt, namespace, label, fields)
            out = []
            for item in listed.items:
                meta = item["metadata"]
                try:
                    self.delete(rt, meta.get("namespace"), meta["name"], options, dry_run=dry_run)
                except ApiError as e:
                    if e.code != 404:
                        raise
                out.append(item)
            return out

    # --- watch -----------------------------------------------------------------------------------

    def watch(
        self,
        rt: ResourceType,
        namespace: str | None,
        label: LabelSelector | None = None,
        fields: FieldSelector | None = None,
        *,
        resource_version: str | None = None,
        bookmarks: bool = False,
        send_initial_events: bool | None = None,
    ) -> Watcher:
        """Register a watcher; a too-old version gives a watcher whose `error` is the 410."""
        watcher = Watcher(
            rt,
            namespace,
            label or LabelSelector(),
            fields or FieldSelector(),
            bookmarks=bookmarks,
            max_queue=self.max_watch_queue,
        )
        with self.lock:
            if not self.watch_gate():
                watcher.closed = True
                watcher.close_reason = "abrupt"
                return watcher
            st = self.storage(rt)
            wanted = parse_rv(resource_version) if resource_version else 0
            if send_initial_events and not bookmarks:
                raise errors.bad_request(
                    "sendInitialEvents requires setting allowWatchBookmarks=true"
                )
            if wanted == 0 or send_initial_events:
                if wanted > self.rv:
                    self._wait_for_rv(wanted)
                for key in sorted(st.objects, key=lambda k: f"{k[0]}/{k[1]}"):
                    view = watcher._matches(key, st.objects[key])
                    if view is not None:
                        watcher.queue.append(("ADDED", view))
                if send_initial_events:
                    marker = self._bookmark_object(rt, self.rv)
                    marker["metadata"]["annotations"] = {"k8s.io/initial-events-end": "true"}
                    watcher.queue.append(("BOOKMARK", marker))
            else:
                if wanted > self.rv:
                    self._wait_for_rv(wanted)
                if wanted < st.compacted:
                    watcher.error = errors.expired(
                        f"too old resource version: {wanted} ({st.compacted + 1})"
                    )
                    watcher.closed = True
                    return watcher
                for change in st.history:
                    if change.rv > wanted:
                        watcher.offer(change)
            st.watchers.add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        with self.lock:
            self.storage(watcher.rt).watchers.discard(watcher)
        watcher.close("finished")

    def bookmark(self, watcher: Watcher) -> Obj | None:
        """A BOOKMARK object for `watcher` if nothing is pending for it (else None)."""
        with self.lock, watcher.cond:
            watcher.bookmark_requested = False
            if watcher.queue or watcher.closed:
                return None
            return self._bookmark_object(watcher.rt, self.rv)

    @staticmethod
    def _bookmark_object(rt: ResourceType, rv: int) -> Obj:
        return {
            "kind": rt.kind,
            "apiVersion": rt.api_version,
            "metadata": {"resourceVersion": str(rv), "creationTimestamp": None},
        }

    def watchers(self) -> builtins.list[Watcher]:
        """Open watches (a closed one is gone even if its thread is still winding down)."""
        with self.lock:
            return [w for st in self.storages.values() for w in st.watchers if not w.closed]

    def close_watchers(self, reason: str) -> int:
        watchers = self.watchers()
        for w in watchers:
            w.close(reason)
        return len(watchers)

    def request_bookmarks(self) -> None:
        for w in self.watchers():
            w.request_bookmark()

    def expire_history(self) -> None:
        """Forget every retained change: a watch from any older version now gets 410."""
        with self.lock:
            for st in self.storages.values():
                st.history.clear()
                st.compacted = self.rv

    def items(self, storage_keys: Iterable[str] | None = None) -> builtins.list[Obj]:
        with self.lock:
            keys = list(storage_keys) if storage_keys is not None else list(self.storages)
            return [obj for k in keys for obj in self.storages[k].objects.values()]

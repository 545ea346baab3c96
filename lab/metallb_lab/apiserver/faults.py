"""The fault switches of the test API server: outages, injected failures, delays and conflict
storms, and their HTTP endpoint (`/_fault/...`, for a server running as a subprocess).

`FaultSwitches` is the state behind its own lock; the server asks it, before every API request,
whether to answer with an error, and closes its listener while a `refuse` outage lasts
(docs/apiserver.md, "Fault switches").
"""

from __future__ import annotations

import builtins
import json
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from metallb_lab import Obj
from metallb_lab.apiserver import errors
from metallb_lab.apiserver.errors import ApiError
from metallb_lab.apiserver.resources import ResourceType

if TYPE_CHECKING:
    from metallb_lab.apiserver.server import ApiServer

OUTAGE_MODES = ("refuse", "503")


@dataclass
class FailRule:
    """Answer `code` to the next `count` requests (optionally only some verbs/resources)."""

    count: int
    code: int = 500
    methods: frozenset[str] | None = None
    resource: str | None = None


@dataclass
class ConflictRule:
    """Answer 409 Conflict to the next `count` PUT/PATCH requests matching the filters."""

    count: int
    resource: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


@dataclass
class _Faults:
    outage_until: float = 0.0
    outage_mode: str = "refuse"
    delay: float = 0.0
    fail: list[FailRule] = field(default_factory=list)
    conflicts: list[ConflictRule] = field(default_factory=list)


class FaultSwitches:
    """What is switched on now; every method is safe from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults = _Faults()

    def start_outage(self, seconds: float, mode: str) -> None:
        if mode not in OUTAGE_MODES:
            raise ValueError("mode must be 'refuse' or '503'")
        with self._lock:
            self._faults.outage_until = time.monotonic() + seconds
            self._faults.outage_mode = mode

    def outage_active(self) -> bool:
        with self._lock:
            return time.monotonic() < self._faults.outage_until

    def refusing(self) -> bool:
        """A `refuse` outage is on: anything that still reaches the server is hung up on."""
        with self._lock:
            f = self._faults
            return f.outage_mode == "refuse" and time.monotonic() < f.outage_until

    def fail_next(
        self,
        count: int,
        code: int = 500,
        methods: tuple[str, ...] | None = None,
        resource: str | None = None,
    ) -> None:
        """Answer `code` (with a Status) to the next `count` matching API requests."""
        with self._lock:
            self._faults.fail.append(
                FailRule(
                    count,
                    code,
                    frozenset(m.upper() for m in methods) if methods else None,
                    resource,
                )
            )

    def set_delay(self, seconds: float) -> None:
        """Delay every response by `seconds` (0 turns it off)."""
        with self._lock:
            self._faults.delay = max(0.0, seconds)

    def delay(self) -> float:
        with self._lock:
            return self._faults.delay

    def conflict_storm(
        self,
        count: int,
        resource: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
    ) -> None:
        """The next `count` updates (PUT/PATCH) matching the filters get 409 Conflict."""
        with self._lock:
            self._faults.conflicts.append(
                ConflictRule(count, resource, namespace, name, subresource)
            )

    def clear(self) -> None:
        with self._lock:
            self._faults = _Faults()

    def state(self) -> Obj:
        with self._lock:
            f = self._faults
            return {
                "outageSecondsLeft": max(0.0, f.outage_until - time.monotonic()),
                "outageMode": f.outage_mode,
                "delaySeconds": f.delay,
                "fail": [r.__dict__ | {"methods": sorted(r.methods or [])} for r in f.fail],
                "conflicts": [r.__dict__ for r in f.conflicts],
            }

    def check_request(self, method: str, path: str) -> None:
        """Raise what a 503 outage or an injected failure answers to this API request."""
        with self._lock:
            f = self._faults
            if f.outage_mode == "503" and time.monotonic() < f.outage_until:
                raise errors.service_unavailable()
            for rule in f.fail:
                if rule.count <= 0:
                    continue
                if rule.methods is not None and method not in rule.methods:
                    continue
                if rule.resource is not None and f"/{rule.resource}" not in path:
                    continue
                rule.count -= 1
                f.fail = [r for r in f.fail if r.count > 0]
                raise _failure(rule.code)

    def check_conflict(
        self, rt: ResourceType, namespace: str | None, name: str, subresource: str
    ) -> None:
        """Raise 409 when a conflict storm covers this update."""
        with self._lock:
            for rule in self._faults.conflicts:
                if rule.count <= 0:
                    continue
                if rule.resource is not None and rule.resource not in (rt.plural, rt.kind):
                    continue
                if rule.namespace is not None and rule.namespace != namespace:
                    continue
                if rule.name is not None and rule.name != name:
                    continue
                if rule.subresource is not None and rule.subresource != subresource:
                    continue
                rule.count -= 1
                self._faults.conflicts = [r for r in self._faults.conflicts if r.count > 0]
                raise errors.conflict(rt.group, rt.plural, name)


def fault_endpoint(
    api: ApiServer, method: str, path: str, query: dict[str, builtins.list[str]], body: bytes
) -> Obj:
    """`/_fault/<action>` (and `/_admin/...`): parameters from the query or a JSON body; every
    action answers with the fault state."""
    params: dict[str, Any] = {k: v[-1] for k, v in query.items()}
    if body.strip():
        try:
            extra = json.loads(body)
        except ValueError:
            raise errors.bad_request("fault parameters must be a JSON object") from None
        if not isinstance(extra, dict):
            raise errors.bad_request("fault parameters must be a JSON object")
        params.update(extra)
    action = path.rstrip("/").split("/")[-1]
    if method == "GET" and action in ("_fault", "_admin"):
        return api.fault_state()
    if method == "GET" and action == "requests":
        return {"requests": [r.__dict__ for r in api.requests()]}
    if method != "POST":
        raise errors.method_not_allowed()
    try:
        if action == "drop-watches":
            dropped = api.drop_watches(abrupt=_truthy(params.get("abrupt")))
            return {"dropped": dropped}
        if action == "expire-history":
            api.expire_history()
        elif action == "outage":
            api.outage(float(params.get("seconds", 10)), str(params.get("mode", "refuse")))
        elif action == "fail":
            methods = params.get("methods")
            if isinstance(methods, str):
                methods = [m for m in methods.split(",") if m]
            api.fail_next(
                int(params.get("count", 1)),
                int(params.get("code", 500)),
                tuple(methods) if methods else None,
                params.get("resource"),
            )
        elif action == "delay":
            api.delay(float(params.get("seconds", 0)))
        elif action == "conflict":
            api.conflict_storm(
                int(params.get("count", 1)),
                params.get("resource"),
                params.get("namespace"),
                params.get("name"),
                params.get("subresource"),
            )
        elif action == "bookmark":
            api.send_bookmarks()
        elif action == "reset":
            api.clear_faults()
        else:
            raise errors.path_not_found()
    except (TypeError, ValueError) as e:
        raise errors.bad_request(f"bad fault parameters: {e}") from None
    return api.fault_state()


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true", "yes")


def _failure(code: int) -> ApiError:
    if code == 503:
        return errors.service_unavailable()
    if code == 429:
        return ApiError(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
            {"retryAfterSeconds": 1},
        )
    if code == 504:
        return errors.timeout("The request timed out, please try again later.")
    if code == 500:
        return errors.internal_error("injected failure (test API server fault switch)")
    return ApiError(code, "InternalError", f"injected failure with code {code}")

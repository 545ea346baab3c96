"""Pure readers of Kubernetes objects in their JSON shape, the one place that knows how a field
of the wrong type is read.

Objects are plain dicts (`Obj`), as the API server, the informer caches, `kubectl get -o yaml`
and `plan` files give them, so the processes, `plan`, `doctor` and the tests share one
representation. The API server always sends the declared types; hand-written inputs may not.
So no reader raises: a field of the wrong type reads as absent (an empty mapping or sequence,
`""`), and a caller that wants to tell the user passes `problems`, which collects one line per
such field naming its path. The first checks are on the exact type: these readers run for every
field of every Service on every re-sync (50,000 Services in the benchmark).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Obj = dict[str, Any]
"""A Kubernetes object (or any JSON object) as decoded from JSON."""


def mapping(value: Any, path: str = "", problems: list[str] | None = None) -> Mapping[str, Any]:
    """`value` if it is a mapping; `{}` when it is absent or of another type."""
    if type(value) is dict:  # the common case, without the ABC check
        return value
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        if problems is not None:
            problems.append(f"{path}: expected a mapping, got {type(value).__name__}")
        return {}
    return value


def sequence(value: Any, path: str = "", problems: list[str] | None = None) -> Sequence[Any]:
    """`value` if it is a list (or a tuple); `()` when it is absent or of another type."""
    if type(value) is list:
        return value
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        if problems is not None:
            problems.append(f"{path}: expected a list, got {type(value).__name__}")
        return ()
    return value


def string(value: Any, path: str = "", problems: list[str] | None = None) -> str:
    """`value` if it is a string; `""` when it is absent or of another type."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    if not isinstance(value, str):
        if problems is not None:
            problems.append(f"{path}: expected a string, got {type(value).__name__} {value!r}")
        return ""
    return value


def string_map(value: Any, path: str = "", problems: list[str] | None = None) -> Mapping[str, str]:
    """A string-to-string mapping (labels, annotations, a selector): the entries whose key and
    value are both strings."""
    entries = mapping(value, path, problems)
    if all(type(k) is str and type(v) is str for k, v in entries.items()):
        return entries
    out: dict[str, str] = {}
    for k, v in entries.items():
        if not isinstance(k, str) or not isinstance(v, str):
            if problems is not None:
                problems.append(f"{path}: entry {k!r}: {v!r} is not a string to string pair")
            continue
        out[k] = v
    return out


def value_at(obj: Any, *path: str) -> Any:
    """The value at `path` (`value_at(pod, "status", "phase")`), or None when a step is missing
    or not a mapping."""
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def name_of(obj: Mapping[str, Any]) -> str:
    """`metadata.name`, `""` when absent."""
    return string(mapping(obj.get("metadata")).get("name"))


def labels_of(obj: Mapping[str, Any] | None) -> Mapping[str, str]:
    """`metadata.labels` (string pairs only); `{}` for no object, e.g. a Node not seen yet."""
    if obj is None:
        return {}
    return string_map(mapping(obj.get("metadata")).get("labels"))


def is_terminating(obj: Mapping[str, Any]) -> bool:
    """The object has a `metadata.deletionTimestamp`: it is being deleted."""
    return bool(mapping(obj.get("metadata")).get("deletionTimestamp"))


def node_ready(node: Mapping[str, Any]) -> bool | None:
    """The Node's `Ready` condition: True, False (also for `Unknown`), or None when the Node
    reports no such condition (a caller that needs a yes/no asks `node_ready(n) is True`)."""
    for entry in sequence(mapping(node.get("status")).get("conditions")):
        condition = mapping(entry)
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return None


def pod_running_on(pod: Mapping[str, Any]) -> str:
    """The node a Pod runs on, or `""` when it is not Running or is being deleted."""
    if is_terminating(pod):
        return ""
    if mapping(pod.get("status")).get("phase") != "Running":
        return ""
    return string(mapping(pod.get("spec")).get("nodeName"))

"""The three PATCH formats of the Kubernetes API: JSON merge patch (RFC 7386), strategic merge
patch, and JSON patch (RFC 6902).

Strategic merge patch merges lists by a key where the Go types say so (containers by `name`,
Service ports by `port`, conditions by `type`, ...) and understands the `$patch`,
`$setElementOrder`, `$deleteFromPrimitiveList` and `$retainKeys` directives that `kubectl apply`
sends. Every other list is replaced whole, which is what the real types declare for the lists this
project touches (`status.loadBalancer.ingress`, endpoint `subsets`, slice `endpoints`).

`apply_patch` picks the format from the request's content type, as the API server does
(server-side apply is approximated by a strategic merge; docs/apiserver.md, "Deviations").
"""

from __future__ import annotations

import copy
from typing import Any

from metallb_lab.apiserver import errors
from metallb_lab.apiserver.errors import ApiError, bad_request
from metallb_lab.apiserver.resources import ResourceType

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (MERGE_PATCH, STRATEGIC_PATCH, JSON_PATCH, APPLY_PATCH)

_DELETE = object()

# Lists merged by a key: (path suffix, merge key). Paths are field names only (list indexes are
# not part of them); the first matching suffix wins, so specific entries come first.
_MERGE_KEYS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("containers", "ports"), "containerPort"),
    (("initContainers", "ports"), "containerPort"),
    (("ephemeralContainers", "ports"), "containerPort"),
    (("containers",), "name"),
    (("initContainers",), "name"),
    (("ephemeralContainers",), "name"),
    (("env",), "name"),
    (("volumes",), "name"),
    (("volumeMounts",), "mountPath"),
    (("volumeDevices",), "devicePath"),
    (("imagePullSecrets",), "name"),
    (("hostAliases",), "ip"),
    (("topologySpreadConstraints",), "topologyKey"),
    (("conditions",), "type"),
    (("metadata", "ownerReferences"), "uid"),
)
# Lists merged by key only at an exact path from the object root.
_ROOT_MERGE_KEYS: dict[tuple[str, ...], str] = {
    ("spec", "ports"): "port",  # Service ports
    ("status", "addresses"): "type",  # Node addresses
}
# Primitive lists merged as sets.
_PRIMITIVE_MERGE: frozenset[tuple[str, ...]] = frozenset({("metadata", "finalizers")})


def merge_key(path: tuple[str, ...]) -> str | None:
    if path in _ROOT_MERGE_KEYS:
        return _ROOT_MERGE_KEYS[path]
    for suffix, key in _MERGE_KEYS:
        if path[-len(suffix) :] == suffix:
            return key
    return None


# --- JSON merge patch ----------------------------------------------------------------------------


def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result


# --- strategic merge patch -----------------------------------------------------------------------


def strategic_merge_patch(original: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        raise bad_request("strategic merge patch must be a JSON object")
    result = _merge_map(original if isinstance(original, dict) else {}, patch, ())
    if result is _DELETE:
        return {}
    return result


def _strip(value: Any, path: tuple[str, ...]) -> Any:
    """A patch value with directives removed, as stored when there is nothing to merge with."""
    if isinstance(value, dict):
        if value.get("$patch") == "delete":
            return _DELETE
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k.startswith("$"):
                continue
            if v is None:
                continue
            stripped = _strip(v, (*path, k))
            if stripped is not _DELETE:
                out[k] = stripped
        return out
    if isinstance(value, list):
        items = []
        for item in value:
            if isinstance(item, dict) and "$patch" in item:
                continue
            stripped = _strip(item, path)
            if stripped is not _DELETE:
                items.append(stripped)
        return items
    return value


def _merge_map(original: dict[str, Any], patch: dict[str, Any], path: tuple[str, ...]) -> Any:
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        return _strip({k: v for k, v in patch.items() if k != "$patch"}, path)
    if directive is not None and directive != "merge":
        raise bad_request(f"Unknown patch type: {directive!r}")
    result = dict(original)
    orders: dict[str, list[Any]] = {}
    deletions: dict[str, list[Any]] = {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            if not isinstance(value, list):
                raise bad_request(f"invalid {key}: must be a list")
            orders[key.partition("/")[2]] = value
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            if not isinstance(value, list):
                raise bad_request(f"invalid {key}: must be a list")
            deletions[key.partition("/")[2]] = value
            continue
        child = (*path, key)
        if value is None:
            result.pop(key, None)
            continue
        current = result.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            merged = _merge_map(current, value, child)
        elif isinstance(value, list) and isinstance(current, list):
            merged = _merge_list(current, value, child)
        else:
            merged = _strip(value, child)
        if merged is _DELETE:
            result.pop(key, None)
        else:
            result[key] = merged
    for key, values in deletions.items():
        if isinstance(result.get(key), list):
            result[key] = [v for v in result[key] if v not in values]
    for key, order in orders.items():
        if isinstance(result.get(key), list):
            result[key] = _apply_order(result[key], order, merge_key((*path, key)))
    if retain is not None:
        if not isinstance(retain, list):
            raise bad_request("invalid $retainKeys: must be a list")
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(original: list[Any], patch: list[Any], path: tuple[str, ...]) -> Any:
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return _strip([i for i in patch if not (isinstance(i, dict) and "$patch" in i)], path)
    key = merge_key(path)
    if path in _PRIMITIVE_MERGE:
        result = list(original)
        for item in patch:
            if item not in result:
                result.append(item)
        return result
    if key is None:
        return _strip(patch, path)
    result = [copy.deepcopy(i) for i in original]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise ApiError(
                422,
                "Invalid",
                f"map: {item!r} does not contain declared merge key: {key}",
            )
        index = next(
            (i for i, o in enumerate(result) if isinstance(o, dict) and o.get(key) == item[key]),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
            continue
        if index is None:
            stripped = _strip(item, path)
            if stripped is not _DELETE:
                result.append(stripped)
        else:
            merged = _merge_map(result[index], item, path)
            if merged is _DELETE:
                del result[index]
            else:
                result[index] = merged
    return result


def _apply_order(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    """Put items in the order `$setElementOrder` names; unnamed items keep their place after."""

    def ident(item: Any) -> Any:
        if key is not None and isinstance(item, dict):
            return item.get(key)
        return item

    wanted = [ident(o) for o in order]
    ranked = sorted(
        enumerate(items),
        key=lambda pair: (
            wanted.index(ident(pair[1])) if ident(pair[1]) in wanted else len(wanted),
            pair[0],
        ),
    )
    return [item for _, item in ranked]


# --- JSON patch ----------------------------------------------------------------------------------


class JsonPatchError(Exception):
    """Applying a JSON patch failed (the server answers 422)."""


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise bad_request(f"invalid JSON pointer {path!r}")
    if path == "":
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict):
            if part not in node:
                raise JsonPatchError(f"path /{'/'.join(parts)}: {part!r} not found")
            node = node[part]
        elif isinstance(node, list):
            node = node[_index(node, part, allow_end=False)]
        else:
            raise JsonPatchError(f"path /{'/'.join(parts)}: cannot descend into a value")
    return node, parts[-1]


def _index(node: list[Any], part: str, allow_end: bool) -> int:
    if part == "-" and allow_end:
        return len(node)
    if not part.isdigit() or (len(part) > 1 and part.startswith("0")):
        raise JsonPatchError(f"invalid array index {part!r}")
    index = int(part)
    if index > len(node) or (index == len(node) and not allow_end):
        raise JsonPatchError(f"array index {index} out of bounds")
    return index


def _get(doc: Any, parts: list[str]) -> Any:
    if not parts:
        return doc
    parent, last = _parent(doc, parts)
    if isinstance(parent, dict):
        if last not in parent:
            raise JsonPatchError(f"path /{'/'.join(parts)} not found")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, allow_end=False)]
    raise JsonPatchError(f"path /{'/'.join(parts)} not found")


def _remove(doc: Any, parts: list[str]) -> Any:
    if not parts:
        raise JsonPatchError("cannot remove the whole document")
    parent, last = _parent(doc, parts)
    if isinstance(parent, dict):
        if last not in parent:
            raise JsonPatchError(f"remove: path /{'/'.join(parts)} not found")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, allow_end=False))
    raise JsonPatchError(f"remove: path /{'/'.join(parts)} not found")


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent, last = _parent(doc, parts)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, allow_end=True), value)
    else:
        raise JsonPatchError(f"add: path /{'/'.join(parts)}: parent is not a container")
    return doc


def parse_json_patch(ops: Any) -> list[dict[str, Any]]:
    if not isinstance(ops, list) or not all(isinstance(o, dict) for o in ops):
        raise bad_request("json patch must be a JSON array of operation objects")
    for op in ops:
        name = op.get("op")
        if name not in ("add", "remove", "replace", "move", "copy", "test"):
            raise bad_request(f"Unexpected kind: {name}")
        if "path" not in op:
            raise bad_request(f"operation {name} has no path")
        if name in ("add", "replace", "test") and "value" not in op:
            raise bad_request(f"operation {name} at {op['path']} has no value")
        if name in ("move", "copy") and "from" not in op:
            raise bad_request(f"operation {name} at {op['path']} has no from")
    return ops


def json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """Apply RFC 6902 operations to a copy of `doc`; JsonPatchError when one cannot apply."""
    doc = copy.deepcopy(doc)
    for op in ops:
        name = op["op"]
        parts = _pointer(op["path"])
        if name == "add":
            doc = _add(doc, parts, copy.deepcopy(op["value"]))
        elif name == "remove":
            _remove(doc, parts)
        elif name == "replace":
            _get(doc, parts)  # must exist
            if not parts:
                doc = copy.deepcopy(op["value"])
            else:
                _remove(doc, parts)
                doc = _add(doc, parts, copy.deepcopy(op["value"]))
        elif name == "move":
            source = _pointer(op["from"])
            value = _remove(doc, source)
            doc = _add(doc, parts, value)
        elif name == "copy":
            value = copy.deepcopy(_get(doc, _pointer(op["from"])))
            doc = _add(doc, parts, value)
        elif name == "test" and _get(doc, parts) != op["value"]:
            raise JsonPatchError(f"testing value {op['path']} failed: test failed")
    return doc


def apply_patch(rt: ResourceType, view: Any, patch_type: str, body: Any) -> Any:
    """`body` of content type `patch_type` applied to `view` (the object as the client sees it).

    Kinds without strategic-merge metadata (custom resources) refuse a strategic merge patch
    with 415, as upstream does, and take an apply patch as a merge patch.
    """
    if patch_type == MERGE_PATCH:
        if not isinstance(body, dict):
            raise bad_request("merge patch must be a JSON object")
        return json_merge_patch(view, body)
    if patch_type in (STRATEGIC_PATCH, APPLY_PATCH):
        if not rt.strategic:
            if patch_type == STRATEGIC_PATCH:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"strategic merge patch is not supported for {rt.group}/{rt.version}, "
                    f"Kind={rt.kind} locally, try --type merge",
                )
            return json_merge_patch(view, body)
        if not isinstance(body, dict):
            raise bad_request("strategic merge patch must be a JSON object")
        return strategic_merge_patch(view, body)
    if patch_type == JSON_PATCH:
        ops = parse_json_patch(body)
        try:
            return json_patch(view, ops)
        except JsonPatchError as e:
            raise ApiError(422, "Invalid", str(e)) from None
    raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {patch_type}")


def check_apply_patch(body: Any, field_manager: str | None) -> None:
    """Server-side apply needs a field manager and a body naming its apiVersion and kind."""
    if not field_manager:
        raise errors.invalid(
            "PatchOptions",
            "meta.k8s.io",
            "",
            [("fieldManager", "FieldValueRequired", "Required value: is required for apply patch")],
        )
    if not isinstance(body, dict) or not body.get("apiVersion") or not body.get("kind"):
        raise bad_request("apply patches need apiVersion and kind")

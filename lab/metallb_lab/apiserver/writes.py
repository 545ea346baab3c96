"""What each write does to an object, pure: the rules of create, update (PUT), delete and list
paging, apart from the store's locking and versions (store.py).

A request body becomes an object in storage form (`decode_body`); a create sets the metadata the
server owns (`prepare_create`); a PUT keeps what a client may not change (`updated_object`); a
DELETE checks its preconditions and answers with the object or a Status; a paged list carries its
position in a continue token. docs/apiserver.md ("Semantics") describes each rule.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from metallb_lab import Obj
from metallb_lab.apiserver import errors
from metallb_lab.apiserver.resources import ResourceType

# Kinds whose DELETE answers with the object rather than a Status (as upstream's registries do).
_RETURNS_DELETED_OBJECT = frozenset({"services", "pods"})
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_SERVER_FIELDS = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "generation",
)
"""Metadata a create never takes from the client."""
_KEPT_ON_UPDATE = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "namespace",
)
"""Metadata a PUT keeps from the stored object, whatever the body says."""


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def decode_body(rt: ResourceType, storage: ResourceType, body: Any, namespace: str | None) -> Obj:
    """Check apiVersion/kind/namespace of a request body; return a copy in storage form."""
    if not isinstance(body, dict):
        raise errors.bad_request(
            f"Object '{rt.kind}' is invalid: the request body must be a JSON object"
        )
    obj = copy.deepcopy(body)
    api_version = obj.get("apiVersion")
    kind = obj.get("kind")
    if api_version and api_version != rt.api_version:
        raise errors.bad_request(
            f"the API version in the data ({api_version}) does not match the expected API "
            f"version ({rt.api_version})"
        )
    if kind and kind != rt.kind:
        raise errors.bad_request(
            f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
        )
    meta = obj.get("metadata")
    if meta is None:
        meta = obj["metadata"] = {}
    if not isinstance(meta, dict):
        raise errors.bad_request("metadata must be an object")
    if rt.namespaced:
        if meta.get("namespace") and namespace and meta["namespace"] != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        meta["namespace"] = namespace or meta.get("namespace") or "default"
    else:
        meta.pop("namespace", None)
    return rt.store_form(obj, storage)


def check_name_matches(obj: Obj, name: str) -> None:
    """The name in a PUT or apply body must be the one on the URL."""
    if obj["metadata"].get("name") != name:
        raise errors.bad_request(
            f"the name of the object ({obj['metadata'].get('name', '')}) does not match the "
            f"name on the URL ({name})"
        )


def check_create(obj: Obj) -> None:
    if obj["metadata"].get("resourceVersion"):
        raise errors.bad_request("resourceVersion should not be set on objects to be created")


def prepare_create(obj: Obj, taken: Callable[[str], bool]) -> None:
    """Set what the server owns in a new object's metadata (in place): a name from
    `generateName` (one not `taken`), a fresh uid and the creation time."""
    meta = obj["metadata"]
    if not meta.get("name") and meta.get("generateName"):
        for _ in range(8):
            candidate = meta["generateName"] + "".join(random.choices(_NAME_CHARS, k=5))
            if not taken(candidate):
                meta["name"] = candidate
                break
    for server_field in _SERVER_FIELDS:
        meta.pop(server_field, None)
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now_rfc3339()


def updated_object(
    rt: ResourceType, storage: ResourceType, old: Obj, obj: Obj, subresource: str
) -> Obj:
    """The object a PUT of `obj` over `old` stores (before defaulting and validation).

    The status subresource changes `status` only; the main resource changes everything but the
    server-owned metadata and, where `status` is a subresource, the status. An object being
    deleted may lose finalizers but not gain them.
    """
    if subresource == "status":
        new = copy.deepcopy(old)
        if "status" in obj:
            new["status"] = obj["status"]
        else:
            new.pop("status", None)
    else:
        new = obj
        meta, old_meta = new["metadata"], old["metadata"]
        for kept in _KEPT_ON_UPDATE:
            if kept in old_meta:
                meta[kept] = old_meta[kept]
            else:
                meta.pop(kept, None)
        if "status" in rt.subresources:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise errors.invalid(
                    storage.kind,
                    rt.group,
                    meta["name"],
                    [
                        (
                            "metadata.finalizers",
                            "FieldValueForbidden",
                            "Forbidden: no new finalizers can be added if the object is being "
                            "deleted",
                        )
                    ],
                )
    new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
    return new


def same(a: Obj, b: Obj) -> bool:
    """Equal but for resourceVersion and managedFields: a write that changes nothing is not
    recorded (no new version, no watch event)."""
    return _strip_volatile(a) == _strip_volatile(b)


def _strip_volatile(obj: Obj) -> Obj:
    meta = {
        k: v
        for k, v in obj.get("metadata", {}).items()
        if k not in ("resourceVersion", "managedFields")
    }
    return {**obj, "metadata": meta}


def check_delete_preconditions(rt: ResourceType, stored: Obj, options: Obj | None) -> None:
    """DeleteOptions.preconditions (uid, resourceVersion): 409 when they do not hold."""
    pre = (options or {}).get("preconditions") or {}
    meta = stored["metadata"]
    name = meta["name"]
    if pre.get("uid") and pre["uid"] != meta.get("uid"):
        raise errors.conflict(
            rt.group,
            rt.plural,
            name,
            f"Precondition failed: UID in precondition: {pre['uid']}, "
            f"UID in object meta: {meta.get('uid')}",
        )
    if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
        raise errors.conflict(
            rt.group,
            rt.plural,
            name,
            "Precondition failed: ResourceVersion in precondition: "
            f"{pre['resourceVersion']}, ResourceVersion in object meta: "
            f"{meta['resourceVersion']}",
        )


def marked_for_deletion(stored: Obj) -> Obj:
    """An object with finalizers is not removed by DELETE: it gets a deletionTimestamp."""
    marked = copy.deepcopy(stored)
    marked["metadata"]["deletionTimestamp"] = now_rfc3339()
    marked["metadata"]["deletionGracePeriodSeconds"] = 0
    return marked


def delete_response(rt: ResourceType, obj: Obj) -> Obj:
    """What DELETE answers: the object for some kinds (and custom resources), else a Status."""
    if rt.storage_key in _RETURNS_DELETED_OBJECT or not rt.strategic:
        return rt.view(obj)
    details: Obj = {"name": obj["metadata"]["name"]}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = rt.plural
    details["uid"] = obj["metadata"].get("uid", "")
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


def parse_rv(text: str) -> int:
    """A resourceVersion from a query or a body: a non-negative integer, else 400."""
    try:
        value = int(text)
    except ValueError:
        raise errors.bad_request(f'invalid resource version "{text}"') from None
    if value < 0:
        raise errors.bad_request(f'invalid resource version "{text}"')
    return value


def encode_continue(rv: int, start: str) -> str:
    """A continue token: the list's version and the last key returned (as upstream's)."""
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        return int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise errors.bad_request(
            "continue key is not valid: incorrect encoded start "
            "resourceVersion (version meta.k8s.io/v1)"
        ) from None

"""Request bodies in Kubernetes' protobuf encoding, read into the JSON shape (pure).

kubectl's typed clients send built-in objects as `application/vnd.kubernetes.protobuf`:
`kubectl create configmap|secret|namespace|service` and `kubectl auth can-i|whoami` do. The
body is the magic `k8s\\x00` and a `runtime.Unknown` message: its `typeMeta` (apiVersion, kind)
and `raw`, the object's own message. Field numbers and types follow the `generated.proto` files
of k8s.io/api; only the kinds in `KINDS` (what those kubectl commands send) are read, others are
refused as an unknown format (docs/apiserver.md, "Deviations").

Go's protobuf encoding of these types writes every non-pointer field, zero or not (an empty
`generateName`, a `generation` of 0, an empty `creationTimestamp`); JSON omits them. So a zero
scalar or an empty message is dropped, except for the fields marked `keep`, which are pointers
in Go (sent only when set, so `allocateLoadBalancerNodePorts: false` survives).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"


class ProtobufError(ValueError):
    """The body is not protobuf we can read (the message says why)."""


class UnreadableError(ProtobufError):
    """Not a Kubernetes protobuf object, or one of a kind this reader does not know: for the
    client, an unknown format (415)."""


@dataclass(frozen=True)
class Field:
    name: str
    kind: str
    """string, bytes (base64 text in JSON), int, bool, map (string->string), bytesmap
    (string->bytes), intorstring, or the name of a message in MESSAGES."""
    repeated: bool = False
    keep: bool = False
    """A Go pointer: present means set, even when zero."""


F = Field
MESSAGES: dict[str, dict[int, Field]] = {
    "TypeMeta": {1: F("apiVersion", "string"), 2: F("kind", "string")},
    "Unknown": {
        1: F("typeMeta", "TypeMeta"),
        2: F("raw", "raw"),
        3: F("contentEncoding", "string"),
        4: F("contentType", "string"),
    },
    "ObjectMeta": {
        1: F("name", "string"),
        2: F("generateName", "string"),
        3: F("namespace", "string"),
        5: F("uid", "string"),
        6: F("resourceVersion", "string"),
        7: F("generation", "int"),
        11: F("labels", "map"),
        12: F("annotations", "map"),
        13: F("ownerReferences", "OwnerReference", repeated=True),
        14: F("finalizers", "string", repeated=True),
    },
    "OwnerReference": {
        1: F("kind", "string"),
        3: F("name", "string"),
        4: F("uid", "string"),
        5: F("apiVersion", "string"),
        6: F("controller", "bool", keep=True),
        7: F("blockOwnerDeletion", "bool", keep=True),
    },
    "ConfigMap": {
        1: F("metadata", "ObjectMeta"),
        2: F("data", "map"),
        3: F("binaryData", "bytesmap"),
        4: F("immutable", "bool", keep=True),
    },
    "Secret": {
        1: F("metadata", "ObjectMeta"),
        2: F("data", "bytesmap"),
        3: F("type", "string"),
        4: F("stringData", "map"),
        5: F("immutable", "bool", keep=True),
    },
    "Namespace": {
        1: F("metadata", "ObjectMeta"),
        2: F("spec", "NamespaceSpec"),
    },
    "NamespaceSpec": {1: F("finalizers", "string", repeated=True)},
    "Service": {
        1: F("metadata", "ObjectMeta"),
        2: F("spec", "ServiceSpec"),
    },
    "ServiceSpec": {
        1: F("ports", "ServicePort", repeated=True),
        2: F("selector", "map"),
        3: F("clusterIP", "string"),
        4: F("type", "string"),
        5: F("externalIPs", "string", repeated=True),
        7: F("sessionAffinity", "string"),
        8: F("loadBalancerIP", "string"),
        9: F("loadBalancerSourceRanges", "string", repeated=True),
        10: F("externalName", "string"),
        11: F("externalTrafficPolicy", "string"),
        12: F("healthCheckNodePort", "int"),
        13: F("publishNotReadyAddresses", "bool"),
        17: F("ipFamilyPolicy", "string", keep=True),
        18: F("clusterIPs", "string", repeated=True),
        19: F("ipFamilies", "string", repeated=True),
        20: F("allocateLoadBalancerNodePorts", "bool", keep=True),
        21: F("loadBalancerClass", "string", keep=True),
        22: F("internalTrafficPolicy", "string", keep=True),
    },
    "ServicePort": {
        1: F("name", "string"),
        2: F("protocol", "string"),
        3: F("port", "int"),
        4: F("targetPort", "intorstring"),
        5: F("nodePort", "int"),
        6: F("appProtocol", "string", keep=True),
    },
    "SelfSubjectReview": {1: F("metadata", "ObjectMeta")},
    "SelfSubjectAccessReview": {
        1: F("metadata", "ObjectMeta"),
        2: F("spec", "SelfSubjectAccessReviewSpec"),
    },
    "SelfSubjectAccessReviewSpec": {
        1: F("resourceAttributes", "ResourceAttributes"),
        2: F("nonResourceAttributes", "NonResourceAttributes"),
    },
    "ResourceAttributes": {
        1: F("namespace", "string"),
        2: F("verb", "string"),
        3: F("group", "string"),
        4: F("version", "string"),
        5: F("resource", "string"),
        6: F("subresource", "string"),
        7: F("name", "string"),
    },
    "NonResourceAttributes": {1: F("path", "string"), 2: F("verb", "string")},
    "SelfSubjectRulesReview": {
        1: F("metadata", "ObjectMeta"),
        2: F("spec", "SelfSubjectRulesReviewSpec"),
    },
    "SelfSubjectRulesReviewSpec": {1: F("namespace", "string")},
}
KINDS = {
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Namespace"),
    ("v1", "Service"),
    ("authentication.k8s.io/v1", "SelfSubjectReview"),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"),
}
"""The (apiVersion, kind) pairs read: the objects `kubectl create <kind>` sends, and the reviews
`kubectl auth whoami|can-i` send."""


def decode(body: bytes) -> dict[str, Any]:
    """The object in `body` as its JSON dict (apiVersion and kind from the envelope)."""
    if not body.startswith(MAGIC):
        raise UnreadableError("not a Kubernetes protobuf object (no k8s\\x00 prefix)")
    envelope = _message(body[len(MAGIC) :], "Unknown")
    type_meta = envelope.get("typeMeta") or {}
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    if envelope.get("contentEncoding"):
        raise UnreadableError(f"content encoding {envelope['contentEncoding']!r} is not read")
    if (api_version, kind) not in KINDS:
        raise UnreadableError(f"{kind or 'an object'} in {api_version or '?'} is not read here")
    obj = _message(envelope.get("raw", b""), kind)
    return {"apiVersion": api_version, "kind": kind, **obj}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs: an int for varints, bytes for length-delimited fields."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated field")
            out.append((number, data[pos : pos + length]))
            pos += length
        elif wire in (1, 5):  # fixed 64/32 bits: no field read here has them; skip
            pos += 8 if wire == 1 else 4
        else:
            raise ProtobufError(f"wire type {wire} is not supported")
    return out


def _signed(value: int) -> int:
    """int32/int64 fields carry negatives as 64-bit two's complement."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError("a string field is not length-delimited")
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise ProtobufError("a string field is not UTF-8") from None


def _entry(value: int | bytes) -> tuple[str, int | bytes]:
    """A map entry: key (1) and value (2)."""
    if not isinstance(value, bytes):
        raise ProtobufError("a map entry is not length-delimited")
    parts = dict(_fields(value))
    return _text(parts.get(1, b"")), parts.get(2, b"")


def _int_or_string(value: int | bytes) -> int | str:
    if not isinstance(value, bytes):
        raise ProtobufError("an IntOrString is not length-delimited")
    parts = dict(_fields(value))
    if parts.get(1, 0) == 1:
        return _text(parts.get(3, b""))
    number = parts.get(2, 0)
    return _signed(number) if isinstance(number, int) else 0


def _scalar(field: Field, value: int | bytes) -> Any:
    if field.kind == "string":
        return _text(value)
    if field.kind in ("bytes", "raw"):
        if not isinstance(value, bytes):
            raise ProtobufError(f"{field.name} is not length-delimited")
        return value if field.kind == "raw" else base64.b64encode(value).decode()
    if field.kind == "int":
        if not isinstance(value, int):
            raise ProtobufError(f"{field.name} is not a varint")
        return _signed(value)
    if field.kind == "bool":
        if not isinstance(value, int):
            raise ProtobufError(f"{field.name} is not a varint")
        return bool(value)
    if field.kind == "intorstring":
        return _int_or_string(value)
    if not isinstance(value, bytes):
        raise ProtobufError(f"{field.name} is not a message")
    return _message(value, field.kind)


def _message(data: bytes, name: str) -> dict[str, Any]:
    schema = MESSAGES[name]
    out: dict[str, Any] = {}
    for number, value in _fields(data):
        field = schema.get(number)
        if field is None:
            continue  # a field this reader does not know: left out, as an unknown JSON field
        if field.kind in ("map", "bytesmap"):
            key, raw = _entry(value)
            text = _text(raw) if field.kind == "map" else base64.b64encode(_bytes(raw)).decode()
            out.setdefault(field.name, {})[key] = text
        elif field.repeated:
            out.setdefault(field.name, []).append(_scalar(field, value))
        else:
            decoded = _scalar(field, value)
            if field.keep or decoded not in ("", 0, False, {}, b""):
                out[field.name] = decoded
    return out


def _bytes(value: int | bytes) -> bytes:
    if not isinstance(value, bytes):
        raise ProtobufError("a bytes field is not length-delimited")
    return value

"""Label and field selectors, parsed as the API server parses them.

Pure functions: parse once per request, then `matches(obj)` per object. A bad selector is a
400 BadRequest, and a field the resource does not index is refused as upstream refuses it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from metallb_py.testing.apiserver.errors import bad_request

_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_OPS = ("==", "!=", "=", "notin", "in", "!", ">", "<")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if not present or value is None:
            return False
        try:
            number = int(value)
        except ValueError:
            return False
        bound = int(self.values[0])
        return number > bound if self.op == "gt" else number < bound


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def _check_key(key: str, text: str) -> None:
    if not key or len(key.rpartition("/")[2]) > 63 or not _KEY.match(key):
        raise bad_request(f"unable to parse requirement: invalid label key {key!r} in {text!r}")


def _check_value(value: str, text: str) -> None:
    if len(value) > 63 or not _VALUE.match(value):
        raise bad_request(f"unable to parse requirement: invalid label value {value!r} in {text!r}")


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside `in (...)` value lists."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise bad_request(f"unable to parse requirement: unbalanced ')' in {text!r}")
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth != 0:
        raise bad_request(f"unable to parse requirement: unbalanced '(' in {text!r}")
    parts.append("".join(current))
    return parts


_SET_RE = re.compile(r"^\s*(\S+?)\s+(in|notin)\s*\((.*)\)\s*$")
_CMP_RE = re.compile(r"^\s*([^=!<>\s]+)\s*(==|!=|=|>|<)\s*(.*?)\s*$")


def parse_label_selector(text: str | None) -> LabelSelector:
    if text is None or not text.strip():
        return LabelSelector()
    reqs: list[Requirement] = []
    for raw_part in _split_top_level(text):
        part = raw_part.strip()
        if not part:
            raise bad_request(f"unable to parse requirement: empty requirement in {text!r}")
        if m := _SET_RE.match(part):
            key, op, raw = m.group(1), m.group(2), m.group(3)
            values = tuple(v.strip() for v in raw.split(",")) if raw.strip() else ()
            _check_key(key, text)
            if not values:
                raise bad_request(f"unable to parse requirement: {op} needs values in {text!r}")
            for v in values:
                _check_value(v, text)
            reqs.append(Requirement(key, op, tuple(sorted(set(values)))))
        elif m := _CMP_RE.match(part):
            key, op, value = m.group(1), m.group(2), m.group(3)
            _check_key(key, text)
            if op in (">", "<"):
                try:
                    int(value)
                except ValueError:
                    raise bad_request(
                        f"unable to parse requirement: {op} needs an integer in {text!r}"
                    ) from None
                reqs.append(Requirement(key, "gt" if op == ">" else "lt", (value,)))
            else:
                _check_value(value, text)
                reqs.append(Requirement(key, "!=" if op == "!=" else "=", (value,)))
        elif part.startswith("!"):
            key = part[1:].strip()
            _check_key(key, text)
            reqs.append(Requirement(key, "!exists"))
        else:
            _check_key(part, text)
            reqs.append(Requirement(part, "exists"))
    return LabelSelector(tuple(reqs))


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    equal: bool
    value: str


# Field labels whose value is not the plain dotted path.
_FIELD_PATHS = {"source": "source.component"}
_BOOLEAN_FIELDS = frozenset({"spec.unschedulable", "spec.hostNetwork"})


def field_value(obj: Mapping[str, Any], label: str) -> str:
    """The string a field selector compares for `label` (booleans as true/false, absent as "")."""
    node: Any = obj
    for part in _FIELD_PATHS.get(label, label).split("."):
        if not isinstance(node, Mapping):
            node = None
            break
        node = node.get(part)
    if isinstance(node, bool):
        return "true" if node else "false"
    if node is None:
        return "false" if label in _BOOLEAN_FIELDS else ""
    return str(node)


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all((field_value(obj, r.field) == r.value) == r.equal for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def exact_name(self) -> str | None:
        """The name when the selector pins `metadata.name=` (lets a lookup skip the scan)."""
        for r in self.requirements:
            if r.field == "metadata.name" and r.equal:
                return r.value
        return None


def _split_escaped(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if escaped:
        raise bad_request(f"invalid field selector: trailing backslash in {text!r}")
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def parse_field_selector(text: str | None, allowed: tuple[str, ...]) -> FieldSelector:
    if text is None or not text.strip():
        return FieldSelector()
    reqs: list[FieldRequirement] = []
    for part in _split_escaped(text, ","):
        if not part:
            continue
        m = re.match(r"^([^=!]+)(==|!=|=)(.*)$", part)
        if m is None:
            raise bad_request(f"invalid selector: {text!r}; can't understand {part!r}")
        name, op, value = m.group(1).strip(), m.group(2), _unescape(m.group(3))
        if name not in allowed:
            raise bad_request(f"field label not supported: {name}")
        reqs.append(FieldRequirement(name, op != "!=", value))
    return FieldSelector(tuple(reqs))

"""Label and field selectors, parsed as the API server parses them.

Pure functions: parse once per request, then `matches(obj)` per object. A bad selector is a
400 BadRequest, and a field the resource does not index is refused as upstream refuses it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from metallb_lab.apiserver.errors import bad_request
from metallb_py.k8s.selectors import LabelSelector, Requirement, SelectorError
from metallb_py.k8s.selectors import parse_label_selector as _parse_label_selector


def parse_label_selector(text: str | None) -> LabelSelector:
    """As `metallb_py.k8s.selectors.parse_label_selector`, failing as a 400 BadRequest."""
    try:
        return _parse_label_selector(text)
    except SelectorError as exc:
        raise bad_request(str(exc)) from None


__all__ = ["LabelSelector", "Requirement", "parse_field_selector", "parse_label_selector"]


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

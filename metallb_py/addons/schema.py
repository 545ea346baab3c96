"""Strict reading of addon values (Helm, Konvoy, Kontena) and custom resources.

A value file is the user's text like the config: an unknown key is an error with its field
path and a suggestion, never silently ignored (spec 9 item 4). `null` means "not set", as in
Helm, so the defaults apply. Free-form parts (tolerations, resources, affinity, relabelings)
are passed through as plain data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from metallb_py.addons.yamlio import Path, is_null, mapping_pairs, problem, to_python
from metallb_py.config.decode import suggest_key
from metallb_py.config.errors import ConfigError, Problem
from metallb_py.config.yamltree import Kind, classify, describe


@dataclass(frozen=True)
class Scalar:
    kind: type  # str, int or bool


@dataclass(frozen=True)
class AnyData:
    """Free-form data passed through (must be a mapping or list when `shape` says so)."""

    shape: type | None = None


@dataclass(frozen=True)
class StrMap:
    """Labels, annotations, nodeSelector: string keys to string values."""


@dataclass(frozen=True)
class ListOf:
    item: Spec


@dataclass(frozen=True)
class Fields:
    name: str
    fields: dict[str, Spec]
    required: tuple[str, ...] = ()


Spec = Scalar | AnyData | StrMap | ListOf | Fields

STR = Scalar(str)
INT = Scalar(int)
BOOL = Scalar(bool)
ANY = AnyData()
ANY_MAP = AnyData(dict)
ANY_LIST = ListOf(AnyData(dict))

_KINDS = {str: "a string", int: "an integer", bool: "a boolean (true/false)"}


@dataclass
class Reader:
    """Reads nodes against a spec, collecting every problem instead of stopping at the first."""

    line_offset: int = 0
    problems: list[Problem] = field(default_factory=list)

    def error(self, path: Path, reason: str, node: Node | None = None, value: Any = None) -> None:
        self.problems.append(problem(path, reason, node, value, self.line_offset))

    def check(self) -> None:
        if self.problems:
            raise ConfigError(self.problems)

    def read(self, node: Node | None, spec: Spec, path: Path) -> Any:
        """Plain data for `node`; None when absent, null or wrong (the last is reported)."""
        if is_null(node):
            return None
        assert node is not None
        if isinstance(spec, Fields):
            return self._fields(node, spec, path)
        if isinstance(spec, ListOf):
            if not isinstance(node, SequenceNode):
                self.error(path, f"expected a list, got {describe(node)}", node)
                return None
            items = [self.read(child, spec.item, (*path, i)) for i, child in enumerate(node.value)]
            return [i for i in items if i is not None]
        if isinstance(spec, StrMap):
            return self._str_map(node, path)
        if isinstance(spec, AnyData):
            if spec.shape is dict and not isinstance(node, MappingNode):
                self.error(path, f"expected a mapping, got {describe(node)}", node)
                return None
            return to_python(node, path, self.problems, self.line_offset)
        return self._scalar(node, spec, path)

    def _scalar(self, node: Node, spec: Scalar, path: Path) -> Any:
        wanted = _KINDS[spec.kind]
        if not isinstance(node, ScalarNode):
            self.error(path, f"expected {wanted}, got {describe(node)}", node)
            return None
        s = classify(node)
        if spec.kind is str:
            if s.kind in (Kind.STR, Kind.INT, Kind.FLOAT) or (s.kind is Kind.BOOL and s.quoted):
                return s.text
            self.error(path, f"expected {wanted}, got {describe(node)} {s.text!r}", node, s.text)
            return None
        expected = Kind.INT if spec.kind is int else Kind.BOOL
        if s.kind is expected:
            return s.value
        hint = ": remove the quotes" if s.quoted else ""
        self.error(path, f"expected {wanted}, got {describe(node)} {s.text!r}{hint}", node, s.text)
        return None

    def _str_map(self, node: Node, path: Path) -> dict[str, str] | None:
        if not isinstance(node, MappingNode):
            self.error(path, f"expected a mapping of strings, got {describe(node)}", node)
            return None
        out: dict[str, str] = {}
        for key_node, value_node in mapping_pairs(node):
            key = self._key(key_node, path, out)
            if key is None:
                continue
            if is_null(value_node):
                out[key] = ""
                continue
            value = self._scalar(value_node, STR, (*path, key))
            if value is not None:
                out[key] = value
        return out

    def _key(self, key_node: Node, path: Path, seen: dict[str, Any]) -> str | None:
        if not isinstance(key_node, ScalarNode):
            self.error(path, "mapping keys must be strings", key_node)
            return None
        key = str(key_node.value)
        if key in seen:
            self.error((*path, key), f"key {key!r} appears more than once", key_node, key)
            return None
        return key

    def _fields(self, node: Node, spec: Fields, path: Path) -> dict[str, Any] | None:
        if not isinstance(node, MappingNode):
            self.error(path, f"expected {spec.name} (a mapping), got {describe(node)}", node)
            return None
        out: dict[str, Any] = {}
        seen: dict[str, Any] = {}
        misspelled: set[str] = set()
        for key_node, value_node in mapping_pairs(node):
            key = self._key(key_node, path, seen)
            if key is None:
                continue
            seen[key] = True
            sub = spec.fields.get(key)
            if sub is None:
                meant, hint = suggest_key(key, list(spec.fields))
                if meant is not None:
                    misspelled.add(meant)
                self.error(
                    (*path, key), f"unknown key {key!r} in {spec.name}: {hint}", key_node, key
                )
                continue
            value = self.read(value_node, sub, (*path, key))
            if value is not None:
                out[key] = value
        for key in spec.required:
            if key not in out and key not in seen and key not in misspelled:
                self.error((*path, key), f"{spec.name} needs {key!r}", node)
        return out

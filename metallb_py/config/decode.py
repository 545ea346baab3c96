"""Strict, schema-driven decoding of YAML node trees, for everything a user writes: the config
(docs/config.md), addon values and MetalLB v0.13 custom resources.

This is the equivalent of upstream's `yaml.UnmarshalStrict` into typed Go structs: unknown
keys, repeated keys and type mismatches are problems. Unlike upstream it keeps going after a
problem and remembers which fields were broken, so later semantic checks can skip exactly
what depends on them and still report everything else.

Null is read two ways, chosen per `Decoder`: as Go's zero value (the config, as yaml.v2 fills a
struct) or as "not set" (addon values, as Helm merges them over the chart's defaults).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from metallb_py.config.yamlnodes import (
    Path,
    ProblemLog,
    merged_pairs,
    repeated_key,
    to_plain,
)
from metallb_py.config.yamltree import Kind, Scalar, classify, describe, line_of, shorten

# --- schema ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Str:
    """Any scalar, kept as its text (yaml.v2 puts the raw text of 64512:1 or yes in a string)."""

    booleans: bool = True
    """False refuses an unquoted true/yes/on: Helm would hand a template a boolean there."""


@dataclass(frozen=True)
class Int:
    lo: int
    hi: int
    what: str


@dataclass(frozen=True)
class Bool:
    pass


@dataclass(frozen=True)
class List:
    item: Spec


@dataclass(frozen=True)
class StrMap:
    """`map[string]string`: keys and values are scalars kept as text."""

    value: Str = Str()


@dataclass(frozen=True)
class Struct:
    name: str
    fields: dict[str, Spec]
    required: tuple[str, ...] = ()
    """Keys that must be present and not null."""
    hint: Callable[[Node, Struct], str] | None = field(default=None, compare=False)
    """Extra advice for an unknown key, given its value node."""


@dataclass(frozen=True)
class Data:
    """Free-form data passed through as plain data (tolerations, resources, affinity); when
    `shape` is dict or list the value must be a mapping or a list."""

    shape: type | None = None


Spec = Str | Int | Bool | List | StrMap | Struct | Data

STR = Str()
BOOL = Bool()
UINT32 = Int(0, 2**32 - 1, "an unsigned 32-bit integer (0-4294967295)")
UINT16 = Int(0, 2**16 - 1, "an unsigned 16-bit integer (0-65535)")
INT64 = Int(-(2**63), 2**63 - 1, "a 64-bit integer")

# Kubernetes objects and Helm values are typed data (JSON underneath): an unquoted `true` is
# not a string there, integers are Go's int64, and free-form parts pass through as data.
TYPED_STR = Str(booleans=False)
TYPED_INT = Int(-(2**63), 2**63 - 1, "an integer")
ANY = Data()
ANY_MAP = Data(dict)
ANY_LIST = List(Data(dict))


# --- decoded values -------------------------------------------------------------------


@dataclass
class Item:
    """One list element; `value` is None when the element itself was unusable."""

    index: int
    node: Node
    value: Any


@dataclass
class Seq:
    items: list[Item]
    node: Node

    def good(self) -> Iterator[tuple[int, Node, Any]]:
        for it in self.items:
            if it.value is not None:
                yield it.index, it.node, it.value


@dataclass
class Pair:
    key: str
    key_node: Node
    value: str | None
    """None when the value was unusable (already reported)."""
    value_node: Node


@dataclass
class Obj:
    """A decoded mapping: typed values of the known keys plus what went wrong with them."""

    path: Path
    node: Node | None
    """The mapping node (None or a null scalar for an empty item)."""
    values: dict[str, Any] = field(default_factory=dict)
    value_nodes: dict[str, Node] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)
    """Keys present with an unusable value (already reported)."""
    misspelled: set[str] = field(default_factory=set)
    """Known keys that an unknown key probably meant (already reported)."""

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def ok(self, key: str) -> bool:
        """True unless this key's problem was already reported (so skip dependent checks)."""
        return key not in self.broken and key not in self.misspelled

    def where(self, key: str) -> tuple[Path, Node | None]:
        return (*self.path, key), self.value_nodes.get(key, self.node)

    @property
    def line(self) -> int | None:
        return line_of(self.node)


def to_data(value: Any) -> Any:
    """Plain dicts and lists of a decoded value; unusable parts (None) are left out."""
    if isinstance(value, Obj):
        return {k: to_data(v) for k, v in value.values.items() if v is not None}
    if isinstance(value, Seq):
        return [to_data(it.value) for it in value.items if it.value is not None]
    if isinstance(value, list) and all(isinstance(p, Pair) for p in value):
        return {p.key: p.value for p in value if p.value is not None}
    return value


# --- key suggestions ------------------------------------------------------------------

_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def squash(key: str) -> str:
    """A key without case, dashes and underscores, to recognise respellings."""
    return key.replace("-", "").replace("_", "").lower()


def suggest_key(key: str, allowed: list[str]) -> tuple[str | None, str]:
    """The known key an unknown one probably meant, and a hint sentence."""
    if "_" in key or _CAMEL_RE.search(key) or key != key.lower():
        kebab = _CAMEL_RE.sub("-", key).replace("_", "-").lower()
        for candidate in allowed:
            if kebab == candidate or squash(key) == squash(candidate):
                return (
                    candidate,
                    f"keys are written in lower-case kebab-case: use {candidate!r}",
                )
    for candidate in allowed:
        if squash(key) == squash(candidate):
            return candidate, f"did you mean {candidate!r}?"
    for candidate in allowed:  # `pools` for `address-pools`, `selectors` for `node-selectors`
        if candidate.endswith("-" + key.lower()):
            return candidate, f"did you mean {candidate!r}?"
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return close[0], f"did you mean {close[0]!r}?"
    return None, "valid keys here: " + ", ".join(allowed)


def _a(name: str) -> str:
    """`a peer`, `an address pool`; plural and mass nouns (`chart values`, `metadata`) bare."""
    if name.endswith(("values", "metadata")):
        return name
    return ("an " if name[0].lower() in "aeiou" else "a ") + name


# --- the decoder ----------------------------------------------------------------------


class Decoder:
    def __init__(self, problems: ProblemLog, null_unset: bool = False) -> None:
        self.problems = problems
        self.null_unset = null_unset
        """True: null means "not set" (value None) rather than Go's zero value."""

    def error(self, path: Path, reason: str, value: Any = None, node: Node | None = None) -> None:
        self.problems.add(path, reason, value, node)

    def decode(self, node: Node | None, spec: Spec, path: Path) -> tuple[bool, Any]:
        """(ok, value); a null/absent node gives the Go zero value (None for absent)."""
        if self.null_unset and (node is None or _is_null(node)):
            return True, None
        if isinstance(spec, Struct):
            return self._struct(node, spec, path)
        if node is None:
            return True, None
        if _is_null(node):
            # Go's zero value: "" for a string (so a null list item is ""), nil otherwise.
            return True, ("" if isinstance(spec, Str) else None)
        if isinstance(spec, List):
            return self._list(node, spec, path)
        if isinstance(spec, StrMap):
            return self._strmap(node, spec, path)
        if isinstance(spec, Str):
            return self._str(node, spec, path)
        if isinstance(spec, Int):
            return self._int(node, spec, path)
        if isinstance(spec, Data):
            return self._data(node, spec, path)
        return self._bool(node, path)

    def _scalar(self, node: Node, path: Path, what: str) -> Scalar | None:
        """The typed scalar, or None when the node is a mapping or a list (reported)."""
        if not isinstance(node, ScalarNode):
            self.error(path, f"expected {what}, got {describe(node)}", node=node)
            return None
        return classify(node)

    def _str(self, node: Node, spec: Str, path: Path) -> tuple[bool, str | None]:
        s = self._scalar(node, path, "a string")
        if s is None:
            return False, None
        if s.kind is Kind.INVALID:
            self.error(path, str(s.value), s.text, node)
            return False, None
        if s.kind is Kind.BOOL and not spec.booleans and not s.quoted:
            self.error(
                path,
                f"expected a string, got the boolean {s.text}: quote it ({s.text!r}) if a"
                " string is meant",
                s.text,
                node,
            )
            return False, None
        return True, "" if s.kind is Kind.NULL else s.text

    def _int(self, node: Node, spec: Int, path: Path) -> tuple[bool, int | None]:
        s = self._scalar(node, path, spec.what)
        if s is None:
            return False, None
        if s.kind is Kind.INT:
            if spec.lo <= s.value <= spec.hi:
                return True, int(s.value)
            self.error(path, f"{s.value} does not fit: expected {spec.what}", s.text, node)
            return False, None
        if s.kind is Kind.STR and s.quoted and _looks_numeric(s.text):
            reason = (
                f"expected {spec.what}, got the quoted string {shorten(s.text)}: remove the quotes"
            )
        elif s.kind is Kind.FLOAT:
            reason = f"expected {spec.what}, got the non-integer number {shorten(s.text)}"
        elif s.kind is Kind.INVALID:
            reason = str(s.value)
        else:
            reason = f"expected {spec.what}, got {describe(node)} {shorten(s.text)}"
        self.error(path, reason, s.text, node)
        return False, None

    def _bool(self, node: Node, path: Path) -> tuple[bool, bool | None]:
        s = self._scalar(node, path, "a boolean (true/false)")
        if s is None:
            return False, None
        if s.kind is Kind.BOOL:
            return True, bool(s.value)
        if s.kind is Kind.STR and s.quoted:
            reason = (
                f"expected a boolean, got the quoted string {shorten(s.text)}: remove the quotes"
            )
        else:
            reason = f"expected a boolean (true/false), got {describe(node)} {shorten(s.text)}"
        self.error(path, reason, s.text, node)
        return False, None

    def _data(self, node: Node, spec: Data, path: Path) -> tuple[bool, Any]:
        wanted = {dict: (MappingNode, "a mapping"), list: (SequenceNode, "a list")}
        if spec.shape in wanted:
            kind, what = wanted[spec.shape]
            if not isinstance(node, kind):
                self.error(path, f"expected {what}, got {describe(node)}", node=node)
                return False, None
        before = len(self.problems.items)
        value = to_plain(node, self.problems, path)
        return len(self.problems.items) == before, value

    def _list(self, node: Node, spec: List, path: Path) -> tuple[bool, Seq | None]:
        if not isinstance(node, SequenceNode):
            hint = " (write each entry on its own line starting with '- ')"
            value = node.value if isinstance(node, ScalarNode) else None
            self.error(path, f"expected a list, got {describe(node)}{hint}", value, node)
            return False, None
        seq = Seq([], node)
        ok = True
        for i, child in enumerate(node.value):
            item_ok, value = self.decode(child, spec.item, (*path, i))
            ok = ok and item_ok
            if isinstance(spec.item, Struct) and value is not None:
                seq.items.append(Item(i, child, value))
            else:
                seq.items.append(Item(i, child, value if item_ok else None))
        return ok, seq

    def _strmap(self, node: Node, spec: StrMap, path: Path) -> tuple[bool, list[Pair] | None]:
        if not isinstance(node, MappingNode):
            self.error(path, f"expected a mapping, got {describe(node)}", node=node)
            return False, None
        pairs: list[Pair] = []
        seen: dict[str, Node] = {}
        ok = True
        for key, key_node, value_node in self._entries(node, path):
            if key is None:
                ok = False
                continue
            if key in seen:
                self.error((*path, key), repeated_key(key, seen[key]), key, key_node)
                ok = False
                continue
            seen[key] = key_node
            value_ok, value = (
                (True, "")
                if _is_null(value_node)
                else self._str(value_node, spec.value, (*path, key))
            )
            ok = ok and value_ok
            pairs.append(Pair(key, key_node, value if value_ok else None, value_node))
        return ok, pairs

    def _struct(self, node: Node | None, spec: Struct, path: Path) -> tuple[bool, Obj | None]:
        obj = Obj(path, node)
        if node is None or _is_null(node):
            return True, obj
        if not isinstance(node, MappingNode):
            value = node.value if isinstance(node, ScalarNode) else None
            self.error(
                path, f"expected {_a(spec.name)} (a mapping), got {describe(node)}", value, node
            )
            return False, None
        allowed = list(spec.fields)
        seen: dict[str, Node] = {}
        unknown: list[tuple[str, Node, Node]] = []
        ok = True
        for key, key_node, value_node in self._entries(node, path):
            if key is None:
                ok = False
                continue
            if key not in spec.fields:
                unknown.append((key, key_node, value_node))
                continue
            if key in seen:
                # Explicit keys are unique; merged (<<) keys were already dropped if overridden.
                self.error((*path, key), repeated_key(key, seen[key]), key, key_node)
                obj.broken.add(key)
                ok = False
                continue
            seen[key] = key_node
            obj.value_nodes[key] = value_node
            field_ok, value = self.decode(value_node, spec.fields[key], (*path, key))
            if value is not None:
                # Lists and mappings keep their usable parts even when some part is broken.
                obj.values[key] = value
            if not field_ok:
                obj.broken.add(key)
                ok = False
        for key, key_node, value_node in unknown:
            ok = False
            meant, hint = suggest_key(key, allowed)
            if meant is not None and meant not in seen:
                obj.misspelled.add(meant)
            reason = f"unknown key {key!r} in {spec.name}: {hint}"
            extra = spec.hint(value_node, spec) if spec.hint is not None else ""
            self.error((*path, key), reason + extra, key, key_node)
        for key in spec.required:
            if obj.get(key) is None and obj.ok(key):
                self.error((*path, key), f"{spec.name} needs {key!r}", None, node)
                obj.broken.add(key)
                ok = False
        return ok, obj

    def _entries(self, node: MappingNode, path: Path) -> Iterator[tuple[str | None, Node, Node]]:
        """The mapping's entries, merge keys applied, each key as its text; None for a key
        that is not a scalar (reported)."""
        for key_node, value_node in merged_pairs(node, self.problems, path):
            if isinstance(key_node, ScalarNode):
                yield str(key_node.value), key_node, value_node
            else:
                self.error(path, f"keys must be strings, got {describe(key_node)}", node=key_node)
                yield None, key_node, value_node


def read(node: Node | None, spec: Spec, path: Path, problems: ProblemLog) -> Any:
    """Plain data of `node` read against `spec`, null meaning "not set" (addon values, custom
    resources); None when absent, null or unusable (the last is reported to `problems`)."""
    _, value = Decoder(problems, null_unset=True).decode(node, spec, path)
    return to_data(value)


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and classify(node).kind is Kind.NULL


def _looks_numeric(text: str) -> bool:
    return bool(re.fullmatch(r"\s*[-+]?[0-9][0-9_]*\s*", text))

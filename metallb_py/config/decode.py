"""Strict, schema-driven decoding of the YAML node tree (spec 1.1, 1.11).

This is the equivalent of upstream's `yaml.UnmarshalStrict` into typed Go structs: unknown
keys, repeated keys and type mismatches are problems. Unlike upstream it keeps going after a
problem and remembers which fields were broken, so later semantic checks can skip exactly
what depends on them and still report everything else.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from metallb_py.config.errors import Problem
from metallb_py.config.yamltree import Kind, classify, describe, line_of

PathPart = str | int
Path = tuple[PathPart, ...]

MIN_NODE_BUDGET = 100_000
"""Aliases let a small text name a huge tree. Decoding may visit twice the nodes written in
the text, or this many, whichever is more; then it stops."""
MAX_PROBLEMS = 500
"""Past this many problems a list helps nobody (and an alias bomb could make millions)."""
MAX_MERGE_DEPTH = 16

_SIMPLE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")


def format_path(path: Path) -> str:
    """`address-pools[1].addresses[0]`; odd keys as `match-labels["kubernetes.io/os"]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _SIMPLE_KEY_RE.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


# --- schema ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Str:
    """Any scalar, kept as its text (yaml.v2 puts the raw text of 64512:1 or yes in a string)."""


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


@dataclass(frozen=True)
class Struct:
    name: str
    fields: dict[str, Spec]


Spec = Str | Int | Bool | List | StrMap | Struct

STR = Str()
BOOL = Bool()
UINT32 = Int(0, 2**32 - 1, "an unsigned 32-bit integer (0-4294967295)")
UINT16 = Int(0, 2**16 - 1, "an unsigned 16-bit integer (0-65535)")
INT64 = Int(-(2**63), 2**63 - 1, "a 64-bit integer")


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


class TooComplexError(Exception):
    """Work or problem budget exhausted; the reason is already the last problem recorded."""


class ProblemLog:
    """The problems found so far, shared by the decoder and the semantic checks."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, path: Path, reason: str, value: Any = None, node: Node | None = None) -> None:
        self.items.append(Problem(format_path(path), reason, value, line_of(node)))
        if len(self.items) >= MAX_PROBLEMS:
            self.items.append(Problem("", f"stopped after {MAX_PROBLEMS} problems"))
            raise TooComplexError

    def __bool__(self) -> bool:
        return bool(self.items)


# --- key suggestions ------------------------------------------------------------------

_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _squash(key: str) -> str:
    return key.replace("-", "").replace("_", "").lower()


def suggest_key(key: str, allowed: list[str]) -> tuple[str | None, str]:
    """The known key an unknown one probably meant, and a hint sentence."""
    if "_" in key or _CAMEL_RE.search(key) or key != key.lower():
        kebab = _CAMEL_RE.sub("-", key).replace("_", "-").lower()
        for candidate in allowed:
            if kebab == candidate or _squash(key) == _squash(candidate):
                return (
                    candidate,
                    f"keys are written in lower-case kebab-case: use {candidate!r}",
                )
    for candidate in allowed:
        if _squash(key) == _squash(candidate):
            return candidate, f"did you mean {candidate!r}?"
    for candidate in allowed:  # `pools` for `address-pools`, `selectors` for `node-selectors`
        if candidate.endswith("-" + key.lower()):
            return candidate, f"did you mean {candidate!r}?"
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return close[0], f"did you mean {close[0]!r}?"
    return None, "valid keys here: " + ", ".join(allowed)


# --- the decoder ----------------------------------------------------------------------


class Decoder:
    def __init__(self, problems: ProblemLog, node_count: int) -> None:
        self.problems = problems
        self.visits = 0
        self.budget = max(MIN_NODE_BUDGET, 2 * node_count)

    def error(self, path: Path, reason: str, value: Any = None, node: Node | None = None) -> None:
        self.problems.add(path, reason, value, node)

    def _tick(self, node: Node) -> None:
        self.visits += 1
        if self.visits > self.budget:
            self.problems.items.append(
                Problem(
                    "",
                    f"the document expands to more than {self.budget} values through YAML"
                    " aliases; refused",
                    None,
                    line_of(node),
                )
            )
            raise TooComplexError

    def decode(self, node: Node | None, spec: Spec, path: Path) -> tuple[bool, Any]:
        """(ok, value); a null/absent node gives the Go zero value (None for absent)."""
        if node is not None:
            self._tick(node)
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
            return self._strmap(node, path)
        if isinstance(spec, Str):
            return self._str(node, path)
        if isinstance(spec, Int):
            return self._int(node, spec, path)
        return self._bool(node, path)

    def _str(self, node: Node, path: Path) -> tuple[bool, str | None]:
        if not isinstance(node, ScalarNode):
            self.error(path, f"expected a string, got {describe(node)}", node=node)
            return False, None
        s = classify(node)
        if s.kind is Kind.INVALID:
            self.error(path, str(s.value), s.text, node)
            return False, None
        return True, "" if s.kind is Kind.NULL else s.text

    def _int(self, node: Node, spec: Int, path: Path) -> tuple[bool, int | None]:
        if not isinstance(node, ScalarNode):
            self.error(path, f"expected {spec.what}, got {describe(node)}", node=node)
            return False, None
        s = classify(node)
        if s.kind is Kind.INT:
            if spec.lo <= s.value <= spec.hi:
                return True, int(s.value)
            self.error(path, f"{s.value} does not fit: expected {spec.what}", s.text, node)
            return False, None
        if s.kind is Kind.STR and s.quoted and _looks_numeric(s.text):
            reason = f"expected {spec.what}, got the quoted string {s.text!r}: remove the quotes"
        elif s.kind is Kind.FLOAT:
            reason = f"expected {spec.what}, got the non-integer number {s.text!r}"
        elif s.kind is Kind.INVALID:
            reason = str(s.value)
        else:
            reason = f"expected {spec.what}, got {describe(node)} {s.text!r}"
        self.error(path, reason, s.text, node)
        return False, None

    def _bool(self, node: Node, path: Path) -> tuple[bool, bool | None]:
        if not isinstance(node, ScalarNode):
            self.error(path, f"expected a boolean (true/false), got {describe(node)}", node=node)
            return False, None
        s = classify(node)
        if s.kind is Kind.BOOL:
            return True, bool(s.value)
        if s.kind is Kind.STR and s.quoted:
            reason = f"expected a boolean, got the quoted string {s.text!r}: remove the quotes"
        else:
            reason = f"expected a boolean (true/false), got {describe(node)} {s.text!r}"
        self.error(path, reason, s.text, node)
        return False, None

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

    def _strmap(self, node: Node, path: Path) -> tuple[bool, list[Pair] | None]:
        if not isinstance(node, MappingNode):
            self.error(path, f"expected a mapping, got {describe(node)}", node=node)
            return False, None
        pairs: list[Pair] = []
        seen: dict[str, Node] = {}
        ok = True
        for key_node, value_node in self._pairs(node, path, 0):
            self._tick(value_node)
            key = self._key(key_node, path)
            if key is None:
                ok = False
                continue
            if key in seen:
                self._duplicate(path, key, key_node, seen[key])
                ok = False
                continue
            seen[key] = key_node
            value_ok, value = (
                (True, "") if _is_null(value_node) else self._str(value_node, (*path, key))
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
            article = "an" if spec.name[0] in "aeiou" else "a"
            self.error(
                path,
                f"expected {article} {spec.name} (a mapping), got {describe(node)}",
                value,
                node,
            )
            return False, None
        allowed = list(spec.fields)
        seen: dict[str, Node] = {}
        unknown: list[tuple[str, Node, Node]] = []
        ok = True
        for key_node, value_node in self._pairs(node, path, 0):
            key = self._key(key_node, path)
            if key is None:
                ok = False
                continue
            if key not in spec.fields:
                unknown.append((key, key_node, value_node))
                continue
            if key in seen:
                # Explicit keys are unique; merged (<<) keys were already dropped if overridden.
                self._duplicate(path, key, key_node, seen[key])
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
            extra = _wrapper_hint(value_node, spec) if not path else ""
            self.error((*path, key), reason + extra, key, key_node)
        return ok, obj

    def _key(self, key_node: Node, path: Path) -> str | None:
        if not isinstance(key_node, ScalarNode):
            self.error(path, f"keys must be strings, got {describe(key_node)}", node=key_node)
            return None
        return str(key_node.value)

    def _duplicate(self, path: Path, key: str, node: Node, first: Node) -> None:
        self.error(
            (*path, key),
            f"key {key!r} appears more than once in this mapping (first on line {line_of(first)})",
            key,
            node,
        )

    def _pairs(self, node: MappingNode, path: Path, depth: int) -> list[tuple[Node, Node]]:
        """Key/value pairs with YAML merge keys (`<<: *anchor`) applied: explicit keys win."""
        explicit: list[tuple[Node, Node]] = []
        merged: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.value == "<<" and not key_node.style:
                merged.extend(self._merge_source(value_node, path, depth))
            else:
                explicit.append((key_node, value_node))
        if not merged:
            return explicit
        taken = {k.value for k, _ in explicit if isinstance(k, ScalarNode)}
        result = list(explicit)
        for key_node, value_node in merged:
            key = key_node.value if isinstance(key_node, ScalarNode) else None
            if key not in taken:
                taken.add(key)
                result.append((key_node, value_node))
        return result

    def _merge_source(self, value: Node, path: Path, depth: int) -> list[tuple[Node, Node]]:
        self._tick(value)
        if depth >= MAX_MERGE_DEPTH:
            self.error(path, "YAML merge keys (<<) nested too deeply", node=value)
            return []
        if isinstance(value, MappingNode):
            return self._pairs(value, path, depth + 1)
        if isinstance(value, SequenceNode) and all(isinstance(v, MappingNode) for v in value.value):
            out: list[tuple[Node, Node]] = []
            for source in value.value:  # earlier sources take precedence
                out.extend(self._pairs(source, path, depth + 1))
            return out
        self.error(path, "a merge key (<<) needs a mapping or a list of mappings", node=value)
        return []


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and classify(node).kind is Kind.NULL


def _looks_numeric(text: str) -> bool:
    return bool(re.fullmatch(r"\s*[-+]?[0-9][0-9_]*\s*", text))


_TOP_KEYS_SQUASHED = {"peers", "bgpcommunities", "addresspools", "bfdprofiles"}


def _wrapper_hint(value: Node, spec: Struct) -> str:
    """Explain configs nested under a wrapper key (Helm `configInline`, Kontena add-on)."""
    if not isinstance(value, MappingNode):
        return ""
    inner = [
        str(k.value)
        for k, _ in value.value
        if isinstance(k, ScalarNode) and _squash(str(k.value)) in _TOP_KEYS_SQUASHED
    ]
    if not inner:
        return ""
    hint = (
        f"; it contains {', '.join(inner)}: the MetalLB config must start at the top level"
        " (the ConfigMap's data.config), not nested under another key"
    )
    renamed = [
        f"{key!r} is {meant!r}"
        for key in inner
        for meant in [suggest_key(key, list(spec.fields))[0]]
        if meant is not None and meant != key
    ]
    if renamed:
        hint += "; keys are written in lower-case kebab-case there: " + ", ".join(renamed)
    return hint

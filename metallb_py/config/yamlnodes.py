"""Reading composed YAML trees: field paths, the problem log, merge keys, key lookups and plain
data. Every reader of user YAML (config, ConfigMap, addon values, custom resources, `plan`'s
Services, doctor's view of kube-proxy) walks nodes with these, so a merge key, a repeated key
or a bad tag means the same thing everywhere and every problem carries its path and line.

The trees come from `yamltree.compose_all`, which already refused cycles and bounded what
aliases expand to, so every walk here is finite and its recursion shallow.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from metallb_py.config.errors import ConfigError, Problem
from metallb_py.config.yamltree import (
    Kind,
    YamlSyntaxError,
    classify,
    compose_all,
    describe,
    line_of,
)

PathPart = str | int
Path = tuple[PathPart, ...]

MAX_PROBLEMS = 500
"""Past this many problems a list helps nobody (and a hostile input could make millions)."""
MAX_MERGE_DEPTH = 16
"""Merge keys whose sources merge further sources, this many levels deep at most."""

_SIMPLE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
_PATH_PART_RE = re.compile(r'\.?([A-Za-z0-9_-]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


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


def split_path(text: str) -> Path:
    """Inverse of `format_path` (`a.b[0]["x.y"]` -> ("a", "b", 0, "x.y"))."""
    parts: list[PathPart] = []
    pos = 0
    while pos < len(text):
        m = _PATH_PART_RE.match(text, pos)
        if m is None:
            break
        if m.group(1) is not None:
            parts.append(m.group(1))
        elif m.group(2) is not None:
            parts.append(int(m.group(2)))
        else:
            parts.append(json.loads(m.group(3)))
        pos = m.end()
    return tuple(parts)


class ProblemLog:
    """The problems found so far in one input. Reaching MAX_PROBLEMS ends the reading with
    ConfigError; `line_offset` maps lines of an embedded text (Konvoy's values string) to the
    file's."""

    def __init__(self, line_offset: int = 0) -> None:
        self.items: list[Problem] = []
        self.line_offset = line_offset

    def add(self, path: Path, reason: str, value: Any = None, node: Node | None = None) -> None:
        line = line_of(node)
        self.items.append(
            Problem(
                format_path(path), reason, value, None if line is None else line + self.line_offset
            )
        )
        if len(self.items) >= MAX_PROBLEMS:
            self.items.append(Problem("", f"stopped after {MAX_PROBLEMS} problems"))
            raise ConfigError(self.items)

    def check(self) -> None:
        """Raise ConfigError with every problem so far, if there is one."""
        if self.items:
            raise ConfigError(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)


def is_null(node: Node | None) -> bool:
    return node is None or (isinstance(node, ScalarNode) and classify(node).kind is Kind.NULL)


def merged_pairs(
    node: MappingNode, problems: ProblemLog | None = None, path: Path = ()
) -> list[tuple[Node, Node]]:
    """Key/value pairs with YAML merge keys (`<<: *anchor`) applied: explicit keys win over
    merged ones, earlier merge sources over later ones. A bad merge value is reported to
    `problems` when given (lookups pass none: the decoder of the same node reports it)."""
    return _pairs(node, problems, path, 0)


def _pairs(
    node: MappingNode, problems: ProblemLog | None, path: Path, depth: int
) -> list[tuple[Node, Node]]:
    explicit: list[tuple[Node, Node]] = []
    merged: list[tuple[Node, Node]] = []
    for key_node, value_node in node.value:
        if isinstance(key_node, ScalarNode) and key_node.value == "<<" and not key_node.style:
            merged.extend(_merge_source(value_node, problems, path, depth))
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


def _merge_source(
    value: Node, problems: ProblemLog | None, path: Path, depth: int
) -> list[tuple[Node, Node]]:
    if depth >= MAX_MERGE_DEPTH:
        if problems is not None:
            problems.add(path, "YAML merge keys (<<) nested too deeply", None, value)
        return []
    if isinstance(value, MappingNode):
        return _pairs(value, problems, path, depth + 1)
    if isinstance(value, SequenceNode) and all(isinstance(v, MappingNode) for v in value.value):
        out: list[tuple[Node, Node]] = []
        for source in value.value:  # earlier sources take precedence
            out.extend(_pairs(source, problems, path, depth + 1))
        return out
    if problems is not None:
        problems.add(path, "a merge key (<<) needs a mapping or a list of mappings", None, value)
    return []


def child(node: Node | None, key: str) -> Node | None:
    """The value of `key` in a mapping node (merge keys applied), None when absent."""
    if not isinstance(node, MappingNode):
        return None
    for k, v in merged_pairs(node):
        if isinstance(k, ScalarNode) and k.value == key:
            return v
    return None


def scalar_text(node: Node | None) -> str | None:
    """The text of a scalar that is not null, else None (`kind`, `name`, `apiVersion`)."""
    if isinstance(node, ScalarNode) and not is_null(node):
        return str(node.value)
    return None


def keys_of(node: Node | None) -> list[str]:
    """The scalar keys of a mapping node as written (for "found: ..." messages)."""
    if not isinstance(node, MappingNode):
        return []
    return [str(k.value) for k, _ in merged_pairs(node) if isinstance(k, ScalarNode)]


def node_at(node: Node | None, path: Path) -> Node | None:
    """The node a path points to, or the deepest existing node on the way (for line numbers)."""
    current = node
    for part in path:
        if isinstance(part, str):
            nxt = child(current, part)
        elif isinstance(current, SequenceNode) and 0 <= part < len(current.value):
            nxt = current.value[part]
        else:
            nxt = None
        if nxt is None:
            return current
        current = nxt
    return current


def to_plain(
    node: Node | None,
    problems: ProblemLog,
    path: Path = (),
    rename: Callable[[str, Path], str] | None = None,
) -> Any:
    """Plain data (dicts, lists, yaml.v2-typed scalars) of a node tree. Repeated keys, keys that
    are not scalars and values that contradict their tag are reported, not guessed. `rename`
    turns a key as written (at the path of its mapping) into the key of the data; two keys
    renamed alike are repeated keys."""
    if node is None:
        return None
    if isinstance(node, ScalarNode):
        s = classify(node)
        if s.kind is Kind.INVALID:
            problems.add(path, str(s.value), s.text, node)
            return s.text
        return s.value
    if isinstance(node, SequenceNode):
        return [to_plain(n, problems, (*path, i), rename) for i, n in enumerate(node.value)]
    assert isinstance(node, MappingNode)
    out: dict[str, Any] = {}
    first: dict[str, Node] = {}
    for key_node, value_node in merged_pairs(node, problems, path):
        if not isinstance(key_node, ScalarNode):
            problems.add(path, f"keys must be strings, got {describe(key_node)}", None, key_node)
            continue
        spelled = str(key_node.value)
        key = spelled if rename is None else rename(spelled, path)
        if key in first:
            problems.add((*path, spelled), repeated_key(spelled, first[key]), spelled, key_node)
            continue
        first[key] = key_node
        out[key] = to_plain(value_node, problems, (*path, spelled), rename)
    return out


def repeated_key(key: str, first: Node) -> str:
    """Why a key is refused that was already given (perhaps spelled another way)."""
    where = f"first on line {line_of(first)}"
    if isinstance(first, ScalarNode) and first.value != key:
        return f"{key!r} repeats {first.value!r}, the same key ({where})"
    return f"key {key!r} appears more than once in this mapping ({where})"


def load_documents(text: str, where: Path = (), line_offset: int = 0) -> list[Node | None]:
    """Every YAML document of `text` as a node tree; not YAML we read is a ConfigError."""
    try:
        return compose_all(text).documents
    except YamlSyntaxError as exc:
        line = None if exc.line is None else exc.line + line_offset
        raise ConfigError(
            [Problem(format_path(where), f"not valid YAML: {exc.message}", None, line)]
        ) from None


def plain_documents(text: str) -> list[Any]:
    """Every document of `text` as plain data; ConfigError for anything `to_plain` reports."""
    docs = load_documents(text)
    problems = ProblemLog()
    data = [to_plain(d, problems, (i,) if len(docs) > 1 else ()) for i, d in enumerate(docs)]
    problems.check()
    return data

"""YAML output for Kubernetes objects.

Users read and diff what `render`/`convert` write, so the output keeps key order, writes
multi-line strings (the embedded `config`) as literal blocks, and quotes every string that a
YAML 1.1 reader would turn into something else (`"7472"`, `"true"`, `"64512:1"`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from metallb_py.config.decode import format_path
from metallb_py.config.errors import ConfigError, Problem
from metallb_py.config.yamltree import Kind, YamlSyntaxError, classify, compose_all, line_of


class _Dumper(yaml.SafeDumper):
    """Safe dumper with literal blocks for multi-line text and indented sequences."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_str(data)


_Dumper.add_representer(str, _represent_str)


def dump(obj: Any) -> str:
    """One YAML document, keys in insertion order."""
    text: str = yaml.dump(
        obj,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=4096,
    )
    return text


def dump_documents(docs: Iterable[Mapping[str, Any]], header: str = "") -> str:
    """Several documents separated by `---`, preceded by `header` as `#` comment lines."""
    parts = [dump(dict(d)) for d in docs]
    lines = [f"# {line}".rstrip() for line in header.splitlines()] if header else []
    prefix = "\n".join(lines) + "\n" if lines else ""
    return prefix + "---\n".join(parts)


# --- input ----------------------------------------------------------------------------
# Addon values and custom resources are read with the config parser's YAML composer, so the
# same scalar rules apply everywhere (no base-60 integers: `64512:1` stays text) and every
# problem can name its field path and line.

PathPart = str | int
Path = tuple[PathPart, ...]


def problem(
    path: Path, reason: str, node: Node | None = None, value: Any = None, line_offset: int = 0
) -> Problem:
    line = line_of(node)
    return Problem(format_path(path), reason, value, None if line is None else line + line_offset)


def load_documents(text: str, where: Path = (), line_offset: int = 0) -> list[Node | None]:
    """Every YAML document of `text` as a node tree; a syntax error is a ConfigError."""
    try:
        return compose_all(text).documents
    except YamlSyntaxError as exc:
        line = None if exc.line is None else exc.line + line_offset
        raise ConfigError(
            [Problem(format_path(where), f"not valid YAML: {exc.message}", None, line)]
        ) from None


def is_null(node: Node | None) -> bool:
    return node is None or (isinstance(node, ScalarNode) and classify(node).kind is Kind.NULL)


def scalar_value(node: ScalarNode) -> Any:
    """A scalar typed the way MetalLB's YAML library types it (`Kind.INVALID` -> its text)."""
    s = classify(node)
    return s.text if s.kind is Kind.INVALID else s.value


def mapping_pairs(node: MappingNode) -> list[tuple[Node, Node]]:
    """Key/value pairs with YAML merge keys (`<<`) applied; explicit keys win."""
    explicit: list[tuple[Node, Node]] = []
    merged: list[tuple[Node, Node]] = []
    for key, value in node.value:
        if isinstance(key, ScalarNode) and key.value == "<<" and not key.style:
            sources = value.value if isinstance(value, SequenceNode) else [value]
            for source in sources:
                if isinstance(source, MappingNode):
                    merged.extend(mapping_pairs(source))
        else:
            explicit.append((key, value))
    taken = {k.value for k, _ in explicit if isinstance(k, ScalarNode)}
    for key, value in merged:
        if isinstance(key, ScalarNode) and key.value not in taken:
            taken.add(key.value)
            explicit.append((key, value))
    return explicit


def to_python(node: Node | None, path: Path, problems: list[Problem], line_offset: int = 0) -> Any:
    """Plain data (dict/list/scalars) from a node; repeated keys are reported, not merged."""
    if node is None:
        return None
    if isinstance(node, ScalarNode):
        return scalar_value(node)
    if isinstance(node, SequenceNode):
        return [to_python(n, (*path, i), problems, line_offset) for i, n in enumerate(node.value)]
    assert isinstance(node, MappingNode)
    out: dict[str, Any] = {}
    for key_node, value_node in mapping_pairs(node):
        if not isinstance(key_node, ScalarNode):
            problems.append(
                problem(path, "mapping keys must be strings", key_node, None, line_offset)
            )
            continue
        key = str(key_node.value)
        if key in out:
            problems.append(
                problem(
                    (*path, key),
                    f"key {key!r} appears more than once in this mapping",
                    key_node,
                    key,
                    line_offset,
                )
            )
            continue
        out[key] = to_python(value_node, (*path, key), problems, line_offset)
    return out


def node_at(node: Node | None, path: Path) -> Node | None:
    """The node a path points to, or the deepest existing node on the way (for line numbers)."""
    current = node
    for part in path:
        if isinstance(current, MappingNode) and isinstance(part, str):
            nxt = next(
                (
                    v
                    for k, v in mapping_pairs(current)
                    if isinstance(k, ScalarNode) and k.value == part
                ),
                None,
            )
        elif isinstance(current, SequenceNode) and isinstance(part, int):
            nxt = current.value[part] if 0 <= part < len(current.value) else None
        else:
            nxt = None
        if nxt is None:
            return current
        current = nxt
    return current

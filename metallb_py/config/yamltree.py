"""Bounded YAML composition and Go-yaml.v2-style scalar typing.

The parser walks PyYAML *nodes*, never constructed Python objects: nodes keep line numbers,
the raw scalar text and the quoting style, and leave duplicate keys visible. Typing is done
here, the way MetalLB's YAML library (gopkg.in/yaml.v2, YAML 1.1) does it, not the way
PyYAML's default resolver does: no base-60 integers (`64512:1` stays text), no timestamps,
`y`/`n` are booleans, and a quoted scalar is always a string.

Composition is bounded: nesting depth and alias count are capped, so a hostile document
(deep brackets, "billion laughs") fails fast with a clear message instead of a RecursionError
or an explosion of work later.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.composer import Composer, ComposerError
from yaml.error import Mark
from yaml.events import (
    AliasEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError
from yaml.resolver import BaseResolver

PLAIN_TAG = "tag:metallb-py.invalid,2024:plain"
"""Tag given to every untagged plain scalar; `classify` types it like yaml.v2 would."""
STR_TAG = "tag:yaml.org,2002:str"
SEQ_TAG = "tag:yaml.org,2002:seq"
MAP_TAG = "tag:yaml.org,2002:map"
INT_TAG = "tag:yaml.org,2002:int"
BOOL_TAG = "tag:yaml.org,2002:bool"
FLOAT_TAG = "tag:yaml.org,2002:float"
NULL_TAG = "tag:yaml.org,2002:null"

MAX_DEPTH = 64
"""A valid MetalLB config nests at most 7 levels; anything this deep is not a config."""
MAX_ALIASES = 10_000
"""Aliases are legal YAML, but a config needs few; this caps alias-bomb documents."""


class YamlSyntaxError(ValueError):
    """The text is not YAML we can compose (syntax error, too deep, too many aliases)."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class _Resolver(BaseResolver):
    """No implicit resolvers at all: plain scalars are typed later by `classify`."""

    def resolve(self, kind: type[Node], value: Any, implicit: Any) -> str:
        if kind is ScalarNode:
            return PLAIN_TAG if implicit[0] else STR_TAG
        if kind is SequenceNode:
            return SEQ_TAG
        return MAP_TAG


class _Composer(Composer):
    """PyYAML's composer with depth and alias limits (and re-definable anchors, as in YAML)."""

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0
        self._aliases = 0
        self.node_count = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        events: Any = self  # the parser half of the loader class provides the event API
        if events.check_event(AliasEvent):
            event = events.get_event()
            anchor = event.anchor
            if anchor not in self.anchors:
                raise ComposerError(
                    None, None, f"found undefined alias {anchor!r}", event.start_mark
                )
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise ComposerError(
                    None,
                    None,
                    f"more than {MAX_ALIASES} aliases (refused as an alias bomb)",
                    event.start_mark,
                )
            node: Node = self.anchors[anchor]
            return node
        event = events.peek_event()
        self.node_count += 1
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise ComposerError(
                    None, None, f"nesting deeper than {MAX_DEPTH} levels", event.start_mark
                )
            anchor = event.anchor
            if events.check_event(ScalarEvent):
                node = self.compose_scalar_node(anchor)
            elif events.check_event(SequenceStartEvent):
                node = self.compose_sequence_node(anchor)
            elif events.check_event(MappingStartEvent):
                node = self.compose_mapping_node(anchor)
            else:  # pragma: no cover - the parser only emits the events above here
                raise ComposerError(None, None, "unexpected event", event.start_mark)
        finally:
            self._depth -= 1
        return node

    def compose_document(self) -> Node | None:
        # Anchors are per document; the base class keeps them across documents.
        self.anchors = {}
        node: Node | None = super().compose_document()
        return node


def _py_loader_class() -> type:
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class PyLoader(Reader, Scanner, Parser, _Composer, _Resolver):
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            _Composer.__init__(self)
            _Resolver.__init__(self)

    return PyLoader


def _c_loader_class() -> type | None:
    if not getattr(yaml, "__with_libyaml__", False):
        return None
    from yaml._yaml import CParser  # libyaml's event parser, about 4x faster

    class CLoader(_Composer, CParser, _Resolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _Composer.__init__(self)
            _Resolver.__init__(self)

    return CLoader


_PY_LOADER = _py_loader_class()
_C_LOADER = _c_loader_class()
_OTHER_LINE_BREAKS = re.compile("\r(?!\n)|[\x85\u2028\u2029]")
"""Line breaks for YAML but not for editors. libyaml's marks carry only YAML's line count; the
pure-Python reader's marks carry the text, so `mark_line` can count newlines instead."""


def _uses_libyaml(text: str) -> bool:
    return _C_LOADER is not None and not _OTHER_LINE_BREAKS.search(text)


def _loader_for(text: str) -> Any:
    return _C_LOADER(text) if _C_LOADER is not None and _uses_libyaml(text) else _PY_LOADER(text)


def _syntax_error(exc: yaml.YAMLError, text: str) -> YamlSyntaxError:
    line: int | None = None
    if isinstance(exc, ReaderError):
        # No mark, only an offset: in characters from PyYAML, in UTF-8 bytes from libyaml.
        message = f"unacceptable character #x{exc.character:04x}: {exc.reason}"
        if _uses_libyaml(text):
            line = text.encode("utf-8", "surrogatepass")[: exc.position].count(b"\n") + 1
        else:
            line = text.count("\n", 0, exc.position) + 1
    elif isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            line = mark_line(mark)
        parts = [p for p in (exc.context, exc.problem) if p]
        message = ", ".join(parts) if parts else str(exc)
    else:
        message = str(exc).replace("\n", " ")
    if "exceeded maximum nesting depth" in message:
        # libyaml's own limit (PyYAML built with it) fires before ours: say the same thing.
        message = f"nesting deeper than {MAX_DEPTH} levels"
    return YamlSyntaxError(message, line)


@dataclass(frozen=True)
class Composition:
    documents: list[Node | None]
    """Every document's node tree (None for an empty document)."""
    node_count: int
    """Nodes actually written in the text (an alias counts once, where it points)."""


def compose_all(text: str) -> Composition:
    """Every document of `text` as a node tree."""
    docs: list[Node | None] = []
    loader: Any = None
    try:
        loader = _loader_for(text)  # the pure-Python reader checks the characters here
        # check_event/get_event drive the stream; compose_document handles one document.
        loader.get_event()  # StreamStartEvent
        while not loader.check_event(StreamEndEvent):
            docs.append(loader.compose_document())
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, text) from None
    except (RecursionError, MemoryError) as exc:  # pragma: no cover - bounded above
        raise YamlSyntaxError(f"document too complex ({type(exc).__name__})", None) from None
    finally:
        dispose = getattr(loader, "dispose", None)
        if dispose is not None:
            dispose()
    return Composition(docs, loader.node_count)


def compose_one(text: str) -> tuple[Node | None, int]:
    """The single document of `text` and the node count; more than one document is an error."""
    composition = compose_all(text)
    docs = composition.documents
    if len(docs) > 1:
        second = docs[1]
        raise YamlSyntaxError(
            f"expected one YAML document, found {len(docs)} (separated by ---)",
            line_of(second),
        )
    return (docs[0] if docs else None), composition.node_count


def mark_line(mark: Mark) -> int:
    """The 1-based line of `mark`, counting newlines only (as `wc -l`, `sed -n` and `grep -n`
    do). YAML also breaks lines at a lone CR, NEL, LS and PS, so its own count can point past
    the end of the file."""
    buffer = mark.buffer
    if isinstance(buffer, str) and mark.index is not None:
        return buffer.count("\n", 0, mark.index) + 1
    return mark.line + 1


def line_of(node: Node | None) -> int | None:
    return None if node is None else mark_line(node.start_mark)


class Kind(enum.Enum):
    NULL = "null"
    BOOL = "boolean"
    INT = "integer"
    FLOAT = "number"
    STR = "string"
    INVALID = "invalid"


@dataclass(frozen=True)
class Scalar:
    kind: Kind
    value: Any
    """bool, int, float, str, or None, per `kind`; for INVALID the reason."""
    text: str
    """The scalar's text as written (after YAML unquoting/folding)."""
    quoted: bool


_BOOLS = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE"), True),
    **dict.fromkeys(("on", "On", "ON"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "false", "False", "FALSE"), False),
    **dict.fromkeys(("off", "Off", "OFF"), False),
}
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_SPECIAL_FLOATS = {
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
}
# Go's strconv.ParseInt(s, 0, 64) syntax, after yaml.v2 removed every underscore.
_INT_RE = re.compile(r"[-+]?(?:0[bB][01]+|0[oO][0-7]+|0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
_FLOAT_RE = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")


def _go_int(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    if len(body) > 1 and body[0] == "0" and body[1] in "bBoOxX":
        return sign * int(body[2:], {"b": 2, "o": 8, "x": 16}[body[1].lower()])
    if len(body) > 1 and body[0] == "0":
        return sign * int(body[1:], 8)
    return sign * int(body, 10)


def classify_plain(text: str) -> tuple[Kind, Any]:
    """Type an untagged plain scalar as yaml.v2 does (YAML 1.1 without base 60/timestamps)."""
    if text in _NULLS:
        return Kind.NULL, None
    if text in _BOOLS:
        return Kind.BOOL, _BOOLS[text]
    if text in _SPECIAL_FLOATS:
        return Kind.FLOAT, _SPECIAL_FLOATS[text]
    if text[0] in "0123456789+-.":
        plain = text.replace("_", "")
        if _INT_RE.fullmatch(plain):
            return Kind.INT, _go_int(plain)
        if plain.startswith("-0b") and re.fullmatch(r"-0b[01]+", plain):
            return Kind.INT, -int(plain[3:], 2)
        if _FLOAT_RE.fullmatch(plain):
            value = float(plain)
            if value.is_integer() and re.fullmatch(r"[-+]?[0-9]+", plain):
                # Out of int64/uint64 range in Go; keep it an integer so ranges say "too big".
                return Kind.INT, int(plain)
            return Kind.FLOAT, value
    return Kind.STR, text


def classify(node: ScalarNode) -> Scalar:
    quoted = node.style not in (None, "")
    text = str(node.value)
    tag = node.tag
    if tag == PLAIN_TAG:
        kind, value = classify_plain(text)
        return Scalar(kind, value, text, quoted)
    if tag == STR_TAG:
        return Scalar(Kind.STR, text, text, quoted)
    wanted = {INT_TAG: Kind.INT, BOOL_TAG: Kind.BOOL, FLOAT_TAG: Kind.FLOAT, NULL_TAG: Kind.NULL}
    if tag in wanted:
        kind, value = classify_plain(text) if text else (Kind.NULL, None)
        if kind is wanted[tag] or (kind is Kind.INT and wanted[tag] is Kind.FLOAT):
            return Scalar(wanted[tag], value, text, False)
        return Scalar(
            Kind.INVALID, f"cannot read {text!r} as {tag.rsplit(':', 1)[-1]}", text, quoted
        )
    # Any other explicit tag (!foo, !!binary, ...): keep the text, as yaml.v2 does for strings.
    return Scalar(Kind.STR, text, text, quoted)


def describe(node: Node) -> str:
    """A short name of what a node is, for "expected X, got Y" messages."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if isinstance(node, ScalarNode):
        s = classify(node)
        if s.kind is Kind.STR and s.quoted:
            return "a quoted string"
        return {
            Kind.NULL: "null",
            Kind.BOOL: "a boolean",
            Kind.INT: "an integer",
            Kind.FLOAT: "a number",
            Kind.STR: "a string",
            Kind.INVALID: "an invalid tagged value",
        }[s.kind]
    return "an unknown node"  # pragma: no cover

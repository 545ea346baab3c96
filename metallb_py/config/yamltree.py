"""Bounded YAML composition and Go-yaml.v2-style scalar typing: the first step of reading
anything a user writes (the config, a ConfigMap manifest, addon values, custom resources,
`plan`'s Services).

Readers walk PyYAML *nodes*, never constructed Python objects: nodes keep line numbers, the raw
scalar text and the quoting style, and leave duplicate keys visible. Typing is done here, the
way MetalLB's YAML library (gopkg.in/yaml.v2, YAML 1.1) does it, not the way PyYAML's default
resolver does: no base-60 integers (`64512:1` stays text), no timestamps, `y`/`n` are booleans,
and a quoted scalar is always a string.

Composition is iterative (no recursion, so no depth can crash the process) and bounded, with
the limits of docs/config.md: nesting depth (also through aliases), alias count, the size the
aliases expand the document to ("billion laughs"), and no alias inside the node it names
(yaml.v2 refuses such cycles too). Every later walk of the tree is therefore finite and small.
"""

from __future__ import annotations

import enum
import gc
import math
import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.error import Mark
from yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

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
"""A valid MetalLB config nests at most 7 levels, Helm values and Services about 12; anything
this deep (counting what aliases bring in) is not input we read."""
MAX_ALIASES = 10_000
"""Aliases are legal YAML, but a config needs few; this caps alias-bomb documents."""
MIN_EXPANSION_BUDGET = 100_000
"""Aliases let a small text name a huge tree. The nodes of the expanded tree may be twice the
nodes written in the text, or this many, whichever is more."""
MAX_INT_DIGITS = 1000
"""Longer digit strings are not read as integers (Python refuses to convert more than 4300
decimal digits; no field takes more than 20). They stay text, as yaml.v2 keeps numbers past
float64's range."""

_SURROGATE = re.compile("[\ud800-\udfff]")


class YamlSyntaxError(ValueError):
    """The text is not YAML we can compose (syntax error or past a limit of docs/config.md)."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def _py_loader_class() -> type:
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class PyLoader(Reader, Scanner, Parser):
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)

    return PyLoader


def _c_loader_class() -> type | None:
    if not getattr(yaml, "__with_libyaml__", False):
        return None
    from yaml._yaml import CParser  # libyaml's event parser, about 4x faster

    return CParser  # only its event API is used: libyaml's own composer recurses


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
    expanded: int = 0
    """Nodes of the trees once every alias is expanded (what a full walk visits)."""


class _Open:
    """A sequence or mapping being composed, with what its children add up to so far."""

    __slots__ = ("anchor", "height", "key", "node", "size")

    def __init__(self, node: Node, anchor: str | None) -> None:
        self.node = node
        self.anchor = anchor
        self.size = 1
        self.height = 1
        self.key: Node | None = None


_Anchor = tuple[Node, int | None, int]
"""The anchored node, its expanded size (None while it is still open) and its height."""


class _Composer:
    """Events to node trees, iteratively, measuring what aliases expand to as it goes."""

    def __init__(self, events: Any) -> None:
        self.get_event = events.get_event
        self.written = 0
        self.expanded = 0
        self.aliases = 0
        self.biggest_alias: tuple[int, int | None] = (0, None)
        """(expanded size, line) of the alias that brings in the most nodes."""

    def document(self) -> Node:
        self.get_event()  # DocumentStartEvent
        anchors: dict[str, _Anchor] = {}
        stack: list[_Open] = []
        while True:
            event = self.get_event()
            depth = len(stack) + 1
            if isinstance(event, ScalarEvent):
                node, size, height = self._scalar(event, anchors, depth)
            elif isinstance(event, AliasEvent):
                node, size, height = self._alias(event, anchors, depth)
            elif isinstance(event, SequenceStartEvent | MappingStartEvent):
                stack.append(self._collection(event, anchors, depth))
                continue
            elif isinstance(event, CollectionEndEvent):
                done = stack.pop()
                node, size, height = done.node, done.size, done.height
                node.end_mark = event.end_mark
                if done.anchor is not None and anchors[done.anchor][0] is node:
                    anchors[done.anchor] = (node, size, height)
            else:  # pragma: no cover - the parser emits only the events above inside a document
                raise YamlSyntaxError(f"unexpected {type(event).__name__}", None)
            if not stack:
                self.expanded += size
                self.get_event()  # DocumentEndEvent
                return node
            parent = stack[-1]
            parent.size += size
            parent.height = max(parent.height, height + 1)
            if isinstance(parent.node, SequenceNode):
                parent.node.value.append(node)
            elif parent.key is None:
                parent.key = node
            else:
                parent.node.value.append((parent.key, node))
                parent.key = None

    def _scalar(self, event: Any, anchors: dict[str, _Anchor], depth: int) -> tuple[Node, int, int]:
        self._check_depth(depth, event.start_mark)
        self.written += 1
        value = event.value
        if _SURROGATE.search(value):
            raise YamlSyntaxError(
                "a lone surrogate escape (such as \\ud800) is not a Unicode character",
                mark_line(event.start_mark),
            )
        tag = event.tag
        if tag in (None, "!"):
            tag = PLAIN_TAG if event.implicit[0] else STR_TAG
        node = ScalarNode(tag, value, event.start_mark, event.end_mark, style=event.style)
        if event.anchor is not None:
            anchors[event.anchor] = (node, 1, 1)
        return node, 1, 1

    def _collection(self, event: Any, anchors: dict[str, _Anchor], depth: int) -> _Open:
        self._check_depth(depth, event.start_mark)
        self.written += 1
        tag, start = event.tag, event.start_mark
        node: Node
        if isinstance(event, SequenceStartEvent):
            tag = SEQ_TAG if tag in (None, "!") else tag
            node = SequenceNode(tag, [], start, None, flow_style=event.flow_style)
        else:
            tag = MAP_TAG if tag in (None, "!") else tag
            node = MappingNode(tag, [], start, None, flow_style=event.flow_style)
        if event.anchor is not None:
            anchors[event.anchor] = (node, None, 0)
        return _Open(node, event.anchor)

    def _alias(self, event: Any, anchors: dict[str, _Anchor], depth: int) -> tuple[Node, int, int]:
        line = mark_line(event.start_mark)
        found = anchors.get(event.anchor)
        if found is None:
            raise YamlSyntaxError(f"found undefined alias {event.anchor!r}", line)
        node, size, height = found
        if size is None:
            raise YamlSyntaxError(
                f"the alias *{event.anchor} is inside the node &{event.anchor} it refers to"
                " (a cycle)",
                line,
            )
        self.aliases += 1
        if self.aliases > MAX_ALIASES:
            raise YamlSyntaxError(
                f"more than {MAX_ALIASES} aliases (refused as an alias bomb)", line
            )
        if depth - 1 + height > MAX_DEPTH:
            raise YamlSyntaxError(
                f"nesting deeper than {MAX_DEPTH} levels (through the alias *{event.anchor})",
                line,
            )
        if size > self.biggest_alias[0]:
            self.biggest_alias = (size, line)
        return node, size, height

    def _check_depth(self, depth: int, mark: Any) -> None:
        if depth > MAX_DEPTH:
            raise YamlSyntaxError(f"nesting deeper than {MAX_DEPTH} levels", mark_line(mark))

    def check_expansion(self) -> None:
        budget = max(MIN_EXPANSION_BUDGET, 2 * self.written)
        if self.expanded > budget:
            raise YamlSyntaxError(
                f"the document expands to more than {budget} values through YAML aliases; refused",
                self.biggest_alias[1],
            )


def compose_all(text: str) -> Composition:
    """Every document of `text` as a node tree; YamlSyntaxError when it is not YAML we read."""
    docs: list[Node | None] = []
    loader: Any = None
    # A node tree is a burst of small objects without cycles: the cyclic garbage collector,
    # run again and again over the growing tree, would take 80% of the time.
    collecting = gc.isenabled()
    gc.disable()
    try:
        loader = _loader_for(text)  # the pure-Python reader checks the characters here
        composer = _Composer(loader)
        loader.get_event()  # StreamStartEvent
        while not loader.check_event(StreamEndEvent):
            docs.append(composer.document())
        composer.check_expansion()
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, text) from None
    except UnicodeEncodeError as exc:  # libyaml encodes the text first
        raise YamlSyntaxError(f"the text is not valid Unicode ({exc.reason})", None) from None
    finally:
        if collecting:
            gc.enable()
        dispose = getattr(loader, "dispose", None)
        if dispose is not None:
            dispose()
    return Composition(docs, composer.written, composer.expanded)


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
        if len(plain) > MAX_INT_DIGITS + 3:  # sign and base prefix
            return Kind.STR, text
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
            Kind.INVALID, f"cannot read {shorten(text)} as {tag.rsplit(':', 1)[-1]}", text, quoted
        )
    # Any other explicit tag (!foo, !!binary, ...): keep the text, as yaml.v2 does for strings.
    return Scalar(Kind.STR, text, text, quoted)


def shorten(text: str, limit: int = 60) -> str:
    """`text` quoted for a message, cut in the middle when long (values can be megabytes)."""
    if len(text) <= limit:
        return repr(text)
    half = limit // 2
    return f"{text[:half]!r}...{text[-half:]!r} ({len(text)} characters)"


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

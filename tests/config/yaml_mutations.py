"""Hypothesis strategies for what users write, shared by the property test of every reader
(config text, ConfigMaps, addon values, CRDs, `plan`'s Services).

Two kinds of inputs: documents shaped like a schema of `metallb_py.config.decode` (most keys
right, values typical or of the wrong type, stray keys), and seed texts mutated at the text
level with the YAML features the readers must bound: anchors, aliases and merge keys (also
cyclic), tags, deep nesting, long numbers, surrogate escapes, odd line breaks, cut lines.

The property every reader shares: any input gives a result or the reader's documented error,
within `PER_INPUT_SECONDS` (docs/config.md, limits).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from metallb_py.config.decode import Bool, Data, Int, List, Str, StrMap, Struct

REPO = Path(__file__).resolve().parents[2]
PER_INPUT_SECONDS = 2.0


def bounded(examples: int) -> settings:
    """`examples` inputs, each within PER_INPUT_SECONDS (hypothesis fails a slower one)."""
    return settings(
        max_examples=examples,
        deadline=timedelta(seconds=PER_INPUT_SECONDS),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def seeds(*patterns: str) -> list[str]:
    """Seed texts from the repository (config-examples/, the tests' fixtures)."""
    found = [p.read_text() for pattern in patterns for p in sorted(REPO.glob(pattern))]
    assert found, patterns
    return found


def dump(tree: Any, flow: bool | None = None) -> str:
    return yaml.safe_dump(tree, default_flow_style=flow, allow_unicode=True, sort_keys=False)


INTERESTING = [
    "", "~", "null", "yes", "n", "on", "0", "-1", "0x10", "017", "1e3", ".inf", "64512:1",
    "4294967296", "192.0.2.0/24", "192.0.2.1-192.0.2.9", "2001:db8::/64", "90s", "layer2", "bgp",
    "In", "Exists", "kubernetes.io/hostname", "x" * 64, "<<", "*", "&", "-", ":",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.sampled_from(INTERESTING),
    st.text(max_size=12),
)
junk = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def shaped(draw: st.DrawFn, spec: Any) -> Any:
    """A document shaped like `spec`: most keys present, values typical of each type, wrong
    types, odd values and stray keys mixed in at every level (so deep rules are reached)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(junk)
    if isinstance(spec, Struct):
        doc = {k: draw(shaped(sub)) for k, sub in spec.fields.items() if draw(st.integers(0, 2))}
        if draw(st.integers(0, 9)) == 0:
            doc[draw(st.text(max_size=8) | st.sampled_from(list(spec.fields)).map(str.upper))] = (
                draw(junk)
            )
        return doc
    if isinstance(spec, List):
        return [draw(shaped(spec.item)) for _ in range(draw(st.integers(0, 3)))]
    if isinstance(spec, StrMap):
        return draw(st.dictionaries(st.sampled_from(INTERESTING) | st.text(max_size=6), scalars))
    if isinstance(spec, Str):
        return draw(st.sampled_from(INTERESTING) | st.text(max_size=10))
    if isinstance(spec, Int):
        return draw(st.integers(-(2**33), 2**33) | st.sampled_from([0, 1, 24, 80, 65535]))
    if isinstance(spec, Bool):
        return draw(st.booleans())
    assert isinstance(spec, Data)
    return draw(junk)


FRAGMENTS = [
    "&a ", "*a", "<<: *a", "&a [*a]", "{<<: *a}", "&b {x: *b}", "!!int ", "!!bool ", "!!float ",
    "!!null ", "!!timestamp ", "!!binary ", "!!str ", "!foo ", "!!map ", "!!seq ", "[", "]", "{",
    "}", ": ", "- ", "? ", "'", '"', '"\\ud800"', '"\\ud83d\\ude00"', "~", "\t", "\x85", "\u2028",
    "\r", "\x00", "\ufeff", "😀", "---\n", "...\n", "%YAML 1.1\n", "#", "|", ">", "\\",
    "1" * 5000, "0x" + "f" * 3000, "0b" + "1" * 5000, "9" * 400 + ".5", "[" * 200, "- " * 200,
    "{a: " * 100,
]  # fmt: skip
BOMB = "b0: &b0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 10)}]\n" for i in range(1, 7)
)


LINE_EDITS = ["dup", "del", "indent", "dedent", "cut", "swap", "insert"]


def edit_line(
    draw: st.DrawFn, lines: list[str], op: str, fragments: st.SearchStrategy[str]
) -> None:
    """One edit of `lines` at a drawn place: duplicate (keys, list items), delete, re-indent,
    cut, swap with another line, or insert a drawn fragment."""
    i = draw(st.integers(0, len(lines) - 1))
    if op == "dup":
        lines.insert(i, lines[i])
    elif op == "del" and len(lines) > 1:
        del lines[i]
    elif op == "indent":
        lines[i] = "  " + lines[i]
    elif op == "dedent":
        lines[i] = lines[i][2:]
    elif op == "cut":
        lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
    elif op == "swap":
        j = draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
    elif op == "insert":
        j = draw(st.integers(0, len(lines[i])))
        lines[i] = lines[i][:j] + draw(fragments) + lines[i][j:]


@st.composite
def mutated(draw: st.DrawFn, texts: list[str]) -> str:
    """A seed text with one to four edits: lines duplicated, dropped, re-indented, cut or
    swapped, YAML fragments inserted anywhere, an anchor on one value and aliases to it
    elsewhere, or an alias bomb placed under a key."""
    lines = draw(st.sampled_from(texts)).splitlines() or [""]
    fragments = st.sampled_from(FRAGMENTS) | st.text(max_size=4)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from([*LINE_EDITS, "anchor"]) | st.just("insert"))
        if op != "anchor":
            edit_line(draw, lines, op, fragments)
            continue
        i = draw(st.integers(0, len(lines) - 1))
        if ": " in lines[i]:  # anchor a value, alias it from another line (maybe inside it)
            key, _, value = lines[i].partition(": ")
            lines[i] = f"{key}: &m {value}"
            j = draw(st.integers(0, len(lines) - 1))
            if ": " in lines[j]:
                key, _, _ = lines[j].partition(": ")
                lines[j] = f"{key}: *m"
    if draw(st.integers(0, 19)) == 0:
        lines.insert(draw(st.integers(0, len(lines))), BOMB.rstrip("\n"))
    return "\n".join(lines) + "\n"

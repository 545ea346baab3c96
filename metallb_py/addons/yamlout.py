"""YAML output for Kubernetes objects (input is read by `metallb_py.config.yamltree`).

Users read and diff what `render`/`convert` write, so the output keeps key order, writes
multi-line strings (the embedded `config`) as literal blocks, and quotes every string that a
YAML 1.1 reader would turn into something else (`"7472"`, `"true"`, `"64512:1"`), by PyYAML's
rules and by yaml.v2's (`"y"`, `"n"`), which Kubernetes and MetalLB read with.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from metallb_py.config.yamltree import Kind, classify_plain


class _Dumper(yaml.SafeDumper):
    """Safe dumper with literal blocks for multi-line text and indented sequences."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    if data and classify_plain(data)[0] is not Kind.STR:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="'")
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


# What YAML allows in a stream (YAML 1.1, 5.1); anything else makes the output unreadable.
_NOT_PRINTABLE = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _printable(line: str) -> str:
    """`line` for a comment: characters a YAML reader refuses (a name's ESC) are written escaped."""
    return _NOT_PRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), line)


def dump_documents(docs: Iterable[Mapping[str, Any]], header: str = "") -> str:
    """Several documents separated by `---`, preceded by `header` as `#` comment lines."""
    parts = [dump(dict(d)) for d in docs]
    lines = [f"# {_printable(line)}".rstrip() for line in header.splitlines()] if header else []
    prefix = "\n".join(lines) + "\n" if lines else ""
    return prefix + "---\n".join(parts)

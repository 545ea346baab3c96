"""What every semantic check of the config shares: the problem log, the warnings, the BGP
implementation the config is checked for, and readers of decoded lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from yaml.nodes import Node

from metallb_py.config.decode import Obj, Seq
from metallb_py.config.errors import Problem
from metallb_py.config.model import BgpType
from metallb_py.config.yamlnodes import Path, ProblemLog, format_path
from metallb_py.config.yamltree import line_of, shorten

T = TypeVar("T")


class Checks:
    """Semantic checks over the decoded tree; collects problems and warnings."""

    def __init__(self, problems: ProblemLog, bgp_type: BgpType) -> None:
        self.problems = problems
        self.warnings: list[Problem] = []
        self.bgp_type = bgp_type

    def error(self, path: Path, node: Node | None, reason: str, value: Any = None) -> None:
        self.problems.add(path, reason, value, node)

    def warn(self, path: Path, node: Node | None, reason: str, value: Any = None) -> None:
        self.warnings.append(Problem(format_path(path), reason, value, line_of(node)))

    def first_definition(self, first: dict[str, str], item: Obj, name: str, what: str) -> bool:
        """Remember where `name` is defined first; report a later definition (False)."""
        if name in first:
            path, node = item.where("name")
            self.error(path, node, f"{what} {shorten(name)} (first: {first[name]})", name)
            return False
        first[name] = format_path(item.path)
        return True


def objs(parent: Obj, key: str) -> list[Obj]:
    seq = parent.get(key)
    if not isinstance(seq, Seq):
        return []
    return [value for _, _, value in seq.good()]


def strings(seq: Any) -> list[tuple[int, Node, str]]:
    return list(seq.good()) if isinstance(seq, Seq) else []


def checked_items(seq: Any, check: Callable[[Obj], T | None]) -> tuple[list[T], bool]:
    """`check` of every usable item of a decoded list; False when an item was unusable or its
    check failed (both already reported). An absent list is empty and good."""
    if not isinstance(seq, Seq):
        return [], True
    good = all(item.value is not None for item in seq.items)
    out: list[T] = []
    for _, _, item in seq.good():
        value = check(item)
        if value is None:
            good = False
        else:
            out.append(value)
    return out, good

"""What every semantic check of the config shares: the problem log, the warnings, the BGP
implementation the config is checked for, and readers of decoded lists."""

from __future__ import annotations

from typing import Any

from yaml.nodes import Node

from metallb_py.config.decode import Obj, Seq
from metallb_py.config.errors import Problem
from metallb_py.config.model import BgpType
from metallb_py.config.yamlnodes import Path, ProblemLog, format_path
from metallb_py.config.yamltree import line_of


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


def objs(parent: Obj, key: str) -> list[Obj]:
    seq = parent.get(key)
    if not isinstance(seq, Seq):
        return []
    return [value for _, _, value in seq.good()]


def strings(seq: Any) -> list[tuple[int, Node, str]]:
    return list(seq.good()) if isinstance(seq, Seq) else []

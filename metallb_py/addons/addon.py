"""What every addon reader (Helm, Konvoy, Kontena) returns, and the config check that points
each problem of the embedded MetalLB config back into the values file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from metallb_py.addons.manifests import InstallOptions
from metallb_py.addons.yamlout import dump
from metallb_py.config.errors import ConfigError, Problem
from metallb_py.config.model import BgpType
from metallb_py.config.parser import parse_config
from metallb_py.config.yamlnodes import (
    Path,
    ProblemLog,
    child,
    format_path,
    merged_pairs,
    split_path,
)
from metallb_py.config.yamltree import mark_line


@dataclass(frozen=True)
class ConfigSource:
    """Where the MetalLB config came from, so parser problems point into the user's file."""

    node: Node
    path: Path
    line_offset: int = 0
    key_matches: Callable[[str, str], bool] = lambda user, config: user == config


@dataclass(frozen=True)
class AddonValues:
    kind: str
    """`helm`, `konvoy` or `kontena`."""
    options: InstallOptions
    config: dict[str, Any] | None
    """The MetalLB v0.12 config (kebab-case keys) or None when the values carry none."""
    source: ConfigSource | None
    notes: tuple[str, ...] = ()


def refuse_disabled(
    values: Mapping[str, Any], node: Node, path: Path, problems: ProblemLog, what: str
) -> None:
    """After the schema's problems: `enabled: false` installs nothing, which is refused rather
    than rendered as an empty manifest set."""
    problems.check()
    if values.get("enabled") is False:
        problems.add(
            (*path, "enabled"),
            f"{what} is disabled (enabled: false): nothing to install",
            None,
            child(node, "enabled"),
        )
        problems.check()


def locate(source: ConfigSource, config_path: Path) -> tuple[Path, Node | None]:
    """A config path (kebab keys) as the user wrote it, and its node for the line number."""
    node: Node | None = source.node
    user: list[str | int] = []
    for part in config_path:
        nxt: Node | None = None
        spelled: str | int = part
        if isinstance(node, MappingNode) and isinstance(part, str):
            for k, v in merged_pairs(node):
                if isinstance(k, ScalarNode) and source.key_matches(str(k.value), part):
                    nxt, spelled = v, str(k.value)
                    break
        elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
            nxt = node.value[part]
        user.append(spelled)
        if nxt is not None:
            node = nxt
    return (*source.path, *user), node


def config_text(values: AddonValues, bgp_type: BgpType = BgpType.NATIVE) -> str | None:
    """The `config` ConfigMap text, checked by the config parser; problems point into the
    values file (field path as the user spelled it, line in that file)."""
    if values.config is None:
        return None
    text = dump(values.config)
    check_config_text(text, bgp_type, values.source)
    return text


def check_config_text(text: str, bgp_type: BgpType, source: ConfigSource | None) -> None:
    try:
        parse_config(text, bgp_type)
    except ConfigError as exc:
        if source is None:
            raise
        problems = []
        for p in exc.problems:
            path, node = locate(source, split_path(p.path))
            line = mark_line(node.start_mark) + source.line_offset if node is not None else None
            problems.append(Problem(format_path(path), p.reason, p.value, line))
        raise ConfigError(problems) from None


def with_config(values: AddonValues, bgp_type: BgpType = BgpType.NATIVE) -> InstallOptions:
    """Install options with the checked config text filled in."""
    return replace(values.options, config_text=config_text(values, bgp_type))

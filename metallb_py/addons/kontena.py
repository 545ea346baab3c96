"""Kontena Pharos values: a `kontena-network-lb:` block (at the top or under `addons:` of a
cluster.yml) whose MetalLB config is written with underscore keys (`peer_address`).
"""

from __future__ import annotations

from typing import Any

from yaml.nodes import MappingNode, Node

from metallb_py.addons.addon import AddonValues, ConfigSource, refuse_disabled
from metallb_py.addons.manifests import Component, InstallOptions
from metallb_py.config.decode import ANY, ANY_LIST, BOOL, TYPED_STR, StrMap, Struct, read
from metallb_py.config.yamlnodes import (
    Path,
    ProblemLog,
    child,
    is_null,
    keys_of,
    to_plain,
)
from metallb_py.config.yamltree import describe

KONTENA_KEY = "kontena-network-lb"
_KONTENA = Struct(
    f"{KONTENA_KEY} values",
    {
        "enabled": BOOL,
        "node_selector": StrMap(TYPED_STR),
        "tolerations": ANY_LIST,
        "address_pools": ANY,
        "peers": ANY,
        "bgp_communities": ANY,
    },
)
_LABEL_MAPS = {"match-labels"}
"""Config keys whose mapping keys are label names, never translated."""


def kebab(key: str) -> str:
    return key.replace("_", "-")


def _kontena_keys_match(user: str, config: str) -> bool:
    return kebab(user) == config


def block_of(root: Node | None) -> tuple[Path, Node] | None:
    """The `kontena-network-lb` block and its path, at the top or under `addons`."""
    block = child(root, KONTENA_KEY)
    if block is not None:
        return (KONTENA_KEY,), block
    block = child(child(root, "addons"), KONTENA_KEY)
    return None if block is None else (("addons", KONTENA_KEY), block)


def _config_key(key: str, path: Path) -> str:
    """Kontena's underscore keys (`peer_address`) to MetalLB's kebab-case (`peer-address`);
    label names (the keys of a `match_labels` mapping) stay as written."""
    parent = path[-1] if path else ""
    return key if isinstance(parent, str) and kebab(parent) in _LABEL_MAPS else kebab(key)


def read_kontena(root: Node | None) -> AddonValues:
    """`kontena-network-lb:` values, at the top level or under `addons:` of a cluster.yml."""
    problems = ProblemLog()
    if not isinstance(root, MappingNode):
        problems.add(
            (),
            f"Kontena values must be a mapping, got {describe(root) if root else 'nothing'}",
            None,
            root,
        )
        problems.check()
    assert isinstance(root, MappingNode)
    found = block_of(root)
    if found is None:
        holder = child(root, "addons") if isinstance(child(root, "addons"), MappingNode) else root
        problems.add(
            ("addons",) if holder is not root else (),
            f"no '{KONTENA_KEY}' block: these are values for another addon "
            f"(found {', '.join(keys_of(holder)) or 'nothing'})",
            None,
            holder,
        )
        problems.check()
    assert found is not None
    path, block = found
    v = read(block, _KONTENA, path, problems) or {}
    refuse_disabled(v, block, path, problems, "the addon")
    config: dict[str, Any] = {}
    for user_key in ("peers", "bgp_communities", "address_pools"):
        node = child(block, user_key)
        if node is not None and not is_null(node):
            config[kebab(user_key)] = to_plain(node, problems, (*path, user_key), _config_key)
    problems.check()
    speaker = Component(
        "speaker",
        node_selector=v.get("node_selector", {}),
        tolerations=tuple(v.get("tolerations", ())),
    )
    options = InstallOptions(speaker=speaker)
    source = ConfigSource(block, path, 0, _kontena_keys_match)
    return AddonValues("kontena", options, config or None, source if config else None)

"""Parse and validate a MetalLB v0.12 `config` text into a `Config` (docs/config.md).

Stages, as upstream: strict decode against the schema (`schema.py`), the BGP implementation's
rules, `bfd-profiles`, `peers` (`check_peers.py`, `check_selectors.py`), `bgp-communities`,
`address-pools` (then duplicate names and overlaps; `check_pools.py`). Upstream stops at the
first error; here every stage runs and every independent problem is reported, and a check is
skipped only when a value it depends on was already reported as broken.
"""

from __future__ import annotations

from types import MappingProxyType

from yaml.nodes import MappingNode, ScalarNode

from metallb_py.config.check_peers import PeerChecks
from metallb_py.config.check_pools import PoolChecks
from metallb_py.config.decode import Decoder, Obj
from metallb_py.config.errors import ConfigError, Problem
from metallb_py.config.model import BgpType, Config
from metallb_py.config.schema import CONFIG
from metallb_py.config.yamlnodes import ProblemLog
from metallb_py.config.yamltree import (
    Kind,
    YamlSyntaxError,
    classify,
    compose_one,
    describe,
    line_of,
)

MAX_CONFIG_BYTES = 1024 * 1024
"""Kubernetes refuses ConfigMaps over 1 MiB, so a longer config can never be deployed."""


class _Checker(PeerChecks, PoolChecks):
    """Every semantic check, over one decoded config."""


def parse_config(text: str, bgp_type: BgpType = BgpType.NATIVE) -> Config:
    """The validated config, or ConfigError listing every problem. "" is the empty config."""
    config, _ = parse_config_with_warnings(text, bgp_type)
    return config


def parse_config_with_warnings(
    text: str, bgp_type: BgpType = BgpType.NATIVE
) -> tuple[Config, tuple[Problem, ...]]:
    """Like `parse_config`, plus warnings: accepted but probably not what the user meant."""
    bgp_type = BgpType(bgp_type)
    check_size(text, MAX_CONFIG_BYTES, "the config")
    try:
        root, _ = compose_one(text)
    except YamlSyntaxError as exc:
        problem = Problem("", f"could not parse config: {exc.message}", None, exc.line)
        raise ConfigError([problem]) from None
    if root is None or (isinstance(root, ScalarNode) and classify(root).kind is Kind.NULL):
        return Config(), ()
    if not isinstance(root, MappingNode):
        raise ConfigError(
            [
                Problem(
                    "",
                    "the config must be a YAML mapping with keys such as address-pools and"
                    f" peers, not {describe(root)}",
                    root.value if isinstance(root, ScalarNode) else None,
                    line_of(root),
                )
            ]
        )
    manifest = _manifest_problem(root)
    if manifest is not None:
        raise ConfigError([manifest])
    problems = ProblemLog()
    checker = _Checker(problems, bgp_type)
    _, top = Decoder(problems).decode(root, CONFIG, ())
    assert isinstance(top, Obj)
    checker.mode(top)
    profiles, profile_names = checker.bfd_profiles(top)
    peers = checker.peers(top, profile_names)
    aliases, alias_names = checker.communities(top)
    pools = checker.pools(top, aliases, alias_names)
    problems.check()
    config = Config(
        peers=tuple(peers),
        bgp_communities=MappingProxyType(dict(aliases)),
        pools=tuple(pools),
        bfd_profiles=tuple(profiles),
    )
    return config, tuple(checker.warnings)


def check_size(text: str, limit: int, what: str) -> None:
    """Refuse over-long or un-encodable text before any parsing work is done."""
    if len(text) > limit:
        size = len(text)
    else:
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise ConfigError(
                [Problem("", f"{what} is not valid Unicode text ({exc.reason})", None, None)]
            ) from None
    if size > limit:
        raise ConfigError(
            [
                Problem(
                    "",
                    f"{what} is at least {size} bytes; a ConfigMap holds at most 1 MiB"
                    f" ({limit} bytes), so this cannot be a deployable MetalLB config",
                )
            ]
        )


def _manifest_problem(root: MappingNode) -> Problem | None:
    for key, value in root.value:
        if isinstance(key, ScalarNode) and key.value == "kind":
            kind = value.value if isinstance(value, ScalarNode) else "?"
            hint = (
                "give the manifest to `metallb-py config check` (or load_config_document),"
                " which reads its data.config"
                if kind == "ConfigMap"
                else "metallb-py implements MetalLB v0.12, configured by the `config` key of a"
                " ConfigMap; custom resources such as IPAddressPool or BGPPeer are v0.13+"
            )
            return Problem(
                "kind",
                f"this is a Kubernetes manifest (kind: {kind}), not a MetalLB config: {hint}",
                kind,
                line_of(key),
            )
    return None

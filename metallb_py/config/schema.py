"""The config's schema: the keys and types of each mapping, as upstream's Go structs
(docs/config.md). `decode.Decoder` reads the YAML against it; `parser` checks the meaning."""

from __future__ import annotations

from yaml.nodes import MappingNode, Node, ScalarNode

from metallb_py.config.decode import (
    BOOL,
    INT64,
    STR,
    UINT16,
    UINT32,
    List,
    StrMap,
    Struct,
    squash,
    suggest_key,
)

SELECTOR_REQUIREMENT = Struct(
    "match expression", {"key": STR, "operator": STR, "values": List(STR)}
)
NODE_SELECTOR = Struct(
    "node selector",
    {"match-labels": StrMap(), "match-expressions": List(SELECTOR_REQUIREMENT)},
)
PEER = Struct(
    "peer",
    {
        "my-asn": UINT32,
        "peer-asn": UINT32,
        "peer-address": STR,
        "source-address": STR,
        "peer-port": UINT16,
        "hold-time": STR,
        "keepalive-time": STR,
        "router-id": STR,
        "node-selectors": List(NODE_SELECTOR),
        "password": STR,
        "bfd-profile": STR,
        "ebgp-multihop": BOOL,
        "graceful-restart": BOOL,
        "graceful-restart-time": STR,
    },
)
BGP_ADVERTISEMENT = Struct(
    "BGP advertisement",
    {
        "aggregation-length": INT64,
        "aggregation-length-v6": INT64,
        "localpref": UINT32,
        "communities": List(STR),
    },
)
ADDRESS_POOL = Struct(
    "address pool",
    {
        "protocol": STR,
        "name": STR,
        "addresses": List(STR),
        "avoid-buggy-ips": BOOL,
        "auto-assign": BOOL,
        "bgp-advertisements": List(BGP_ADVERTISEMENT),
    },
)
BFD_PROFILE = Struct(
    "BFD profile",
    {
        "name": STR,
        "receive-interval": UINT32,
        "transmit-interval": UINT32,
        "detect-multiplier": UINT32,
        "echo-interval": UINT32,
        "echo-mode": BOOL,
        "passive-mode": BOOL,
        "minimum-ttl": UINT32,
    },
)
_TOP_KEYS_SQUASHED = {"peers", "bgpcommunities", "addresspools", "bfdprofiles"}


def _wrapper_hint(value: Node, spec: Struct) -> str:
    """Explain configs nested under a wrapper key (Helm `configInline`, Kontena add-on)."""
    if not isinstance(value, MappingNode):
        return ""
    inner = [
        str(k.value)
        for k, _ in value.value
        if isinstance(k, ScalarNode) and squash(str(k.value)) in _TOP_KEYS_SQUASHED
    ]
    if not inner:
        return ""
    hint = (
        f"; it contains {', '.join(inner)}: the MetalLB config must start at the top level"
        " (the ConfigMap's data.config), not nested under another key"
    )
    renamed = [
        f"{key!r} is {meant!r}"
        for key in inner
        for meant in [suggest_key(key, list(spec.fields))[0]]
        if meant is not None and meant != key
    ]
    if renamed:
        hint += "; keys are written in lower-case kebab-case there: " + ", ".join(renamed)
    return hint


CONFIG = Struct(
    "config",
    {
        "peers": List(PEER),
        "bgp-communities": StrMap(),
        "address-pools": List(ADDRESS_POOL),
        "bfd-profiles": List(BFD_PROFILE),
    },
    hint=_wrapper_hint,
)

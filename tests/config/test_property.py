"""Property tests: whatever the text, the parser returns a Config or raises ConfigError.

Thousands of documents: random YAML trees over the config's own vocabulary, valid configs
mutated structurally (dropped, renamed, retyped, duplicated keys) and textually (cut,
duplicated, re-indented lines), and raw random text. Plus properties with exact answers:
configs valid by construction parse to what was generated, injected errors are each
reported at their own path, and quoting a community never changes its meaning.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metallb_py.config import (
    BgpType,
    Community,
    Config,
    ConfigError,
    parse_config,
    read_config_document,
)
from metallb_py.config.decode import Bool, Int, List, Str, StrMap, Struct
from metallb_py.config.schema import CONFIG
from tests.config.yaml_mutations import LINE_EDITS, bounded, edit_line, mutated

HERE = Path(__file__).parent
EXAMPLE = (HERE / "spec_1_12_example.yaml").read_text()
SEED_TEXTS = [EXAMPLE] + [
    read_config_document((HERE / "seeds" / name).read_text()).text
    for name in ("konvoy_bgp.yaml", "konvoy_layer2.yaml", "blog_configmap.yaml")
]

pytestmark = pytest.mark.slow


def budget(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _schema_keys(spec: Any, out: set[str]) -> set[str]:
    if isinstance(spec, Struct):
        for key, sub in spec.fields.items():
            out.add(key)
            _schema_keys(sub, out)
    elif isinstance(spec, List):
        _schema_keys(spec.item, out)
    return out


KEYS = sorted(_schema_keys(CONFIG, set()))
INTERESTING = [
    "64512:1", "65535:65282", "1:2:3", "90s", "1m30s", "500ms", "90", "0", "-3s", "192.0.2.0/24",
    "192.0.2.10-192.0.2.20", "192.0.2.20 - 192.0.2.10", "2001:db8::/64", "2001:db8::1-192.0.2.1",
    "10.0.0.5/24", "::ffff:192.0.2.1", "bgp", "layer2", "BGP", "In", "NotIn", "Exists",
    "DoesNotExist", "kubernetes.io/hostname", "example.com/x", "a/b/c", "Bad_Prefix.com/x", "-x",
    "x" * 64, "yes", "n", "~", "", "-", ":", "<<", "*", "&",
    "0x10", "017", "1e3", ".inf", "4294967296", "-1", "fast", "no-advertise",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(INTERESTING),
    st.text(max_size=12),
)
keys = st.one_of(st.sampled_from(KEYS), st.sampled_from(KEYS).map(lambda k: k.replace("-", "_")),
                 st.text(max_size=8))  # fmt: skip
trees = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(keys, children, max_size=4),
    ),
    max_leaves=16,
)


JUNK = scalars | st.lists(scalars, max_size=2) | st.dictionaries(keys, scalars, max_size=2)
LEAVES: dict[type, st.SearchStrategy[Any]] = {
    Str: st.sampled_from(INTERESTING) | st.text(max_size=10),
    Int: st.integers(min_value=-(2**33), max_value=2**33) | st.sampled_from([0, 1, 24, 128, 255]),
    Bool: st.booleans(),
    StrMap: st.dictionaries(st.sampled_from(INTERESTING) | keys, scalars, max_size=3),
}


FIELD_VALUES: dict[str, list[Any]] = {
    "protocol": ["layer2", "bgp", "BGP", "ospf"],
    "operator": ["In", "NotIn", "Exists", "DoesNotExist", "in", "Surrounds"],
    "addresses": ["192.0.2.0/24", "192.0.2.10/28", "192.0.2.1-192.0.2.9", "2001:db8::/120",
                  "203.0.113.10 - 203.0.113.20", "198.51.100.0/24", "192.0.2.7", "::ffff:1.2.3.4/128",
                  "2001:db8::1-192.0.2.1", "192.0.2.9-192.0.2.1"],
    "communities": ["no-advertise", "64512:1", "65535:65282", "1:2:3", "70000:1", "0:0"],
    "hold-time": ["90s", "1m30s", "500ms", "90", "0", "2s", "-3s", "-0.5s", "24h"],
    "keepalive-time": ["30s", "0", "-5s", "91s", "1s"],
    "peer-address": ["192.0.2.1", "192.0.2.2", "2001:db8::1", "router", "::ffff:192.0.2.1"],
    "router-id": ["192.0.2.10", "192.0.2.11", "2001:db8::1", "x", ""],
    "source-address": ["192.0.2.10", "2001:db8::2", "eth0"],
    "key": ["rack", "kubernetes.io/hostname", "a/b/c", "-x", "x" * 64, ""],
    "values": ["a", "b", "-a", "", "x" * 64],
    "bfd-profile": ["fast", "slow", ""],
    "name": ["fast", "p", "q", ""],
}  # fmt: skip
FIELD_INTS: dict[str, st.SearchStrategy[int]] = {
    "aggregation-length": st.integers(-3, 34),
    "aggregation-length-v6": st.integers(-3, 130),
    "peer-port": st.integers(-1, 65536),
    "my-asn": st.integers(0, 3) | st.integers(0, 2**32),
    "peer-asn": st.integers(0, 3) | st.integers(0, 2**32),
}


@st.composite
def shaped(draw: st.DrawFn, spec: Any = CONFIG, name: str = "") -> Any:
    """A document shaped like the schema: most keys present, values typical of each field,
    wrong types, odd values and stray keys mixed in at every level (so deep rules are reached)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(JUNK)
    if isinstance(spec, Struct):
        doc = {k: draw(shaped(sub, k)) for k, sub in spec.fields.items() if draw(st.integers(0, 2))}
        if draw(st.integers(0, 9)) == 0:
            doc[draw(keys)] = draw(JUNK)
        return doc
    if isinstance(spec, List):
        return [draw(shaped(spec.item, name)) for _ in range(draw(st.integers(0, 3)))]
    if isinstance(spec, Str) and name in FIELD_VALUES:
        return draw(st.sampled_from(FIELD_VALUES[name]) | LEAVES[Str])
    if isinstance(spec, Int) and name in FIELD_INTS:
        return draw(FIELD_INTS[name] | LEAVES[Int])
    return draw(LEAVES[type(spec)])


def check(text: str, bgp_type: BgpType = BgpType.NATIVE) -> Config | None:
    """The property itself: a Config, or a ConfigError whose problems are well formed."""
    try:
        config = parse_config(text, bgp_type)
    except ConfigError as exc:
        lines = text.count("\n") + 2
        for problem in exc.problems:
            assert isinstance(problem.path, str)
            assert isinstance(problem.reason, str) and problem.reason
            assert problem.line is None or 1 <= problem.line <= lines
            problem.to_dict()  # JSON-able
        return None
    assert isinstance(config, Config)
    return config


modes = st.sampled_from(list(BgpType))


def dump(tree: Any, flow: bool | None) -> str:
    return yaml.safe_dump(tree, default_flow_style=flow, allow_unicode=True, sort_keys=False)


@budget(300)
@given(
    tree=st.dictionaries(keys, trees, max_size=6),
    flow=st.sampled_from([None, True, False]),
    mode=modes,
)
def test_random_yaml_trees(tree: dict[Any, Any], flow: bool | None, mode: BgpType) -> None:
    check(dump(tree, flow), mode)


@budget(1000)
@given(doc=shaped(), flow=st.sampled_from([None, True, False]), mode=modes)
def test_schema_shaped_documents(doc: Any, flow: bool | None, mode: BgpType) -> None:
    check(dump(doc, flow), mode)


@budget(1000)
@given(text=st.text(max_size=300), mode=modes)
def test_random_text(text: str, mode: BgpType) -> None:
    check(text, mode)
    try:
        doc = read_config_document(text)
    except ConfigError:
        return
    check(doc.text, mode)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


@st.composite
def mutated_documents(draw: st.DrawFn) -> str:
    tree = yaml.load(draw(st.sampled_from(SEED_TEXTS)), Loader=yaml.BaseLoader)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_paths(tree)))
        if not path:
            continue
        parent, last = _get(tree, path[:-1]), path[-1]
        op = draw(st.sampled_from(["drop", "rename", "retype", "duplicate", "insert"]))
        if op == "drop":
            del parent[last]
        elif op == "rename" and isinstance(parent, dict):
            new = draw(keys | st.just(str(last).upper()) | st.just(str(last).replace("-", "_")))
            parent[new] = parent.pop(last)
        elif op == "retype":
            parent[last] = draw(trees)
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(last, parent[last])
        elif op == "insert" and isinstance(parent, dict):
            parent[draw(keys)] = draw(trees)
    return dump(tree, draw(st.sampled_from([None, True, False])))


@budget(500)
@given(text=mutated_documents(), mode=modes)
def test_mutated_valid_documents(text: str, mode: BgpType) -> None:
    check(text, mode)


@st.composite
def text_edits(draw: st.DrawFn) -> str:
    lines = draw(st.sampled_from(SEED_TEXTS)).splitlines()
    for _ in range(draw(st.integers(1, 3))):
        edit_line(draw, lines, draw(st.sampled_from(LINE_EDITS)), st.text(max_size=4))
    return "\n".join(lines) + "\n"


@budget(600)
@given(text=text_edits(), mode=modes)
def test_edited_valid_texts(text: str, mode: BgpType) -> None:
    check(text, mode)


@bounded(600)
@given(text=mutated(SEED_TEXTS), mode=modes)
def test_yaml_features_in_valid_texts(text: str, mode: BgpType) -> None:
    """Anchors and aliases (also cyclic), tags, deep nesting, long numbers, surrogate escapes
    and alias bombs placed anywhere: a Config or ConfigError, each within the time bound."""
    check(text, mode)


# --- properties with exact answers ---------------------------------------------------------

DOC_V4 = ipaddress.IPv4Network("192.0.2.0/24")


@st.composite
def valid_configs(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """A valid native-mode config and the values it must parse to."""
    blocks = draw(st.lists(st.integers(0, 63), min_size=1, max_size=8, unique=True))
    pools = []
    for n, b in enumerate(blocks):
        net = ipaddress.ip_network(f"2001:db8:{b:x}::/48")
        v4 = list(DOC_V4.subnets(new_prefix=30))[b]
        first, last = v4[0], v4[3]
        forms = {"cidr": str(v4), "range": f"{first}-{last}", "spaced": f"{first} - {last}"}
        text_v4 = forms[draw(st.sampled_from(sorted(forms)))]
        protocol = draw(st.sampled_from(["layer2", "bgp"]))
        addresses = [text_v4] + ([str(net)] if protocol == "layer2" else [])
        pools.append(
            {
                "name": f"pool-{n}",
                "protocol": protocol,
                "addresses": addresses,
                "auto-assign": draw(st.booleans()),
            }
        )
    peers = []
    for n in range(draw(st.integers(0, 4))):
        peers.append(
            {
                "my-asn": draw(st.integers(1, 2**32 - 1)),
                "peer-asn": draw(st.integers(1, 2**32 - 1)),
                "peer-address": f"198.51.100.{n + 1}",
                "hold-time": f"{draw(st.sampled_from([0, 3, 9, 90, 180]))}s",
                "peer-port": draw(st.integers(0, 65535)),
            }
        )
    text = dump({"peers": peers, "address-pools": pools}, draw(st.booleans()))
    return text, pools, peers


@budget(150)
@given(generated=valid_configs())
def test_valid_by_construction(
    generated: tuple[str, list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    text, pools, peers = generated
    config = check(text)
    assert config is not None
    assert [p.name for p in config.pools] == [p["name"] for p in pools]
    assert [p.addresses for p in config.pools] == [tuple(p["addresses"]) for p in pools]
    assert [p.auto_assign for p in config.pools] == [p["auto-assign"] for p in pools]
    for pool in config.pools:
        assert sum(c.num_addresses for c in pool.cidrs if c.version == 4) == 4
    for peer, spec in zip(config.peers, peers, strict=True):
        assert (peer.my_asn, peer.peer_asn) == (spec["my-asn"], spec["peer-asn"])
        assert peer.hold_time == int(spec["hold-time"][:-1])
        assert peer.port == (spec["peer-port"] or 179)


@budget(150)
@given(generated=valid_configs(), data=st.data())
def test_every_injected_error_is_reported_at_its_path(
    generated: tuple[str, list[dict[str, Any]], list[dict[str, Any]]], data: st.DataObject
) -> None:
    _, pools, peers = generated
    broken = set()
    for i, pool in enumerate(pools):
        if data.draw(st.booleans()):
            pool["addresses"][0] = data.draw(
                st.sampled_from(["10.0.0.1", "x", "192.0.2.9-192.0.2.1"])
            )
            broken.add(f"address-pools[{i}].addresses[0]")
    for i, peer in enumerate(peers):
        if data.draw(st.booleans()):
            peer["hold-time"] = data.draw(st.sampled_from(["90", "1s", "soon"]))
            broken.add(f"peers[{i}].hold-time")
    text = dump({"peers": peers, "address-pools": pools}, data.draw(st.booleans()))
    if not broken:
        assert check(text) is not None
        return
    try:
        parse_config(text)
    except ConfigError as exc:
        assert {p.path for p in exc.problems} == broken
    else:
        raise AssertionError("an invalid config was accepted")


@budget(100)
@given(
    pairs=st.lists(
        st.tuples(st.integers(0, 65535), st.integers(0, 65535)), min_size=1, max_size=6, unique=True
    )
)
def test_quoting_a_community_never_changes_it(pairs: list[tuple[int, int]]) -> None:
    literals = [f"{a}:{b}" for a, b in pairs]
    aliases = "".join(f"  c{i}: {lit}\n" for i, lit in enumerate(literals))
    quoted = "".join(f"  c{i}: '{lit}'\n" for i, lit in enumerate(literals))
    tail = (
        "address-pools:\n- name: p\n  protocol: bgp\n  addresses: [198.51.100.0/24]\n"
        f"  bgp-advertisements:\n  - communities: [{', '.join(literals)}]\n"
    )
    plain = parse_config("bgp-communities:\n" + aliases + tail)
    assert plain == parse_config("bgp-communities:\n" + quoted + tail)
    expected = tuple(sorted(Community((a << 16) + b) for a, b in pairs))
    assert plain.pools[0].bgp_advertisements[0].communities == expected
    assert sorted(plain.bgp_communities.values()) == list(expected)

"""The YAML dialect (docs/config.md): yaml.v2 typing, strictness, and bounded work."""

from __future__ import annotations

import pytest
import yaml

from metallb_py.config import (
    MAX_CONFIG_BYTES,
    Community,
    Config,
    ConfigError,
    parse_config,
    read_config_document,
)
from metallb_py.config.document import MAX_MANIFEST_BYTES
from metallb_py.config.yamlnodes import MAX_PROBLEMS
from metallb_py.config.yamltree import MAX_ALIASES, MAX_DEPTH, Kind, classify_plain

from .util import one, parse, peer, pool, problems

# --- 1.11: no base 60 ---------------------------------------------------------------------


def test_pyyaml_default_loader_has_the_base60_trap() -> None:
    """The reason this parser exists: PyYAML's default typing turns 64512:1 into an int."""
    assert yaml.safe_load("c: 64512:1") == {"c": 3870721}


@pytest.mark.parametrize(
    "literal", ["64512:1", "65535:0", "1:59", "0:0", "65535:65535", "'64512:1'"]
)
def test_unquoted_and_quoted_communities_stay_strings(literal: str) -> None:
    text = literal.strip("'")
    high, low = (int(x) for x in text.split(":"))
    config = parse(
        f"""\
        bgp-communities:
          alias: {literal}
        address-pools:
        - name: p
          protocol: bgp
          addresses: [198.51.100.0/24]
          bgp-advertisements:
          - communities: [{literal}, alias]
          - communities:
            - {literal}
        """
    )
    expected = Community((high << 16) + low)
    assert config.bgp_communities["alias"] == expected
    first, second = config.pools[0].bgp_advertisements
    assert first.communities == (expected,)  # the alias and the literal collapse into one
    assert first.community_strings == (text, "alias")
    assert second.communities == (expected,)


@pytest.mark.parametrize("duration", ["1:30", "90:00"])
def test_sexagesimal_looking_duration_is_text_not_a_number(duration: str) -> None:
    problem = one(peer(f"hold-time: {duration}"))
    assert problem.path == "peers[0].hold-time"
    assert problem.value == duration


# --- typing of plain scalars ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("", Kind.NULL, None),
        ("~", Kind.NULL, None),
        ("null", Kind.NULL, None),
        ("y", Kind.BOOL, True),
        ("N", Kind.BOOL, False),
        ("Off", Kind.BOOL, False),
        ("0x1F", Kind.INT, 31),
        ("0o17", Kind.INT, 15),
        ("017", Kind.INT, 15),
        ("0b101", Kind.INT, 5),
        ("-0b101", Kind.INT, -5),
        ("64_512", Kind.INT, 64512),
        ("+5", Kind.INT, 5),
        ("-5", Kind.INT, -5),
        ("1e3", Kind.FLOAT, 1000.0),
        ("08", Kind.INT, 8),  # not octal; yaml.v2 reads 8.0 and stores 8 in an int field
        ("1.5", Kind.FLOAT, 1.5),
        (".inf", Kind.FLOAT, float("inf")),
        ("64512:1", Kind.STR, "64512:1"),
        ("2001-12-14", Kind.STR, "2001-12-14"),
        ("90s", Kind.STR, "90s"),
        ("192.0.2.1", Kind.STR, "192.0.2.1"),
        ("99999999999999999999", Kind.INT, 99999999999999999999),
    ],
)
def test_plain_scalar_typing_follows_yaml_v2(text: str, kind: Kind, value: object) -> None:
    assert classify_plain(text) == (kind, value)


@pytest.mark.parametrize(
    ("literal", "value"),
    [("64500", 64500), ("0x10", 16), ("0o17", 15), ("017", 15), ("64_512", 64512), ("+7", 7)],
)
def test_integer_syntaxes_accepted_for_asn(literal: str, value: int) -> None:
    config = parse(
        f"""\
        peers:
        - my-asn: {literal}
          peer-asn: 1
          peer-address: 192.0.2.1
        """
    )
    assert config.peers[0].my_asn == value


def test_explicit_int_tag_on_a_quoted_number_is_an_integer() -> None:
    config = parse('peers:\n- {my-asn: !!int "64500", peer-asn: 1, peer-address: 192.0.2.1}\n')
    assert config.peers[0].my_asn == 64500


@pytest.mark.parametrize(
    ("field", "literal", "reason"),
    [
        ("my-asn", '"64500"', "quoted string '64500': remove the quotes"),
        ("my-asn", "'64500'", "remove the quotes"),
        ("my-asn", "!!str 64500", "got a string '64500'"),
        ("peer-port", '"179"', "remove the quotes"),
        ("my-asn", "64500.0", "non-integer number '64500.0'"),
        ("my-asn", "1e3", "non-integer number"),
        ("my-asn", "true", "got a boolean 'true'"),
        ("my-asn", "[1]", "got a list"),
        ("my-asn", "{a: 1}", "got a mapping"),
        ("my-asn", "4294967296", "4294967296 does not fit"),
        ("my-asn", "-1", "-1 does not fit"),
        ("my-asn", "99999999999999999999", "does not fit"),
        ("peer-port", "65536", "65536 does not fit: expected an unsigned 16-bit integer"),
        ("peer-port", "-1", "does not fit"),
        ("ebgp-multihop", '"true"', "quoted string 'true': remove the quotes"),
        ("ebgp-multihop", "1", "expected a boolean (true/false), got an integer '1'"),
        ("ebgp-multihop", "maybe", "got a string 'maybe'"),
        ("password", "[a]", "expected a string, got a list"),
        ("peer-address", "{a: b}", "expected a string, got a mapping"),
    ],
)
def test_type_mismatches(field: str, literal: str, reason: str) -> None:
    fields = {"my-asn": "64500", "peer-asn": "64501", "peer-address": "192.0.2.1"}
    fields[field] = literal
    text = "peers:\n- " + "\n  ".join(f"{k}: {v}" for k, v in fields.items()) + "\n"
    found = problems(text)
    assert [p.path for p in found] == [f"peers[0].{field}"], [str(p) for p in found]
    assert reason in found[0].reason
    assert found[0].line == list(fields).index(field) + 2


@pytest.mark.parametrize(
    ("literal", "expected"),
    [(w, True) for w in ("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON")]
    + [(w, False) for w in ("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "OFF")],
)
def test_yaml11_booleans(literal: str, expected: bool) -> None:
    config = parse(
        pool("[192.0.2.0/24]", extra=f"auto-assign: {literal}\navoid-buggy-ips: {literal}")
    )
    assert config.pools[0].auto_assign is expected
    assert config.pools[0].avoid_buggy_ips is expected


@pytest.mark.parametrize("literal", ['"false"', "'yes'", "0", "nope"])
def test_non_booleans_rejected_for_bool_fields(literal: str) -> None:
    problem = one(pool("[192.0.2.0/24]", extra=f"auto-assign: {literal}"))
    assert problem.path == "address-pools[0].auto-assign"
    assert "expected a boolean" in problem.reason


@pytest.mark.parametrize(
    ("literal", "kept"),
    [
        ("0123", "0123"),
        ("1e3", "1e3"),
        ("yes", "yes"),
        ("2001-12-14", "2001-12-14"),
        ("0x1F", "0x1F"),
    ],
)
def test_string_fields_keep_the_literal_text(literal: str, kept: str) -> None:
    assert parse(peer(f"password: {literal}")).peers[0].password == kept
    assert (
        parse(pool("[192.0.2.0/24]").replace("name: p", f"name: {literal}")).pools[0].name == kept
    )


def test_null_values_are_go_zero_values() -> None:
    config = parse(
        """\
        peers:
        - my-asn: 64500
          peer-asn: 64501
          peer-address: 192.0.2.1
          password: ~
          hold-time:
          node-selectors: null
        bgp-communities:
        address-pools:
        - name: p
          protocol: layer2
          addresses: [192.0.2.0/24]
          auto-assign: null
          bgp-advertisements: ~
        bfd-profiles:
        """
    )
    assert config.peers[0].password == ""
    assert config.peers[0].hold_time == 90
    assert config.pools[0].auto_assign is True


# --- strictness -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "first_line"),
    [
        ("peers: []\npeers: []\n", "peers", 1),
        (peer("my-asn: 1"), "peers[0].my-asn", 2),
        (pool("[192.0.2.0/24]", extra="name: q"), "address-pools[0].name", 2),
        ("bgp-communities:\n  a: 1:1\n  a: 1:2\n", "bgp-communities.a", 2),
        (
            peer("node-selectors:\n- match-labels:\n    rack: a\n    rack: b"),
            "peers[0].node-selectors[0].match-labels.rack",
            7,
        ),
        (
            pool("[198.51.100.0/24]", "bgp", "bgp-advertisements:\n- localpref: 1\n  localpref: 2"),
            "address-pools[0].bgp-advertisements[0].localpref",
            6,
        ),
    ],
)
def test_duplicate_keys_rejected(text: str, path: str, first_line: int) -> None:
    problem = one(text)
    assert problem.path == path
    assert f"appears more than once in this mapping (first on line {first_line})" in problem.reason
    assert problem.line is not None and problem.line > first_line


def test_merge_keys_and_anchors_are_yaml_not_duplicates() -> None:
    config = parse(
        """\
        peers:
        - &base
          my-asn: 64500
          peer-asn: 64501
          peer-address: 192.0.2.1
        - <<: *base
          peer-address: 192.0.2.2
        - {<<: [*base], hold-time: 30s, peer-address: 192.0.2.3}
        address-pools:
        - name: p
          protocol: layer2
          addresses: &addrs [192.0.2.0/28]
        """
    )
    assert [str(p.address) for p in config.peers] == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    assert {p.my_asn for p in config.peers} == {64500}
    assert config.peers[2].hold_time == 30


def test_explicit_keys_win_over_merged_ones_wherever_the_merge_key_is() -> None:
    config = parse(
        """\
        peers:
        - &base {my-asn: 64500, peer-asn: 64501, peer-address: 192.0.2.1, hold-time: 10s}
        - {hold-time: 30s, <<: *base, peer-address: 192.0.2.2}
        """
    )
    assert [p.hold_time for p in config.peers] == [10, 30]


def test_bad_merge_value_is_reported() -> None:
    problem = one("peers:\n- <<: 5\n  my-asn: 1\n  peer-asn: 2\n  peer-address: 192.0.2.1\n")
    assert "merge key" in problem.reason


def test_non_string_keys_rejected() -> None:
    problem = one("? [a, b]\n: 1\n")
    assert "keys must be strings" in problem.reason


@pytest.mark.parametrize(
    "text", ["", "   \n", "# only a comment\n", "---\n", "---\n...\n", "~\n", "null\n"]
)
def test_empty_documents_are_the_empty_config(text: str) -> None:
    assert parse_config(text) == Config()


@pytest.mark.parametrize(
    ("text", "what"),
    [("[1, 2]\n", "a list"), ("hello\n", "a string"), ("42\n", "an integer"), ("'x'\n", "quoted")],
)
def test_top_level_must_be_a_mapping(text: str, what: str) -> None:
    problem = one(text)
    assert problem.path == ""
    assert "must be a YAML mapping" in problem.reason and what in problem.reason


@pytest.mark.parametrize(
    ("text", "line"),
    [("peers: [\n", 2), ("a: b\n c: d\n", 2), ("peers:\n\t- x\n", 2), ("a: *nope\n", 1)],
)
def test_yaml_syntax_errors_are_one_problem_with_a_line(text: str, line: int) -> None:
    problem = one(text)
    assert problem.reason.startswith("could not parse config: ")
    assert problem.line == line


def test_several_documents_rejected() -> None:
    problem = one("peers: []\n---\naddress-pools: []\n")
    assert "expected one YAML document, found 2" in problem.reason
    assert problem.line == 3


# --- bounded work -------------------------------------------------------------------------


def test_size_limit_is_a_configmap_limit() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("#" * (MAX_CONFIG_BYTES + 1))
    assert "at most 1 MiB" in info.value.problems[0].reason
    # Multi-byte characters count as bytes, like the API server counts them.
    with pytest.raises(ConfigError):
        parse_config("#" + "é" * (MAX_CONFIG_BYTES // 2 + 1))
    assert parse_config("#" * (MAX_CONFIG_BYTES - 1)) == Config()


def test_unencodable_text_rejected() -> None:
    problem = one("peers: []\n# \ud800\n")
    assert "not valid Unicode" in problem.reason


def test_billion_laughs_refused() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    lines += [
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]" for i in range(8)
    ]
    lines.append("address-pools: [{name: p, protocol: layer2, addresses: [192.0.2.0/24]}]")
    lines.append("peers: *i")
    found = problems("\n".join(lines) + "\n")
    assert len(found) < MAX_PROBLEMS + 2


def test_alias_fan_out_is_budgeted() -> None:
    pools = "".join(f"- {{name: p{i}, protocol: layer2, addresses: *a}}\n" for i in range(5000))
    text = "x: &a [" + ", ".join(["192.0.2.0/32"] * 100) + "]\naddress-pools:\n" + pools
    found = problems(text)
    assert any("expands to more than" in p.reason for p in found)


def test_alias_count_is_capped() -> None:
    text = "peers: &p []\nx: [" + ", ".join(["*p"] * (MAX_ALIASES + 1)) + "]\n"
    problem = one(text)
    assert f"more than {MAX_ALIASES} aliases" in problem.reason


def test_manifest_size_limit() -> None:
    with pytest.raises(ConfigError, match="at most 1 MiB"):
        read_config_document("kind: ConfigMap\n#" + "x" * MAX_MANIFEST_BYTES)
    # a manifest may be larger than the config it carries
    padding = "#" + "x" * (MAX_CONFIG_BYTES + 10) + "\n"
    doc = read_config_document(padding + "kind: ConfigMap\ndata: {config: 'peers: []'}\n")
    assert doc.text == "peers: []"


def test_deep_nesting_refused() -> None:
    problem = one("peers: " + "[" * 5000 + "]" * 5000 + "\n")
    assert f"nesting deeper than {MAX_DEPTH} levels" in problem.reason


def test_problem_list_is_capped() -> None:
    addresses = ", ".join(f"bad{i}" for i in range(2 * MAX_PROBLEMS))
    found = problems(pool(f"[{addresses}]"))
    assert len(found) == MAX_PROBLEMS + 1
    assert found[-1].reason == f"stopped after {MAX_PROBLEMS} problems"


# --- line numbers count newlines only -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "line"),
    [
        # YAML breaks lines at NEL, LS and PS too; a problem still points at the `\n` line.
        ("peers: []\x85\nbad-key: 1\n", "bad-key", 2),
        ("peers: []\u2028\u2029\nbad-key: 1\n", "bad-key", 2),
        ("peers: []\r\nbad-key: 1\r\n", "bad-key", 2),
        ("peers: []\nbad-key: 1\n", "bad-key", 2),
        # A syntax error (found by hypothesis: YAML's own count said line 3 of a 1-line text).
        ('"\x85\x85', "", 1),
    ],
)
def test_problem_lines_count_newlines_only(text: str, path: str, line: int) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    (problem,) = info.value.problems
    assert (problem.path, problem.line) == (path, line)


@pytest.mark.parametrize("text", ["a: 1\n\x1f", "éé: 1\n\x1f", "éé: 1\n\x1f\x85"])
def test_unacceptable_character_names_its_line(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    (problem,) = info.value.problems
    assert problem.line == 2
    assert "unacceptable character #x001f" in problem.reason
    assert "position" not in problem.reason

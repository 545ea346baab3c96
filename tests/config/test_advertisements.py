"""`bgp-communities` and `bgp-advertisements[]` (docs/config.md)."""

from __future__ import annotations

import pytest

from metallb_py.config import BgpAdvertisement, Community

from .util import one, parse, pool, problems


def ads(addresses: str, block: str, bgp_type: str = "native") -> tuple[BgpAdvertisement, ...]:
    return parse(pool(addresses, "bgp", block), bgp_type).pools[0].bgp_advertisements


@pytest.mark.parametrize(
    "block",
    [
        "",
        "bgp-advertisements: []",
        "bgp-advertisements: ~",
        "bgp-advertisements:\n-",
        "bgp-advertisements: [{}]",
    ],
)
def test_default_advertisement(block: str) -> None:
    assert ads("[198.51.100.0/24]", block) == (BgpAdvertisement(32, 128, 0, ()),)


def test_all_fields() -> None:
    (ad,) = ads(
        "[198.51.100.0/24, 2001:db8::/64]",
        "bgp-advertisements:\n- {aggregation-length: 24, aggregation-length-v6: 64, localpref: 4294967295,"
        " communities: ['65535:65281', 64512:1]}",
        "frr",
    )
    assert (ad.aggregation_length, ad.aggregation_length_v6, ad.localpref) == (24, 64, 4294967295)
    assert ad.communities == (Community((64512 << 16) + 1), Community((65535 << 16) + 65281))
    assert ad.community_strings == ("65535:65281", "64512:1")
    assert [str(c) for c in ad.communities] == ["64512:1", "65535:65281"]


@pytest.mark.parametrize(
    ("addresses", "block", "ok"),
    [
        ("[198.51.100.0/24]", "aggregation-length: 24", True),
        ("[198.51.100.0/24]", "aggregation-length: 32", True),
        ("[198.51.100.0/24]", "aggregation-length: 23", False),
        ("[198.51.100.0/28]", "aggregation-length: 26", False),
        ("['3.3.3.2-3.3.3.254']", "aggregation-length: 26", True),  # largest block is a /26
        ("['3.3.3.2-3.3.3.254']", "aggregation-length: 25", False),
        ("['203.0.113.10-203.0.113.20']", "aggregation-length: 30", True),
        ("['203.0.113.10-203.0.113.20']", "aggregation-length: 24", False),
        ("['203.0.113.10-203.0.113.20', 198.51.100.0/24]", "aggregation-length: 29", False),
        ("[198.51.100.0/24]", "aggregation-length: 33", False),
        ("[198.51.100.0/24]", "aggregation-length: -1", False),
        ("[2001:db8::/64]", "aggregation-length-v6: 64", True),
        ("[2001:db8::/120]", "aggregation-length-v6: 64", False),
        ("[2001:db8::/64]", "aggregation-length-v6: 129", False),
        ("[2001:db8::/64]", "aggregation-length-v6: -1", False),
        # a length only matters for the families present (upstream accepts these):
        ("[2001:db8::/64]", "aggregation-length: -5", True),
        ("[198.51.100.0/24]", "aggregation-length-v6: 8", True),
        ("[198.51.100.0/24]", "aggregation-length-v6: -8", True),
    ],
)
def test_aggregation_length_against_address_blocks(addresses: str, block: str, ok: bool) -> None:
    text = pool(addresses, "bgp", f"bgp-advertisements:\n- {block}")
    key = block.split(":", maxsplit=1)[0]
    if ok:
        (ad,) = parse(text, "frr").pools[0].bgp_advertisements
        assert getattr(ad, key.replace("-", "_")) == int(block.split(":")[1])
        return
    problem = one(text, "frr")
    assert problem.path == f"address-pools[0].bgp-advertisements[0].{key}"
    assert problem.reason.startswith(f"invalid {key} ")
    assert problem.line == 6


def test_small_range_refuses_24_with_a_clear_reason() -> None:
    problem = one(
        pool(
            "['203.0.113.10-203.0.113.20']", "bgp", "bgp-advertisements:\n- aggregation-length: 24"
        )
    )
    assert (
        "address '203.0.113.10-203.0.113.20' (addresses[0]) is at most a /30 block"
        in problem.reason
    )


def test_wider_than_several_entries_names_the_most_specific_one() -> None:
    text = pool(
        "[198.51.100.0/25, 198.51.100.128/28, 203.0.113.0/26]",
        "bgp",
        "bgp-advertisements:\n- aggregation-length: 24",
    )
    problem = one(text)
    assert "addresses[1]" in problem.reason and "(and 2 more address entries)" in problem.reason


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("-1", "does not fit"),
        ("4294967296", "does not fit"),
        ("'100'", "remove the quotes"),
        ("high", "got a string"),
    ],
)
def test_localpref_is_uint32(value: str, reason: str) -> None:
    problem = one(pool("[198.51.100.0/24]", "bgp", f"bgp-advertisements:\n- localpref: {value}"))
    assert problem.path == "address-pools[0].bgp-advertisements[0].localpref"
    assert reason in problem.reason


@pytest.mark.parametrize(
    ("first", "second", "duplicate"),
    [
        ("{}", "{}", True),
        ("", "", True),  # two empty items
        ("{localpref: 1}", "{localpref: 1}", True),
        ("{communities: ['1:1', '1:2']}", "{communities: ['1:1', '1:2']}", True),
        ("{communities: ['1:1', '1:2']}", "{communities: ['1:2', '1:1']}", False),
        ("{}", "{aggregation-length: 32}", False),  # as written, not as parsed (upstream)
        ("{}", "{communities: []}", False),
        ("{localpref: 0}", "{}", False),
    ],
)
def test_duplicate_advertisements(first: str, second: str, duplicate: bool) -> None:
    text = pool("[198.51.100.0/24]", "bgp", f"bgp-advertisements:\n- {first}\n- {second}")
    if not duplicate:
        assert len(parse(text).pools[0].bgp_advertisements) == 2
        return
    problem = one(text)
    assert problem.path == "address-pools[0].bgp-advertisements[1]"
    assert "duplicate definition of bgp-advertisements: identical to bgp-advertisements[0]" in (
        problem.reason
    )


def test_communities_alias_and_literal() -> None:
    config = parse(
        """\
        bgp-communities:
          no-advertise: 65535:65282
          mine: "64512:100"
        address-pools:
        - name: p
          protocol: bgp
          addresses: [198.51.100.0/24]
          bgp-advertisements:
          - communities: [no-advertise, 65535:65282, mine]
        """
    )
    assert dict(config.bgp_communities) == {
        "no-advertise": Community(0xFFFFFF02),
        "mine": Community((64512 << 16) + 100),
    }
    (ad,) = config.pools[0].bgp_advertisements
    # alias and literal of the same value are not duplicates; they collapse into one
    assert ad.communities == (Community((64512 << 16) + 100), Community(0xFFFFFF02))
    assert ad.community_strings == ("no-advertise", "65535:65282", "mine")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1:2:3", "expected two numbers separated by one colon"),
        ("65536:1", "first part 65536 is larger than 65535"),
        ("1:65536", "second part 65536 is larger than 65535"),
        ("70000:70000", "first part 70000 is larger than 65535 and second part 70000"),
        ("-1:1", "expected two numbers"),
        ("'+1:1'", "expected two numbers"),
        ("no-export", "expected two numbers"),
        ("5", "expected two numbers"),
        ("''", "expected two numbers"),
    ],
)
def test_invalid_alias_values(value: str, reason: str) -> None:
    problem = one(f"bgp-communities:\n  unused: {value}\n")
    assert problem.path == "bgp-communities.unused"  # validated even though unused
    assert "invalid community for alias 'unused'" in problem.reason
    assert reason in problem.reason
    assert problem.line == 2


def test_odd_alias_names_are_quoted_in_paths() -> None:
    problem = one("bgp-communities:\n  'my alias': x\n")
    assert problem.path == 'bgp-communities["my alias"]'


@pytest.mark.parametrize(
    ("communities", "path", "reason"),
    [
        (
            "[unknown]",
            "communities[0]",
            "invalid community 'unknown' in BGP advertisement: not an alias",
        ),
        ("['65536:1']", "communities[0]", "first part 65536 is larger than 65535"),
        ("[1:1, '1:1']", "communities[1]", "duplicate definition of community '1:1'"),
        ("[a, a]", "communities[1]", "duplicate definition of community 'a'"),
        ("'1:1'", "communities", "expected a list"),
    ],
)
def test_invalid_advertisement_communities(communities: str, path: str, reason: str) -> None:
    text = "bgp-communities: {a: '1:1'}\n" + pool(
        "[198.51.100.0/24]", "bgp", f"bgp-advertisements:\n- communities: {communities}"
    )
    problem = one(text)
    assert problem.path == f"address-pools[0].bgp-advertisements[0].{path}"
    assert reason in problem.reason


def test_a_broken_alias_is_reported_once_not_at_every_use() -> None:
    text = "bgp-communities: {bad: '1:99999'}\n" + pool(
        "[198.51.100.0/24]", "bgp", "bgp-advertisements:\n- communities: [bad]"
    )
    assert [p.path for p in problems(text)] == ["bgp-communities.bad"]


def test_every_advertisement_problem_is_reported() -> None:
    text = pool(
        "['203.0.113.10-203.0.113.20']",
        "bgp",
        """\
        bgp-advertisements:
        - {aggregation-length: 24, communities: [x, '1:1', '1:1']}
        - {aggregation-length: 33, localpref: -5}
        - {aggregation-length: 33, localpref: -5}
        """,
    )
    found = problems(text)
    assert sorted(p.path for p in found) == sorted(
        [
            "address-pools[0].bgp-advertisements[1].localpref",
            "address-pools[0].bgp-advertisements[2].localpref",
            "address-pools[0].bgp-advertisements[0].aggregation-length",
            "address-pools[0].bgp-advertisements[0].communities[0]",
            "address-pools[0].bgp-advertisements[0].communities[2]",
            "address-pools[0].bgp-advertisements[1].aggregation-length",
            "address-pools[0].bgp-advertisements[2].aggregation-length",
        ]
    )

"""The rules of the BGP implementation (native or FRR), and upstream's example config."""

from __future__ import annotations

from pathlib import Path

import pytest

from metallb_py.config import check_peers

from .util import one, parse, peer, pool, problems

EXAMPLE = (Path(__file__).parent / "spec_1_12_example.yaml").read_text()


def test_spec_example_is_valid_in_frr_mode() -> None:
    config = parse(EXAMPLE, "frr")
    (p,) = config.peers
    assert (p.hold_time, p.keepalive_time, p.bfd_profile, p.ebgp_multihop) == (
        120,
        30,
        "fast",
        True,
    )
    public, lan = config.pools
    assert [a.aggregation_length for a in public.bgp_advertisements] == [32, 24]
    assert len(lan.cidrs) == 6
    assert config.bfd_profiles[0].name == "fast"


def test_spec_example_is_rejected_in_native_mode_for_keepalive_time_only() -> None:
    """v0.12's native mode also refused `bfd-profile` and `bfd-profiles`; the native speaker
    runs BFD now (docs/bgp.md, "BFD"), so only keepalive-time remains."""
    found = problems(EXAMPLE, "native")
    assert [(p.path, p.line) for p in found] == [("peers[0].keepalive-time", 7)]
    assert all("FRR BGP implementation" in p.reason for p in found)
    without = EXAMPLE.replace("  keepalive-time: 30s        # FRR only\n", "")
    assert without != EXAMPLE
    config = parse(without, "native")
    assert config.peers[0].bfd_profile == "fast"
    assert config.bfd_profiles[0].receive_interval == 100


def test_native_refuses_echo_mode_naming_the_field() -> None:
    text = "bfd-profiles:\n- {name: a}\n- {name: e, echo-mode: true}\n"
    problem = one(text, "native")
    assert (problem.path, problem.line) == ("bfd-profiles[1].echo-mode", 3)
    assert "echo-mode is not supported by the native speaker's BFD" in problem.reason
    assert parse(text, "frr").bfd_profiles[1].echo_mode is True
    assert parse(text.replace("true", "false"), "native").bfd_profiles[1].echo_mode is False


IPV6_POOLS = ["[2001:db8::/64]", "['2001:db8::1-2001:db8::9']", "[198.51.100.0/24, 2001:db8::/64]"]


@pytest.mark.parametrize("addresses", IPV6_POOLS)
def test_native_accepts_ipv6_and_dual_stack_bgp_pools(addresses: str) -> None:
    """The native speaker announces IPv6 (MP_REACH_NLRI), so native mode no longer refuses
    IPv6 in bgp pools (a documented difference from v0.12's rule)."""
    (native,) = parse(pool(addresses, "bgp"), "native").pools
    assert any(c.version == 6 for c in native.cidrs)
    assert parse(pool(addresses, "bgp"), "frr").pools == (native,)
    assert parse(pool(addresses, "layer2"), "native").pools


@pytest.mark.parametrize("addresses", IPV6_POOLS)
def test_native_ipv6_rule_is_one_switch(monkeypatch: pytest.MonkeyPatch, addresses: str) -> None:
    """With the switch off, v0.12's rule comes back: the IPv6 entry is named, FRR mode and
    layer2 pools are unaffected."""
    monkeypatch.setattr(check_peers, "NATIVE_BGP_SUPPORTS_IPV6", False)
    problem = one(pool(addresses, "bgp"), "native")
    assert problem.path.startswith("address-pools[0].addresses[")
    assert "native BGP speaker does not support IPv6" in problem.reason
    assert parse(pool(addresses, "bgp"), "frr").pools
    assert parse(pool(addresses, "layer2"), "native").pools


def test_native_accepts_profiles_and_rejects_keepalive_time() -> None:
    assert parse("bfd-profiles:\n- name: x\n", "native").bfd_profiles[0].name == "x"
    assert parse("bfd-profiles: []\n", "native").bfd_profiles == ()
    assert parse(peer("keepalive-time: ''"), "native").peers[0].keepalive_time is None


FRR_PEERS = """\
peers:
- {my-asn: 64500, peer-asn: 64501, peer-address: 192.0.2.1, router-id: 192.0.2.10}
- {my-asn: 64500, peer-asn: 64502, peer-address: 192.0.2.2, router-id: 192.0.2.10}
"""


@pytest.mark.parametrize(
    ("old", "new", "path", "reason"),
    [
        (
            "router-id: 192.0.2.10}\n",
            "router-id: 192.0.2.11}\n",
            "peers[1].router-id",
            "router-id 192.0.2.11 differs from peers[0]'s 192.0.2.10",
        ),
        (", router-id: 192.0.2.10}\n", "}\n", "peers[1].router-id", "(unset) differs"),
        (
            "my-asn: 64500, peer-asn: 64502",
            "my-asn: 64510, peer-asn: 64502",
            "peers[1].my-asn",
            "my-asn 64510 differs from peers[0]'s 64500",
        ),
        (
            "192.0.2.2,",
            "192.0.2.1,",
            "peers[1].peer-address",
            "peer-address 192.0.2.1 is already used by peers[0]",
        ),
    ],
)
def test_frr_mode_peer_consistency(old: str, new: str, path: str, reason: str) -> None:
    assert len(parse(FRR_PEERS, "frr").peers) == 2
    index = FRR_PEERS.rindex(old)
    text = FRR_PEERS[:index] + new + FRR_PEERS[index + len(old) :]
    problem = one(text, "frr")
    assert problem.path == path
    assert reason in problem.reason
    # the native speaker has none of these rules
    assert len(parse(text, "native").peers) == 2


def test_frr_mode_rules_need_more_than_one_peer() -> None:
    assert parse(peer("router-id: 192.0.2.99"), "frr").peers


def test_frr_mode_reports_every_inconsistent_peer() -> None:
    text = FRR_PEERS + "- {my-asn: 1, peer-asn: 2, peer-address: 192.0.2.1}\n"
    found = problems(text, "frr")
    assert [p.path for p in found] == [
        "peers[2].router-id",
        "peers[2].my-asn",
        "peers[2].peer-address",
    ]

"""Strict keys (docs/config.md): unknown keys are errors that say what was meant."""

from __future__ import annotations

import pytest

from metallb_py.config.yamlnodes import format_path

from .util import one, parse, peer, pool, problems


@pytest.mark.parametrize(
    ("text", "path", "hint"),
    [
        ("adress-pools: []\n", "adress-pools", "did you mean 'address-pools'?"),
        (
            "address_pools: []\n",
            "address_pools",
            "keys are written in lower-case kebab-case: use 'address-pools'",
        ),
        ("addressPools: []\n", "addressPools", "kebab-case: use 'address-pools'"),
        ("Peers: []\n", "Peers", "kebab-case: use 'peers'"),
        ("bgp_communities: {}\n", "bgp_communities", "use 'bgp-communities'"),
        ("pools: []\n", "pools", "did you mean 'address-pools'?"),
        ("communities: {}\n", "communities", "did you mean 'bgp-communities'?"),
        ("zzz: 1\n", "zzz", "valid keys here: peers, bgp-communities, address-pools, bfd-profiles"),
        (peer("bfdProfile: fast"), "peers[0].bfdProfile", "use 'bfd-profile'"),
        (peer("holdtime: 90s"), "peers[0].holdtime", "did you mean 'hold-time'?"),
        (peer("peer-adress: 192.0.2.2"), "peers[0].peer-adress", "did you mean 'peer-address'?"),
        (
            pool("[192.0.2.0/24]", extra="autoAssign: false"),
            "address-pools[0].autoAssign",
            "use 'auto-assign'",
        ),
        (
            pool("[192.0.2.0/24]", "bgp", "bgp-advertisements:\n- localPref: 100"),
            "address-pools[0].bgp-advertisements[0].localPref",
            "use 'localpref'",
        ),
        (
            pool("[192.0.2.0/24]", "bgp", "bgp-advertisements:\n- local-pref: 100"),
            "address-pools[0].bgp-advertisements[0].local-pref",
            "did you mean 'localpref'?",
        ),
        (
            "bfd-profiles:\n- {name: x, echo_mode: true}\n",
            "bfd-profiles[0].echo_mode",
            "use 'echo-mode'",
        ),
    ],
)
def test_unknown_keys_are_errors_with_a_suggestion(text: str, path: str, hint: str) -> None:
    problem = one(text, "frr")
    assert problem.path == path
    assert problem.reason.startswith(f"unknown key {path.rsplit('.', 1)[-1]!r} in ")
    assert hint in problem.reason
    assert problem.value == path.rsplit(".", 1)[-1]


def test_a_misspelled_required_key_is_not_also_reported_missing() -> None:
    found = problems("peers:\n- {my_asn: 1, peer_asn: 2, peer_address: 192.0.2.1}\n")
    assert [p.path for p in found] == [
        "peers[0].my_asn",
        "peers[0].peer_asn",
        "peers[0].peer_address",
    ]


def test_a_wrapped_config_gets_told_to_unwrap() -> None:
    problem = one("configInline:\n  address-pools:\n  - name: x\n")
    assert "it contains address-pools: the MetalLB config must start at the top level" in (
        problem.reason
    )


@pytest.mark.parametrize(
    ("kind", "hint"),
    [("ConfigMap", "give the manifest to `metallb-py config check`"), ("IPAddressPool", "v0.13+")],
)
def test_a_manifest_is_not_a_config(kind: str, hint: str) -> None:
    problem = one(f"apiVersion: v1\nkind: {kind}\nmetadata: {{name: config}}\n")
    assert problem.path == "kind" and problem.line == 2
    assert hint in problem.reason


def test_upstream_example_key_bfdprofile_is_refused_with_the_right_key() -> None:
    """Upstream's example-config.yaml uses `bfdProfile`, which strict parsing refuses."""
    problem = one(peer("bfdProfile: full1"), "frr")
    assert "use 'bfd-profile'" in problem.reason


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ((), ""),
        (("peers", 0, "hold-time"), "peers[0].hold-time"),
        (("address-pools", 1, "addresses", 0), "address-pools[1].addresses[0]"),
        (
            ("peers", 0, "node-selectors", 0, "match-labels", "kubernetes.io/os"),
            'peers[0].node-selectors[0].match-labels["kubernetes.io/os"]',
        ),
        (("bgp-communities", "a b"), 'bgp-communities["a b"]'),
        (("bgp-communities", ""), 'bgp-communities[""]'),
    ],
)
def test_path_format(path: tuple[str | int, ...], text: str) -> None:
    assert format_path(path) == text


def test_keys_are_matched_exactly_even_when_quoted() -> None:
    assert parse('"peers":\n- {"my-asn": 1, peer-asn: 2, peer-address: 192.0.2.1}\n').peers

"""Configs found in the wild (/work/shared/seeds), kept as fixtures in tests/config/seeds/.

MetalLB v0.12 configs must parse; configs written for other packagings (Kontena's add-on,
underscore keys) or for MetalLB v0.13 custom resources must fail with a message that says so.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from metallb_py.config import ConfigError, parse_config, read_config_document

SEEDS = Path(__file__).parent / "seeds"
SHARED_SEEDS = Path("/work/shared/seeds")


def load(name: str) -> str:
    return (SEEDS / name).read_text()


@pytest.mark.parametrize(
    ("name", "pools", "peers", "addresses"),
    [
        ("konvoy_layer2.yaml", ["default"], 0, 26),
        ("konvoy_bgp.yaml", ["my-ip-space"], 1, 256),
        ("blog_configmap.yaml", ["default"], 1, 256),
    ],
)
def test_metallb_configs_parse(name: str, pools: list[str], peers: int, addresses: int) -> None:
    config = parse_config(read_config_document(load(name)).text)
    assert [p.name for p in config.pools] == pools
    assert len(config.peers) == peers
    assert sum(c.num_addresses for p in config.pools for c in p.cidrs) == addresses


def test_konvoy_bgp_peer_is_ibgp() -> None:
    (peer,) = parse_config(load("konvoy_bgp.yaml")).peers
    assert peer.is_ibgp and str(peer.address) == "172.17.0.4"


@pytest.mark.parametrize("name", ["kontena_addon_bgp.yaml", "kontena_addon_layer2.yaml"])
def test_kontena_addon_block_is_refused_as_a_wrapper(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(load(name))
    (problem,) = info.value.problems
    assert problem.path == "kontena-network-lb"
    assert "it contains address_pools" in problem.reason
    assert "must start at the top level" in problem.reason
    assert (
        "keys are written in lower-case kebab-case there: 'address_pools' is 'address-pools'"
        in (problem.reason)
    )


def _unwrapped(name: str) -> str:
    """The add-on block without its wrapper and Kontena-only keys, as pasted into a ConfigMap."""
    lines = load(name).splitlines()[3:]
    body = "\n".join(line[2:] for line in lines)
    keep = body.split("address_pools:", 1)[1]
    return "address_pools:" + keep + "\n"


@pytest.mark.parametrize(
    ("name", "paths"),
    [
        (
            "kontena_addon_bgp.yaml",
            [
                "peers[0].peer_address",
                "peers[0].peer_asn",
                "peers[0].my_asn",
                "peers[0].node_selectors",
                "peers[1].peer_address",
                "peers[1].peer_asn",
                "peers[1].my_asn",
                "peers[1].node_selectors",
                "address_pools",
            ],
        ),
        ("kontena_addon_layer2.yaml", ["address_pools"]),
    ],
)
def test_kontena_underscore_keys_get_the_kebab_case_hint(name: str, paths: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_unwrapped(name))
    found = info.value.problems
    assert [p.path for p in found] == paths
    for problem in found:
        kebab = problem.path.rsplit(".", 1)[-1].replace("_", "-")
        assert f"keys are written in lower-case kebab-case: use {kebab!r}" in problem.reason


@pytest.mark.parametrize("name", ["v013_bgp_crds.yaml", "v013_layer2_crds.yaml"])
def test_v013_custom_resources_are_refused_with_the_reason(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        read_config_document(load(name))
    assert "MetalLB v0.13+" in info.value.problems[0].reason


@pytest.mark.skipif(not SHARED_SEEDS.is_dir(), reason="the shared seed documents are not here")
@pytest.mark.parametrize("fixture", sorted(p.name for p in SEEDS.glob("*.yaml")))
def test_fixtures_are_faithful_to_their_seed(fixture: str) -> None:
    """Every line of a fixture (indentation aside) appears in the seed it names."""
    text = load(fixture)
    seed_name = text.split("seed ", 1)[1].split(":", 1)[0]
    seed_lines = {line.strip() for line in (SHARED_SEEDS / seed_name).read_text().splitlines()}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#") and line.strip() != "---":
            assert line.strip() in seed_lines, line

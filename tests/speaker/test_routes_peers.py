"""BGP routes (aggregation, dedup, deterministic winner), peer selection, config acceptance,
and the live-node fallback without membership."""

from __future__ import annotations

import ipaddress
import itertools
from typing import Any

from metallb_py.bgp import messages
from metallb_py.config import BgpType, Community, Protocol, parse_config
from metallb_py.k8s.objects import labels_of, node_ready
from metallb_py.speaker.decision import (
    AdvertisedRoute,
    Announcement,
    ConfigBlocker,
    config_blockers,
    merge_routes,
    plan_sessions,
    selected_peers,
    service_routes,
    speaker_routes,
)
from metallb_py.speaker.nodes import fallback_live_nodes

ROUTES_CONFIG = parse_config(
    """
bgp-communities:
  noexp: 65535:65281
address-pools:
- name: agg
  protocol: bgp
  addresses: [198.51.100.0/24, 2001:db8:1::/64]
  bgp-advertisements:
  - aggregation-length: 24
    aggregation-length-v6: 64
    localpref: 100
    communities: [noexp, 64512:2]
  - {}
- name: plain
  protocol: bgp
  addresses: [203.0.113.0/25]
- name: l2
  protocol: layer2
  addresses: [192.0.2.0/24]
""",
    BgpType.FRR,
)


def net(text: str) -> Any:
    return ipaddress.ip_network(text)


def ip(text: str) -> Any:
    return ipaddress.ip_address(text)


def c(text: str) -> Community:
    high, low = text.split(":")
    return Community((int(high) << 16) + int(low))


def test_routes_per_ip_and_advertisement():
    pool = ROUTES_CONFIG.pool("agg")
    assert pool is not None
    routes = service_routes([ip("198.51.100.7"), ip("2001:db8:1::7")], pool)
    assert routes == (
        AdvertisedRoute(net("198.51.100.0/24"), 100, (c("64512:2"), c("65535:65281"))),
        AdvertisedRoute(net("198.51.100.7/32"), 0, ()),
        AdvertisedRoute(net("2001:db8:1::/64"), 100, (c("64512:2"), c("65535:65281"))),
        AdvertisedRoute(net("2001:db8:1::7/128"), 0, ()),
    )


def test_union_deduplicates_aggregates():
    announced = {
        "default/a": Announcement(Protocol.BGP, (ip("198.51.100.7"),), "agg"),
        "default/b": Announcement(Protocol.BGP, (ip("198.51.100.9"),), "agg"),
        "default/c": Announcement(Protocol.BGP, (ip("203.0.113.5"),), "plain"),
        # Layer2 records and records of vanished pools contribute nothing.
        "default/d": Announcement(Protocol.LAYER2, (ip("192.0.2.5"),), "l2"),
        "default/e": Announcement(Protocol.BGP, (ip("198.51.100.50"),), "gone"),
    }
    assert speaker_routes(ROUTES_CONFIG, announced) == (
        AdvertisedRoute(net("198.51.100.0/24"), 100, (c("64512:2"), c("65535:65281"))),
        AdvertisedRoute(net("198.51.100.7/32")),
        AdvertisedRoute(net("198.51.100.9/32")),
        AdvertisedRoute(net("203.0.113.5/32")),
    )


def test_colliding_prefix_winner_is_deterministic():
    prefix = net("198.51.100.0/24")
    candidates = [
        AdvertisedRoute(prefix, 100, (c("64512:1"),)),
        AdvertisedRoute(prefix, 200, ()),
        AdvertisedRoute(prefix, 200, (c("64512:1"),)),
        AdvertisedRoute(prefix, 200, (c("64512:1"), c("64512:2"))),
        AdvertisedRoute(prefix, 50, (c("65535:65281"),)),
    ]
    expected = AdvertisedRoute(prefix, 200, (c("64512:1"), c("64512:2")))
    for order in itertools.permutations(candidates):
        assert merge_routes(order) == (expected,)


def test_merge_sorts_v4_before_v6_and_by_address():
    routes = [
        AdvertisedRoute(net("2001:db8::/64")),
        AdvertisedRoute(net("203.0.113.0/24")),
        AdvertisedRoute(net("198.51.100.128/25")),
        AdvertisedRoute(net("198.51.100.0/24")),
    ]
    assert [str(r.prefix) for r in merge_routes(routes)] == [
        "198.51.100.0/24",
        "198.51.100.128/25",
        "203.0.113.0/24",
        "2001:db8::/64",
    ]


def test_routes_convert_to_the_bgp_route_type():
    route = AdvertisedRoute(net("198.51.100.0/24"), 100, (c("64512:2"), c("65535:65281")))
    converted = messages.Route(route.prefix, route.localpref, route.communities)
    assert converted.prefix == route.prefix and converted.communities == route.communities


# --- peers ----------------------------------------------------------------------------------

PEERS_CONFIG = parse_config(
    """
peers:
- peer-address: 192.0.2.1
  peer-asn: 64500
  my-asn: 64512
- peer-address: 192.0.2.2
  peer-asn: 64500
  my-asn: 64512
  node-selectors:
  - match-labels: {rack: a}
- peer-address: 192.0.2.3
  peer-asn: 64500
  my-asn: 64512
  node-selectors:
  - match-expressions:
    - {key: rack, operator: NotIn, values: [b]}
- peer-address: 192.0.2.4
  peer-asn: 64500
  my-asn: 64512
  node-selectors:
  - match-expressions:
    - {key: spot, operator: DoesNotExist}
  - match-labels: {rack: b}
"""
)


def addrs(peers) -> list[str]:
    return [str(p.address) for p in peers]


def test_selection_before_the_node_is_seen():
    # Empty labels: "all", NotIn and DoesNotExist match; equality does not.
    assert addrs(selected_peers(PEERS_CONFIG, None)) == ["192.0.2.1", "192.0.2.3", "192.0.2.4"]
    assert selected_peers(None, {"rack": "a"}) == ()


def test_selection_after_labels_arrive():
    assert addrs(selected_peers(PEERS_CONFIG, {"rack": "a"})) == [
        "192.0.2.1",
        "192.0.2.2",
        "192.0.2.3",
        "192.0.2.4",
    ]
    assert addrs(selected_peers(PEERS_CONFIG, {"rack": "b", "spot": "1"})) == [
        "192.0.2.1",
        "192.0.2.4",
    ]
    assert addrs(selected_peers(PEERS_CONFIG, {"spot": "1"})) == ["192.0.2.1", "192.0.2.3"]


def test_session_plan_by_full_equality():
    running = selected_peers(PEERS_CONFIG, None)  # .1 .3 .4
    plan = plan_sessions(running, PEERS_CONFIG, {"rack": "b", "spot": "1"})
    assert addrs(plan.keep) == ["192.0.2.1", "192.0.2.4"]
    assert [(str(p.address), why) for p, why in plan.close] == [
        ("192.0.2.3", "filteredByNodeSelector")
    ]
    assert plan.open == () and plan.changed
    # A peer whose hold time changed is a different peer: closed and opened again.
    changed = parse_config(
        """
peers:
- peer-address: 192.0.2.1
  peer-asn: 64500
  my-asn: 64512
  hold-time: 30s
"""
    )
    plan = plan_sessions(running, changed, {})
    assert [(str(p.address), why) for p, why in plan.close] == [
        ("192.0.2.1", "removedFromConfig"),
        ("192.0.2.3", "removedFromConfig"),
        ("192.0.2.4", "removedFromConfig"),
    ]
    assert plan.open == changed.peers and plan.keep == ()
    same = plan_sessions(running, PEERS_CONFIG, {})
    assert not same.changed and same.keep == running


# --- config acceptance ---------------------------------------------------------------------


def test_config_blockers_name_every_offender():
    announced = {
        "ns/b": Announcement(Protocol.BGP, (ip("198.51.100.7"),), "agg"),
        "ns/a": Announcement(Protocol.LAYER2, (ip("192.0.2.0"),), "l2"),
        "ns/c": Announcement(Protocol.BGP, (ip("203.0.113.5"),), "plain"),
        "ns/d": Announcement(Protocol.LAYER2, (ip("192.0.2.9"), ip("2001:db8:1::9")), "l2"),
    }
    assert config_blockers(ROUTES_CONFIG, announced) == (
        # Not in one pool together.
        ConfigBlocker("ns/d", (ip("192.0.2.9"), ip("2001:db8:1::9"))),
    )
    shrunk = parse_config(
        """
address-pools:
- name: l2
  protocol: bgp
  avoid-buggy-ips: true
  addresses: [192.0.2.0/24]
"""
    )
    # The buggy-IP rule does not apply, protocol changes do not block; the rest are orphaned.
    assert [b.service for b in config_blockers(shrunk, announced)] == ["ns/b", "ns/c", "ns/d"]
    assert config_blockers(shrunk, {}) == ()


def _lb(name: str, *ips: str, type_: str = "LoadBalancer") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"type": type_},
        "status": {"loadBalancer": {"ingress": [{"ip": i} for i in ips]}},
    }


def test_config_blockers_also_judge_what_services_hold():
    """Issue 11: every speaker refuses what would orphan an IP a Service holds under the
    current config, not only what it announces itself (a restarted speaker announces
    nothing yet)."""
    shrunk = parse_config(
        "address-pools:\n- {name: l2, protocol: layer2, addresses: [192.0.2.0/24]}\n"
    )
    services = [
        _lb("held", "198.51.100.7"),  # in `agg` now, in no pool of `shrunk`
        _lb("fine", "192.0.2.4"),  # in `l2` of both
        _lb("stranger", "10.9.9.9"),  # outside the current config too: not this config's doing
        _lb("other-type", "198.51.100.8", type_="ClusterIP"),
        _lb("hostname-only"),
        {"metadata": {"name": "no-status", "namespace": "ns"}, "spec": {"type": "LoadBalancer"}},
    ]
    assert config_blockers(shrunk, {}, ROUTES_CONFIG, services) == (
        ConfigBlocker("ns/held", (ip("198.51.100.7"),)),
    )
    # Without a current config there is nothing to compare with.
    assert config_blockers(shrunk, {}, None, services) == ()
    # An announced Service is named once, with the IPs it announces.
    announced = {"ns/held": Announcement(Protocol.BGP, (ip("198.51.100.7"),), "agg")}
    assert config_blockers(shrunk, announced, ROUTES_CONFIG, services) == (
        ConfigBlocker("ns/held", (ip("198.51.100.7"),)),
    )


# --- nodes ----------------------------------------------------------------------------------


def node(name: str, ready: str | None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    conditions = [{"type": "MemoryPressure", "status": "False"}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready})
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "status": {"conditions": conditions},
    }


def pod(node_name: str, phase: str = "Running", deleting: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": f"speaker-{node_name}", "labels": {"app": "metallb"}}
    if deleting:
        metadata["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {"metadata": metadata, "spec": {"nodeName": node_name}, "status": {"phase": phase}}


def test_fallback_live_nodes_are_ready_nodes_with_a_running_speaker():
    nodes = [
        node("a", "True"),
        node("b", "False"),
        node("c", "Unknown"),
        node("d", None),
        node("e", "True"),
        node("f", "True"),
        node("g", "True"),
    ]
    pods = [pod("a"), pod("b"), pod("c"), pod("d"), pod("e", "Pending"), pod("f", deleting=True)]
    assert fallback_live_nodes(nodes, pods) == {"a"}


def test_node_helpers():
    assert labels_of(None) == {}
    assert labels_of(node("a", "True", {"rack": "a"})) == {"rack": "a"}
    assert node_ready(node("a", "True")) is True
    assert node_ready(node("a", "Unknown")) is False
    assert node_ready(node("a", None)) is None

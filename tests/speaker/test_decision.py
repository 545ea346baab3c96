"""The speaker's per-Service decision, layer2 election and BGP rule (docs/behaviour-differences.md,
"Speaker")."""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

import pytest

from metallb_py.config import BgpType, Protocol, parse_config
from metallb_py.speaker.decision import (
    Announce,
    Announcement,
    NodeView,
    Reason,
    Unchanged,
    Withdraw,
    decide,
    election_order,
    event_message,
)
from metallb_py.speaker.endpoints import ServiceEndpoints, from_endpoint_slices, from_endpoints

CONFIG = parse_config(
    """
address-pools:
- name: l2
  protocol: layer2
  addresses: [192.0.2.100-192.0.2.120, 2001:db8::100/120]
- name: bgp
  protocol: bgp
  addresses: [198.51.100.0/24, 2001:db8:1::/64]
""",
    BgpType.FRR,
)
NODES = frozenset({"node-a", "node-b", "node-c", "node-d", "node-e"})


def ip(text: str) -> Any:
    return ipaddress.ip_address(text)


def svc(
    *ips: str, policy: str = "Cluster", type_: str = "LoadBalancer", name: str = "web"
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": type_, "externalTrafficPolicy": policy, "ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": i} for i in ips]}},
    }


def eps(**ready_by_node: str) -> ServiceEndpoints:
    """Ready endpoints: address-suffix=node, e.g. eps(n1="node-a")."""
    result = from_endpoints(
        {
            "subsets": [
                {
                    "addresses": [
                        {"ip": f"203.0.113.{i + 1}", "nodeName": node}
                        for i, node in enumerate(ready_by_node.values())
                    ]
                }
            ]
        }
    )
    assert result is not None
    return result


def expected_owner(candidates: set[str], first_ip: str) -> str:
    """Independent re-statement of the election: smallest SHA-256(node#ip) digest wins."""
    digests = {n: hashlib.sha256((n + "#" + first_ip).encode("utf-8")).digest() for n in candidates}
    return min(digests, key=lambda n: digests[n])


def view(name: str, live: frozenset[str] = NODES, **kw: Any) -> NodeView:
    return NodeView(name=name, live_nodes=live, **kw)


def owners(service: dict, endpoints: ServiceEndpoints, live: frozenset[str] = NODES, **kw: Any):
    """Which nodes decide to announce, every node computing independently."""
    return {
        n
        for n in live
        if isinstance(decide(service, endpoints, CONFIG, view(n, live, **kw), None), Announce)
    }


# --- the steps of decide before the election -----------------------------------------------

CURRENT = Announcement(Protocol.LAYER2, (ip("192.0.2.100"),), "l2")


@pytest.mark.parametrize(
    ("service", "endpoints", "reason"),
    [
        (None, eps(a="node-a"), Reason.SERVICE_DELETED),
        (svc("192.0.2.100"), None, Reason.SERVICE_DELETED),
        (svc("192.0.2.100", type_="ClusterIP"), eps(a="node-a"), Reason.NOT_LOAD_BALANCER),
        (svc("192.0.2.100", type_=""), eps(a="node-a"), Reason.NOT_LOAD_BALANCER),
        (svc(), eps(a="node-a"), Reason.NO_IP_ALLOCATED),
        (svc("nonsense"), eps(a="node-a"), Reason.INVALID_IP),
        (svc("192.0.2.100", "192.0.2.1%eth0"), eps(a="node-a"), Reason.INVALID_IP),
        (svc("192.0.2.99"), eps(a="node-a"), Reason.IP_NOT_ALLOWED),
        # Both IPs must be in one pool.
        (svc("192.0.2.100", "2001:db8:1::5"), eps(a="node-a"), Reason.IP_NOT_ALLOWED),
    ],
)
def test_withdraw_reasons(service, endpoints, reason):
    decision = decide(service, endpoints, CONFIG, view("node-a"), CURRENT)
    assert decision == Withdraw(reason)


def test_hostname_only_ingress_is_invalid():
    service = svc("192.0.2.100")
    service["status"]["loadBalancer"]["ingress"].append({"hostname": "lb.example"})
    assert decide(service, eps(a="node-a"), CONFIG, view("node-a"), None) == Withdraw(
        Reason.INVALID_IP
    )


def test_no_config_changes_nothing_but_deletion_still_withdraws():
    assert decide(svc("192.0.2.100"), eps(a="node-a"), None, view("node-a"), CURRENT) == Unchanged()
    assert decide(None, None, None, view("node-a"), CURRENT) == Withdraw(Reason.SERVICE_DELETED)
    assert decide(svc("192.0.2.100", type_="NodePort"), None, None, view("a"), CURRENT) == Withdraw(
        Reason.SERVICE_DELETED
    )


def test_protocol_change_withdraws_then_announces_with_bgp():
    current = Announcement(Protocol.LAYER2, (ip("198.51.100.7"),), "old-l2")
    decision = decide(svc("198.51.100.7"), eps(a="node-a"), CONFIG, view("node-a"), current)
    assert isinstance(decision, Announce)
    assert decision.replaced is Reason.PROTOCOL_CHANGED
    assert decision.announcement.protocol is Protocol.BGP
    assert decision.announcement.pool == "bgp"


def test_protocol_change_and_not_owner_reports_both():
    current = Announcement(Protocol.BGP, (ip("192.0.2.100"),), "old-bgp")
    loser = sorted(NODES - {expected_owner(set(NODES), "192.0.2.100")})[0]
    decision = decide(svc("192.0.2.100"), eps(a="node-a"), CONFIG, view(loser), current)
    assert decision == Withdraw(Reason.NOT_OWNER, replaced=Reason.PROTOCOL_CHANGED)


def test_ip_change_replaces():
    owner = expected_owner(set(NODES), "192.0.2.101")
    current = Announcement(Protocol.LAYER2, (ip("192.0.2.100"),), "l2")
    decision = decide(svc("192.0.2.101"), eps(a="node-a"), CONFIG, view(owner), current)
    assert isinstance(decision, Announce)
    assert decision.replaced is Reason.LOAD_BALANCER_IP_CHANGED
    assert decision.node_assigned


def test_ip_order_does_not_matter_for_changes():
    service = svc("2001:db8::105", "192.0.2.105")
    owner = expected_owner(set(NODES), "2001:db8::105")
    current = Announcement(Protocol.LAYER2, (ip("192.0.2.105"), ip("2001:db8::105")), "l2")
    decision = decide(service, eps(a="node-a"), CONFIG, view(owner), current)
    assert isinstance(decision, Announce) and decision.replaced is None
    assert not decision.node_assigned


# --- layer2 election ---------------------------------------------------------------------


@pytest.mark.parametrize("address", ["192.0.2.100", "192.0.2.101", "192.0.2.117", "2001:db8::1ff"])
def test_cluster_owner_is_the_smallest_digest_and_unique(address):
    expected = expected_owner(set(NODES), str(ipaddress.ip_address(address)))
    assert owners(svc(address), eps(a="node-z")) == {expected}
    decision = decide(svc(address), eps(a="node-z"), CONFIG, view(expected), None)
    assert decision == Announce(
        Announcement(Protocol.LAYER2, (ip(address),), "l2", True), node_assigned=True
    )


def test_election_order_matches_independent_sort():
    candidates = {f"worker-{i}" for i in range(20)}
    first = "192.0.2.110"
    assert election_order(candidates, ip(first)) == sorted(
        candidates, key=lambda n: hashlib.sha256(f"{n}#{first}".encode()).digest()
    )


def test_canonical_text_of_the_first_ip_is_hashed():
    # Status written in a non-canonical spelling elects the same node as the canonical one.
    service = svc("2001:DB8:0::0:105")
    assert owners(service, eps(a="node-a")) == {expected_owner(set(NODES), "2001:db8::105")}


def test_dual_stack_both_ips_on_the_first_ips_owner():
    service = svc("192.0.2.106", "2001:db8::106")
    owner = expected_owner(set(NODES), "192.0.2.106")
    assert owners(service, eps(a="node-a")) == {owner}
    decision = decide(service, eps(a="node-a"), CONFIG, view(owner), None)
    assert isinstance(decision, Announce)
    assert decision.announcement.ips == (ip("192.0.2.106"), ip("2001:db8::106"))
    # The v6-first spelling hashes the v6 address.
    flipped = svc("2001:db8::106", "192.0.2.106")
    assert owners(flipped, eps(a="node-a")) == {expected_owner(set(NODES), "2001:db8::106")}


def test_shared_ip_cluster_services_elect_one_node():
    a = svc("192.0.2.107", name="web")
    b = svc("192.0.2.107", name="dns")
    owner = expected_owner(set(NODES), "192.0.2.107")
    assert owners(a, eps(a="node-a")) == owners(b, eps(b="node-c", c="node-d")) == {owner}


def test_shared_ip_local_services_with_same_endpoints_elect_one_node():
    # Sharing under Local requires the same selector, hence the same endpoints.
    e = eps(a="node-b", b="node-d")
    a = svc("192.0.2.108", policy="Local", name="tcp")
    b = svc("192.0.2.108", policy="Local", name="udp")
    assert owners(a, e) == owners(b, e) == {expected_owner({"node-b", "node-d"}, "192.0.2.108")}


def test_local_candidates_are_live_nodes_with_ready_endpoints():
    e = eps(a="node-a", b="node-c", c="node-c", d="node-gone")
    service = svc("192.0.2.109", policy="Local")
    assert owners(service, e) == {expected_owner({"node-a", "node-c"}, "192.0.2.109")}
    # A dead node's endpoints do not make it a candidate.
    live = NODES - {"node-a"}
    assert owners(service, e, live) == {"node-c"}
    assert owners(service, e, NODES - {"node-a", "node-c"}) == set()


def test_local_ignores_not_ready_endpoints_and_unknown_nodes():
    endpoints = from_endpoints(
        {
            "subsets": [
                {
                    "addresses": [
                        {"ip": "203.0.113.1", "nodeName": "node-a"},
                        {"ip": "203.0.113.9"},
                    ],
                    "notReadyAddresses": [{"ip": "203.0.113.2", "nodeName": "node-b"}],
                }
            ]
        }
    )
    assert endpoints is not None
    assert owners(svc("192.0.2.110", policy="Local"), endpoints) == {"node-a"}


def test_local_with_slices_uses_node_name_or_topology():
    slices = from_endpoint_slices(
        [
            {
                "metadata": {"labels": {"kubernetes.io/service-name": "web"}},
                "endpoints": [
                    {"addresses": ["203.0.113.1"], "nodeName": "node-b"},
                    {
                        "addresses": ["203.0.113.2"],
                        "topology": {"kubernetes.io/hostname": "node-e"},
                    },
                    {
                        "addresses": ["203.0.113.3"],
                        "nodeName": "node-c",
                        "conditions": {"ready": False},
                    },
                ],
            }
        ]
    )
    assert slices is not None
    service = svc("192.0.2.111", policy="Local")
    assert owners(service, slices) == {expected_owner({"node-b", "node-e"}, "192.0.2.111")}


def test_no_ready_endpoint_is_not_owner_everywhere():
    not_ready = from_endpoints(
        {"subsets": [{"notReadyAddresses": [{"ip": "203.0.113.1", "nodeName": "node-a"}]}]}
    )
    assert not_ready is not None
    for n in NODES:
        assert decide(svc("192.0.2.112"), not_ready, CONFIG, view(n), None) == Withdraw(
            Reason.NOT_OWNER
        )


def test_owner_death_moves_to_the_next_in_order():
    address = "192.0.2.113"
    order = election_order(NODES, ip(address))
    assert owners(svc(address), eps(a="node-a"), NODES - {order[0]}) == {order[1]}


def test_minority_speaker_withdraws_cluster_services_but_not_local():
    address = "192.0.2.114"
    order = election_order(NODES, ip(address))
    me = order[0]
    held = Announcement(Protocol.LAYER2, (ip(address),), "l2")
    # Isolated: it hears only itself, and is in the minority.
    isolated = NodeView(me, frozenset({me}), in_minority=True)
    assert decide(svc(address), eps(a="node-z"), CONFIG, isolated, held) == Withdraw(
        Reason.MINORITY_PARTITION
    )
    # A speaker in the minority takes nothing over either.
    assert decide(svc(address), eps(a="node-z"), CONFIG, isolated, None) == Withdraw(
        Reason.MINORITY_PARTITION
    )
    # Local Services are not affected (their candidates are nodes with endpoints).
    local = decide(svc(address, policy="Local"), eps(a=me), CONFIG, isolated, held)
    assert isinstance(local, Announce)


# --- BGP -----------------------------------------------------------------------------------


def test_bgp_cluster_announces_from_every_node_with_an_endpoint_anywhere():
    service = svc("198.51.100.10")
    assert owners(service, eps(a="node-a"), has_bgp_peers=True) == set(NODES)
    empty = from_endpoints({"subsets": []})
    assert empty is not None
    assert decide(service, empty, CONFIG, view("node-a"), None) == Withdraw(Reason.NO_ENDPOINTS)


def test_bgp_local_needs_a_ready_endpoint_on_this_node():
    service = svc("198.51.100.11", policy="Local")
    e = eps(a="node-a", b="node-c")
    assert owners(service, e) == {"node-a", "node-c"}
    assert decide(service, e, CONFIG, view("node-b"), None) == Withdraw(Reason.NO_LOCAL_ENDPOINTS)
    no_endpoints = from_endpoints({})
    assert no_endpoints is not None
    assert decide(service, no_endpoints, CONFIG, view("node-a"), None) == Withdraw(
        Reason.NO_LOCAL_ENDPOINTS
    )


def test_bgp_ignores_membership():
    service = svc("198.51.100.12")
    isolated = NodeView("node-a", frozenset({"node-a"}), in_minority=True, has_bgp_peers=True)
    assert isinstance(decide(service, eps(a="node-b"), CONFIG, isolated, None), Announce)


# --- nodeAssigned policy ----------------------------------------------------------------------


def test_node_assigned_only_when_starting_to_announce():
    address = "192.0.2.115"
    owner = expected_owner(set(NODES), address)
    first = decide(svc(address), eps(a="node-a"), CONFIG, view(owner), None)
    assert isinstance(first, Announce) and first.node_assigned
    again = decide(
        svc(address), eps(a="node-a", b="node-b"), CONFIG, view(owner), first.announcement
    )
    assert isinstance(again, Announce) and not again.node_assigned and again.replaced is None
    # Nothing to tell the layer2 handler: no new gratuitous ARP burst.
    assert first.changed and not again.changed
    assert event_message(owner) == f'announcing from node "{owner}"'


def test_bgp_node_assigned_waits_for_a_selected_peer():
    service = svc("198.51.100.13")
    no_peer = decide(service, eps(a="node-a"), CONFIG, view("node-a"), None)
    assert isinstance(no_peer, Announce)
    assert not no_peer.node_assigned and not no_peer.announcement.assigned
    # Same node, later with a peer selected: now it tells.
    with_peer = decide(
        service, eps(a="node-a"), CONFIG, view("node-a", has_bgp_peers=True), no_peer.announcement
    )
    assert isinstance(with_peer, Announce) and with_peer.node_assigned and with_peer.changed
    assert with_peer.replaced is None and with_peer.announcement.assigned
    steady = decide(
        service, eps(a="node-a"), CONFIG, view("node-a", has_bgp_peers=True), with_peer.announcement
    )
    assert isinstance(steady, Announce) and not steady.node_assigned

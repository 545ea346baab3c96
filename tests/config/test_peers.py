"""`peers[]` (docs/config.md): every field, default and listed error."""

from __future__ import annotations

import ipaddress
import re

import pytest

from .util import PEER, one, parse, peer, problems, warnings


def test_minimal_peer_gets_the_defaults() -> None:
    (p,) = parse(peer()).peers
    assert (p.my_asn, p.peer_asn, str(p.address)) == (64500, 64501, "192.0.2.1")
    assert p.port == 179
    assert p.hold_time == 90
    assert p.keepalive_time is None
    assert p.effective_keepalive == 30
    assert p.router_id is None and p.source_address is None
    assert p.password == "" and p.bfd_profile == "" and p.ebgp_multihop is False
    assert p.node_selectors == ()
    assert p.selects({}) and p.selects({"any": "label"})


@pytest.mark.parametrize(
    ("extra", "attr", "value"),
    [
        ("peer-port: 0", "port", 179),
        ("peer-port: 1179", "port", 1179),
        ("peer-port: 65535", "port", 65535),
        ("hold-time: 90s", "hold_time", 90),
        ("hold-time: 1m30s", "hold_time", 90),
        ("hold-time: 3s", "hold_time", 3),
        ("hold-time: 3.9s", "hold_time", 3),
        ("hold-time: 500ms", "hold_time", 0),
        ("hold-time: 0", "hold_time", 0),
        ("hold-time: -0.5s", "hold_time", 0),
        ("hold-time: 2h", "hold_time", 7200),
        ("hold-time: ''", "hold_time", 90),
        ("router-id: 192.0.2.10", "router_id", ipaddress.ip_address("192.0.2.10")),
        ("router-id: 2001:db8::1", "router_id", ipaddress.ip_address("2001:db8::1")),
        ("source-address: 192.0.2.11", "source_address", ipaddress.ip_address("192.0.2.11")),
        ("source-address: ''", "source_address", None),
        ("password: s3cr3t", "password", "s3cr3t"),
        ("ebgp-multihop: true", "ebgp_multihop", True),
        ("peer-address: 2001:db8::1", "address", ipaddress.ip_address("2001:db8::1")),
        ("peer-address: '::ffff:192.0.2.7'", "address", ipaddress.ip_address("192.0.2.7")),
        ("my-asn: 4294967295", "my_asn", 4294967295),
    ],
)
def test_accepted_forms(extra: str, attr: str, value: object) -> None:
    key = extra.split(":", maxsplit=1)[0]
    # a field of the minimal peer gets its value replaced; others are added
    text = re.sub(rf"{key}: .*", extra, PEER) if key in PEER else peer(extra)
    (p,) = parse(text).peers
    assert getattr(p, attr) == value


def test_default_keepalive_is_a_third_of_hold_time() -> None:
    assert parse(peer("hold-time: 10s")).peers[0].effective_keepalive == pytest.approx(10 / 3)
    assert parse(peer("hold-time: 0")).peers[0].effective_keepalive == 0


@pytest.mark.parametrize(
    ("extra", "keepalive", "effective"),
    [
        ("hold-time: 120s\nkeepalive-time: 30s", 30, 30),
        ("hold-time: 120s\nkeepalive-time: 120s", 120, 120),
        ("hold-time: 90s\nkeepalive-time: 500ms", 0, 0),
        ("hold-time: 0\nkeepalive-time: 0", 0, 0),
        ("hold-time: 9s\nkeepalive-time: 1s", 1, 1),
    ],
)
def test_explicit_keepalive_frr(extra: str, keepalive: int, effective: int) -> None:
    (p,) = parse(peer(extra), "frr").peers
    assert p.keepalive_time == keepalive
    assert p.effective_keepalive == effective


@pytest.mark.parametrize(
    ("fields", "path", "reason"),
    [
        ("peer-asn: 1\npeer-address: 192.0.2.1", "peers[0].my-asn", "missing local ASN"),
        ("my-asn: 0\npeer-asn: 1\npeer-address: 192.0.2.1", "peers[0].my-asn", "missing local ASN"),
        ("my-asn: 1\npeer-address: 192.0.2.1", "peers[0].peer-asn", "missing peer ASN"),
        (
            "my-asn: 1\npeer-asn: 0\npeer-address: 192.0.2.1",
            "peers[0].peer-asn",
            "missing peer ASN",
        ),
        ("my-asn: 1\npeer-asn: 2", "peers[0].peer-address", "missing peer-address"),
        (
            "my-asn: 1\npeer-asn: 2\npeer-address: router.example",
            "peers[0].peer-address",
            "invalid peer IP: 'router.example' is not an IP address (hostnames are not allowed)",
        ),
        (
            "my-asn: 1\npeer-asn: 2\npeer-address: 192.0.2.1/32",
            "peers[0].peer-address",
            "invalid peer IP",
        ),
        (
            "my-asn: 1\npeer-asn: 2\npeer-address: 'fe80::1%eth0'",
            "peers[0].peer-address",
            "invalid peer IP",
        ),
        (
            "my-asn: 1\npeer-asn: 2\npeer-address: 192.0.2.01",
            "peers[0].peer-address",
            "leading zeros",
        ),
        (
            "my-asn: 1\npeer-asn: 2\npeer-address: 192.0.2.256",
            "peers[0].peer-address",
            "invalid peer IP",
        ),
    ],
)
def test_required_fields(fields: str, path: str, reason: str) -> None:
    text = "peers:\n- " + fields.replace("\n", "\n  ") + "\n"
    problem = one(text)
    assert problem.path == path
    assert reason in problem.reason
    assert problem.line is not None


def test_empty_peer_item_reports_every_missing_field() -> None:
    found = problems("peers:\n-\n")
    assert [p.path for p in found] == [
        "peers[0].my-asn",
        "peers[0].peer-asn",
        "peers[0].peer-address",
    ]
    assert all(p.line == 2 for p in found)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("hold-time: 90", 'missing unit in duration "90" (a duration needs a unit: write 90s'),
        ("hold-time: foo", "invalid hold-time 'foo'"),
        ("hold-time: 1s", "must be 0 or >=3s"),
        ("hold-time: 2s", "must be 0 or >=3s"),
        ("hold-time: 2.9s", "must be 0 or >=3s (it counts as 2s"),
        ("hold-time: -3s", "must be 0 or >=3s"),
        ("hold-time: -1h", "must be 0 or >=3s"),
        ("router-id: oh god how do I BGP", "invalid router ID"),
        ("router-id: 192.0.2.1/32", "invalid router ID"),
        ("source-address: eth0", "invalid source IP"),
        ("peer-port: 65536", "does not fit"),
    ],
)
def test_rejected_fields(extra: str, reason: str) -> None:
    problem = one(peer(extra))
    assert problem.path == f"peers[0].{extra.split(':', maxsplit=1)[0]}"
    assert reason in problem.reason
    assert problem.line == 5
    assert problem.value is not None


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("hold-time: 10s\nkeepalive-time: 11s", "must not be longer than hold-time (10s)"),
        ("hold-time: 0\nkeepalive-time: 1s", "hold-time 0 disables keepalives"),
        ("hold-time: 500ms\nkeepalive-time: 3s", "hold-time 0 disables keepalives"),
        ("keepalive-time: 91s", "must not be longer than hold-time (90s)"),
        ("keepalive-time: 30", "missing unit"),
        ("keepalive-time: -5s", "must not be negative"),
    ],
)
def test_rejected_keepalive(extra: str, reason: str) -> None:
    problem = one(peer(extra), "frr")
    assert problem.path == "peers[0].keepalive-time"
    assert reason in problem.reason


def test_keepalive_syntax_checked_even_when_hold_time_is_broken() -> None:
    found = problems(peer("hold-time: 1s\nkeepalive-time: soon"), "frr")
    assert [p.path for p in found] == ["peers[0].hold-time", "peers[0].keepalive-time"]


def test_ebgp_multihop_rejected_for_ibgp() -> None:
    text = (
        "peers:\n- {my-asn: 64500, peer-asn: 64500, peer-address: 192.0.2.1, ebgp-multihop: true}\n"
    )
    problem = one(text)
    assert problem.path == "peers[0].ebgp-multihop"
    assert "invalid ebgp-multihop parameter set for an iBGP peer" in problem.reason
    ibgp = text.replace(", ebgp-multihop: true", ", ebgp-multihop: false")
    assert parse(ibgp).peers[0].is_ibgp


def test_every_problem_of_a_peer_is_reported() -> None:
    found = problems(
        """\
        peers:
        - my-asn: 0
          peer-asn: 64501
          peer-address: router
          hold-time: 2s
          router-id: x
          source-address: y
          peer-port: 99999
        """
    )
    assert [p.path for p in found] == [
        "peers[0].peer-port",
        "peers[0].my-asn",
        "peers[0].peer-address",
        "peers[0].router-id",
        "peers[0].source-address",
        "peers[0].hold-time",
    ]


@pytest.mark.parametrize(
    ("second", "duplicate"),
    [
        ("", True),
        ("hold-time: 1m30s", True),  # same parsed value as the default
        ("peer-port: 179", True),
        ("node-selectors: []", True),
        ("node-selectors: [{}]", True),
        ("hold-time: 60s", False),
        ("password: x", False),
        ("peer-port: 1179", False),
        ("router-id: 192.0.2.10", False),
        ("node-selectors: [{match-labels: {a: b}}]", False),
    ],
)
def test_duplicate_peers_only_when_identical_in_every_field(second: str, duplicate: bool) -> None:
    text = peer() + peer(second)[len("peers:\n") :]
    if duplicate:
        problem = one(text)
        assert problem.path == "peers[1]"
        assert "peer #2 already exists: identical in every field to peer #1 (peers[0])" in (
            problem.reason
        )
        assert problem.line == 5
    else:
        assert len(parse(text).peers) == 2


def test_explicit_keepalive_equal_to_the_default_is_a_duplicate_frr() -> None:
    text = peer() + peer("keepalive-time: 30s")[len("peers:\n") :]
    found = problems(text, "frr")
    assert "peer #2 already exists" in found[-1].reason
    assert "FRR mode does not support two peers with the same address" in found[0].reason


def test_selector_order_does_not_make_peers_different() -> None:
    a = "node-selectors:\n- match-labels: {a: '1', b: '2'}"
    b = "node-selectors:\n- match-labels: {b: '2', a: '1'}"
    assert "already exists" in one(peer(a) + peer(b)[len("peers:\n") :]).reason


def test_peer_numbering_in_messages_is_one_based() -> None:
    text = peer() + peer()[len("peers:\n") :] + peer()[len("peers:\n") :]
    found = problems(text)
    assert [p.path for p in found] == ["peers[1]", "peers[2]"]
    assert "peer #3 already exists" in found[1].reason


def test_ipv6_router_id_is_a_warning_in_native_mode() -> None:
    (w,) = warnings(peer("router-id: 2001:db8::1"))
    assert w.path == "peers[0].router-id"
    assert "only uses IPv4 router IDs" in w.reason
    assert warnings(peer("router-id: 2001:db8::1"), "frr") == ()


def test_hold_time_beyond_bgp_range_is_a_warning() -> None:
    (w,) = warnings(peer("hold-time: 24h"))
    assert w.path == "peers[0].hold-time" and "65535" in w.reason
    assert parse(peer("hold-time: 24h")).peers[0].hold_time == 86400

"""`graceful-restart` and `graceful-restart-time` on a peer: metallb-py's extension to v0.12's
format (docs/config.md, "peers"; docs/bgp.md, "Graceful restart")."""

from __future__ import annotations

import pytest

from .util import one, parse, peer


@pytest.mark.parametrize(
    ("extra", "restart_time"),
    [
        ("", None),
        ("graceful-restart: false", None),
        ("graceful-restart: true", 120),
        ("graceful-restart: true\ngraceful-restart-time: 30s", 30),
        ("graceful-restart: true\ngraceful-restart-time: 1s", 1),
        ("graceful-restart: true\ngraceful-restart-time: 1h8m15s", 4095),
        ("graceful-restart: true\ngraceful-restart-time: 2m", 120),
        ("graceful-restart: true\ngraceful-restart-time: ''", 120),
    ],
)
def test_graceful_restart_time(extra: str, restart_time: int | None) -> None:
    (p,) = parse(peer(extra)).peers
    assert p.graceful_restart_time == restart_time


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("graceful-restart: true\ngraceful-restart-time: 4096s", "must be in the 1-4095s range"),
        ("graceful-restart: true\ngraceful-restart-time: 0s", "must be in the 1-4095s range"),
        ("graceful-restart: true\ngraceful-restart-time: 500ms", "(0s): must be in the 1-4095s"),
        ("graceful-restart: true\ngraceful-restart-time: -5s", "must be in the 1-4095s range"),
        ("graceful-restart: true\ngraceful-restart-time: 120", "write 120s for seconds"),
        ("graceful-restart-time: 60s", "needs graceful-restart: true"),
        ("graceful-restart: false\ngraceful-restart-time: 60s", "needs graceful-restart: true"),
    ],
)
def test_graceful_restart_time_errors_name_the_field(extra: str, reason: str) -> None:
    problem = one(peer(extra))
    assert problem.path == "peers[0].graceful-restart-time"
    assert reason in problem.reason


def test_graceful_restart_must_be_a_boolean() -> None:
    problem = one(peer("graceful-restart: yes please"))
    assert problem.path == "peers[0].graceful-restart"


def test_peers_differing_only_in_graceful_restart_are_two_peers() -> None:
    text = peer() + "- my-asn: 64500\n  peer-asn: 64501\n  peer-address: 192.0.2.1\n"
    assert "already exists" in one(text).reason
    config = parse(text + "  graceful-restart: true\n")
    assert [p.graceful_restart_time for p in config.peers] == [None, 120]

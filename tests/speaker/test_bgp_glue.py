"""The speaker process's BGP glue that is pure: merging per-peer stats into one series set per
`peer` label, and which `metallb_speaker_announced` series an announcement shows."""

from __future__ import annotations

import ipaddress

from metallb_py.config.model import Protocol
from metallb_py.metrics import Registry, parse_exposition
from metallb_py.metrics.metallb import BgpPeerStats, SpeakerMetrics
from metallb_py.speaker.bgp_sessions import merge_peer_stats
from metallb_py.speaker.decision import Announcement
from metallb_py.speaker.main import _gauge_series


def test_one_series_set_per_peer_label() -> None:
    stats = [
        BgpPeerStats("[2001:db8::1]:179", True, 3, 2, 2),
        BgpPeerStats("192.0.2.1:179", True, 5, 4, 4),
        BgpPeerStats("192.0.2.1:179", False, 2, 0, 4),
    ]
    merged = merge_peer_stats(stats)
    assert merged == [
        BgpPeerStats("192.0.2.1:179", False, 7, 4, 4),
        BgpPeerStats("[2001:db8::1]:179", True, 3, 2, 2),
    ]
    registry = Registry()
    SpeakerMetrics(registry, bgp_peers=lambda: merged)
    text = registry.render()
    series = parse_exposition(text)
    assert series[("metallb_bgp_session_up", frozenset({("peer", "192.0.2.1:179")}))] == 0
    assert series[("metallb_bgp_updates_total", frozenset({("peer", "192.0.2.1:179")}))] == 7
    assert text.count('metallb_bgp_session_up{peer="192.0.2.1:179"}') == 1
    assert merge_peer_stats([]) == []


def test_announced_series_follow_the_record() -> None:
    ips = (ipaddress.ip_address("203.0.113.5"), ipaddress.ip_address("2001:db8::5"))
    told = Announcement(Protocol.BGP, ips, "p", assigned=True)
    silent = Announcement(Protocol.BGP, ips, "p", assigned=False)
    layer2 = Announcement(Protocol.LAYER2, ips[:1], "l", assigned=True)
    assert _gauge_series(told) == {("bgp", "203.0.113.5"), ("bgp", "2001:db8::5")}
    assert _gauge_series(silent) == set()  # a node without a selected peer tells nobody
    assert _gauge_series(layer2) == {("layer2", "203.0.113.5")}
    assert _gauge_series(None) == set()

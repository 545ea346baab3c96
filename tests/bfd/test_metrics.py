"""The `metallb_bfd_*` series: FRR mode's names, one series set per peer address."""

from __future__ import annotations

from metallb_py.metrics import Registry
from metallb_py.metrics.metallb import BfdPeerStats, SpeakerMetrics
from metallb_py.speaker.bgp_sessions import merge_bfd_stats


def test_names_and_one_series_set_per_peer() -> None:
    stats = merge_bfd_stats(
        [
            BfdPeerStats("192.0.2.1", True, 10, 12, 1, 0),
            BfdPeerStats("2001:db8::1", False, 3, 4, 1, 1),
            BfdPeerStats("192.0.2.1", False, 5, 6, 2, 1),
        ]
    )
    registry = Registry()
    SpeakerMetrics(registry, bfd_peers=lambda: stats)
    text = registry.render()

    def value(name: str, peer: str) -> float:
        """From the exposition text, exact names (no `_total`, as FRR mode's exporter)."""
        (line,) = [x for x in text.splitlines() if x.startswith(f'{name}{{peer="{peer}"}} ')]
        return float(line.split()[-1])

    assert "# TYPE metallb_bfd_session_up gauge" in text
    assert "# TYPE metallb_bfd_control_packet_input counter" in text
    assert "metallb_bfd_echo" not in text and "zebra" not in text  # no echo, no zebra here

    assert value("metallb_bfd_session_up", "192.0.2.1") == 0  # up only while both are
    assert value("metallb_bfd_session_up", "2001:db8::1") == 0
    assert value("metallb_bfd_control_packet_input", "192.0.2.1") == 15
    assert value("metallb_bfd_control_packet_output", "192.0.2.1") == 18
    assert value("metallb_bfd_session_up_events", "192.0.2.1") == 3
    assert value("metallb_bfd_session_down_events", "2001:db8::1") == 1
    assert merge_bfd_stats([]) == []

"""Gratuitous ARP / unsolicited NA as a capture in the client namespace sees them (docs/layer2.md,
"Gratuitous announcements")."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
from scapy.layers.l2 import ARP
from scapy.utils import rdpcap

from metallb_lab import netns

from .conftest import Lan

pytestmark = [pytest.mark.netns, pytest.mark.slow]

V4, V6 = "192.0.2.100", "2001:db8::100"


class Capture:
    """tcpdump on the client's bridge, written to a pcap file (scapy reads it afterwards)."""

    def __init__(self, lan: Lan, path: Path) -> None:
        self.path = path
        self.log = path.with_suffix(".log")
        with self.log.open("wb") as log:
            self.proc = lan.topo.spawn(
                lan.client,
                ["tcpdump", "-i", "br0", "-U", "-n", "-w", str(path), "arp or icmp6"],
                stderr=log.fileno(),
            )
        netns.wait_for(
            lambda: "listening on" in self.log.read_text(errors="replace"),
            timeout=10,
            what="tcpdump to start",
        )

    def stop(self) -> list[Any]:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        return list(rdpcap(str(self.path)))


def gratuitous_arp(packets: list[Any], mac: str) -> list[tuple[float, int]]:
    return [
        (float(p.time), int(p[ARP].op))
        for p in packets
        if ARP in p
        and p[ARP].psrc == V4
        and p[ARP].pdst == V4
        and p.src == mac
        and p.dst == "ff:ff:ff:ff:ff:ff"
        and p[ARP].hwsrc == mac
    ]


def unsolicited_na(packets: list[Any], mac: str) -> list[float]:
    found = []
    for p in packets:
        if ICMPv6ND_NA not in p or p[ICMPv6ND_NA].tgt != V6:
            continue
        na = p[ICMPv6ND_NA]
        assert p[IPv6].dst == "ff02::1" and p[IPv6].hlim == 255
        assert (na.S, na.O, na.R) == (0, 1, 0)
        assert p[ICMPv6NDOptDstLLAddr].lladdr == mac and p.src == mac
        found.append(float(p.time))
    return found


def assert_burst(times: list[float], start: float) -> None:
    """Five announcements: the first at once, then every ~1.1 s, all within ~5 s."""
    assert len(times) == 5, times
    assert times[0] - start < 1.0
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(0.9 < gap < 1.5 for gap in gaps), gaps
    assert times[-1] - times[0] < 5.0


def test_takeover_burst_no_repeat_on_reconcile_refresh_and_silent_withdraw(
    lan: Lan, tmp_path: Path
) -> None:
    node = lan.nodes[0]
    mac = lan.mac(node)
    capture = Capture(lan, tmp_path / "l2.pcap")
    speaker = lan.speaker(node)

    takeover = time.time()
    speaker.cmd(f"announce default/web {V4} {V6}")

    def sent() -> dict[str, int]:
        return dict(speaker.stats()["stats"]["gratuitous_sent"])

    # Request + reply per IPv4 announcement, one NA per IPv6 announcement.
    netns.wait_for(lambda: sent() == {V4: 10, V6: 5}, timeout=8, what="the takeover burst")
    # Reconciles of the same ownership (same set again, a second Service sharing the IP)
    # are not takeovers: nothing more is sent (upstream sent a burst each time).
    speaker.cmd(f"announce default/web {V4} {V6}")
    speaker.cmd(f"announce other/shared {V4}")
    quiet_until = time.time() + 2.5
    netns.wait_for(lambda: time.time() > quiet_until, timeout=5, what="a quiet period")
    assert sent() == {V4: 10, V6: 5}

    refreshed = time.time()
    speaker.cmd(f"refresh {V4}")
    netns.wait_for(lambda: sent()[V4] >= 14, timeout=5, what="two refresh announcements")
    # Withdrawing mid-burst stops it; nothing at all is sent for the withdrawal.
    speaker.cmd("withdraw default/web")
    speaker.cmd("withdraw other/shared")
    withdrawn = time.time()
    assert sent() == {}
    settle_until = time.time() + 3
    netns.wait_for(lambda: time.time() > settle_until, timeout=5, what="the end of the burst")
    packets = capture.stop()

    arp = gratuitous_arp(packets, mac)
    first = [(t, op) for t, op in arp if t < refreshed]
    requests = [t for t, op in first if op == 1]
    replies = [t for t, op in first if op == 2]
    assert_burst(requests, takeover)
    assert_burst(replies, takeover)
    assert_burst([t for t in unsolicited_na(packets, mac) if t < refreshed], takeover)
    second = [t for t, op in arp if t >= refreshed]
    assert 4 <= len(second) < 10, second  # cut short by the withdrawal
    assert second[0] - refreshed < 1.0
    assert not [t for t, _ in arp if t > withdrawn + 0.2]
    assert not [t for t in unsolicited_na(packets, mac) if t >= refreshed]

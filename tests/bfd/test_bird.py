"""Native BFD against BIRD 2's BFD (`protocol bfd`, `bfd on` on the BGP protocol): the session
comes Up on both sides, and BIRD drops its BGP session when the node goes silent, within its
detection time instead of the 30 s hold time."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from metallb_lab.routers import BirdRouter, Neighbor, PeeringLink
from metallb_py.bfd.packet import State
from metallb_py.config import BgpType, parse_config
from tests.bfd.test_frr import (
    DETECTION_MARGIN,
    FAST,
    NODE_ASN,
    ROUTER_ASN,
    config_text,
    open_speaker,
    silence,
)
from tests.bgp.conftest import run, until

pytestmark = pytest.mark.netns


def test_bird_bfd_up_and_bgp_dropped_when_the_node_goes_silent(
    link: PeeringLink, tmp_path: Path
) -> None:
    node, peer = link.node_v4, link.router_v4
    neighbor = Neighbor(node, NODE_ASN, hold_time=30, bfd=True, ipv6=False)
    bird = BirdRouter(link.topo, link.router, tmp_path / "bird", ROUTER_ASN, peer, [neighbor])
    bird.start()
    config = parse_config(config_text(peer, FAST), BgpType.NATIVE)

    async def scenario() -> None:
        sessions, bfd = await open_speaker(link, config)
        try:
            await until(lambda: bird.bfd_sessions().get(node) == "Up", 20, "BIRD's BFD Up")
            await until(lambda: bfd.session.state is State.UP, 10, "our BFD Up")
            await until(lambda: bfd.session.detection_time < 0.5, 10, "fast timers in force")
            assert bfd.session.detection_time == pytest.approx(0.3)
            assert await asyncio.to_thread(bird.protocol_state, neighbor) == "Established"
            started = time.monotonic()
            await asyncio.to_thread(silence, link.node)
            await until(
                lambda: bird.protocol_state(neighbor) != "Established", 10, "BIRD drops BGP"
            )
            assert time.monotonic() - started < 0.3 + DETECTION_MARGIN + 0.5  # + birdc polling
            info = await asyncio.to_thread(
                bird.birdc, "show", "protocols", "all", bird.protocol_name(neighbor)
            )
            assert "BFD session down" in info, info
        finally:
            await sessions.close_all()

    run(scenario())


def test_bird_asymmetric_timers(link: PeeringLink, tmp_path: Path) -> None:
    """BIRD at 100 ms x 3 both ways, we at tx 200 / rx 300 x 5: BIRD sends every
    max(100, our 300) = 300 ms and times out after our 5 x max(100, our 200) = 1 s (its `show
    bfd sessions` Interval and Timeout columns); we send every max(200, 100) = 200 ms and
    detect in BIRD's 3 x max(our 300, 100) = 0.9 s."""
    node, peer = link.node_v4, link.router_v4
    neighbor = Neighbor(node, NODE_ASN, hold_time=30, bfd=True, ipv6=False)
    bird = BirdRouter(link.topo, link.router, tmp_path / "bird", ROUTER_ASN, peer, [neighbor])
    bird.start()
    profile = "  transmit-interval: 200\n  receive-interval: 300\n  detect-multiplier: 5\n"
    config = parse_config(config_text(peer, profile), BgpType.NATIVE)

    def bird_timers() -> tuple[float, float] | None:
        out = bird.birdc("show", "bfd", "sessions")
        found = re.search(rf"^{re.escape(node)}\s.*\bUp\b.*?([\d.]+)\s+([\d.]+)\s*$", out, re.M)
        return (float(found.group(1)), float(found.group(2))) if found else None

    async def scenario() -> None:
        sessions, bfd = await open_speaker(link, config)
        try:
            await until(lambda: bfd.session.state is State.UP, 20, "our BFD Up")
            await until(lambda: not bfd.session.polling, 10, "our poll answered")
            assert bfd.session.transmit_interval == 200_000
            assert bfd.session.detection_time == pytest.approx(0.9)
            timers = await until(lambda: bird_timers() == (0.3, 1.0), 20, "BIRD's timers")
            assert timers
        finally:
            await sessions.close_all()

    run(scenario())

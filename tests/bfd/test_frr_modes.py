"""Multihop (RFC 5883, port 4784, for `ebgp-multihop` peers, with the profile's minimum TTL)
and passive mode, against FRR's bfdd."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from metallb_lab.routers import FrrBfdRouter, Neighbor, PeeringLink
from metallb_py.bfd.packet import State
from metallb_py.bfd.transport import MULTIHOP_PORT
from metallb_py.config import BgpType, parse_config
from tests.bfd.test_frr import (
    NODE_ASN,
    ROUTER_ASN,
    config_text,
    open_speaker,
    start_frr,
    up_with_frr,
)
from tests.bfd.test_malformed import bfd_bytes, send_from
from tests.bgp.conftest import run, until

pytestmark = pytest.mark.netns


@pytest.mark.parametrize("family", [4, 6])
def test_multihop_session_on_port_4784_with_minimum_ttl(
    link: PeeringLink, frr_dir: Path, family: int
) -> None:
    node, peer = (link.node_v4, link.router_v4) if family == 4 else (link.node_v6, link.router_v6)
    frr = start_frr(link, frr_dir, node, multihop=True, bfd_transmit_ms=100, bfd_receive_ms=100)
    profile = "  transmit-interval: 100\n  receive-interval: 100\n  minimum-ttl: 250\n"
    config = parse_config(config_text(peer, profile, multihop=True), BgpType.NATIVE)

    async def scenario() -> None:
        sessions, bfd = await open_speaker(link, config)
        try:
            assert bfd.multihop
            view: dict[str, Any] = await until(
                lambda: next((p for p in frr.bfd_peers() if p.get("status") == "up"), {}),
                20,
                "FRR's multihop BFD session up",
            )
            assert view["multihop"] is True and view["peer"] == node
            assert bfd.session.state is State.UP
            # below our minimum-ttl (250): dropped, though it would take the session Down
            hostile = bfd_bytes(
                sta=1,
                my_discriminator=bfd.session.remote_discriminator,
                your_discriminator=bfd.session.my_discriminator,
            )
            await asyncio.to_thread(send_from, link, peer, node, 249, [hostile], port=MULTIHOP_PORT)
            assert sessions.bfd_service is not None
            stats = sessions.bfd_service.stats
            rule = "TTL below the profile's minimum-ttl"
            await until(lambda: stats.dropped.get(rule, 0) >= 1, 10, "TTL 249 dropped")
            assert bfd.session.state is State.UP
        finally:
            await sessions.close_all()

    run(scenario())


def test_passive_waits_for_the_peer(link: PeeringLink, frr_dir: Path) -> None:
    """Our passive session sends nothing while the peer is silent (FRR without BFD for this
    neighbour), then comes Up once FRR's bfdd (active) speaks."""
    node, peer = link.node_v4, link.router_v4
    silent = FrrBfdRouter(
        link.topo,
        link.router,
        frr_dir / "frr",
        ROUTER_ASN,
        link.router_v4,
        [Neighbor(node, NODE_ASN, hold_time=30)],
    )
    silent.start()
    profile = "  passive-mode: true\n"
    config = parse_config(config_text(peer, profile), BgpType.NATIVE)

    async def peer_silent() -> None:
        sessions, bfd = await open_speaker(link, config)
        try:
            await asyncio.sleep(3.0)  # an active session sends at once, then every second
            assert bfd.session.counters.packets_out == 0
            assert bfd.session.state is State.DOWN
        finally:
            await sessions.close_all()

    run(peer_silent())
    silent.stop()
    frr = start_frr(link, frr_dir, node)  # active

    async def peer_active() -> None:
        sessions, bfd = await up_with_frr(link, frr, peer, node, profile)
        try:
            assert bfd.session.state is State.UP and bfd.session.counters.packets_out > 0
        finally:
            await sessions.close_all()

    run(peer_active())


def test_passive_on_both_sides_then_ours_made_active(link: PeeringLink, frr_dir: Path) -> None:
    """FRR and we both passive: nobody is obliged to speak (FRR 8.4 sometimes sends a packet
    from the session it creates before BGP is up, then replaces that session with a silent
    one). The profile edited to active mode (same name, so the running session is updated):
    we start sending and both come Up."""
    node, peer = link.node_v4, link.router_v4
    frr = start_frr(link, frr_dir, node, bfd_passive=True)
    passive = parse_config(config_text(peer, "  passive-mode: true\n"), BgpType.NATIVE)
    active = parse_config(config_text(peer, "  passive-mode: false\n"), BgpType.NATIVE)

    async def scenario() -> None:
        sessions, bfd = await open_speaker(link, passive)
        try:
            await asyncio.sleep(4.0)  # beyond a 3 s detection time of a first FRR packet
            await sessions.sync(active, {})
            assert [b for _, b in sessions.bfd.values()] == [bfd]  # the same session
            await until(lambda: bfd.session.state is State.UP, 20, "Up once we are active")
            await until(lambda: frr.bfd_peer(node).get("status") == "up", 20, "FRR's Up")
        finally:
            await sessions.close_all()

    run(scenario())

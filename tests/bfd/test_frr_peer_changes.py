"""Changes made on FRR's side of a running BFD session, checked from outside: FRR's timers
asymmetric to ours and changed at run time (FRR polls, we must answer Final), FRR's detect
multiplier at both ends of the range, FRR shutting its BFD session down (AdminDown: RFC 5882
says our BGP session stays) and bringing it back. Expected values are RFC 5880's arithmetic
written out here; margins are wide for a loaded machine."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from metallb_lab.routers import PeeringLink
from metallb_py.bfd.packet import Diag, State
from metallb_py.bgp.host import LocalHost
from metallb_py.config import BgpType, parse_config
from metallb_py.speaker.bgp_sessions import PeerSessions
from tests.bfd.conftest import LogTimes
from tests.bfd.test_frr import FAST, NODE_ASN, ROUTER_ASN, frr_view, routes, start_frr, up_with_frr
from tests.bgp.conftest import run, until

pytestmark = pytest.mark.netns


def frr_profile(frr: Any, *lines: str) -> None:
    """Reconfigure FRR's BFD profile `p` (every neighbour's) at run time."""
    frr.vtysh("configure terminal", "bfd", "profile p", *lines)


@pytest.mark.parametrize("frr_detect_mult", [2, 10])
def test_frr_timers_asymmetric_then_changed_at_run_time(
    link: PeeringLink, frr_dir: Path, frr_detect_mult: int
) -> None:
    """FRR rx 300 / tx 200 against our 100 / 100 x 3: we send every max(100, 300) = 300 ms,
    detect in FRR's multiplier x max(100, 200) ms; FRR's view shows our timers. Then FRR slows
    its transmit interval to 600 ms: it polls, we answer Final, and only then (RFC 5880
    section 6.8.3) does it send at the slower rate, which we count."""
    node, peer = link.node_v4, link.router_v4
    frr = start_frr(
        link,
        frr_dir,
        node,
        bfd_transmit_ms=200,
        bfd_receive_ms=300,
        bfd_detect_mult=frr_detect_mult,
    )

    async def scenario() -> None:
        sessions, bfd = await up_with_frr(link, frr, peer, node, FAST)
        try:
            s = bfd.session
            await until(lambda: not s.polling and s.remote_desired_tx == 200_000, 20, "fast")
            assert s.transmit_interval == 300_000
            assert s.detection_time == pytest.approx(frr_detect_mult * 0.2)
            view = await frr_view(frr, node, "remote-transmit-interval", 100, "FRR sees our timers")
            assert (view["remote-receive-interval"], view["remote-detect-multiplier"]) == (100, 3)
            assert (view["transmit-interval"], view["receive-interval"]) == (200, 300)
            assert view["detect-multiplier"] == frr_detect_mult

            await asyncio.to_thread(frr_profile, frr, "transmit-interval 600")
            await until(lambda: s.remote_desired_tx == 600_000, 10, "FRR's poll with 600 ms")
            # FRR takes the slower rate only after our Final: then at most one packet per
            # 0.75 x 600 ms (+1 for a window edge)
            await asyncio.sleep(1.0)
            before, started = s.counters.packets_in, time.monotonic()
            await asyncio.sleep(2.0)
            got, took = s.counters.packets_in - before, time.monotonic() - started
            assert got <= took / 0.45 + 1, (got, took)
            assert s.detection_time == pytest.approx(frr_detect_mult * 0.6)
            assert s.state is State.UP and s.counters.down_events == 0
            view = await asyncio.to_thread(frr.bfd_peer, node)
            assert view["status"] == "up" and view["transmit-interval"] == 600
        finally:
            await sessions.close_all()

    run(scenario())


def test_frr_shutdown_is_admin_down_and_our_bgp_stays(
    link: PeeringLink, frr_dir: Path, log_times: LogTimes
) -> None:
    """FRR shuts its BFD session down: its AdminDown takes ours Down with diag 3 (neighbor
    signaled down) but does not drop our BGP session (RFC 5882 section 3.2); `no shutdown`
    brings BFD Up again."""
    node, peer = link.node_v4, link.router_v4
    frr = start_frr(link, frr_dir, node, bfd_transmit_ms=100, bfd_receive_ms=100)

    async def scenario() -> None:
        sessions, bfd = await up_with_frr(link, frr, peer, node, FAST)
        try:
            s = bfd.session
            started = time.monotonic()
            await asyncio.to_thread(frr_profile, frr, "shutdown")
            await until(lambda: s.state is State.DOWN, 10, "our session Down")
            assert s.local_diag is Diag.NEIGHBOR_SIGNALED_DOWN
            await asyncio.sleep(1.5)  # several detection times
            assert log_times.first("dropping the session", started) is None
            await asyncio.to_thread(frr_profile, frr, "no shutdown")
            await until(lambda: s.state is State.UP, 20, "our session Up again")
            assert s.counters.up_events == 2 and s.counters.down_events == 1
            await until(lambda: frr.bfd_peer(node).get("status") == "up", 20, "FRR's Up")
        finally:
            await sessions.close_all()

    run(scenario())


def test_passive_frr_recreating_its_session_after_admin_down(
    link: PeeringLink, frr_dir: Path
) -> None:
    """FRR (passive) shuts its session down (AdminDown), deletes it and creates a new one (a
    new discriminator): ours, Down since the AdminDown, comes Up with the new one. (FRR 8.4's
    new session speaks first although passive, so this passes even when our packets still
    name the old discriminator; that rule, RFC 5880 section 6.8.1, is test_session.py's.)"""
    node, peer = link.node_v4, link.router_v4
    frr = start_frr(link, frr_dir, node, bfd_transmit_ms=100, bfd_receive_ms=100, bfd_passive=True)

    async def scenario() -> None:
        sessions, bfd = await up_with_frr(link, frr, peer, node, FAST)
        try:
            s = bfd.session
            old = s.remote_discriminator
            await asyncio.to_thread(frr_profile, frr, "shutdown")
            await until(lambda: s.state is State.DOWN, 10, "our session Down")
            await asyncio.to_thread(frr.configure, f"no neighbor {node} bfd")
            await asyncio.to_thread(frr_profile, frr, "no shutdown")
            await asyncio.to_thread(
                frr.configure, f"neighbor {node} bfd", f"neighbor {node} bfd profile p"
            )
            await until(lambda: s.state is State.UP, 20, "Up with FRR's new session")
            assert s.remote_discriminator != old
            await until(lambda: frr.bfd_peer(node).get("status") == "up", 20, "FRR's Up")
        finally:
            await sessions.close_all()

    run(scenario())


def test_two_peers_two_profiles_and_one_removed(link: PeeringLink, frr_dir: Path) -> None:
    """Two config peers (FRR's IPv4 and IPv6 addresses) with different profiles: each BFD
    session runs its own profile's timers as FRR sees them; removing the IPv6 peer from the
    config ends its BFD session with AdminDown and leaves the IPv4 one untouched."""
    frr = start_frr(
        link, frr_dir, link.node_v4, link.node_v6, bfd_transmit_ms=100, bfd_receive_ms=100
    )
    both = two_peers_config(link, with_v6=True)

    async def scenario() -> None:
        sessions = PeerSessions("node-1", routes, host=LocalHost(link.node.name))
        try:
            await sessions.sync(parse_config(both, BgpType.NATIVE), {})
            for session in sessions.sessions.values():
                await session.wait_established(30)
            await until(lambda: len(sessions.bfd) == 2, 10, "two BFD sessions")
            by_address = {str(b.peer): b for _, b in sessions.bfd.values()}
            v4, v6 = by_address[link.router_v4], by_address[link.router_v6]
            want = {link.node_v4: (120, 110, 3), link.node_v6: (200, 300, 5)}
            for node, timers in want.items():

                def seen(
                    node: str = node, timers: tuple[int, int, int] = timers
                ) -> tuple[int, int, int] | None:
                    v = frr.bfd_peer(node)
                    got = (
                        v.get("remote-transmit-interval"),
                        v.get("remote-receive-interval"),
                        v.get("remote-detect-multiplier"),
                    )
                    return got if v.get("status") == "up" and got == timers else None

                await until(seen, 20, f"FRR sees {node}'s profile")
            # FRR sends every 100 ms: we detect in 3 x max(our rx, 100 ms)
            await until(lambda: not v4.session.polling and not v6.session.polling, 10, "polls")
            assert v4.session.detection_time == pytest.approx(3 * 0.11)
            assert v6.session.detection_time == pytest.approx(3 * 0.3)

            await sessions.sync(
                parse_config(two_peers_config(link, with_v6=False), BgpType.NATIVE), {}
            )
            assert [b for _, b in sessions.bfd.values()] == [v4]
            down = await frr_view(
                frr, link.node_v6, "status", "down", "FRR's IPv6 BFD session down", 10
            )
            assert down["remote-diagnostic"] == "administratively down", down
            await asyncio.sleep(1.0)
            assert v4.session.state is State.UP and v4.session.counters.down_events == 0
            assert frr.bfd_peer(link.node_v4).get("status") == "up"
        finally:
            await sessions.close_all()

    run(scenario())


def two_peers_config(link: PeeringLink, *, with_v6: bool) -> str:
    peers = [(link.router_v4, "a")] + ([(link.router_v6, "b")] if with_v6 else [])
    text = "peers:\n"
    for address, profile in peers:
        text += (
            f"- peer-address: {address}\n  peer-asn: {ROUTER_ASN}\n  my-asn: {NODE_ASN}\n"
            f"  hold-time: 30s\n  bfd-profile: {profile}\n"
        )
    return text + (
        "bfd-profiles:\n"
        "- name: a\n  transmit-interval: 120\n  receive-interval: 110\n"
        "- name: b\n  transmit-interval: 200\n  receive-interval: 300\n  detect-multiplier: 5\n"
        "address-pools:\n- name: p\n  protocol: bgp\n  addresses: [198.51.100.0/24]\n"
    )

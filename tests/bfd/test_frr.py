"""Native BFD against FRR's bfdd in namespaces: the session comes Up with the timers both sides
negotiate (FRR's own view, `show bfd peers json`), our BGP session drops within the detection
time when FRR's BFD packets stop, and FRR drops its BGP session within its detection time when
ours stop (`neighbor X bfd`). Timings here carry wide margins for a loaded machine; the
measured figures are bench/bgp_crash.py's."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from pathlib import Path
from typing import Any

import pytest

from metallb_lab.netns import Netns
from metallb_lab.routers import FrrBfdRouter, Neighbor, PeeringLink
from metallb_py.bfd.packet import State
from metallb_py.bfd.transport import BfdPeer
from metallb_py.bgp.host import LocalHost
from metallb_py.config import BgpType, Config, parse_config
from metallb_py.speaker.bgp_sessions import PeerSessions
from metallb_py.speaker.decision import AdvertisedRoute
from tests.bfd.conftest import LogTimes
from tests.bgp.conftest import nft, run, until

pytestmark = pytest.mark.netns

NODE_ASN, ROUTER_ASN = 64512, 64500
FAST = "  transmit-interval: 100\n  receive-interval: 100\n  detect-multiplier: 3\n"
"""100 ms x 3 both ways, as FRR's profile in these tests."""
DETECTION_MARGIN = 1.0
"""Seconds allowed beyond the detection time (scheduling on a busy 2-core machine)."""


def config_text(peer_address: str, profile: str, *, multihop: bool = False) -> str:
    return f"""\
peers:
- peer-address: {peer_address}
  peer-asn: {ROUTER_ASN}
  my-asn: {NODE_ASN}
  hold-time: 30s
  bfd-profile: fast
  ebgp-multihop: {str(multihop).lower()}
bfd-profiles:
- name: fast
{profile}
address-pools:
- name: p
  protocol: bgp
  addresses: [198.51.100.0/24]
"""


def routes() -> list[AdvertisedRoute]:
    return [AdvertisedRoute(ipaddress.ip_network("198.51.100.10/32"), 0, ())]


def start_frr(
    link: PeeringLink, frr_dir: Path, *addresses: str, multihop: bool = False, **bfd: Any
) -> FrrBfdRouter:
    """FRR with BFD (profile `p`: `bfd`'s settings) for a neighbour at each of `addresses`."""
    router = FrrBfdRouter(
        link.topo,
        link.router,
        frr_dir / "frr",
        ROUTER_ASN,
        link.router_v4,
        [Neighbor(a, NODE_ASN, hold_time=30, bfd=True, multihop=multihop) for a in addresses],
        **bfd,
    )
    router.start()
    return router


async def open_speaker(link: PeeringLink, config: Config) -> tuple[PeerSessions, BfdPeer]:
    """The speaker's sessions for `config` in the node's namespace, its one BGP session
    Established, and the BFD session beside it (closed again if that fails)."""
    sessions = PeerSessions("node-1", routes, host=LocalHost(link.node.name))
    try:
        await sessions.sync(config, {})
        (session,) = sessions.sessions.values()
        await session.wait_established(30)
        for _ in range(100):  # BFD starts once BGP is Established (docs/bgp.md, "BFD")
            if sessions.bfd:
                break
            await asyncio.sleep(0.01)
        (bfd,) = [b for _, b in sessions.bfd.values()]
    except BaseException:
        await sessions.close_all()
        raise
    return sessions, bfd


async def frr_view(
    frr: FrrBfdRouter, node: str, key: str, value: Any, what: str, timeout: float = 20
) -> dict[str, Any]:
    """FRR's view of its BFD session to `node` (`show bfd peers json`) once `key` is `value`."""
    view: dict[str, Any] = await until(
        lambda: v if (v := frr.bfd_peer(node)).get(key) == value else {}, timeout, what
    )
    return view


async def up_with_frr(
    link: PeeringLink, frr: FrrBfdRouter, peer: str, node: str, profile: str
) -> tuple[PeerSessions, BfdPeer]:
    """`open_speaker` with `profile`, and FRR's BFD session Up."""
    config = parse_config(config_text(peer, profile), BgpType.NATIVE)
    sessions, bfd = await open_speaker(link, config)
    try:
        await until(lambda: frr.bfd_peer(node).get("status") == "up", 20, "FRR's BFD session up")
    except BaseException:
        await sessions.close_all()
        raise
    return sessions, bfd


@pytest.mark.parametrize("family", [4, 6])
def test_up_with_the_negotiated_timers(link: PeeringLink, frr_dir: Path, family: int) -> None:
    """We ask 200 ms tx / 100 ms rx, detect 3; FRR 300 ms / 150 ms, detect 4. Each side sends
    at max(its tx, the other's rx) and detects at the other's multiplier times
    max(its rx, the other's tx)."""
    node, peer = (link.node_v4, link.router_v4) if family == 4 else (link.node_v6, link.router_v6)
    frr = start_frr(
        link,
        frr_dir,
        node,
        bfd_transmit_ms=300,
        bfd_receive_ms=150,
        bfd_detect_mult=4,
    )
    profile = "  transmit-interval: 200\n  receive-interval: 100\n  detect-multiplier: 3\n"

    async def scenario() -> None:
        sessions, bfd = await up_with_frr(link, frr, peer, node, profile)
        try:

            def settled() -> dict[str, Any]:
                view = frr.bfd_peer(node)
                # FRR shows the peer's timers once our poll sequence brought them in
                return view if view.get("remote-transmit-interval") == 200 else {}

            view = await until(settled, 20, "FRR sees our fast timers")
            assert view["status"] == "up"
            assert view["remote-receive-interval"] == 100
            assert view["remote-detect-multiplier"] == 3
            assert (view["transmit-interval"], view["receive-interval"]) == (300, 150)
            s = bfd.session
            assert s.state is State.UP
            assert s.remote_discriminator == view["id"]
            assert view["remote-id"] == s.my_discriminator
            assert s.transmit_interval == 200_000  # max(our 200 ms, FRR's rx 150 ms)
            assert s.detection_time == pytest.approx(4 * 0.3)  # FRR's 4 x max(100, 300) ms
            state = await asyncio.to_thread(frr.neighbor_state, node)
            assert state == "Established"
            (stats,) = sessions.bfd_stats()
            assert stats.peer == peer and stats.up and stats.up_events == 1
            counters = await asyncio.to_thread(frr.json, "show bfd peers counters json")
            (theirs,) = [c for c in counters if c.get("peer") == node]
            # what FRR counts from us and what we count from FRR, read a moment apart
            assert abs(theirs["control-packet-input"] - stats.control_packets_out) <= 5
            assert abs(theirs["control-packet-output"] - stats.control_packets_in) <= 5
        finally:
            await sessions.close_all()
        # AdminDown on close: FRR's view says the peer went down on purpose
        down = await until(
            lambda: frr.bfd_peer(node).get("status") in ("down", "shutdown"), 10, "FRR down"
        )
        assert down

    run(scenario())


@pytest.mark.parametrize("how", ["nft", "kill-bfdd"])
def test_our_bgp_drops_within_the_detection_time(
    link: PeeringLink, frr_dir: Path, log_times: LogTimes, how: str
) -> None:
    """FRR's BFD packets stop (dropped by nftables in its namespace, or its bfdd killed): our
    session goes Down after the detection time (diag 1) and drops the BGP session."""
    node, peer = link.node_v4, link.router_v4
    frr = start_frr(link, frr_dir, node, bfd_transmit_ms=100, bfd_receive_ms=100)

    async def scenario() -> None:
        sessions, bfd = await up_with_frr(link, frr, peer, node, FAST)
        try:
            await until(lambda: bfd.session.detection_time < 0.5, 20, "fast timers in force")
            detection = bfd.session.detection_time
            assert detection == pytest.approx(0.3)
            started = time.monotonic()
            if how == "nft":
                await asyncio.to_thread(drop_bfd_from, link.router, 3784)
            else:
                await asyncio.to_thread(frr.stop_helper, "bfdd")
            dropped: float = await until(
                lambda: log_times.first("dropping the session", started) or 0.0, 10, "BGP dropped"
            )
            assert dropped - started < detection + DETECTION_MARGIN
            went_down = log_times.first("UP -> DOWN", started)
            assert went_down is not None and went_down <= dropped
            assert bfd.session.local_diag == 1  # control detection time expired
        finally:
            await sessions.close_all()

    run(scenario())


def test_frr_drops_bgp_within_its_detection_time(link: PeeringLink, frr_dir: Path) -> None:
    """The node goes silent (everything dropped in its namespace: no FIN, no carrier change,
    like a hung node); FRR's bfdd notices within 3 x 100 ms and bgpd drops the session, long
    before the 30 s hold time."""
    node, peer = link.node_v4, link.router_v4
    frr = start_frr(link, frr_dir, node, bfd_transmit_ms=100, bfd_receive_ms=100)

    async def scenario() -> None:
        sessions, _ = await up_with_frr(link, frr, peer, node, FAST)
        try:
            await until(
                lambda: frr.bfd_peer(node).get("remote-transmit-interval") == 100,
                20,
                "FRR sees our fast timers",
            )
            started = time.time()
            await asyncio.to_thread(silence, link.node)
            await until(
                lambda: frr.neighbor_state(node) != "Established", 10, "FRR drops the session"
            )
            took = time.time() - started
            assert took < 0.3 + DETECTION_MARGIN + 0.5  # + the vtysh polling
            info = await asyncio.to_thread(frr.neighbor, node)
            assert info.get("lastNotificationReason") == "Cease/BFD Down", info
        finally:
            await sessions.close_all()

    run(scenario())


def drop_bfd_from(ns: Netns, port: int) -> None:
    nft(
        ns,
        f"""table inet mlbt_bfd {{
  chain out {{ type filter hook output priority 0; udp dport {port} drop; }}
}}
""",
    )


def silence(ns: Netns) -> None:
    nft(
        ns,
        """table inet mlbt_silence {
  chain in { type filter hook input priority 0; policy drop; }
  chain out { type filter hook output priority 0; policy drop; }
}
""",
    )


def test_a_profile_changed_at_run_time_reaches_frr_without_a_flap(
    link: PeeringLink, frr_dir: Path
) -> None:
    """The same profile name with new values: the running session polls the new timers in
    (FRR shows them), stays Up, and the BGP session is untouched; removing the profile from
    the peer stops the BFD session with AdminDown."""
    node, peer = link.node_v4, link.router_v4
    frr = start_frr(link, frr_dir, node, bfd_transmit_ms=100, bfd_receive_ms=100)
    slow = "  transmit-interval: 300\n  receive-interval: 300\n"
    fast = "  transmit-interval: 120\n  receive-interval: 110\n"

    async def scenario() -> None:
        sessions, bfd = await up_with_frr(link, frr, peer, node, slow)
        try:
            (session,) = sessions.sessions.values()
            await until(
                lambda: frr.bfd_peer(node).get("remote-transmit-interval") == 300, 20, "slow"
            )
            await sessions.sync(parse_config(config_text(peer, fast), BgpType.NATIVE), {})
            assert [b for _, b in sessions.bfd.values()] == [bfd]  # the same session
            view = await frr_view(
                frr, node, "remote-transmit-interval", 120, "FRR sees the new timers"
            )
            assert view["remote-receive-interval"] == 110 and view["status"] == "up"
            assert bfd.session.counters.up_events == 1 and bfd.session.counters.down_events == 0
            assert session.stats.established_count == 1
            # the peer without a profile is another peer: its BGP session is replaced (Cease),
            # its BFD session ends with AdminDown, which FRR reports as the remote's diagnostic
            without = config_text(peer, fast).replace("  bfd-profile: fast\n", "")
            await sessions.sync(parse_config(without, BgpType.NATIVE), {})
            assert sessions.bfd == {}
            down = await frr_view(frr, node, "status", "down", "FRR's BFD down", 10)
            assert down["remote-diagnostic"] == "administratively down", down
        finally:
            await sessions.close_all()

    run(scenario())


def test_our_admin_down_is_not_a_failure_for_our_bgp(
    link: PeeringLink, frr_dir: Path, log_times: LogTimes
) -> None:
    """Stopping BFD sends AdminDown (FRR shows it as the remote's diagnostic) and our glue does
    not drop our BGP session for our own AdminDown. (FRR 8.4 itself sometimes answers a peer's
    AdminDown with Cease/BFD Down, sometimes not, so the speaker sends it only after its BGP
    sessions are closed: `PeerSessions.close_all`.)"""
    node, peer = link.node_v4, link.router_v4
    frr = start_frr(link, frr_dir, node, bfd_transmit_ms=100, bfd_receive_ms=100)

    async def scenario() -> None:
        sessions, bfd = await up_with_frr(link, frr, peer, node, FAST)
        try:
            started = time.monotonic()
            sessions.stop_bfd()
            assert bfd.session.state is State.ADMIN_DOWN and sessions.bfd == {}
            down = await frr_view(frr, node, "status", "down", "FRR's BFD down", 10)
            assert down["remote-diagnostic"] == "administratively down", down
            await asyncio.sleep(0.5)
            assert log_times.first("dropping the session", started) is None
        finally:
            await sessions.close_all()

    run(scenario())

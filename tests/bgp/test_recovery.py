"""Against FRR: the session recovers from a peer restart, a peer shutdown (Cease) and a silent
peer (hold timer, via an nftables DROP rule); TCP MD5, source address, TTL, ROUTE-REFRESH,
difference-only updates, Cease on close, and bad input (NOTIFICATION at OPEN, wrong ASN)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import signal
from pathlib import Path

import pytest

from metallb_lab import netns
from metallb_lab.routers import FrrRouter, Neighbor, PeeringLink
from metallb_py.bgp import messages as m
from metallb_py.config.model import Community, Peer
from tests.bgp.conftest import NET, ROUTES, FastSleep, nft, run, session, start_router, until

pytestmark = pytest.mark.netns
ip = ipaddress.ip_address
NODE = "192.0.2.11"


def frr(link: PeeringLink, tmp_path: Path, *neighbors: Neighbor, asn: int = 64500) -> FrrRouter:
    router = start_router("frr", link, tmp_path, asn, neighbors or [Neighbor(NODE, 64512)])
    assert isinstance(router, FrrRouter)
    return router


def frr_prefixes(router: FrrRouter) -> set[str]:
    return set(router.routes("ipv4")) | set(router.routes("ipv6"))


ALL = {str(r.prefix) for r in ROUTES}
PEER = Peer(64512, 64500, ip("192.0.2.1"))


def test_peer_restart(link: PeeringLink, tmp_path: Path) -> None:
    router = frr(link, tmp_path)

    async def main() -> None:
        sleep = FastSleep()
        s = session(link, PEER, sleep=sleep)
        s.set_routes(ROUTES)
        await s.wait_flushed(30)
        await until(lambda: frr_prefixes(router) == ALL, 20, "routes in FRR")
        await asyncio.to_thread(router.stop, signal.SIGKILL)
        await until(lambda: not s.stats.up, 10, "session down after the peer died")
        await until(lambda: len(sleep.delays) >= 3, 20, "reconnect attempts")
        await asyncio.to_thread(router.start)
        await s.wait_flushed(30)
        assert s.stats.established_count == 2
        await until(lambda: frr_prefixes(router) == ALL, 20, "routes back in FRR")
        # After the drop the first retry is immediate, then the backoff grows.
        assert sleep.delays[:3] == [0, 1, 2]
        await s.close()

    run(main())


def test_peer_shutdown_cease(
    link: PeeringLink, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="metallb_py.bgp")
    router = frr(link, tmp_path)

    async def main() -> None:
        s = session(link, PEER, sleep=FastSleep())
        s.set_routes(ROUTES)
        await s.wait_flushed(30)
        await until(lambda: frr_prefixes(router) == ALL, 20, "routes in FRR")
        await asyncio.to_thread(router.configure, f"neighbor {NODE} shutdown")
        await until(lambda: not s.stats.up, 10, "session down after Cease")
        await until(lambda: not frr_prefixes(router), 10, "FRR dropped the routes")
        await asyncio.to_thread(router.configure, f"no neighbor {NODE} shutdown")
        await s.wait_flushed(30)
        await until(lambda: frr_prefixes(router) == ALL, 20, "routes back in FRR")
        assert s.stats.established_count == 2
        await s.close()

    run(main())
    assert "peer sent NOTIFICATION 6/2 Cease / Administrative Shutdown" in caplog.text


def test_hold_timer_expiry_on_a_silenced_peer(
    link: PeeringLink, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="metallb_py.bgp")
    router = frr(link, tmp_path, Neighbor(NODE, 64512, hold_time=9))
    silence = (
        "table inet mlbt_silence {\n"
        "  chain out { type filter hook output priority 0; policy accept;\n"
        f"    ip daddr {NODE} tcp sport 179 drop; }}\n"
        "}\n"
    )

    async def main() -> None:
        peer = Peer(64512, 64500, ip("192.0.2.1"), hold_time=3)
        s = session(link, peer, sleep=FastSleep(), connect_timeout=2.0)
        s.set_routes(ROUTES)
        await s.wait_flushed(30)
        await until(lambda: frr_prefixes(router) == ALL, 20, "routes in FRR")
        loop = asyncio.get_running_loop()
        silenced_at = loop.time()
        await asyncio.to_thread(nft, link.router, silence)
        await until(lambda: not s.stats.up, 10, "hold timer expiry")
        waited = loop.time() - silenced_at
        assert 2.0 <= waited <= 6.0, waited  # negotiated hold 3 s, keepalives every 1 s
        await asyncio.to_thread(nft, link.router, "delete table inet mlbt_silence\n")
        await s.wait_flushed(30)
        assert s.stats.established_count == 2
        await until(lambda: frr_prefixes(router) == ALL, 20, "routes back in FRR")
        await s.close()

    run(main())
    # The NOTIFICATION itself cannot reach a peer whose ACKs are dropped (it waits behind
    # unacknowledged keepalives); test_fuzz_peer checks the bytes sent to a silent peer.
    assert "sent NOTIFICATION 4/0 Hold Timer Expired" in caplog.text


def test_md5_password(link: PeeringLink, tmp_path: Path) -> None:
    router = frr(link, tmp_path, Neighbor(NODE, 64512, password="s3cret"))

    async def main() -> None:
        wrong = session(
            link,
            Peer(64512, 64500, ip("192.0.2.1"), password="wrong"),
            sleep=FastSleep(),
            connect_timeout=1.0,
        )
        await until(lambda: "timed out" in wrong.stats.last_error, 15, "wrong key times out")
        await wrong.close()
        none = session(link, PEER, sleep=FastSleep(), connect_timeout=1.0)
        await until(lambda: "timed out" in none.stats.last_error, 15, "missing key times out")
        await none.close()
        assert wrong.stats.established_count == none.stats.established_count == 0
        assert router.neighbor_state(NODE) != "Established"

        right = session(link, Peer(64512, 64500, ip("192.0.2.1"), password="s3cret"))
        right.set_routes(ROUTES)
        await right.wait_flushed(30)
        await until(lambda: frr_prefixes(router) == ALL, 20, "routes in FRR over MD5")
        await right.close()

    run(main())


def test_source_address_and_its_fallback(
    link: PeeringLink, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="metallb_py.bgp")
    router = frr(link, tmp_path, Neighbor("192.0.2.12", 64512), Neighbor(NODE, 64513))

    async def main() -> None:
        bound = session(link, Peer(64512, 64500, ip("192.0.2.1"), source_address=ip("192.0.2.12")))
        bound.set_routes(ROUTES[:1])
        await bound.wait_flushed(30)
        await until(lambda: router.neighbor_state("192.0.2.12") == "Established", 10, ".12 up")
        [path] = router.route_detail("198.51.100.0/24")
        assert path["nexthops"][0]["ip"] == "192.0.2.12"  # the bound address is the next hop
        # Not a local address: logged, and the kernel's choice (.11) is used instead.
        fallback = session(
            link, Peer(64513, 64500, ip("192.0.2.1"), source_address=ip("192.0.2.99"))
        )
        await fallback.wait_established(30)
        await until(lambda: router.neighbor_state(NODE) == "Established", 10, ".11 up")
        await bound.close()
        await fallback.close()

    run(main())
    assert "source-address 192.0.2.99 is not a local address" in caplog.text


# Only SYN, data and FIN segments count: the last ACK (TIME_WAIT) and resets for a socket
# already closed come from the kernel's control socket with the default TTL, not from ours.
TTL_COUNTERS = (
    "table inet mlbt_ttl {\n"
    "  chain in { type filter hook input priority 0; policy accept;\n"
    f"    ip saddr {NODE} tcp dport 179 tcp flags & (syn | fin | psh) != 0 ip ttl 1 counter\n"
    f"    ip saddr {NODE} tcp dport 179 tcp flags & (syn | fin | psh) != 0 ip ttl 64 counter\n"
    f"    ip saddr {NODE} tcp dport 179 tcp flags & (syn | fin | psh) != 0 ip ttl 255 counter\n"
    "  }\n}\n"
)


def ttl_counts(link: PeeringLink) -> dict[int, int]:
    text = nft(link.router, "list table inet mlbt_ttl\n")
    return {
        int(ttl): int(packets)
        for ttl, packets in re.findall(r"ip ttl (\d+) counter packets (\d+)", text)
    }


@pytest.mark.parametrize(
    ("my_asn", "multihop", "ttl"),
    [(64512, False, 1), (64512, True, 255), (64500, False, 64)],
    ids=["ebgp-single-hop", "ebgp-multihop", "ibgp-default"],
)
def test_ttl(link: PeeringLink, tmp_path: Path, my_asn: int, multihop: bool, ttl: int) -> None:
    frr(link, tmp_path, Neighbor(NODE, my_asn))
    nft(link.router, TTL_COUNTERS)

    async def main() -> None:
        s = session(link, Peer(my_asn, 64500, ip("192.0.2.1"), ebgp_multihop=multihop))
        await s.wait_flushed(30)
        await s.close()

    run(main())
    counts = ttl_counts(link)
    assert counts[ttl] > 0
    assert sum(counts.values()) == counts[ttl], counts


def test_route_refresh_resends(
    link: PeeringLink, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="metallb_py.bgp")
    router = frr(link, tmp_path)

    async def main() -> None:
        s = session(link, PEER)
        s.set_routes(ROUTES)
        await s.wait_flushed(30)
        await until(lambda: frr_prefixes(router) == ALL, 20, "routes in FRR")
        before = s.stats.updates_sent
        await asyncio.to_thread(router.vtysh, f"clear bgp ipv4 unicast {NODE} soft in")
        # Two IPv4 attribute groups in ROUTES: two packed UPDATEs come again.
        await until(lambda: s.stats.updates_sent == before + 2, 10, "IPv4 routes re-sent")
        assert frr_prefixes(router) == ALL
        assert s.stats.established_count == 1
        await s.close()

    run(main())
    assert "ROUTE-REFRESH for AFI 1, re-sending" in caplog.text


def test_only_differences_are_sent_and_close_sends_cease(link: PeeringLink, tmp_path: Path) -> None:
    router = frr(link, tmp_path)

    async def main() -> None:
        s = session(link, PEER)
        s.set_routes(ROUTES)
        await s.wait_flushed(30)
        assert s.stats.updates_sent == 4 + 2  # four attribute groups, two End-of-RIB
        await until(lambda: frr_prefixes(router) == ALL, 20, "routes in FRR")
        changed = m.Route(NET("198.51.100.0/24"), 300, (Community(9),))
        added = m.Route(NET("203.0.113.8/32"), 300)
        new = [changed, added, *ROUTES[2:]]  # 203.0.113.7/32 removed
        s.set_routes(new)
        s.set_routes(new)  # setting the same set again sends nothing
        await s.wait_flushed(10)
        # /24 alone in its new group, /32 added to the plain group, one withdrawal.
        assert s.stats.updates_sent == 6 + 3
        want = {str(r.prefix) for r in new}
        await until(lambda: frr_prefixes(router) == want, 20, "FRR has the new set")
        [path] = router.route_detail("198.51.100.0/24")
        assert path["community"]["list"] == ["0:9"]
        await s.close()

    run(main())
    # FRR may write its log line a moment after our Cease (seen under load).
    cease = rf"received from neighbor {NODE}.* 6/3"
    assert netns.wait_for(lambda: re.search(cease, router.log_path.read_text()), 5, 0.1, "log")


def test_notification_at_open_and_wrong_asn(
    link: PeeringLink, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="metallb_py.bgp")
    # FRR expects AS 64513 from .11 but we are 64512: FRR answers our OPEN with 2/2.
    router = frr(link, tmp_path, Neighbor(NODE, 64513), Neighbor("192.0.2.12", 64512))

    async def main() -> None:
        sleep = FastSleep()
        refused = session(link, PEER, sleep=sleep)
        await until(lambda: len(sleep.delays) >= 3, 20, "three refused attempts")
        assert not refused.stats.up
        assert "2/2" in refused.stats.last_error
        assert sleep.delays[:3] == [0, 1, 2]
        await refused.close()
        # We expect AS 64501 but FRR is 64500: we send 2/2 Bad Peer AS.
        sleep2 = FastSleep()
        wrong = session(
            link,
            Peer(64512, 64501, ip("192.0.2.1"), source_address=ip("192.0.2.12")),
            sleep=sleep2,
        )
        await until(lambda: len(sleep2.delays) >= 2, 20, "two attempts")
        assert not wrong.stats.up and wrong.stats.established_count == 0
        await wrong.close()

    run(main())
    assert "peer sent NOTIFICATION 2/2 OPEN Message Error / Bad Peer AS" in caplog.text
    assert (
        "sent NOTIFICATION 2/2 OPEN Message Error / Bad Peer AS: peer announced AS 64500"
        in caplog.text
    )
    assert re.search(r"received from neighbor 192\.0\.2\.12.* 2/2", router.log_path.read_text())

"""Graceful restart against FRR and BIRD in namespaces, one session object per speaker process:
the capability negotiated as the daemon reports it, our routes kept (stale) when the session is
closed gracefully (no NOTIFICATION) or the connection just dies, and after the next session's
End-of-RIB only what that session announced is left. Without graceful restart (ours not
configured, or a Cease) the routes go at once. docs/bgp.md, "Graceful restart"."""

from __future__ import annotations

import asyncio
import ipaddress
import re
from pathlib import Path

import pytest

from metallb_lab.routers import BirdRouter, FrrRouter, Neighbor, PeeringLink
from metallb_py.bgp import messages as m
from metallb_py.config.model import Peer
from tests.bgp.conftest import NET, run, session, start_router, until

pytestmark = pytest.mark.netns
NODE = "192.0.2.11"
KEPT = m.Route(NET("203.0.113.7/32"))
DROPPED = m.Route(NET("198.51.100.0/24"))
KEPT_V6 = m.Route(NET("2001:db8:6::1/128"))


def gr_peer(restart_time: int | None = 120) -> Peer:
    return Peer(64512, 64500, ipaddress.ip_address("192.0.2.1"), graceful_restart_time=restart_time)


def frr_prefixes(router: FrrRouter) -> dict[str, bool]:
    """prefix -> stale, over both families."""
    out = {}
    for afi in ("ipv4", "ipv6"):
        for prefix, paths in router.routes(afi).items():
            out[prefix] = any(p.get("stale") for p in paths)
    return out


class GracefulBird(BirdRouter):
    """BIRD with `graceful restart on` for every protocol (its helper side is on by default
    too; this makes the test independent of that default)."""

    def config_text(self) -> str:
        return re.sub(r"(  local as \d+;\n)", r"\1  graceful restart on;\n", super().config_text())


def bird_prefixes(router: BirdRouter) -> set[str]:
    return set(router.routes())


def test_frr_keeps_stale_routes_through_a_graceful_restart(
    link: PeeringLink, tmp_path: Path
) -> None:
    router = start_router("frr", link, tmp_path, 64500, [Neighbor(NODE, 64512)])
    assert isinstance(router, FrrRouter)

    async def main() -> None:
        old = session(link, gr_peer(300))
        old.set_routes([KEPT, DROPPED, KEPT_V6])
        await old.wait_flushed(30)
        await until(lambda: len(frr_prefixes(router)) == 3, 20, "routes in FRR")
        info = await asyncio.to_thread(router.neighbor, NODE)
        caps = info["neighborCapabilities"]
        assert caps["gracefulRestart"] == "advertisedAndReceived"
        assert caps["gracefulRestartRemoteTimerMsecs"] == 300_000
        gr = info["gracefulRestartInfo"]
        assert gr["rBit"] is True  # a new session object: Restart State set
        assert gr["timers"]["receivedRestartTimer"] == 300
        assert gr["ipv4Unicast"]["fBit"] is True and gr["ipv6Unicast"]["fBit"] is True
        assert gr["ipv4Unicast"]["endOfRibStatus"]["endOfRibRecv"] is True
        assert gr["ipv6Unicast"]["endOfRibStatus"]["endOfRibRecv"] is True

        await old.close(m.CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, graceful=True)
        await until(lambda: router.neighbor_state(NODE) != "Established", 10, "session down")
        # The gap of a restart: FRR keeps every route, marked stale.
        await asyncio.sleep(1.0)
        stale = await asyncio.to_thread(frr_prefixes, router)
        assert stale == {str(r.prefix): True for r in (KEPT, DROPPED, KEPT_V6)}
        assert "NOTIFICATION" not in router.log_tail(5)

        new = session(link, gr_peer(300))  # the restarted process
        new.set_routes([KEPT, KEPT_V6])
        await new.wait_flushed(30)
        # After its End-of-RIB: what it announced, fresh; what it did not, gone.
        want = {str(KEPT.prefix): False, str(KEPT_V6.prefix): False}
        await until(lambda: frr_prefixes(router) == want, 20, "stale route removed after EoR")
        await new.close()
        await until(lambda: not frr_prefixes(router), 10, "Cease withdraws everything")

    run(main())


def test_frr_keeps_routes_when_the_connection_just_dies(link: PeeringLink, tmp_path: Path) -> None:
    """A SIGKILLed speaker: the kernel closes its socket, no NOTIFICATION."""
    router = start_router("frr", link, tmp_path, 64500, [Neighbor(NODE, 64512)])
    assert isinstance(router, FrrRouter)

    async def main() -> None:
        old = session(link, gr_peer())
        old.set_routes([KEPT, DROPPED])
        await old.wait_flushed(30)
        await until(lambda: len(frr_prefixes(router)) == 2, 20, "routes in FRR")
        old.drop("the process died")  # abort: RST, no NOTIFICATION
        await asyncio.sleep(0)
        await old.close()  # the session object is gone with its process (nothing to send)
        await until(lambda: all(frr_prefixes(router).values()), 10, "routes stale")
        assert len(frr_prefixes(router)) == 2
        new = session(link, gr_peer())
        new.set_routes([KEPT])
        await new.wait_flushed(30)
        await until(
            lambda: frr_prefixes(router) == {str(KEPT.prefix): False}, 20, "stale one removed"
        )
        await new.close()

    run(main())


@pytest.mark.parametrize("ours", [None, 120], ids=["not-configured", "cease"])
def test_without_graceful_restart_frr_drops_the_routes_at_once(
    link: PeeringLink, tmp_path: Path, ours: int | None
) -> None:
    """Not configured: the old Cease on a graceful close; configured but closed with a Cease
    (the peer was removed from the config): the routes go too."""
    router = start_router("frr", link, tmp_path, 64500, [Neighbor(NODE, 64512)])
    assert isinstance(router, FrrRouter)

    async def main() -> None:
        s = session(link, gr_peer(ours))
        s.set_routes([KEPT])
        await s.wait_flushed(30)
        await until(lambda: len(frr_prefixes(router)) == 1, 20, "route in FRR")
        await s.close(m.CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, graceful=ours is None)
        await until(lambda: not frr_prefixes(router), 5, "route withdrawn at once")
        assert re.search(r"NOTIFICATION: received from neighbor \S+ 6/\d", router.log_tail(10))

    run(main())


def test_bird_keeps_stale_routes_through_a_graceful_restart(
    link: PeeringLink, tmp_path: Path
) -> None:
    router = GracefulBird(
        link.topo, link.router, tmp_path / "bird", 64500, link.router_v4, [Neighbor(NODE, 64512)]
    )
    router.start()
    neighbor = router.neighbors[0]

    async def main() -> None:
        old = session(link, gr_peer())
        old.set_routes([KEPT, DROPPED, KEPT_V6])
        await old.wait_flushed(30)
        want = {str(r.prefix) for r in (KEPT, DROPPED, KEPT_V6)}
        await until(lambda: bird_prefixes(router) == want, 20, "routes in BIRD")
        detail = await asyncio.to_thread(router.birdc, "show", "protocols", "all")
        assert re.search(r"Graceful restart\s", detail), detail  # the capability, both ways
        await old.close(m.CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, graceful=True)
        await until(lambda: router.protocol_state(neighbor) != "Established", 10, "down")
        await asyncio.sleep(1.0)
        assert bird_prefixes(router) == want  # kept through the gap
        new = session(link, gr_peer())
        new.set_routes([KEPT, KEPT_V6])
        await new.wait_flushed(30)
        await until(
            lambda: bird_prefixes(router) == {str(KEPT.prefix), str(KEPT_V6.prefix)},
            20,
            "stale route removed after End-of-RIB",
        )
        await new.close()
        await until(lambda: not bird_prefixes(router), 10, "Cease withdraws everything")

    run(main())

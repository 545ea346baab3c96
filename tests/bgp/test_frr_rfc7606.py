"""The case that was found from outside: FRR bgpd without zebra, on an IPv6-transport session
with IPv4 unicast activated, announces its IPv4 route with NEXT_HOP 0.0.0.0 (it has no IPv4
address of the session's interface without zebra). Before RFC 7606 handling the speaker sent
NOTIFICATION 3/8 and the session flapped about once a second; now the UPDATE is treated as a
withdrawal and the session stays up."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from pathlib import Path

import pytest

from metallb_lab.routers import FrrRouter, Neighbor, PeeringLink
from metallb_py.config.model import Peer
from tests.bgp.conftest import ROUTES, run, session, start_router, until

pytestmark = [pytest.mark.netns, pytest.mark.slow]
WATCH = 60.0
"""Seconds the session must stay up after FRR's UPDATE arrived."""


def test_frr_without_zebra_next_hop_0_0_0_0_keeps_the_session_up(
    link: PeeringLink, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="metallb_py.bgp")
    router = start_router(
        "frr",
        link,
        tmp_path,
        64500,
        [Neighbor(link.node_v6, 64512)],  # IPv4 and IPv6 unicast activated
        extra_config=(
            " address-family ipv4 unicast\n  network 198.51.100.0/24\n exit-address-family"
        ),
    )
    assert isinstance(router, FrrRouter)
    assert "-Z" in router.argv()  # bgpd without zebra

    async def main() -> None:
        s = session(link, Peer(64512, 64500, ipaddress.ip_address(link.router_v6)))
        s.set_routes(ROUTES)
        await s.wait_flushed(30)
        # FRR's IPv4 UPDATE arrives: the session counts it instead of resetting.
        await until(lambda: s.stats.malformed_updates >= 1, 20, "FRR's UPDATE handled")
        assert "NEXT_HOP 0.0.0.0" in s.stats.last_update_problem
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WATCH
        while loop.time() < deadline:  # bounded: WATCH seconds, one check a second
            assert s.stats.up and s.stats.established_count == 1, s.stats
            await asyncio.sleep(1.0)
        neighbor = await asyncio.to_thread(router.neighbor, link.node_v6)
        assert neighbor["bgpState"] == "Established"
        assert neighbor["connectionsEstablished"] == 1
        assert neighbor["connectionsDropped"] == 0
        assert neighbor["messageStats"]["notificationsRecv"] == 0
        # FRR took our routes of both families over the one IPv6 session.
        got = set(router.routes("ipv4")) | set(router.routes("ipv6"))
        assert got == {str(r.prefix) for r in ROUTES}
        await s.close()

    run(main(), timeout=WATCH + 60)
    assert "sent NOTIFICATION" not in caplog.text
    assert "Invalid NEXT_HOP Attribute: NEXT_HOP 0.0.0.0), handled by treat-as-withdraw" in (
        caplog.text
    )

"""Sessions with FRR, BIRD and GoBGP: eBGP and iBGP, 2- and 4-octet ASNs, IPv4 and IPv6
transport. Each daemon's own RIB must show the prefixes with the right next hop, AS path,
LOCAL_PREF (iBGP only) and communities; withdrawals must remove exactly the dropped routes."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from metallb_lab.routers import (
    BirdRouter,
    FrrRouter,
    GobgpRouter,
    Neighbor,
    PeeringLink,
    Router,
)
from metallb_py.config.model import Peer
from tests.bgp.conftest import ROUTES, run, session, start_router, until

pytestmark = pytest.mark.netns


@dataclass(frozen=True)
class Seen:
    """One prefix as a router shows it, normalised across daemons."""

    next_hop: str
    as_path: tuple[int, ...]
    local_pref: int | None
    communities: tuple[str, ...]


def frr_rib(router: FrrRouter) -> dict[str, Seen]:
    out = {}
    for afi in ("ipv4", "ipv6"):
        for prefix in router.routes(afi):
            paths = router.route_detail(prefix)
            if not paths:
                continue  # withdrawn between the two queries
            [path] = paths
            asns = tuple(a for seg in path["aspath"]["segments"] for a in seg["list"])
            out[prefix] = Seen(
                path["nexthops"][0]["ip"],
                asns,
                path.get("locPrf"),
                tuple(path.get("community", {}).get("list", [])),
            )
    return out


def bird_rib(router: BirdRouter) -> dict[str, Seen]:
    out = {}
    for prefix, attrs in router.routes().items():
        comms = tuple(
            c.strip("()").replace(",", ":") for c in attrs.get("community", "").split() if c
        )
        out[prefix] = Seen(
            attrs["next_hop"].split()[0],
            tuple(int(a) for a in attrs.get("as_path", "").split()),
            int(attrs["local_pref"]) if "local_pref" in attrs else None,
            comms,
        )
    return out


def gobgp_rib(router: GobgpRouter) -> dict[str, Seen]:
    out = {}
    for afi in ("ipv4", "ipv6"):
        for prefix, paths in router.routes(afi).items():
            attrs: dict[int, Any] = {a["type"]: a for a in paths[0]["attrs"]}
            hop = attrs[3]["nexthop"] if 3 in attrs else attrs[14]["nexthop"]
            asns = tuple(a for seg in attrs[2].get("as_paths", []) for a in seg["asns"])
            comms = tuple(
                f"{c >> 16}:{c & 0xFFFF}" for c in attrs.get(8, {}).get("communities", [])
            )
            out[prefix] = Seen(hop, asns, attrs[5]["value"] if 5 in attrs else None, comms)
    return out


def rib(router: Router) -> dict[str, Seen]:
    if isinstance(router, FrrRouter):
        return frr_rib(router)
    if isinstance(router, BirdRouter):
        return bird_rib(router)
    assert isinstance(router, GobgpRouter)
    return gobgp_rib(router)


@dataclass(frozen=True)
class Case:
    daemon: str
    my_asn: int
    peer_asn: int
    transport: int
    four_octet: bool = True

    @property
    def ibgp(self) -> bool:
        return self.my_asn == self.peer_asn

    def __str__(self) -> str:
        kind = "ibgp" if self.ibgp else "ebgp"
        width = "as4" if self.my_asn > 0xFFFF else "as2"
        peer = "" if self.four_octet else "-2octet-peer"
        return f"{self.daemon}-{kind}-{width}-v{self.transport}{peer}"


CASES = [
    Case("frr", 64512, 64500, 4),
    Case("frr", 4200000001, 4200000001, 6),
    Case("frr", 4200000001, 4200000002, 6),
    Case("frr", 4200000001, 64500, 4, four_octet=False),
    Case("bird", 4200000001, 64500, 4),
    Case("bird", 64512, 64512, 6),
    Case("bird", 64512, 64500, 6, four_octet=False),
    Case("gobgp", 64512, 64500, 6),
    Case("gobgp", 4200000001, 4200000001, 4),
]


def expected(case: Case) -> dict[str, Seen]:
    out = {}
    for route in ROUTES:
        if route.prefix.version == 6 and case.daemon == "frr" and not case.four_octet:
            continue  # FRR without capabilities speaks IPv4 unicast only
        if case.ibgp:
            path: tuple[int, ...] = ()
        elif case.my_asn > 0xFFFF and not case.four_octet:
            path = (23456,)  # AS_TRANS; the real AS travels in AS4_PATH
        else:
            path = (case.my_asn,)
        lp: int | None = route.localpref if case.ibgp else None
        if case.daemon == "bird" and not case.ibgp:
            lp = 100  # BIRD sets its default on import; ours must not be there
        hop = "192.0.2.11" if route.prefix.version == 4 else "2001:db8::11"
        out[str(route.prefix)] = Seen(hop, path, lp, tuple(str(c) for c in route.communities))
    return out


@pytest.mark.parametrize("case", CASES, ids=str)
def test_routes_arrive_with_the_right_attributes(
    case: Case, link: PeeringLink, tmp_path: Path
) -> None:
    node = link.node_v4 if case.transport == 4 else link.node_v6
    router_addr = link.router_v4 if case.transport == 4 else link.router_v6
    router = start_router(
        case.daemon,
        link,
        tmp_path,
        case.peer_asn,
        [Neighbor(node, case.my_asn, four_octet_as=case.four_octet)],
    )
    want = expected(case)

    async def main() -> None:
        peer = Peer(case.my_asn, case.peer_asn, ipaddress.ip_address(router_addr))
        s = session(link, peer)
        s.set_routes(ROUTES)
        await s.wait_established(30)
        await s.wait_flushed(10)
        assert s.stats.up
        assert s.stats.announced_prefixes == len(want)
        assert s.stats.pending_prefixes == len(ROUTES)
        got = await until(lambda: (r := rib(router)) == want and r, 20, f"{case} RIB")
        assert got == want

        # Withdraw the host routes (one IPv4, one IPv6): exactly those disappear.
        keep = [r for r in ROUTES if r.prefix.prefixlen not in (32, 128)]
        s.set_routes(keep)
        await s.wait_flushed(10)
        want_after = {k: v for k, v in want.items() if not k.endswith(("/32", "/128"))}
        await until(lambda: rib(router) == want_after, 20, f"{case} withdrawals")
        assert s.stats.announced_prefixes == len(want_after)
        await s.close()

    run(main())

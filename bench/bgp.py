"""BGP: how fast FRR learns and unlearns 10,000 IPv6 /128 routes from our speaker vs gobgpd.

    python -m bench.bgp [--routes 10000] [--rounds 5] [--json]

Same topology for both: a router namespace running FRR bgpd (AS 64500, passive) and a node
namespace (AS 64512) on one veth, IPv6 transport (2001:db8::1 <-> 2001:db8::11). Each
measurement starts a fresh FRR *after* the speaker already holds the routes, then times:

* hold: from the session coming up (FRR's own `%ADJCHANGE ... Up` log line, microsecond
  timestamps) to FRR reporting all routes received (`show bgp ipv6 unicast summary json`,
  polled back to back; the poll's midpoint is taken, its duration is printed as resolution);
* withdraw: from the withdrawal being initiated to FRR reporting 0 routes from the node.

Ours: a `BgpSession` with `set_routes()` done before FRR starts; withdrawal = `set_routes([])`.
gobgpd: its global RIB is loaded with the same routes (locally originated, next hop
2001:db8::11) through `gobgp mrt inject` before FRR starts; withdrawal = `gobgp global rib -a
ipv6 del all`, minus the gobgp CLI's own round trip, measured in the same run with a no-op
command. FRR's count of UPDATE messages received is recorded for both (packing shows there).
Needs root, FRR and gobgpd. Progress on stderr at least every 5 s; SIGTERM or SIGINT stops the
run and removes its namespaces and daemons (metallb_lab.signals).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import ipaddress
import json
import logging
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from metallb_lab import netns
from metallb_lab.progress import Progress
from metallb_lab.routers import (
    FrrRouter,
    GobgpRouter,
    Neighbor,
    PeeringLink,
    daemons_available,
    mrt_table_dump_v2,
)
from metallb_lab.signals import raise_if_stopping, run_stoppable
from metallb_py.bgp.host import LocalHost
from metallb_py.bgp.messages import Route
from metallb_py.bgp.session import BgpSession
from metallb_py.config.model import Peer

MY_ASN = 64512
ROUTER_ASN = 64500


def make_routes(n: int) -> list[Route]:
    base = int(ipaddress.IPv6Address("2001:db8:100::"))
    return [Route(ipaddress.IPv6Network((base + i, 128))) for i in range(n)]


def poll_until(check: Callable[[], bool], timeout: float) -> tuple[float, float]:
    """Call `check` back to back until true; returns (midpoint, duration) of the true call."""
    deadline = time.monotonic() + timeout
    while True:
        start = time.time()
        ok = check()
        end = time.time()
        if ok:
            return (start + end) / 2, end - start
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        raise_if_stopping()


def frr_up_time(router: FrrRouter, neighbor: str, timeout: float = 10.0) -> float:
    """Wall-clock time of FRR's `%ADJCHANGE: neighbor X ... Up` log line."""
    pattern = re.compile(
        r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d+) .*%ADJCHANGE: neighbor "
        + re.escape(neighbor)
        + r"\S* .*\bUp\b"
    )

    def find() -> float | None:
        for line in router.log_path.read_text(errors="replace").splitlines():
            match = pattern.match(line)
            if match:
                return dt.datetime.strptime(match.group(1), "%Y/%m/%d %H:%M:%S.%f").timestamp()
        return None

    found = netns.wait_for(find, timeout=timeout, what="FRR Up log line")
    assert found is not None
    return found


def start_frr(link: PeeringLink, workdir: Path) -> FrrRouter:
    router = FrrRouter(
        link.topo,
        link.router,
        workdir,
        ROUTER_ASN,
        link.router_v4,
        [Neighbor(link.node_v6, MY_ASN, ipv4=False)],
    )
    router.start()
    return router


def count_from_node(router: FrrRouter, link: PeeringLink) -> int:
    return router.prefix_count(link.node_v6, "ipv6")


def updates_received(router: FrrRouter, link: PeeringLink) -> int:
    """UPDATE messages FRR received from the node (packing shows here)."""
    stats = router.neighbor(link.node_v6).get("messageStats", {})
    return int(stats.get("updatesRecv", 0))


async def measure_ours(link: PeeringLink, workdir: Path, routes: list[Route]) -> dict[str, float]:
    n = len(routes)
    session = BgpSession(
        Peer(
            MY_ASN,
            ROUTER_ASN,
            ipaddress.ip_address(link.router_v6),
            source_address=ipaddress.ip_address(link.node_v6),
        ),
        "bench",
        host=LocalHost(link.node.name),
    )
    session.set_routes(routes)
    router = await asyncio.to_thread(start_frr, link, workdir)
    try:
        held, resolution = await asyncio.to_thread(
            poll_until, lambda: count_from_node(router, link) >= n, 60
        )
        up = await asyncio.to_thread(frr_up_time, router, link.node_v6)
        announce_msgs = await asyncio.to_thread(updates_received, router, link)
        start = time.time()
        session.set_routes([])
        gone, resolution2 = await asyncio.to_thread(
            poll_until, lambda: count_from_node(router, link) == 0, 60
        )
        return {
            "hold": held - up,
            "withdraw": gone - start,
            "resolution": max(resolution, resolution2),
            "updates_received": announce_msgs,
            "withdraw_updates_received": updates_received(router, link) - announce_msgs,
        }
    finally:
        await session.close()
        await asyncio.to_thread(router.stop)


async def measure_gobgpd(
    link: PeeringLink, workdir: Path, mrt: Path, n: int, cli_overhead: float
) -> dict[str, float]:
    gobgpd = GobgpRouter(
        link.topo,
        link.node,
        workdir / "gobgpd",
        MY_ASN,
        link.node_v4,
        [
            Neighbor(
                link.router_v6,
                ROUTER_ASN,
                passive=False,
                ipv4=False,
                local_address=link.node_v6,
            )
        ],
    )
    await asyncio.to_thread(gobgpd.start)
    router: FrrRouter | None = None
    try:
        await asyncio.to_thread(gobgpd.inject_mrt, mrt, nexthop=link.node_v6)

        def loaded() -> bool:
            text = gobgpd.gobgp("global", "rib", "summary", "-a", "ipv6")
            match = re.search(r"Destination: (\d+)", text)
            return match is not None and int(match.group(1)) == n

        await asyncio.to_thread(netns.wait_for, loaded, 60, 0.1, "gobgpd RIB loaded")
        router = await asyncio.to_thread(start_frr, link, workdir / "frr")
        held, resolution = await asyncio.to_thread(
            poll_until, lambda: count_from_node(router, link) >= n, 60
        )
        up = await asyncio.to_thread(frr_up_time, router, link.node_v6)
        announce_msgs = await asyncio.to_thread(updates_received, router, link)
        start = time.time()
        await asyncio.to_thread(gobgpd.gobgp, "global", "rib", "-a", "ipv6", "del", "all")
        gone, resolution2 = await asyncio.to_thread(
            poll_until, lambda: count_from_node(router, link) == 0, 60
        )
        return {
            "hold": held - up,
            "withdraw": gone - start - cli_overhead,
            "withdraw_raw": gone - start,
            "resolution": max(resolution, resolution2),
            "updates_received": announce_msgs,
            "withdraw_updates_received": updates_received(router, link) - announce_msgs,
        }
    finally:
        if router is not None:
            await asyncio.to_thread(router.stop)
        await asyncio.to_thread(gobgpd.stop)


def write_mrt(path: Path, routes: list[Route], link: PeeringLink) -> None:
    """The routes as a TABLE_DUMP_V2 file for `gobgp mrt inject`, written twice: gobgp 3.10's
    CLI exits without closing its gRPC stream, so whatever is still buffered when it quits is
    lost; repeating every record makes that lost tail a repeat of routes already loaded
    (`measure_gobgpd` checks that gobgpd holds exactly all of them)."""
    prefixes = [r.prefix for r in routes]
    # The routes' source is gobgpd itself (its router-id): with FRR's id as source, gobgpd
    # would never send them to FRR (no advertising back to where a path came from).
    data = mrt_table_dump_v2(
        prefixes,
        peer_address=link.node_v6,
        peer_asn=MY_ASN,
        next_hop=link.node_v6,
        collector_id=link.node_v4,
        peer_bgp_id=link.node_v4,
    )
    path.write_bytes(data + data[_peer_index_length(data) :])


def _peer_index_length(data: bytes) -> int:
    """Bytes of the first MRT record (the PEER_INDEX_TABLE)."""
    return 12 + int.from_bytes(data[8:12], "big")


def gobgp_cli_overhead(link: PeeringLink, workdir: Path) -> float:
    """Median time of a no-op `gobgp neighbor` against a running gobgpd."""
    gobgpd = GobgpRouter(link.topo, link.node, workdir, MY_ASN, link.node_v4, [])
    gobgpd.start()
    try:
        samples = []
        for _ in range(7):
            start = time.time()
            gobgpd.gobgp("neighbor")
            samples.append(time.time() - start)
        return statistics.median(samples)
    finally:
        gobgpd.stop()


def run(routes: int, rounds: int) -> dict[str, Any]:
    prefixes = make_routes(routes)
    results: dict[str, list[dict[str, float]]] = {"ours": [], "gobgpd": []}
    progress = Progress("bench.bgp")
    with netns.Topology() as topo, tempfile.TemporaryDirectory(prefix="bench-bgp-") as tmp:
        progress.say("building the router and node namespaces")
        link = PeeringLink.create(topo)
        base = Path(tmp)
        mrt = base / "routes.mrt"
        write_mrt(mrt, prefixes, link)
        with progress.step("measuring the gobgp CLI's own round trip"):
            overhead = gobgp_cli_overhead(link, base / "cli")
        for i in range(rounds):
            order = ["ours", "gobgpd"] if i % 2 == 0 else ["gobgpd", "ours"]
            for name in order:
                workdir = base / f"{name}-{i}"
                with progress.step(f"round {i + 1}/{rounds} {name}: {routes} routes to FRR"):
                    if name == "ours":
                        r = asyncio.run(measure_ours(link, workdir, prefixes))
                    else:
                        r = asyncio.run(measure_gobgpd(link, workdir, mrt, routes, overhead))
                results[name].append(r)
                progress.say(f"round {i + 1} {name:6}: " + json.dumps(r))
    progress.close()
    summary: dict[str, Any] = {"routes": routes, "rounds": rounds, "gobgp_cli_overhead": overhead}
    for name, rs in results.items():
        summary[name] = {
            key: statistics.median(r[key] for r in rs) for key in ("hold", "withdraw", "resolution")
        }
    summary["ratio_hold"] = summary["ours"]["hold"] / summary["gobgpd"]["hold"]
    summary["ratio_withdraw"] = summary["ours"]["withdraw"] / summary["gobgpd"]["withdraw"]
    summary["raw"] = results
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--routes", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    args = parser.parse_args(argv)
    # Connection refusals while FRR starts are expected here; keep the output to the results.
    logging.basicConfig(level=logging.ERROR)
    reason = netns.available() or daemons_available()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    return run_stoppable(
        "bench.bgp", lambda: _measure_and_print(args.routes, args.rounds, args.json)
    )


def _measure_and_print(routes: int, rounds: int, as_json: bool) -> int:
    s = run(routes, rounds)
    if as_json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"{s['routes']} IPv6 /128 routes, median of {s['rounds']} rounds each")
    print(f"{'':22}{'ours':>10}{'gobgpd':>10}{'ratio':>8}")
    for key, label in (("hold", "FRR holds all (s)"), ("withdraw", "FRR withdrew all (s)")):
        ours, ref = s["ours"][key], s["gobgpd"][key]
        print(f"{label:22}{ours:10.3f}{ref:10.3f}{ours / ref:8.2f}")
    print(
        f"poll resolution ~{max(s['ours']['resolution'], s['gobgpd']['resolution']) * 1000:.0f} ms;"
        f" gobgp CLI overhead subtracted: {s['gobgp_cli_overhead'] * 1000:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

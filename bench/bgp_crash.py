"""BGP node crash: how long FRR keeps routing to a dead node, BFD (100 ms x 3) vs hold time 3 s.

    python -m bench.bgp_crash [--repetitions 5] [--nodes 3] [--json] [--no-wait-quiet]

The lab of `metallb-py lab up --mode bgp` (API server, controller, one speaker per node, FRR
zebra + bfdd + bgpd in the client namespace installing what it learns into the client's kernel
table, a backend per node answering on the Service IPs; BFD 100 ms x 3 on every session, hold
time 3 s). Each repetition crashes the node the client's flow to `web` (Cluster, ECMP over every
node) hashes to: link down first, then SIGKILL of its speaker, so nothing at all reaches FRR
(a power loss), while a client opens a new TCP connection and sends a GET every 10 ms
(`metallb_lab.lab.probe`). Measured per repetition:

* FRR drop: crash -> FRR's bgpd logs the session down (`bgp log-neighbor-changes`, microsecond
  timestamps; FRR withdraws the node's routes in the same step), with FRR's reason;
* client: crash -> first answer from another node (the route moved in the client's kernel).

The node comes back (link up, fresh speaker) and the lab settles before the next crash.
Phase `bfd` is the lab as built; phase `hold` removes `neighbor X bfd` from FRR (vtysh), so
only the hold timer finds the dead node. MetalLB's default hold time (90 s, keepalive 30 s)
is given as arithmetic, not measured: FRR notices between 60 and 90 s after the crash.
Target (issue 14): BFD median < 1 s. Waits for load < 1.5 first; needs root and FRR.
Progress on stderr; SIGTERM or SIGINT stops the run and removes the lab (metallb_lab.signals).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.bgp_restart import bgp_lab
from bench.failover import Repetition, measure_once
from bench.quiet import wait_quiet
from metallb_lab import netns
from metallb_lab.lab.layout import BFD_DETECT_MULTIPLIER, BFD_INTERVAL_MS, BGP_HOLD_TIME
from metallb_lab.lab.preflight import preflight_bgp
from metallb_lab.lab.probe import summary
from metallb_lab.lab.router import sessions_down
from metallb_lab.lab.running import Lab
from metallb_lab.lab.state import LabError
from metallb_lab.progress import Progress
from metallb_lab.signals import run_stoppable

SERVICE = "web"
SETTLE_TIMEOUT = 60.0
DEFAULT_HOLD_TIME = 90
DEFAULT_KEEPALIVE = 30


@dataclass
class Crash:
    node: str
    client: Repetition
    frr_drop: float | None
    """Seconds from the crash to bgpd's session-down line for the node."""
    frr_reason: str


@dataclass
class Phase:
    name: str
    crashes: list[Crash] = field(default_factory=list)

    def frr_drops(self) -> list[float]:
        return [c.frr_drop for c in self.crashes if c.frr_drop is not None]

    def client_moves(self) -> list[float]:
        return [c.client.since_crash for c in self.crashes if c.client.since_crash is not None]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "crashes": [asdict(c) for c in self.crashes]}


def crash_once(lab: Lab, progress: Progress, label: str) -> Crash:
    ip = lab.state.service_ips[SERVICE][0]
    owner = lab.curl(ip)
    if owner is None:
        raise LabError(f"{SERVICE} ({ip}) does not answer")
    wall: list[float] = []

    def crash() -> float:
        wall.append(time.time())
        return lab.crash(owner, link_first=True)

    with progress.step(f"{label}: {owner} vanishes"):
        client = measure_once(lab.state.prefix, lab.layout.client_netns, ip, crash, None)
    address = lab.layout.node(owner).ipv4
    events: list[Any] = []

    def dropped() -> bool:
        log = lab.log("bgpd").read_text(errors="replace")
        events[:] = [e for e in sessions_down(log, wall[0]) if e.neighbor == address]
        return bool(events)

    with contextlib.suppress(TimeoutError):
        netns.wait_for(dropped, BGP_HOLD_TIME + 10, interval=0.1, what="FRR's session drop")
    result = Crash(
        owner,
        client,
        events[0].at - wall[0] if events else None,
        events[0].reason if events else "no session drop in bgpd's log",
    )
    drop = f"{result.frr_drop * 1000:.0f} ms" if result.frr_drop is not None else "none"
    moved = f"{client.since_crash * 1000:.0f} ms" if client.since_crash is not None else "never"
    progress.say(f"{label}: FRR drop {drop} ({result.frr_reason}); client moved {moved}")
    with progress.step(f"{label}: restoring {owner}"):
        lab.restore(owner)
        if label.startswith("bfd"):
            lab.wait_settled(SETTLE_TIMEOUT)
        else:
            lab.wait_routes(SETTLE_TIMEOUT)
    return result


def without_bfd(lab: Lab) -> None:
    """FRR forgets BFD for every node: only the hold timer is left."""
    frr = lab.router
    assert frr is not None
    frr.configure(*(f"no neighbor {n.ipv4} bfd" for n in lab.layout.nodes))
    lab.wait_routes(SETTLE_TIMEOUT)


def measure(
    nodes: int, repetitions: int, progress: Progress, *, quiet: bool = True
) -> tuple[list[Phase], float]:
    load = wait_quiet(progress) if quiet else os.getloadavg()[0]
    phases = [
        Phase(f"BFD {BFD_DETECT_MULTIPLIER} x {BFD_INTERVAL_MS} ms"),
        Phase(f"hold time {BGP_HOLD_TIME} s"),
    ]
    with bgp_lab(nodes, "mlbcr", progress) as lab:
        for i in range(repetitions):
            phases[0].crashes.append(crash_once(lab, progress, f"bfd #{i + 1}"))
        with progress.step("FRR without BFD"):
            without_bfd(lab)
        for i in range(repetitions):
            phases[1].crashes.append(crash_once(lab, progress, f"hold #{i + 1}"))
    return phases, load


def report(phases: list[Phase], repetitions: int, load: float) -> str:
    lines = [
        f"BGP node crash (link down, then SIGKILL of the speaker), {repetitions} repetitions per "
        f"phase, same lab, load {load:.2f} at start",
        "",
        "| detection | FRR drops the session, median (max) | client reaches another node, "
        "median (max) | FRR's reason |",
        "|---|---|---|---|",
    ]
    for phase in phases:
        drops, moves = phase.frr_drops(), phase.client_moves()
        drop = _median_max(drops)
        move = _median_max(moves)
        reasons = sorted({c.frr_reason for c in phase.crashes})
        lines.append(f"| {phase.name} | {drop} | {move} | {'; '.join(reasons)} |")
    lo, hi = DEFAULT_HOLD_TIME - DEFAULT_KEEPALIVE, DEFAULT_HOLD_TIME
    lines.append(
        f"| MetalLB default hold time {DEFAULT_HOLD_TIME} s (arithmetic) | {lo}-{hi} s "
        f"(the last keepalive came 0-{DEFAULT_KEEPALIVE} s before the crash) | the same | "
        "4/0 Hold Timer Expired |"
    )
    moves = phases[0].client_moves()
    if moves:
        median = summary(moves)["median"]
        met = "met" if median < 1.0 else "MISSED"
        lines += ["", f"target BFD median < 1 s (client): {met} ({median * 1000:.0f} ms)"]
        hold = phases[1].client_moves()
        if hold:
            ratio = summary(hold)["median"] / median
            lines.append(f"ratio hold time {BGP_HOLD_TIME} s / BFD (client median): {ratio:.1f}x")
    return "\n".join(lines)


def _median_max(values: list[float]) -> str:
    if not values:
        return "none"
    s = summary(values)
    return f"{s['median'] * 1000:.0f} ms ({s['max'] * 1000:.0f} ms)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bgp_crash", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the raw result as JSON")
    parser.add_argument(
        "--no-wait-quiet",
        action="store_true",
        help="start at once instead of waiting for load < 1.5 (the report still gives the load)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.repetitions <= 30 or not 2 <= args.nodes <= 9:
        parser.error("--repetitions must be 1..30 and --nodes 2..9")
    try:
        preflight_bgp()
    except LabError as e:
        print(f"bench.bgp_crash: {e}", file=sys.stderr)
        return 1

    def run() -> int:
        progress = Progress("bench.bgp_crash")
        try:
            phases, load = measure(
                args.nodes, args.repetitions, progress, quiet=not args.no_wait_quiet
            )
        except LabError as e:
            print(f"bench.bgp_crash: {e}", file=sys.stderr)
            return 1
        progress.close()
        if args.json:
            print(json.dumps({"load": load, "phases": [p.to_json() for p in phases]}, indent=2))
        else:
            print(report(phases, args.repetitions, load))
        return 0

    return run_stoppable("bench.bgp_crash", run)


if __name__ == "__main__":
    sys.exit(main())

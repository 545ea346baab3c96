"""False failovers: layer2 ownership under CPU saturation and packet loss, with no crash.

    python -m bench.false_failover [--seconds 600] [--loss 5] [--busy 3] [--json]

A 3-node lab (`metallb-py lab up`) runs undisturbed for `--seconds` while `--busy` bounded
busy loops (one per node namespace, round robin; each exits by itself at the end) keep both
cores saturated and an nft rule drops `--loss` % of the frames leaving every bridge port at
random (the netem qdisc is not available in every kernel; `random_loss`) (so
every datagram between two nodes, and every request from the client, crosses one lossy
hop). Nothing crashes, so every ownership change is a false failover.

Counted, by two independent observers:
* an ARP sampler in the client (scapy: a broadcast who-has per IPv4 Service IP every 50 ms,
  replies captured): requests answered by two MACs (target 0) and changes of the answering
  MAC (target 0);
* the speakers' logs: `serviceAnnounced` / `serviceWithdrawn` of the Services after the
  start (target 0), and how often a speaker's membership view lost a node.
Waits for a quiet machine first (load < 1.5, at most 5 minutes) and prints the load. Needs
root, nft, curl, scapy. SIGTERM or SIGINT stops it and removes the lab and the busy loops.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.quiet import wait_quiet
from metallb_lab.harness.partition import LEASE_COUNTS, ArpWatch, Sample, log_entries
from metallb_lab.lab.lifecycle import down, up
from metallb_lab.lab.preflight import preflight
from metallb_lab.lab.running import Lab
from metallb_lab.lab.state import LabError
from metallb_lab.progress import Progress
from metallb_lab.signals import run_stoppable

BUSY_LOOP = (
    "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"
)


@dataclass
class Observed:
    seconds: float
    load_before: float
    load_during: float = 0.0
    requests: int = 0
    unanswered: int = 0
    double: list[dict[str, Any]] = field(default_factory=list)
    mac_changes: list[dict[str, Any]] = field(default_factory=list)
    speaker_events: list[dict[str, Any]] = field(default_factory=list)
    membership_losses: int = 0
    lease_lapses: int = 0
    """Speaker views holding fewer than half of the leases (that speaker stops answering)."""


LOSS_TABLE = "mlbloss"


def random_loss(lab: Lab, loss: float, on: bool) -> None:
    """`loss` % random drop of the frames leaving every bridge port (in the client namespace):
    an nft rule on the bridge's forward and output hooks (`numgen random`), since the kernel
    here has no netem qdisc. Every node-to-node datagram and every client request crosses
    exactly one such port."""
    lab.client.run(["nft", "delete", "table", "bridge", LOSS_TABLE], check=False)
    if not on or loss <= 0:
        return
    ports = ", ".join(f'"{plan.bridge_port}"' for plan in lab.layout.nodes)
    threshold = round(loss * 100)  # per 10,000
    rule = f"oifname {{ {ports} }} numgen random mod 10000 < {threshold} drop"
    ruleset = f"""table bridge {LOSS_TABLE} {{
  chain forward {{ type filter hook forward priority 0; policy accept; {rule}; }}
  chain output {{ type filter hook output priority 0; policy accept; {rule}; }}
}}
"""
    subprocess.run(
        lab.client.argv(["nft", "-f", "-"]), input=ruleset, text=True, check=True, timeout=10
    )


def start_busy(lab: Lab, count: int, seconds: float) -> list[subprocess.Popen[bytes]]:
    nodes = lab.layout.node_names
    return [
        subprocess.Popen(
            lab.node_ns(nodes[i % len(nodes)]).argv(
                [sys.executable, "-c", BUSY_LOOP.format(seconds=seconds)]
            ),
            start_new_session=True,
        )
        for i in range(count)
    ]


def stop_busy(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def analyse_arp(samples: list[Sample], observed: Observed) -> None:
    last: dict[str, str] = {}
    for s in samples:
        if s.garp is not None:
            continue
        observed.requests += 1
        if not s.macs:
            observed.unanswered += 1
            continue
        if len(s.macs) > 1:
            observed.double.append(asdict(s))
        mac = s.macs[0] if len(s.macs) == 1 else ",".join(s.macs)
        if s.ip in last and last[s.ip] != mac:
            observed.mac_changes.append({"t": s.t, "ip": s.ip, "from": last[s.ip], "to": mac})
        last[s.ip] = mac


def analyse_logs(lab: Lab, since_wall: float, observed: Observed) -> None:
    for node in lab.layout.node_names:
        for ts, entry in log_entries(lab.log(f"speaker-{node}")):
            if ts < since_wall:
                continue
            if entry.get("event") in ("serviceAnnounced", "serviceWithdrawn"):
                observed.speaker_events.append(
                    {
                        "node": node,
                        "ts": entry["ts"],
                        "event": entry["event"],
                        "service": entry.get("service"),
                        "reason": entry.get("reason"),
                    }
                )
            msg = str(entry.get("msg", ""))
            if not msg.startswith("membership: live="):
                continue
            if msg.count("'n") < len(lab.layout.nodes):
                observed.membership_losses += 1
            counts = LEASE_COUNTS.search(msg)
            if counts is not None and 2 * int(counts["leased"]) < int(counts["known"]):
                observed.lease_lapses += 1


def measure(seconds: float, loss: float, busy: int, as_json: bool, wait: bool = True) -> int:
    progress = Progress("bench.false_failover")
    load = wait_quiet(progress) if wait else os.getloadavg()[0]
    prefix = f"mlbff{os.getpid()}"
    observed = Observed(seconds, load)
    with tempfile.TemporaryDirectory(prefix="bench-false-failover-") as tmp:
        workdir = Path(tmp)
        procs: list[subprocess.Popen[bytes]] = []
        watch: ArpWatch | None = None
        lab: Lab | None = None
        try:
            with progress.step("lab up with 3 nodes"):
                lab = up(3, directory=workdir / "lab", prefix=prefix, tools=("curl",))
            lab.wait_settled(60)
            ips = [
                lab.state.service_ips[s.name][0]
                for s in lab.layout.services
                if s.family == "IPv4" and lab.state.service_ips.get(s.name)
            ]
            watch = ArpWatch(lab, ips, workdir / "arpwatch.jsonl", duration=seconds + 30)
            time.sleep(2)  # the sampler is up and answered
            random_loss(lab, loss, True)
            procs = start_busy(lab, busy, seconds)
            started_wall, started = time.time(), time.monotonic()
            with progress.step(
                f"{seconds:g} s with {busy} busy loops and {loss:g} % loss on the bridge"
            ):
                while time.monotonic() - started < seconds:
                    time.sleep(min(5.0, seconds - (time.monotonic() - started)))
                    observed.load_during = max(observed.load_during, os.getloadavg()[0])
            stop_busy(procs)
            random_loss(lab, loss, False)
            watch.close()
            samples = [s for s in watch.samples() if started <= s.t <= started + seconds]
            analyse_arp(samples, observed)
            analyse_logs(lab, started_wall, observed)
        except LabError as e:
            print(f"bench.false_failover: {e}", file=sys.stderr)
            return 1
        finally:
            stop_busy(procs)
            if watch is not None:
                watch.close()
            if lab is not None:
                random_loss(lab, loss, False)
            down(workdir / "lab", prefix)
    progress.close()
    if as_json:
        print(json.dumps(asdict(observed), indent=2))
    else:
        print(
            f"False failovers: {seconds:g} s, {busy} busy loops, {loss:g} % random loss on the "
            f"bridge ports; load {load:.2f} before, max {observed.load_during:.2f} during\n"
            f"ARP requests sampled: {observed.requests} ({observed.unanswered} unanswered)\n"
            f"answered by two MACs: {len(observed.double)} (target 0)\n"
            f"answering MAC changed: {len(observed.mac_changes)} (target 0)\n"
            f"speaker announce/withdraw events: {len(observed.speaker_events)} (target 0)\n"
            f"speaker membership views missing a node: {observed.membership_losses}; "
            f"without the layer2 lease: {observed.lease_lapses}"
        )
        tally = collections.Counter(
            (e["node"], e["service"], e["event"], e["reason"]) for e in observed.speaker_events
        )
        for (node, service, event, reason), count in sorted(tally.items()):
            print(f"  {node} {service} {event}{f' ({reason})' if reason else ''}: {count}")
    bad = observed.double or observed.mac_changes or observed.speaker_events
    return 2 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.false_failover", description=__doc__)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--loss", type=float, default=5.0, help="random loss, percent")
    parser.add_argument("--busy", type=int, default=3, help="busy loops (both cores: >= 2)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for load < 1.5")
    args = parser.parse_args(argv)
    if not 10 <= args.seconds <= 7200 or not 0 <= args.loss <= 50 or not 0 <= args.busy <= 8:
        parser.error("--seconds 10..7200, --loss 0..50, --busy 0..8")
    try:
        preflight(("curl", "nft"))
    except LabError as e:
        print(f"bench.false_failover: {e}", file=sys.stderr)
        return 1
    return run_stoppable(
        "bench.false_failover",
        lambda: measure(args.seconds, args.loss, args.busy, args.json, not args.no_wait),
    )


if __name__ == "__main__":
    sys.exit(main())

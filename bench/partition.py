"""Partition and heal of the layer2 owner (issue 14's acceptance run), on a lab of its own.

    python -m bench.partition [--repetitions 20] [--hold 1.0] [--json]

Drops the membership heartbeats (UDP 7946, both directions) in the owner's namespace with
nft, holds the partition, removes the rule; an ARP sampler in the client (scapy, a broadcast
request every 50 ms and a capture) records who answers (metallb_lab.harness.partition).
Reports requests answered by two MACs (target 0), cut -> interim owner answering and heal ->
elected owner answering (medians; target: within the crash-failover target). Waits for a
quiet machine (1-minute load < 1.5, at most 5 minutes) and prints the load it ran at. Needs
root, nft, curl, scapy. SIGTERM or SIGINT removes the lab.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from bench.quiet import wait_quiet
from metallb_lab.harness import partition
from metallb_lab.lab.lifecycle import down, up
from metallb_lab.lab.preflight import preflight
from metallb_lab.lab.state import LabError
from metallb_lab.progress import Progress
from metallb_lab.signals import run_stoppable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.partition", description=__doc__)
    parser.add_argument("--repetitions", type=int, default=20)
    parser.add_argument("--hold", type=float, default=1.0, help="seconds the partition lasts")
    parser.add_argument(
        "--sample-interval", type=float, default=0.05, help="seconds between ARP requests"
    )
    parser.add_argument("--no-wait", action="store_true", help="do not wait for load < 1.5")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not 1 <= args.repetitions <= 100 or not 0.2 <= args.hold <= 30:
        parser.error("--repetitions must be 1..100 and --hold 0.2..30")
    if not 0.005 <= args.sample_interval <= 1:
        parser.error("--sample-interval must be 0.005..1")
    try:
        preflight(("curl", "nft"))
    except LabError as e:
        print(f"bench.partition: {e}", file=sys.stderr)
        return 1
    return run_stoppable(
        "bench.partition",
        lambda: measure(
            args.repetitions, args.hold, args.sample_interval, args.json, not args.no_wait
        ),
    )


def measure(
    repetitions: int, hold: float, sample_interval: float, as_json: bool, wait: bool = True
) -> int:
    progress = Progress("bench.partition")
    load = wait_quiet(progress) if wait else os.getloadavg()[0]
    prefix = f"mlbpart{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="bench-partition-") as tmp:
        workdir = Path(tmp)
        try:
            with progress.step("lab up with 3 nodes"):
                lab = up(3, directory=workdir / "lab", prefix=prefix, tools=("curl",))
            lab.wait_settled(60)
            result = partition.run(
                lab,
                "web",
                repetitions,
                workdir,
                hold=hold,
                sample_interval=sample_interval,
                say=progress.say,
            )
        except LabError as e:
            print(f"bench.partition: {e}", file=sys.stderr)
            return 1
        finally:
            down(workdir / "lab", prefix)
    progress.close()
    data = result.to_json()
    if as_json:
        print(json.dumps({"load": load, **data}, indent=2))
        return 0
    takeover, heal = data["takeover"], data["heal"]
    margin, heal_margin = data["margin"], data["heal_margin"]
    print(
        f"Partition/heal of the layer2 owner, {repetitions} repetitions, hold {hold:g} s, "
        f"ARP request every {sample_interval * 1000:g} ms, load {load:.2f} at start\n"
        f"requests sampled: {result.requests}; answered by two MACs: {len(result.double)}\n"
        f"cut -> interim owner answers: median {_ms(takeover.get('median'))}, "
        f"max {_ms(takeover.get('max'))}, missing {takeover['missing']} (its first "
        f"gratuitous ARP: median {_ms(data['takeover_garp'].get('median'))})\n"
        f"heal -> elected owner answers: median {_ms(heal.get('median'))}, "
        f"max {_ms(heal.get('max'))}, missing {heal['missing']}\n"
        f"speaker logs, owner lost its lease -> interim started: min {_ms(margin.get('min'))}, "
        f"median {_ms(margin.get('median'))}; at heal, interim stopped -> owner started: "
        f"min {_ms(heal_margin.get('min'))}, median {_ms(heal_margin.get('median'))}"
    )
    return 0 if not result.double else 2


def _ms(value: float | int | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


if __name__ == "__main__":
    sys.exit(main())

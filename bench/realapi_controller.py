"""Controller allocation on the real kube-apiserver: metallb-py, upstream MetalLB v0.12.1 and the
bare-client floor, same server, same run (docs/upstream.md).

    python -m bench.realapi_controller [--sizes 1000,10000] [--systems floor,metallb-py,upstream]

For each size N and each controller: the controller is started (admin kubeconfig) and ready,
then the bench creates N IPv6 LoadBalancer Services (4 writer threads) in a namespace of the
phase's own and a watch notes when each Service first shows a status IP. Measured: from the
first create to the last Service with its IP. The floor: N Services created first (not timed),
then one client loop writing each status once from the object in hand (no decision logic,
no events), timed. After each phase the controller is killed and its Services and Events are
deleted, so every phase starts from the same server state. Before each phase the bench waits
(up to 10 min) for the 1-minute load average to drop below 1.5 and prints it with the results.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from metallb_lab.control_plane import ControlPlane
from metallb_lab.signals import run_stoppable

from .realapi_common import (
    CONTROLLERS,
    IngressWatch,
    MetallbPyController,
    Quiet,
    core_api,
    create_services,
    delete_services,
    ensure_namespace,
    load1,
    prepare,
    running,
    say,
    wait_counting,
    wait_step,
    write_statuses,
)

SYSTEMS = ("floor", "metallb-py", "upstream")


@dataclass
class Phase:
    system: str
    services: int
    seconds: float | None
    """floor: the status-write loop; controllers: first create -> last Service with its IP."""
    allocated: int
    create_seconds: float
    """How long the bench took to create the N Services (a lower bound for a controller)."""
    load_before: float
    load_after: float
    distinct_ips: int

    @property
    def complete(self) -> bool:
        return self.seconds is not None


def phase_budget(system: str, n: int) -> float:
    """Upper bound of one phase: upstream's client is rate-limited (5 requests/s, shared by the
    status write and the event of each Service), so it needs about N / 2.5 s."""
    return 600.0 + (n * 0.6 if system == "upstream" else n * 0.1)


def run_floor(cp: ControlPlane, n: int, quiet: Quiet) -> Phase:
    namespace = f"floor-{n}"
    ensure_namespace(core_api(cp), namespace)
    names = [f"s{i:05d}" for i in range(n)]
    say(f"floor {n}: creating the Services (not timed)")
    start = time.perf_counter()
    created = create_services(cp, namespace, names)
    create_seconds = time.perf_counter() - start
    load = quiet.wait()
    say(f"floor {n}: writing {n} statuses in one loop (load {load:.2f})")
    seconds = write_statuses(cp, created)
    phase = Phase("floor", n, seconds, n, create_seconds, load, load1(), n)
    delete_services(cp, namespace)
    return phase


def run_controller(cp: ControlPlane, system: str, n: int, logs: Path, quiet: Quiet) -> Phase:
    namespace = f"{system}-{n}"
    ensure_namespace(core_api(cp), namespace)
    names = [f"s{i:05d}" for i in range(n)]
    load = quiet.wait()
    budget = phase_budget(system, n)
    with running(CONTROLLERS[system], cp, logs / f"{system}-{n}.log") as ctl:
        if isinstance(ctl, MetallbPyController):
            wait_step(ctl.readyz, 60, f"{system} ready")
        else:
            wait_step(ctl.ready_line, 60, f"{system} synced")
        say(f"{system} {n}: creating {n} Services (load {load:.2f})")
        with IngressWatch(cp, namespace) as watch:
            start = time.monotonic()
            create_services(cp, namespace, names)
            create_seconds = time.monotonic() - start
            say(f"{system} {n}: created in {create_seconds:.1f} s; waiting for every IP")
            seconds: float | None = None
            try:
                wait_counting(
                    lambda: watch.count() if ctl.alive() else 0,
                    n,
                    budget,
                    f"{system} {n}: Services with an IP",
                )
                seconds = max(watch.first_ip.values()) - start
            except TimeoutError as e:  # the bound: report how far it got
                say(f"{system} {n}: {e}")
            if watch.error:
                raise watch.error
            allocated = watch.count()
            ips = {ip for name_ips in watch.ips.values() for ip in name_ips}
    phase = Phase(system, n, seconds, allocated, create_seconds, load, load1(), len(ips))
    delete_services(cp, namespace)
    return phase


def fmt(seconds: float | None, phase: Phase) -> str:
    if seconds is None:
        return f"> {phase_budget(phase.system, phase.services):.0f} s ({phase.allocated} done)"
    return f"{seconds:.2f} s"


def report(phases: list[Phase]) -> str:
    lines = [
        "| Services | system | all have their IP | per second | ÷ floor | Services created in "
        "| load before / after |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in sorted({p.services for p in phases}):
        floor = next((p for p in phases if p.services == n and p.system == "floor"), None)
        for p in (p for p in phases if p.services == n):
            rate = f"{p.allocated / p.seconds:.0f}" if p.seconds else "–"
            ratio = (
                f"{p.seconds / floor.seconds:.2f}×"
                if p.seconds and floor and floor.seconds and p.system != "floor"
                else "–"
            )
            created = "–" if p.system == "floor" else f"{p.create_seconds:.1f} s"
            lines.append(
                f"| {n:,} | {p.system} | {fmt(p.seconds, p)} | {rate} | {ratio} | {created} "
                f"| {p.load_before:.2f} / {p.load_after:.2f} |"
            )
        ours = next((p for p in phases if p.services == n and p.system == "metallb-py"), None)
        theirs = next((p for p in phases if p.services == n and p.system == "upstream"), None)
        if ours and theirs and ours.seconds and theirs.seconds:
            lines.append(
                f"| {n:,} | metallb-py ÷ upstream | {ours.seconds / theirs.seconds:.3f}× | | | | |"
            )
    problems = [
        f"{p.system} {p.services}: {p.distinct_ips} distinct IPs for {p.allocated} Services"
        for p in phases
        if p.distinct_ips != p.allocated
    ]
    return "\n".join(lines + problems)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="Service counts, comma-separated")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="of: " + ", ".join(SYSTEMS))
    parser.add_argument("--json", type=Path, help="also write the phases here")
    parser.add_argument("--logs", type=Path, help="keep the controllers' logs in this directory")
    Quiet.add_arguments(parser)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    systems = args.systems.split(",")
    if unknown := set(systems) - set(SYSTEMS):
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    return run_stoppable("bench.realapi_controller", lambda: measure(args, sizes, systems))


def measure(args: argparse.Namespace, sizes: list[int], systems: list[str]) -> int:
    phases: list[Phase] = []
    quiet = Quiet.from_args(args)
    with tempfile.TemporaryDirectory(prefix="bench-realapi-") as tmp, ControlPlane() as cp:
        logs = args.logs or Path(tmp)
        logs.mkdir(parents=True, exist_ok=True)
        say(f"kube-apiserver on {cp.url} (binaries {cp.bin_dir})")
        prepare(cp)
        for n in sizes:
            for system in systems:
                if system == "floor":
                    phases.append(run_floor(cp, n, quiet))
                else:
                    phases.append(run_controller(cp, system, n, logs, quiet))
                say(f"done: {phases[-1]}")
    table = report(phases)
    print(table)
    if args.json:
        args.json.write_text(json.dumps([asdict(p) for p in phases], indent=1))
    return 0 if all(p.complete and p.distinct_ips == p.allocated for p in phases) else 1


if __name__ == "__main__":
    sys.exit(main())

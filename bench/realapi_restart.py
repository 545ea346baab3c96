"""Ready after a restart with 10,000 Services on the real kube-apiserver: metallb-py and upstream
MetalLB v0.12.1, same server, same Services, same run (docs/upstream.md).

    python -m bench.realapi_restart [--services 10000] [--systems metallb-py,upstream]

M IPv6 LoadBalancer Services get their status IPs from one bare client loop (also the floor
of the allocation bench, timed). Reference, same run: one list of the M Services with the client,
parsed. For each controller: a first start (until its first pass is done), SIGKILL, a Service
`down-<system>` created while it is down, then the restart (t0 = just before the spawn):

* *ready*: metallb-py `/readyz` answers 200 (polled every 20 ms); upstream has no readiness
  endpoint, so for both the log line that ends the first pass is also reported: upstream
  `stateSynced` ("controller synced, can allocate IPs now", logged after the queued keys of
  every listed Service were processed), metallb-py `caches synced; existing IPs registered`
  (its `ts` minus t0);
* *Service created while down has its IP*: t0 → the watch shows `down-<system>` with an IP;
* *new Service after ready*: created once ready (the log line, for upstream), → its IP;
* *IPs changed*: the M statuses before and after (must be 0), and no IP given twice.
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
    ControllerProcess,
    IngressWatch,
    MetallbPyController,
    Quiet,
    core_api,
    create_services,
    delete_services,
    ensure_namespace,
    list_seconds,
    load1,
    log_time,
    prepare,
    running,
    say,
    service,
    status_ips,
    wait_step,
    write_statuses,
)

SYSTEMS = ("metallb-py", "upstream")
SERVICES_NS = "restart"
PROBES_NS = "probes"


@dataclass
class Restart:
    system: str
    services: int
    readyz: float | None
    """metallb-py: t0 -> /readyz 200 (upstream has none)."""
    ready_line: float
    """t0 -> the `ts` of the log line that ends the first pass."""
    down_service_ip: float | None
    """t0 -> the Service created while the controller was down shows its IP (None: bound hit)."""
    new_service_ip: float
    """A Service created once ready -> its IP."""
    changed: int
    duplicates: int
    load_before: float
    load_after: float


def ready_seconds(ctl: ControllerProcess, timeout: float) -> tuple[float | None, float]:
    """(t0 -> /readyz, t0 -> the first-pass log line), waiting for both."""
    readyz: float | None = None
    if isinstance(ctl, MetallbPyController):
        wait_step(ctl.readyz, timeout, f"{ctl.system} /readyz", interval=0.02)
        readyz = time.time() - ctl.started
    line = wait_step(ctl.ready_line, timeout, f"{ctl.system} first pass", interval=0.02)
    assert line is not None
    return readyz, log_time(line) - ctl.started


def first_start(cp: ControlPlane, system: str, log: Path, timeout: float) -> None:
    """Start, let the first pass over the M Services finish, SIGKILL."""
    with running(CONTROLLERS[system], cp, log) as ctl:
        ready_seconds(ctl, timeout)
        time.sleep(3)  # whatever follows the first pass (metallb-py reprocesses all) settles


def restart(
    cp: ControlPlane, system: str, m: int, logs: Path, quiet: Quiet, probe_wait: float
) -> Restart:
    say(f"{system}: first start with {m} Services")
    first_start(cp, system, logs / f"{system}-first.log", 900)
    before = status_ips(cp, SERVICES_NS)
    down_name = f"down-{system}"
    core = core_api(cp)
    core.create_namespaced_service(PROBES_NS, service(down_name))
    load = quiet.wait()
    say(f"{system}: restart (load {load:.2f})")
    with (
        IngressWatch(cp, PROBES_NS) as probes,
        running(CONTROLLERS[system], cp, logs / f"{system}-restart.log") as ctl,
    ):
        t0 = time.monotonic()
        readyz, line = ready_seconds(ctl, 900)
        say(f"{system}: ready (readyz {readyz}, first-pass log line {line:.2f} s)")
        new_name = f"new-{system}"
        created = time.monotonic()
        core.create_namespaced_service(PROBES_NS, service(new_name))
        wait_step(lambda: new_name in probes.first_ip, 120, f"{system}: {new_name} has its IP")
        new_ip = probes.first_ip[new_name] - created
        down_ip: float | None = None
        try:
            wait_step(
                lambda: down_name in probes.first_ip and ctl.alive(),
                probe_wait,
                f"{system}: {down_name} (created while down) has its IP",
                interval=0.1,
            )
            down_ip = probes.first_ip[down_name] - t0
        except TimeoutError as e:  # the bound: reported as "more than"
            say(str(e))
        if probes.error:
            raise probes.error
        probe_ips = {ip for ips in probes.ips.values() for ip in ips}
        load_after = load1()
    after = status_ips(cp, SERVICES_NS)
    changed = sum(1 for name, ips in before.items() if after.get(name) != ips)
    existing = {ip for ips in after.values() for ip in ips}
    result = Restart(
        system,
        m,
        readyz,
        line,
        down_ip,
        new_ip,
        changed,
        len(existing & probe_ips),
        load,
        load_after,
    )
    delete_services(cp, PROBES_NS)
    return result


def report(results: list[Restart], m: int, writes: float, listing: float, probe_wait: float) -> str:
    def cell(value: float | None, bound: float | None = None) -> str:
        if value is None:
            return f"> {bound:.0f} s" if bound else "–"
        return f"{value:.2f} s"

    lines = [
        f"ready after SIGKILL + restart with {m:,} Services (reference: one client list of "
        f"them {listing:.2f} s; the floor wrote their {m:,} statuses in {writes:.1f} s)",
        "",
        "| system | /readyz | first-pass log line | ÷ list | Service created while down "
        "→ IP | new Service after ready → IP | IPs changed | IPs given twice | load before / "
        "after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.system} | {cell(r.readyz)} | {r.ready_line:.2f} s | "
            f"{r.ready_line / listing:.1f}× | {cell(r.down_service_ip, probe_wait)} | "
            f"{r.new_service_ip:.3f} s | {r.changed} | {r.duplicates} | "
            f"{r.load_before:.2f} / {r.load_after:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=10000)
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="of: " + ", ".join(SYSTEMS))
    parser.add_argument(
        "--probe-wait",
        type=float,
        default=1200.0,
        help="bound for the Service created while down (upstream's rate-limited requeue)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--logs", type=Path, help="keep the controllers' logs in this directory")
    Quiet.add_arguments(parser)
    args = parser.parse_args(argv)
    systems = args.systems.split(",")
    if unknown := set(systems) - set(SYSTEMS):
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    return run_stoppable("bench.realapi_restart", lambda: measure(args, systems))


def measure(args: argparse.Namespace, systems: list[str]) -> int:
    quiet = Quiet.from_args(args)
    m = args.services
    results: list[Restart] = []
    with tempfile.TemporaryDirectory(prefix="bench-realapi-") as tmp, ControlPlane() as cp:
        logs = args.logs or Path(tmp)
        logs.mkdir(parents=True, exist_ok=True)
        say(f"kube-apiserver on {cp.url}")
        prepare(cp)
        core = core_api(cp)
        for namespace in (SERVICES_NS, PROBES_NS):
            ensure_namespace(core, namespace)
        say(f"creating {m} Services and writing their statuses (the floor)")
        created = create_services(cp, SERVICES_NS, [f"s{i:05d}" for i in range(m)])
        quiet.wait()
        writes = write_statuses(cp, created)
        del created
        quiet.wait()
        listing = min(list_seconds(cp, SERVICES_NS) for _ in range(3))
        for system in systems:
            results.append(restart(cp, system, m, logs, quiet, args.probe_wait))
            say(f"done: {results[-1]}")
    print(report(results, m, writes, listing, args.probe_wait))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    ok = all(r.changed == 0 and r.duplicates == 0 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

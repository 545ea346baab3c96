"""Failover on a node crash: metallb-py layer2 vs keepalived (VRRP), same namespaces, same run.

    python -m bench.failover [--repetitions 10] [--nodes 3] [--json]

A crash is SIGKILL of the owner's announcer (the speaker; all keepalived processes) plus its
link going down. A client in the client namespace opens a new TCP connection and sends a GET to
the IP every 10 ms (`metallb_lab.lab.probe`; each probe has its own 1 s deadline, so a lost SYN
never delays the next one) and the backend answers with its node name. The gap is the time
between the send times of the last probe the old owner answered and the first one a new owner
answered: what a client sees, ARP cache update by gratuitous ARP included (the probe sends no
ARP of its own). After each repetition the crashed node comes back (link up, fresh announcer)
and the lab settles before the next crash.

* metallb-py: the lab of `metallb-py lab up` (API server, controller, one speaker per node
  with membership: heartbeats every 25 ms, dead after 150 ms, layer2 lease 100 ms), Service
  `web`.
* keepalived: the same kind of namespaces (same builder), one keepalived per node, VIP
  192.0.2.200 on eth0, priorities 150/100/50…; VRRPv2 with 1 s adverts, then VRRPv3 with
  0.1 s adverts. A restored node gets a clean eth0 (no stale VIP), as after a reboot.
Target (issue 14): metallb-py's median gap at most 0.7x keepalived VRRPv3's (0.1 s adverts)
in the same run. Waits for a quiet machine (1-minute load < 1.5, at most 5 minutes; not with
`--no-wait-quiet`) and prints the load. Needs root, keepalived, curl. Progress on stderr at least
every 5 s; SIGTERM or SIGINT stops the run and removes the lab, its namespaces and processes
(metallb_lab.signals).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.quiet import wait_quiet
from metallb_lab import netns
from metallb_lab.harness.partition import log_entries
from metallb_lab.lab.commands import backend_command
from metallb_lab.lab.layout import LabLayout, expected_owner, plan_lab
from metallb_lab.lab.lifecycle import down, up
from metallb_lab.lab.preflight import preflight
from metallb_lab.lab.probe import ProbeProcess, analyse, summary
from metallb_lab.lab.state import LabError
from metallb_lab.lab.topology import Lan, build_lan, link_up
from metallb_lab.progress import Progress
from metallb_lab.signals import run_stoppable

VIP = "192.0.2.200"
PROBE_INTERVAL = 0.01
PROBE_SETTLE = 5
REPEAT_DEADLINE = 30.0


@dataclass
class Repetition:
    old_owner: str
    new_owner: str | None
    gap: float | None
    since_crash: float | None
    unanswered: int
    detected: float | None = None
    """metallb-py: crash -> the new owner's membership drops the old owner (its log)."""
    announced: float | None = None
    """metallb-py: crash -> the new owner logs `serviceAnnounced` (GARP goes out then)."""


@dataclass
class SystemResult:
    name: str
    repetitions: list[Repetition]

    @property
    def gaps(self) -> list[float]:
        return [r.gap for r in self.repetitions if r.gap is not None]

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "repetitions": [asdict(r) for r in self.repetitions],
        }
        if self.gaps:
            data["gap"] = summary(self.gaps)
            data["since_crash"] = summary(
                [r.since_crash for r in self.repetitions if r.since_crash is not None]
            )
        return data


def measure_once(
    marker: str, client_ns: str, ip: str, crash: Callable[[], float], expected_new: str | None
) -> Repetition:
    """One crash under a running probe."""
    probe = ProbeProcess(
        marker,
        client_ns,
        ip,
        interval=PROBE_INTERVAL,
        max_seconds=REPEAT_DEADLINE,
        settle=PROBE_SETTLE,
    )
    try:
        probe.wait("ready", 10)
        time.sleep(0.3)  # a steady baseline before the crash
        crashed_at = crash()
        result = analyse(probe.samples(REPEAT_DEADLINE + 15), crashed_at)
    finally:
        probe.close()
    if result is None:
        raise LabError(f"no answers at all from {ip}")
    if expected_new is not None and result.new_owner not in (None, expected_new):
        print(
            f"  note: new owner {result.new_owner}, expected {expected_new}",
            file=sys.stderr,
        )
    return Repetition(
        result.old_owner,
        result.new_owner,
        result.gap,
        result.since(crashed_at),
        result.failed,
    )


# --- metallb-py ----------------------------------------------------------------------------------


def bench_metallb(nodes: int, repetitions: int, workdir: Path, progress: Progress) -> SystemResult:
    prefix = f"mlbbench{os.getpid()}"
    directory = workdir / "lab"
    result = SystemResult("metallb-py layer2 (heartbeats 25 ms, dead after 150 ms)", [])
    try:
        with progress.step(f"metallb-py: lab up with {nodes} nodes"):
            lab = up(
                nodes, directory=directory, prefix=prefix, tools=("curl",), progress=progress.say
            )
        web = next(s for s in lab.layout.services if s.name == "web")
        ip = lab.state.service_ips["web"][0]
        for i in range(repetitions):
            owner = lab.expected_owners()["web"]
            assert owner is not None
            survivors = [n for n in lab.layout.node_names if n != owner]
            wall: list[float] = []

            def crash(owner: str = owner, wall: list[float] = wall) -> float:
                wall.append(time.time())
                return lab.crash(owner)

            with progress.step(f"metallb-py #{i + 1}: crashing {owner}"):
                rep = measure_once(
                    prefix,
                    lab.layout.client_netns,
                    ip,
                    crash,
                    expected_owner(web, ip, survivors),
                )
            if rep.new_owner is not None:
                rep.detected, rep.announced = speaker_timeline(
                    lab.log(f"speaker-{rep.new_owner}"), owner, wall[0]
                )
            result.repetitions.append(rep)
            _report_repetition(progress, "metallb-py", i, rep)
            with progress.step(f"metallb-py: restoring {owner}, waiting until settled"):
                lab.restore(owner)
                lab.wait_settled(60)
    finally:
        down(directory, prefix)
    return result


def speaker_timeline(log: Path, dead: str, crash_wall: float) -> tuple[float | None, float | None]:
    """From the new owner's JSON log: seconds from the crash to the first membership view
    without `dead`, and to the first `serviceAnnounced` of default/web after the crash."""
    detected = announced = None
    for ts, entry in log_entries(log):
        if ts < crash_wall:
            continue
        msg = str(entry.get("msg", ""))
        if detected is None and msg.startswith("membership: live=") and f"'{dead}'" not in msg:
            detected = ts - crash_wall
        if (
            announced is None
            and entry.get("event") == "serviceAnnounced"
            and entry.get("service") == "default/web"
        ):
            announced = ts - crash_wall
    return detected, announced


# --- keepalived ----------------------------------------------------------------------------------


def keepalived_config(node: str, priority: int, version: int, advert: float) -> str:
    return f"""global_defs {{
  router_id {node}
  vrrp_version {version}
  script_user root
  enable_script_security
}}
vrrp_instance lab {{
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority {priority}
  advert_int {advert:g}
  virtual_ipaddress {{
    {VIP}/24 dev eth0
  }}
}}
"""


class VrrpCluster:
    """keepalived on every node of a lab-shaped LAN; the highest priority (n1) is master."""

    def __init__(
        self, topo: netns.Topology, layout: LabLayout, lan: Lan, workdir: Path, marker: str
    ) -> None:
        self.topo, self.layout, self.lan, self.workdir = topo, layout, lan, workdir
        self.env = {**os.environ, "METALLB_LAB_ID": marker}
        self.keepalived: dict[str, subprocess.Popen[bytes]] = {}
        for node in layout.node_names:
            topo.spawn(
                lan.nodes[node],
                backend_command(node, ["0.0.0.0"]),
                env=self.env,
            )
        self.version, self.advert = 2, 1.0

    def priority(self, node: str) -> int:
        return 150 - 50 * self.layout.node_names.index(node)

    def start(self, node: str) -> None:
        d = self.workdir / f"{node}-v{self.version}"
        d.mkdir(parents=True, exist_ok=True)
        for stale in ("keepalived.pid", "vrrp.pid"):  # a crashed run's pids may be reused
            (d / stale).unlink(missing_ok=True)
        conf = d / "keepalived.conf"
        conf.write_text(keepalived_config(node, self.priority(node), self.version, self.advert))
        log = open(d / "keepalived.log", "ab")  # noqa: SIM115 - the child owns it
        self.keepalived[node] = self.topo.spawn(
            self.lan.nodes[node],
            [
                "keepalived",
                "--dont-fork",
                "--log-console",
                "--log-detail",
                "--no-syslog",
                "--vrrp",
                "-f",
                str(conf),
                "-p",
                str(d / "keepalived.pid"),
                "-r",
                str(d / "vrrp.pid"),
            ],
            stdout=log.fileno(),
            stderr=log.fileno(),
            env=self.env,
        )
        log.close()

    def stop_all(self) -> None:
        for proc in self.keepalived.values():
            self.topo.kill(proc)
        self.keepalived.clear()
        for ns in self.lan.nodes.values():
            ns.ip("addr", "del", f"{VIP}/24", "dev", "eth0", check=False)

    def run(self, version: int, advert: float) -> None:
        self.stop_all()
        self.version, self.advert = version, advert
        for node in self.layout.node_names:
            self.start(node)

    def crash(self, node: str) -> float:
        proc = self.keepalived.pop(node)
        at = time.monotonic()
        os.killpg(proc.pid, signal.SIGKILL)  # parent and its VRRP child
        link_up(self.lan.nodes[node], False)
        proc.wait(timeout=5)
        return at

    def restore(self, node: str) -> None:
        ns = self.lan.nodes[node]
        ns.ip("addr", "del", f"{VIP}/24", "dev", "eth0", check=False)  # rebooted: no stale VIP
        link_up(ns, True)
        self.start(node)

    def curl(self) -> str | None:
        proc = self.lan.client.run(
            ["curl", "-sS", "--connect-timeout", "1", "-m", "1", f"http://{VIP}/"],
            check=False,
            timeout=10,
        )
        return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None

    def wait_master(self, node: str, timeout: float = 30) -> None:
        def steady() -> bool:
            return all(self.curl() == node for _ in range(3))

        netns.wait_for(steady, timeout, interval=0.2, what=f"{node} to be VRRP master")


def bench_keepalived(
    nodes: int,
    repetitions: int,
    workdir: Path,
    variants: list[tuple[int, float]],
    progress: Progress,
) -> list[SystemResult]:
    marker = f"mlbbench{os.getpid()}k"
    layout = plan_lab(nodes, prefix=marker)
    results = []
    with netns.Topology(prefix="mlbt", tag=f"{os.getpid()}k") as topo:
        lan = build_lan(topo, layout, client_suffix="c")
        cluster = VrrpCluster(topo, layout, lan, workdir / "keepalived", marker)
        master = layout.node_names[0]
        for version, advert in variants:
            name = f"keepalived VRRPv{version}, adverts every {advert:g} s"
            result = SystemResult(name, [])
            with progress.step(f"{name}: starting, waiting for {master} to be master"):
                cluster.run(version, advert)
                cluster.wait_master(master)
            for i in range(repetitions):
                with progress.step(f"{name} #{i + 1}: crashing {master}"):
                    rep = measure_once(
                        marker,
                        lan.client.name,
                        VIP,
                        lambda: cluster.crash(master),
                        layout.node_names[1],
                    )
                result.repetitions.append(rep)
                _report_repetition(progress, name, i, rep)
                with progress.step(f"{name}: restoring {master}"):
                    cluster.restore(master)
                    cluster.wait_master(master)
            results.append(result)
        cluster.stop_all()
    return results


# --- report --------------------------------------------------------------------------------------


def _report_repetition(progress: Progress, name: str, i: int, rep: Repetition) -> None:
    gap = f"{rep.gap * 1000:.0f} ms" if rep.gap is not None else "no takeover"
    progress.say(f"{name} #{i + 1}: {rep.old_owner} -> {rep.new_owner}: gap {gap}")


def report(results: list[SystemResult], repetitions: int, load: float | None = None) -> str:
    at_load = f", load {load:.2f} at start" if load is not None else ""
    lines = [
        f"Failover on crash (SIGKILL + link down), client TCP probe every "
        f"{PROBE_INTERVAL * 1000:g} ms, {repetitions} repetitions, same run{at_load}",
        "",
        "| system | median gap | max gap | crash → first answer, median | gaps (ms) |",
        "|---|---|---|---|---|",
    ]
    ours = results[0]
    for r in results:
        if not r.gaps:
            lines.append(f"| {r.name} | no takeover | | | |")
            continue
        gap = summary(r.gaps)
        since = summary([x.since_crash for x in r.repetitions if x.since_crash is not None])
        each = ", ".join(f"{g * 1000:.0f}" for g in r.gaps)
        lines.append(
            f"| {r.name} | {gap['median'] * 1000:.0f} ms | {gap['max'] * 1000:.0f} ms "
            f"| {since['median'] * 1000:.0f} ms | {each} |"
        )
    detected = [r.detected for r in ours.repetitions if r.detected is not None]
    announced = [r.announced for r in ours.repetitions if r.announced is not None]
    if detected and announced:
        lines.append("")
        lines.append(
            "metallb-py timeline, median from the crash (new owner's log): membership drops the "
            f"old owner {summary(detected)['median'] * 1000:.0f} ms, Service announced "
            f"(gratuitous ARP sent) {summary(announced)['median'] * 1000:.0f} ms"
        )
    if ours.gaps:
        base = summary(ours.gaps)["median"]
        lines.append("")
        for r in results[1:]:
            if r.gaps:
                lines.append(
                    f"ratio {r.name} / metallb-py (median): {summary(r.gaps)['median'] / base:.2f}×"
                )
        met = "met" if base < 1.0 else "MISSED"
        lines.append(f"target metallb-py median < 1 s: {met} ({base * 1000:.0f} ms)")
        vrrp3 = next((r for r in results if "VRRPv3" in r.name and r.gaps), None)
        if vrrp3 is not None:
            ratio = base / summary(vrrp3.gaps)["median"]
            met = "met" if ratio <= 0.7 else "MISSED"
            lines.append(
                f"target metallb-py <= 0.7x keepalived VRRPv3 median: {met} ({ratio:.2f}x)"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.failover", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--repetitions", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--no-keepalived", action="store_true", help="metallb-py only")
    parser.add_argument("--json", action="store_true", help="print the raw result as JSON")
    parser.add_argument(
        "--no-wait-quiet",
        action="store_true",
        help="start at once (the report still gives the load)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.repetitions <= 50 or not 2 <= args.nodes <= 9:
        parser.error("--repetitions must be 1..50 and --nodes 2..9")
    try:
        preflight(("curl",) if args.no_keepalived else ("curl", "keepalived"))
    except LabError as e:
        print(f"bench.failover: {e}", file=sys.stderr)
        return 1
    return run_stoppable(
        "bench.failover",
        lambda: measure(
            args.nodes, args.repetitions, not args.no_keepalived, args.json, not args.no_wait_quiet
        ),
    )


def measure(
    nodes: int, repetitions: int, keepalived: bool, as_json: bool, quiet: bool = True
) -> int:
    progress = Progress("bench.failover")
    load = wait_quiet(progress) if quiet else os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp:
        workdir = Path(tmp)
        try:
            results = [bench_metallb(nodes, repetitions, workdir, progress)]
            if keepalived:
                results += bench_keepalived(
                    nodes, repetitions, workdir, [(2, 1.0), (3, 0.1)], progress
                )
        except LabError as e:
            print(f"bench.failover: {e}", file=sys.stderr)
            return 1
    progress.close()
    if as_json:
        print(json.dumps({"load": load, "results": [r.to_json() for r in results]}, indent=2))
    else:
        print(report(results, repetitions, load))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`metallb-py lab demo`: build the lab, use it, crash the owner of a Service, measure the
failover a client sees, clean up. Every step checks what it shows; the result says whether
all of it worked (the command's exit status)."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from metallb_py.lab import render
from metallb_py.lab.lab import Lab, LabError, ProbeProcess, down, up
from metallb_py.lab.layout import Mode
from metallb_py.lab.probe import Failover, analyse
from metallb_py.speaker.decision import election_order
from metallb_py.testing.netns import wait_for

Echo = Callable[[str], None]
PROBE_INTERVAL = 0.01
FAILOVER_DEADLINE = 20.0


@dataclass
class DemoResult:
    ok: bool
    failover: Failover | None = None
    expected_owner: str | None = None
    problems: tuple[str, ...] = ()


def run_demo(
    nodes: int = 3,
    *,
    service: str = "web",
    directory: Path | None = None,
    prefix: str | None = None,
    echo: Echo = print,
) -> DemoResult:
    problems: list[str] = []
    failover: Failover | None = None
    expected: str | None = None
    echo(f"== 1. lab up: {nodes} nodes, layer2")
    lab = up(
        nodes, Mode.LAYER2, directory=directory, prefix=prefix, progress=lambda m: echo(f"   {m}")
    )
    try:
        status = lab.status()
        echo("")
        echo(render.picture(status))
        echo("")
        echo(render.services_table(status.services))
        echo("")
        echo("== 2. curl every Service from the client namespace")
        for svc in status.services:
            for ip in svc.ips:
                node = lab.curl(ip)
                echo(f"   curl {render_url(ip)}  ->  {node or 'NO ANSWER'}")
                if node is None:
                    problems.append(f"{svc.name} ({ip}) did not answer")
            if len(svc.layer2) != 1:
                problems.append(f"{svc.name}: ARP/NDP answered by {list(svc.layer2)}, not one node")
        ip = lab.state.service_ips[service][0]
        owners = sorted(lab.announcers().get(ip, set()))
        if len(owners) != 1:
            problems.append(f"{service} ({ip}) is announced by {owners}, not exactly one node")
            return _finish(lab, directory, prefix, echo, problems, None, None)
        owner = owners[0]
        survivors = [n for n in lab.layout.node_names if n != owner]
        expected = election_order(survivors, ipaddress.ip_address(ip))[0] if survivors else None
        echo("")
        echo(f"== 3. {service} ({ip}) is announced by {owner}; crash {owner}")
        if expected is None:
            problems.append("a crash needs at least 2 nodes")
            return _finish(lab, directory, prefix, echo, problems, None, None)
        failover = _crash_and_measure(lab, ip, owner, echo, problems)
        if failover is not None and failover.new_owner != expected:
            problems.append(f"the new owner is {failover.new_owner}, the election says {expected}")
        if failover is not None and failover.new_owner is not None:
            try:
                wait_for(
                    lambda: lab.announcers().get(ip) == {failover.new_owner},
                    5,
                    interval=0.2,
                    what="the new owner's metric",
                )
                echo(f"   metallb_speaker_announced: {ip} by {failover.new_owner} only")
            except TimeoutError:
                problems.append(f"metrics: {ip} announced by {lab.announcers().get(ip)}")
        echo("")
        status = lab.status()
        echo(render.picture(status))
        echo("")
        echo(render.services_table(status.services))
    except Exception as e:  # any failure after `up` still ends in `down` and a clear report
        problems.append(str(e) if isinstance(e, LabError) else f"{type(e).__name__}: {e}")
    return _finish(lab, directory, prefix, echo, problems, failover, expected)


def render_url(ip: str) -> str:
    return f"http://[{ip}]/" if ":" in ip else f"http://{ip}/"


def _crash_and_measure(
    lab: Lab, ip: str, owner: str, echo: Echo, problems: list[str]
) -> Failover | None:
    probe = ProbeProcess(
        lab.state.prefix,
        lab.layout.client_netns,
        ip,
        interval=PROBE_INTERVAL,
        max_seconds=FAILOVER_DEADLINE + 10,
        settle=5,
    )
    try:
        ready = probe.wait("ready", 10)
        time.sleep(0.3)  # a steady baseline of answers before the crash
        pid = lab.state.running("speaker", owner)
        crashed_at = lab.crash(owner)
        echo(
            f"   SIGKILL speaker of {owner} (pid {pid.pid if pid else '?'}), "
            f"ip link set eth0 down in {lab.layout.node(owner).netns}"
        )
        echo(
            f"   probing {ip}:80 from the client every {PROBE_INTERVAL * 1000:.0f} ms "
            f"(a new TCP connection + GET each time; first answer was from {ready['node']})"
        )
        result = analyse(probe.samples(FAILOVER_DEADLINE + 15), crashed_at)
    finally:
        probe.close()
    if result is None or result.new_owner is None or result.gap is None:
        problems.append(f"no other node answered for {ip} within {FAILOVER_DEADLINE:.0f} s")
        return result
    since = result.since(crashed_at) or 0.0
    echo("")
    echo("== 4. failover")
    echo(f"   last answer from {result.old_owner}, first answer from {result.new_owner}")
    echo(
        f"   gap seen by the client: {result.gap * 1000:.0f} ms "
        f"({result.failed} probes unanswered); crash -> first answer: {since * 1000:.0f} ms"
    )
    return result


def _finish(
    lab: Lab,
    directory: Path | None,
    prefix: str | None,
    echo: Echo,
    problems: list[str],
    failover: Failover | None,
    expected: str | None,
) -> DemoResult:
    echo("")
    echo("== 5. lab down")
    report = down(directory or lab.directory, prefix or lab.state.prefix)
    echo(f"   stopped {len(report.stopped)} processes, removed {len(report.namespaces)} namespaces")
    if not report.clean:
        problems.append(
            f"left behind: namespaces {list(report.leftover_namespaces)}, "
            f"processes {list(report.leftover_processes)}"
        )
    echo("")
    if problems:
        for p in problems:
            echo(f"PROBLEM: {p}")
        echo("demo FAILED")
    else:
        gap = failover.gap if failover else None
        echo(f"demo OK: failover in {gap * 1000:.0f} ms, nothing left behind" if gap else "demo OK")
    return DemoResult(not problems, failover, expected, tuple(problems))

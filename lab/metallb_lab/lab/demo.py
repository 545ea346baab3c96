"""`metallb-py lab demo`: build the lab, use it, crash the owner of a Service, measure the
failover a client sees, clean up. Every step checks what it shows; the result says whether
all of it worked (the command's exit status).

Layer2: the owner is the elected node; the failover is the next node's gratuitous ARP.
BGP: the owner is the ECMP next hop the client's flow hashes to; the node vanishes (link down,
then SIGKILL: not even a TCP FIN reaches the router), FRR's BFD misses three 100 ms packets and
drops the session (instead of waiting for the 3 s hold time) and withdraws that next hop, the
flow re-hashes to another.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from metallb_lab.lab import render
from metallb_lab.lab.layout import (
    BFD_DETECT_MULTIPLIER,
    BFD_INTERVAL_MS,
    BGP_HOLD_TIME,
    ApiBackend,
    Mode,
    expected_owner,
)
from metallb_lab.lab.lifecycle import down, up
from metallb_lab.lab.probe import Failover, ProbeProcess, analyse
from metallb_lab.lab.router import RouterError, sessions_down
from metallb_lab.lab.running import Lab
from metallb_lab.lab.state import LabError
from metallb_lab.netns import wait_for

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
    mode: Mode = Mode.LAYER2,
    service: str = "web",
    directory: Path | None = None,
    prefix: str | None = None,
    echo: Echo = print,
    apiserver: ApiBackend = ApiBackend.EMBEDDED,
) -> DemoResult:
    if mode is Mode.BGP:
        return run_bgp_demo(
            nodes,
            service=service,
            directory=directory,
            prefix=prefix,
            echo=echo,
            apiserver=apiserver,
        )
    problems: list[str] = []
    failover: Failover | None = None
    expected: str | None = None
    lab = _up(nodes, Mode.LAYER2, "layer2", apiserver, directory, prefix, echo)
    try:
        status = lab.status()
        echo("")
        echo(render.overview(status))
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
        plan = next(s for s in lab.layout.services if s.name == service)
        expected = expected_owner(plan, ip, survivors)
        echo("")
        echo(f"== 3. {service} ({ip}) is announced by {owner}; crash {owner}")
        if expected is None:
            problems.append(f"no other node may announce {service} once {owner} crashes")
            return _finish(lab, directory, prefix, echo, problems, None, None)
        failover, _ = _crash_and_measure(lab, ip, owner, echo, problems)
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
        echo(render.overview(status))
    except Exception as e:  # any failure after `up` still ends in `down` and a clear report
        problems.append(str(e) if isinstance(e, LabError) else f"{type(e).__name__}: {e}")
    except BaseException:  # stopped (SIGTERM, SIGINT): the lab goes, then the stop goes on
        _stopped(lab, directory, prefix, echo)
        raise
    return _finish(lab, directory, prefix, echo, problems, failover, expected)


def run_bgp_demo(
    nodes: int = 3,
    *,
    service: str = "web",
    directory: Path | None = None,
    prefix: str | None = None,
    echo: Echo = print,
    apiserver: ApiBackend = ApiBackend.EMBEDDED,
) -> DemoResult:
    """Up in bgp mode, curl through FRR's routes, make the node the client's flow goes to
    vanish, measure the client's gap and when FRR dropped the session, down."""
    problems: list[str] = []
    failover: Failover | None = None
    what = "bgp (FRR zebra + bfdd + bgpd in the client namespace, BFD on every session)"
    lab = _up(nodes, Mode.BGP, what, apiserver, directory, prefix, echo)
    survivors: list[str] = []
    try:
        status = lab.status()
        echo("")
        echo(render.overview(status))
        echo("")
        echo("== 2. curl every Service from the client namespace, through the routes FRR installed")
        expected = lab.expected_routes()
        for svc in status.services:
            for ip in svc.ips:
                node = lab.curl(ip)
                echo(f"   curl {render_url(ip)}  ->  {node or 'NO ANSWER'}")
                if node is None or node not in svc.next_hops:
                    problems.append(
                        f"{svc.name} ({ip}) answered by {node}, routed to {svc.next_hops}"
                    )
                for line in _kernel_route(lab, ip):
                    echo(f"      {line}")
            if svc.next_hops != (want := expected[svc.name]):
                problems.append(f"{svc.name}: FRR routes to {list(svc.next_hops)}, expected {want}")
        ip = lab.state.service_ips[service][0]
        owner = lab.curl(ip)
        hops = expected[service]
        if owner is None:
            problems.append(f"{service} ({ip}) does not answer")
            return _finish(lab, directory, prefix, echo, problems, None, None)
        survivors = [n for n in hops if n != owner]
        echo("")
        echo(
            f"== 3. {service} ({ip}) is routed to {','.join(hops)}; the client's flow hashes to "
            f"{owner}; {owner} vanishes"
        )
        if not survivors:
            problems.append(f"{service} needs at least 2 next hops for a failover")
            return _finish(lab, directory, prefix, echo, problems, None, None)
        failover, crashed_at = _crash_and_measure(lab, ip, owner, echo, problems, link_first=True)
        crashed_wall = time.time() - (time.monotonic() - crashed_at)
        if failover is not None and failover.new_owner not in survivors:
            problems.append(
                f"the new answer came from {failover.new_owner}, not one of {survivors}"
            )
        _report_withdrawal(lab, service, ip, owner, survivors, crashed_wall, echo, problems)
        echo("")
        status = lab.status()
        echo(render.overview(status))
        for plan in lab.layout.services:
            if plan.local and not lab.expected_routes()[plan.name]:
                echo(
                    f"   ({plan.name} is externalTrafficPolicy: Local with its only endpoint on "
                    f"{','.join(plan.endpoint_nodes)}: no node announces it now, so no route)"
                )
    except Exception as e:  # any failure after `up` still ends in `down` and a clear report
        problems.append(str(e) if isinstance(e, LabError) else f"{type(e).__name__}: {e}")
    except BaseException:  # stopped (SIGTERM, SIGINT): the lab goes, then the stop goes on
        _stopped(lab, directory, prefix, echo)
        raise
    return _finish(lab, directory, prefix, echo, problems, failover, None)


def _up(
    nodes: int,
    mode: Mode,
    what: str,
    apiserver: ApiBackend,
    directory: Path | None,
    prefix: str | None,
    echo: Echo,
) -> Lab:
    echo(f"== 1. lab up: {nodes} nodes, {what}, API server {apiserver}")
    return up(
        nodes,
        mode,
        directory=directory,
        prefix=prefix,
        progress=lambda m: echo(f"   {m}"),
        apiserver=apiserver,
    )


def _kernel_route(lab: Lab, ip: str) -> list[str]:
    """The client's kernel route for `ip`, as `ip route show` prints it."""
    family = "-6" if ":" in ip else "-4"
    out = lab.client.ip(family, "route", "show", ip, check=False).stdout
    return [f"kernel: {line.strip()}" for line in out.splitlines() if line.strip()]


def _report_withdrawal(
    lab: Lab,
    service: str,
    ip: str,
    owner: str,
    survivors: list[str],
    crashed_wall: float,
    echo: Echo,
    problems: list[str],
) -> None:
    """FRR's view after the crash: when and why it dropped the session, and the route."""
    address = lab.layout.node(owner).ipv4
    try:
        wait_for(
            lambda: lab.route_nodes(lab.router_view(), ip) == tuple(survivors),
            BGP_HOLD_TIME + 5,
            interval=0.1,
            what="FRR to withdraw the dead next hop",
        )
    except (TimeoutError, RouterError) as e:
        problems.append(f"FRR did not withdraw {owner} from the route for {ip}: {e}")
        return
    events = [
        e
        for e in sessions_down(lab.log("bgpd").read_text(errors="replace"), crashed_wall)
        if e.neighbor == address
    ]
    if events:
        event = events[0]
        echo(
            f"   FRR: session with {owner} ({address}) down {event.at - crashed_wall:.2f} s after "
            f"the crash ({event.reason}; BFD detection {BFD_DETECT_MULTIPLIER} x "
            f"{BFD_INTERVAL_MS} ms, hold time {BGP_HOLD_TIME} s)"
        )
    else:
        problems.append(f"no session drop for {address} in FRR's log")
    echo(f"   FRR's route for {service} ({ip}) now via {','.join(survivors)}")
    for line in _kernel_route(lab, ip):
        echo(f"      {line}")


def render_url(ip: str) -> str:
    return f"http://[{ip}]/" if ":" in ip else f"http://{ip}/"


def _crash_and_measure(
    lab: Lab, ip: str, owner: str, echo: Echo, problems: list[str], *, link_first: bool = False
) -> tuple[Failover | None, float]:
    """The failover the probe saw, and the moment of the crash (CLOCK_MONOTONIC)."""
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
        crashed_at = lab.crash(owner, link_first=link_first)
        kill = f"SIGKILL speaker of {owner} (pid {pid.pid if pid else '?'})"
        link = f"ip link set eth0 down in {lab.layout.node(owner).netns}"
        echo(f"   {link}, then {kill}" if link_first else f"   {kill}, {link}")
        echo(
            f"   probing {ip}:80 from the client every {PROBE_INTERVAL * 1000:.0f} ms "
            f"(a new TCP connection + GET each time; first answer was from {ready['node']})"
        )
        result = analyse(probe.samples(FAILOVER_DEADLINE + 15), crashed_at)
    finally:
        probe.close()
    if result is None or result.new_owner is None or result.gap is None:
        problems.append(f"no other node answered for {ip} within {FAILOVER_DEADLINE:.0f} s")
        return result, crashed_at
    since = result.since(crashed_at) or 0.0
    echo("")
    echo("== 4. failover")
    echo(f"   last answer from {result.old_owner}, first answer from {result.new_owner}")
    echo(
        f"   gap seen by the client: {result.gap * 1000:.0f} ms "
        f"({result.failed} probes unanswered); crash -> first answer: {since * 1000:.0f} ms"
    )
    return result, crashed_at


def _stopped(lab: Lab, directory: Path | None, prefix: str | None, echo: Echo) -> None:
    echo("")
    echo("== stopped: lab down")
    report = down(directory or lab.directory, prefix or lab.state.prefix)
    echo(f"   stopped {len(report.stopped)} processes, removed {len(report.namespaces)} namespaces")


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

"""BGP rolling restart of every speaker: probes a client loses, graceful restart off vs on.

    python -m bench.bgp_restart [--nodes 2] [--restart-time 120] [--pause 2] [--quiet-wait 120]
                                [--json]

The lab of `metallb-py lab up --mode bgp` (API server, controller, one speaker per node, FRR
bgpd + zebra in the client namespace installing what it learns into the client's kernel table,
a backend per node answering on the Service IPs). FRR runs with its defaults: graceful restart
helper mode, as most routers. Two probes from the client open a new TCP connection and send a
GET every 10 ms (`metallb_lab.lab.probe`, 0.5 s deadline each) to:

* `local` (externalTrafficPolicy Local, one endpoint on the last node): only that node announces
  it, so its speaker's restart is what a client of a single-node route sees;
* `web` (Cluster): every node announces it, FRR routes it over ECMP.

Phases, each a rolling restart of every speaker in node order (signal, wait for the exit, start
a new one, wait until FRR has the session Established again and every route back, pause):

1. `off`: the lab's config (no graceful restart): SIGTERM sends Cease, FRR withdraws the node's
   routes until the new speaker announces them.
2. `on`: `graceful-restart: true` on the peer: SIGTERM closes without NOTIFICATION, FRR keeps the
   routes (stale) until the new speaker's End-of-RIB.
3. `on-kill`: the same with SIGKILL (no goodbye at all; the kernel closes the socket).

Lost = probes without an answer. Target (issue 14): 0 lost with graceful restart on.
Needs root, FRR. A restart of the speakers' config (off -> on) replaces the sessions once before
phase 2 (a Cease each); that is set-up, not measured. Progress on stderr; SIGTERM or SIGINT stops
the run and removes the lab (metallb_lab.signals).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.quiet import wait_quiet
from metallb_lab import netns
from metallb_lab.lab import processes
from metallb_lab.lab.layout import BGP_HOLD_TIME, Mode, config_text
from metallb_lab.lab.lifecycle import down, up
from metallb_lab.lab.objects import config_map
from metallb_lab.lab.probe import ProbeProcess
from metallb_lab.lab.running import Lab
from metallb_lab.lab.state import LabError
from metallb_lab.progress import Progress
from metallb_lab.signals import run_stoppable

PROBE_INTERVAL = 0.01
PROBE_TIMEOUT = 0.5
QUIET_WAIT = 120.0
"""Seconds to wait for a 1-minute load below 1.5 before each phase (then it measures anyway
and the report shows the load)."""
PROBED = ("local", "web")
PHASE_SIGNALS = {"off": signal.SIGTERM, "on": signal.SIGTERM, "on-kill": signal.SIGKILL}
SETTLE_TIMEOUT = 60.0
EXIT_TIMEOUT = 10.0


def graceful_restart_config(lab: Lab, restart_time: int | None) -> str:
    """The lab's config, with graceful restart on the peer when `restart_time` is given."""
    text = config_text(lab.layout)
    if restart_time is None:
        return text
    hold = f"  hold-time: {BGP_HOLD_TIME}s\n"
    assert hold in text, text
    return text.replace(
        hold, f"{hold}  graceful-restart: true\n  graceful-restart-time: {restart_time}s\n"
    )


def set_graceful_restart(lab: Lab, restart_time: int | None) -> None:
    """Apply the config and wait until FRR shows every node's session Established with the
    capability negotiated (or not) accordingly, every route back and BFD Up."""
    lab.rest.replace(config_map(graceful_restart_config(lab, restart_time)))
    want = "advertisedAndReceived" if restart_time is not None else None

    def negotiated() -> bool:
        return all(frr_session(lab, n) == ("Established", want) for n in lab.layout.node_names)

    netns.wait_for(negotiated, SETTLE_TIMEOUT, 0.2, "sessions with the new config")
    lab.wait_routes(SETTLE_TIMEOUT)
    lab.wait_bfd(SETTLE_TIMEOUT)  # the replaced sessions' BFD too: a flap later would reset BGP


def frr_session(lab: Lab, node: str) -> tuple[str, str | None]:
    """(bgpState, gracefulRestart capability state) of a node's session as FRR shows it."""
    frr = lab.router
    assert frr is not None
    info = frr.neighbor(lab.layout.node(node).ipv4)
    caps = info.get("neighborCapabilities") or {}
    return str(info.get("bgpState", "")), caps.get("gracefulRestart")


def established_count(lab: Lab, node: str) -> int:
    frr = lab.router
    assert frr is not None
    return int(frr.neighbor(lab.layout.node(node).ipv4).get("connectionsEstablished", 0))


def stop_speaker(lab: Lab, node: str, sig: int) -> float:
    """Signal the node's speaker and wait (bounded) until it has exited; the moment of the
    signal (CLOCK_MONOTONIC)."""
    rec = lab.state.running("speaker", node)
    if rec is None:
        raise LabError(f"node {node} has no running speaker")
    at = time.monotonic()
    processes.signal_pid(rec.pid, sig)
    deadline = at + EXIT_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(rec.pid, os.WNOHANG)  # our child: reap it
        if not processes.running(rec.pid, rec.start_time):
            return at
        time.sleep(0.01)
    raise LabError(f"the speaker of {node} still runs {EXIT_TIMEOUT:.0f} s after {sig!r}")


def restart_speaker(lab: Lab, node: str, sig: int) -> dict[str, float]:
    """Stop and start the node's speaker, wait for its new session, every route and BFD Up;
    the timeline in seconds from the signal."""
    before = established_count(lab, node)
    at = stop_speaker(lab, node, sig)
    exited = time.monotonic() - at
    lab.start_speaker(node)
    netns.wait_for(
        lambda: (
            frr_session(lab, node)[0] == "Established" and established_count(lab, node) > before
        ),
        SETTLE_TIMEOUT,
        0.05,
        f"{node}'s new session",
    )
    established = time.monotonic() - at
    lab.wait_routes(SETTLE_TIMEOUT)
    routes = time.monotonic() - at
    lab.wait_bfd(SETTLE_TIMEOUT)  # ready, as a rolling upgrade waits before the next node
    return {"exited": exited, "established": established, "routes": routes}


@dataclass
class ProbeResult:
    service: str
    sent: int
    lost: int
    longest_gap: float
    """Seconds from the last answered probe before a failure run to the first after it."""


@dataclass
class PhaseResult:
    phase: str
    signal: str
    restart_time: int | None
    load: float
    restarts: dict[str, dict[str, float]] = field(default_factory=dict)
    probes: list[ProbeResult] = field(default_factory=list)
    covered: bool = True
    """Every restart finished while the probes ran."""


def probe_result(
    service: str, samples: list[tuple[float, float, str | None]], timeout: float
) -> ProbeResult:
    """Probes sent in the last `timeout` of the window are left out: the probe ends by
    cancelling what is still in flight, which it records as unanswered."""
    cutoff = max((sent for sent, _, _ in samples), default=0.0) - timeout
    ordered = sorted(s for s in samples if s[0] <= cutoff)
    lost = sum(1 for _, _, node in ordered if node is None)
    longest = 0.0
    last_ok: float | None = None
    failing = False
    for sent, _, node in ordered:
        if node is None:
            failing = True
        else:
            if failing and last_ok is not None:
                longest = max(longest, sent - last_ok)
            failing = False
            last_ok = sent
    return ProbeResult(service, len(ordered), lost, round(longest, 3))


def run_phase(
    lab: Lab, phase: str, restart_time: int | None, pause: float, progress: Progress
) -> PhaseResult:
    sig = PHASE_SIGNALS[phase]
    result = PhaseResult(phase, sig.name, restart_time, os.getloadavg()[0])
    nodes = lab.layout.node_names
    window = 10.0 + (12.0 + pause) * len(nodes)
    probes = {
        name: ProbeProcess(
            lab.state.prefix,
            lab.layout.client_netns,
            lab.state.service_ips[name][0],
            interval=PROBE_INTERVAL,
            timeout=PROBE_TIMEOUT,
            max_seconds=window,
            settle=1_000_000,
        )
        for name in PROBED
    }
    started = time.monotonic()
    try:
        for probe in probes.values():
            probe.wait("ready", 20)
        time.sleep(1.0)
        for node in nodes:
            with progress.step(f"{phase}: {sig.name} to the speaker of {node}, then a new one"):
                result.restarts[node] = restart_speaker(lab, node, sig)
            time.sleep(pause)
        result.covered = time.monotonic() - started < window
        for name, probe in probes.items():
            samples = probe.samples(window + 30)
            result.probes.append(probe_result(name, samples, PROBE_TIMEOUT))
    finally:
        for probe in probes.values():
            probe.close()
    return result


@contextlib.contextmanager
def bgp_lab(nodes: int, name: str, progress: Progress | None = None) -> Iterator[Lab]:
    """A bgp lab under its own prefix (`<name><pid>`) in a temporary directory, removed
    afterwards whatever happens."""
    say = progress.say if progress is not None else (lambda _: None)
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as tmp:
        os.chmod(tmp, 0o711)  # zebra and bfdd run as user frr and must reach the lab directory
        directory = Path(tmp) / "lab"
        prefix = f"{name}{os.getpid()}"
        try:
            say(f"lab up --mode bgp with {nodes} nodes")
            yield up(
                nodes, Mode.BGP, directory=directory, prefix=prefix, tools=("curl",), progress=say
            )
        finally:
            down(directory, prefix)


def measure(
    nodes: int, restart_time: int, pause: float, quiet_wait: float, progress: Progress
) -> list[PhaseResult]:
    results = []
    with bgp_lab(nodes, "mlbgr", progress) as lab:
        for phase in PHASE_SIGNALS:
            wanted = None if phase == "off" else restart_time
            with progress.step(f"{phase}: config with graceful restart {wanted or 'off'}"):
                set_graceful_restart(lab, wanted)
            wait_quiet(progress, timeout=quiet_wait)
            results.append(run_phase(lab, phase, wanted, pause, progress))
            progress.say(describe(results[-1]))
    return results


def describe(r: PhaseResult) -> str:
    probes = ", ".join(
        f"{p.service}: {p.lost}/{p.sent} lost (longest gap {p.longest_gap:.2f} s)" for p in r.probes
    )
    return f"{r.phase} ({r.signal}, load {r.load:.2f}): {probes}" + (
        "" if r.covered else " [restarts outlasted the probe window]"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--restart-time", type=int, default=120)
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between nodes")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=QUIET_WAIT,
        help="seconds to wait for load < 1.5 before each phase (0: do not wait)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not 2 <= args.nodes <= 5:
        parser.error("--nodes must be 2-5")
    progress = Progress("bench.bgp_restart")

    def run() -> int:
        results = measure(args.nodes, args.restart_time, args.pause, args.quiet_wait, progress)
        if args.json:
            print(json.dumps([asdict(r) for r in results], indent=1))
        else:
            for r in results:
                print(describe(r))
                for node, times in r.restarts.items():
                    line = ", ".join(f"{k} {v:.2f} s" for k, v in times.items())
                    print(f"  {node}: {line}")
        return 0

    return run_stoppable("bench.bgp_restart", run)


if __name__ == "__main__":
    sys.exit(main())

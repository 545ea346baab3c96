"""BGP graceful restart end to end (issue 14, item 2): real speakers restarted in the lab of
`metallb-py lab up --mode bgp` (test API server, controller, two speakers, FRR bgpd + zebra in
the client namespace installing its routes into the client's kernel table, a backend per node
on the Service IPs), a client probing a Service every 10 ms through FRR's routes.

The Service probed is the lab's `local` (externalTrafficPolicy Local, its one endpoint on the
last node): only that node announces it, so its speaker's restart is the whole story. With
`graceful-restart: true` on the peer, a SIGTERM or a SIGKILL of that speaker and a new one
lose no probe, FRR holds the route as stale in the gap (and zebra keeps it in the kernel), and
a route the new speaker no longer announces is gone after its End-of-RIB. Without it, SIGTERM
still sends Cease and FRR drops the route at once. docs/bgp.md, "Graceful restart".
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator

import pytest

from bench.bgp_restart import (
    bgp_lab,
    frr_session,
    probe_result,
    set_graceful_restart,
    stop_speaker,
)
from metallb_lab import netns
from metallb_lab.lab.objects import endpoint_slice
from metallb_lab.lab.preflight import preflight_bgp
from metallb_lab.lab.probe import ProbeProcess
from metallb_lab.lab.running import Lab
from metallb_lab.lab.state import LabError

pytestmark = pytest.mark.netns

RESTART_TIME = 60
PROBE_TIMEOUT = 1.0
"""Per probe: a loaded machine answers slowly; a missing route does not answer at all."""


@pytest.fixture
def lab() -> Iterator[Lab]:
    reason = netns.available()
    if reason is not None:
        pytest.skip(reason)
    try:
        preflight_bgp()
    except LabError as e:
        pytest.skip(str(e))
    with bgp_lab(2, "mlbtgr") as running:
        yield running


def bgp_paths(lab: Lab, ip: str) -> list[dict]:
    frr = lab.router
    assert frr is not None
    return frr.route_detail(f"{ip}/32")


def frr_log_since(lab: Lab, mark: int) -> str:
    return lab.log("bgpd").read_text(errors="replace")[mark:]


def log_mark(lab: Lab) -> int:
    return len(lab.log("bgpd").read_text(errors="replace"))


class Probe:
    """The client probing one IP every 10 ms for at most `seconds` (samples at the end)."""

    def __init__(self, lab: Lab, ip: str, seconds: float) -> None:
        self.process = ProbeProcess(
            lab.state.prefix,
            lab.layout.client_netns,
            ip,
            interval=0.01,
            timeout=PROBE_TIMEOUT,
            max_seconds=seconds,
            settle=1_000_000,
        )
        self.seconds = seconds
        self.process.wait("ready", 20)

    def lost(self) -> tuple[int, int]:
        """(unanswered, sent)."""
        try:
            result = probe_result("", self.process.samples(self.seconds + 30), PROBE_TIMEOUT)
        finally:
            self.process.close()
        return result.lost, result.sent


def test_graceful_restart_through_frr_with_a_client(lab: Lab) -> None:
    node = lab.layout.node_names[-1]  # the `local` Service's only endpoint
    address = lab.layout.node(node).ipv4
    ip = lab.state.service_ips["local"][0]
    set_graceful_restart(lab, RESTART_TIME)

    # (a) The capability both ways, as FRR reports it.
    frr = lab.router
    assert frr is not None
    info = frr.neighbor(address)
    assert info["neighborCapabilities"]["gracefulRestart"] == "advertisedAndReceived"
    gr = info["gracefulRestartInfo"]
    assert gr["timers"]["receivedRestartTimer"] == RESTART_TIME
    assert gr["ipv4Unicast"]["fBit"] is True and gr["ipv6Unicast"]["fBit"] is True
    assert gr["ipv4Unicast"]["endOfRibStatus"]["endOfRibRecv"] is True

    # (b) SIGTERM, and (d) SIGKILL: the route stays (stale) in FRR and in the client's kernel
    # while no speaker runs; not one probe is lost.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        probe = Probe(lab, ip, 25.0)
        mark = log_mark(lab)
        stop_speaker(lab, node, sig)
        netns.wait_for(lambda: frr_session(lab, node)[0] != "Established", 10, 0.05, "session down")
        paths = bgp_paths(lab, ip)
        assert [p.get("stale") for p in paths] == [True], (sig, frr_log_since(lab, mark))
        assert lab.kernel_next_hops(ip) == (node,)
        time.sleep(1.0)  # a speaker that takes its time to come back
        assert lab.kernel_next_hops(ip) == (node,)
        lab.start_speaker(node)
        netns.wait_for(lambda: frr_session(lab, node)[0] == "Established", 30, 0.05, "session back")
        lab.wait_routes(30)
        netns.wait_for(
            lambda: [p.get("stale") for p in bgp_paths(lab, ip)] == [None], 10, 0.05, "fresh"
        )
        lab.wait_bfd(30)
        lost, sent = probe.lost()
        assert lost == 0 and sent > 1000, (sig, lost, sent)
        log = frr_log_since(lab, mark)
        assert "NSF peer closed the session" in log or "graceful" in log.lower(), log[-2000:]
        assert not re.search(rf"NOTIFICATION: received from neighbor {address} ", log), log

    # (e) Without graceful restart: Cease on SIGTERM, the route goes at once.
    set_graceful_restart(lab, None)
    mark = log_mark(lab)
    stop_speaker(lab, node, signal.SIGTERM)
    netns.wait_for(lambda: not bgp_paths(lab, ip), 5, 0.05, "route withdrawn at once")
    assert re.search(
        rf"NOTIFICATION: received from neighbor {address} 6/2", frr_log_since(lab, mark)
    )
    lab.start_speaker(node)
    lab.wait_routes(30)

    # (c) The endpoint leaves the node while its speaker is away: the new speaker does not
    # announce `local`, and FRR removes the stale route at its End-of-RIB (well before the
    # restart time).
    set_graceful_restart(lab, RESTART_TIME)
    mark = log_mark(lab)
    stop_speaker(lab, node, signal.SIGTERM)
    lab.rest.replace(endpoint_slice("local", "IPv4", [node], ready=False))
    assert [p.get("stale") for p in bgp_paths(lab, ip)] == [True], (
        frr_log_since(lab, mark),
        lab.log(f"speaker-{node}").read_text()[-3000:],
    )
    started = time.monotonic()
    lab.start_speaker(node)
    netns.wait_for(lambda: not bgp_paths(lab, ip), 30, 0.05, "stale route removed after EoR")
    assert time.monotonic() - started < RESTART_TIME / 2
    # The node's other route (`web`, Cluster) is back, fresh.
    web = lab.state.service_ips["web"][0]
    paths = bgp_paths(lab, web)
    assert {p["nexthops"][0]["ip"] for p in paths} == {
        lab.layout.node(n).ipv4 for n in lab.layout.node_names
    }
    assert not any(p.get("stale") for p in paths)

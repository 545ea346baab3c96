"""Three membership processes in three namespaces on one bridge: crash, restart, partition."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from metallb_lab import netns

REPO = Path(__file__).resolve().parents[2]
NODES = {"n1": "192.0.2.11", "n2": "192.0.2.12", "n3": "192.0.2.13"}
SECRET = "test-secret-0123456789"


class Cluster:
    """Bridge namespace `br` with ports p1..p3; node namespaces n1..n3 (eth0 on the bridge)."""

    def __init__(self, topo: netns.Topology, workdir: Path) -> None:
        self.topo = topo
        self.workdir = workdir
        self.bridge = topo.add_ns("br")
        self.ns: dict[str, netns.Netns] = {}
        for i, (node, address) in enumerate(NODES.items(), start=1):
            ns = topo.add_ns(node)
            topo.veth(ns, "eth0", self.bridge, f"p{i}")
            topo.addr(ns, "eth0", f"{address}/24")
            self.ns[node] = ns
        topo.bridge(self.bridge, "br0", [f"p{i}" for i in range(1, len(NODES) + 1)])
        self.procs: dict[str, Any] = {}

    def start(self, node: str) -> None:
        argv = [
            sys.executable,
            "-m",
            "metallb_lab.harness.membership",
            "--node",
            node,
            "--bind",
            NODES[node],
            "--status-file",
            str(self.status_path(node)),
        ]
        for peer, address in NODES.items():
            argv += ["--peer", f"{peer}={address}"]
        env = {**os.environ, "PYTHONPATH": str(REPO), "METALLB_ML_SECRET_KEY": SECRET}
        with open(self.workdir / f"{node}.log", "ab") as log:
            self.procs[node] = self.topo.spawn(
                self.ns[node], argv, env=env, stderr=log.fileno(), stdout=log.fileno()
            )

    def status_path(self, node: str) -> Path:
        return self.workdir / f"{node}.json"

    def status(self, node: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.status_path(node).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def sees(self, node: str, live: set[str], minority: bool = False) -> dict[str, Any] | None:
        status = self.status(node)
        if status is None or set(status["live"]) != live or status["minority"] is not minority:
            return None
        return status

    def wait_sees(
        self, node: str, live: set[str], minority: bool = False, timeout: float = 5
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            return self.sees(node, live, minority)

        found = netns.wait_for(check, timeout=timeout, what=f"{node} sees {sorted(live)}")
        assert found is not None
        return found

    def log(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
            for p in sorted(self.workdir.glob("*.log"))
        )


@pytest.fixture
def cluster(topo: netns.Topology, tmp_path: Path) -> Cluster:
    c = Cluster(topo, tmp_path)
    for node in NODES:
        c.start(node)
    try:
        netns.wait_for(
            lambda: all(c.sees(n, set(NODES)) for n in NODES), timeout=10, what="all live"
        )
    except TimeoutError:
        pytest.fail(f"cluster did not form:\n{c.log()}")
    return c


@pytest.mark.netns
def test_crash_is_seen_within_a_second_and_restart_revives(cluster: Cluster):
    killed_at = time.monotonic()
    cluster.topo.kill(cluster.procs["n3"], signal.SIGKILL)
    seen = [cluster.wait_sees(n, {"n1", "n2"}) for n in ("n1", "n2")]
    # `changed_at` is the survivor's CLOCK_MONOTONIC when its view changed (one clock for all
    # namespaces), so this is the detection time, not the polling time.
    delays = [s["changed_at"] - killed_at for s in seen]
    assert all(0 < d < 1.0 for d in delays), delays
    # Two of three still hear each other: not a minority.
    assert not any(s["minority"] for s in seen)

    cluster.start("n3")
    netns.wait_for(
        lambda: all(cluster.sees(n, set(NODES)) for n in NODES), timeout=10, what="n3 back"
    )


@pytest.mark.netns
def test_cut_link_puts_the_isolated_node_in_the_minority(cluster: Cluster):
    cluster.bridge.ip("link", "set", "p3", "down")
    cluster.wait_sees("n3", {"n3"}, minority=True)
    for n in ("n1", "n2"):
        cluster.wait_sees(n, {"n1", "n2"}, minority=False)
    cluster.bridge.ip("link", "set", "p3", "up")
    netns.wait_for(
        lambda: all(cluster.sees(n, set(NODES)) for n in NODES), timeout=10, what="healed"
    )


@pytest.mark.netns
def test_lost_carrier_stops_answering_at_once(cluster: Cluster):
    """The bridge port of n3 goes down: n3's eth0 loses carrier, and n3 gives up its layer2
    lease within a round or two instead of waiting for the silence timers."""

    def link_state(up: bool) -> dict[str, Any] | None:
        status = cluster.status("n3")
        return status if status is not None and status["link_up"] is up else None

    assert link_state(True) is not None
    cut_at = time.monotonic()
    cluster.bridge.ip("link", "set", "p3", "down")
    status = netns.wait_for(lambda: link_state(False), timeout=5, what="n3 sees its link down")
    assert status is not None
    assert not status["may_answer"] and status["live"] == ["n3"]
    assert status["changed_at"] - cut_at < 0.1, status["changed_at"] - cut_at
    cluster.bridge.ip("link", "set", "p3", "up")
    netns.wait_for(
        lambda: all(cluster.sees(n, set(NODES)) for n in NODES), timeout=10, what="healed"
    )
    # Acknowledgements follow within a round or two: the lease is back.
    netns.wait_for(
        lambda: (s := cluster.status("n3")) is not None and s["link_up"] and s["may_answer"],
        timeout=2,
        what="n3 holds its lease again",
    )

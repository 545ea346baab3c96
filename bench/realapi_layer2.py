"""Layer2 failover on a node crash, on the real kube-apiserver: metallb-py vs upstream MetalLB
v0.12.1 (memberlist), same namespaces, same Service, same run (docs/upstream.md).

    python -m bench.realapi_layer2 [--repetitions 5] [--nodes 3]

The lab's network (`metallb_lab.lab.topology.build_lan`): a client namespace with a bridge and
one namespace per node; a backend on every node answers with the node's name on the Service IP.
The portal makes the kube-apiserver reachable inside each node namespace; the speakers use the
admin kubeconfig, the lab's membership settings (`METALLB_ML_BIND_ADDR` = the node address,
`METALLB_ML_LABELS`, `METALLB_ML_SECRET_KEY`) and find each other through speaker Pods whose
`status.podIP` is the node address (no kubelet here: the bench writes them). Service `web`
(Cluster) gets its IP by a status write (no controller); both Endpoints (what upstream v0.12.1
reads: kube-apiserver 1.32 no longer serves discovery.k8s.io/v1beta1) and an EndpointSlice (what
metallb-py reads) list a ready endpoint on every node.

A crash is SIGKILL of the owner's speaker plus its link going down, under the failover probe of
`bench.failover` (`metallb_lab.lab.probe`: a new TCP connection and a GET every 10 ms, the
backend answers with its node name). Gap = send time of the first probe a new owner answered −
send time of the last one the old owner answered. After each repetition the node comes back
(link up, a fresh speaker) and the next crash waits until the original owner answers again.
One system at a time (both would answer ARP): metallb-py's speakers first, then upstream's.
Needs root and curl.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from metallb_lab import netns
from metallb_lab.control_plane import ControlPlane
from metallb_lab.lab import objects
from metallb_lab.lab.commands import backend_command, speaker_env
from metallb_lab.lab.layout import APPS_NAMESPACE, config_text, plan_lab
from metallb_lab.lab.probe import ProbeProcess, analyse
from metallb_lab.lab.topology import add_service_ip, build_lan, link_up
from metallb_lab.signals import run_stoppable

from .realapi_common import (
    NS,
    KubeWriter,
    Quiet,
    core_api,
    ensure_namespace,
    node_kubeconfig,
    say,
    start_portal,
    upstream_binaries,
)

SYSTEMS = ("metallb-py", "upstream")
SERVICE = "web"
SERVICE_IP = "192.0.2.100"
PROBE_INTERVAL = 0.01
PROBE_DEADLINE = 60.0
"""Upstream's memberlist needs seconds to declare a node dead; give the probe a minute."""


@dataclass
class Repetition:
    system: str
    old_owner: str
    new_owner: str | None
    gap: float | None
    since_crash: float | None
    unanswered: int
    load_before: float


def endpoints(nodes: dict[str, str]) -> dict[str, Any]:
    """Endpoints of `web`: one ready address per node (node name -> endpoint address)."""
    return {
        "metadata": {"name": SERVICE},
        "subsets": [
            {
                "addresses": [{"ip": ip, "nodeName": node} for node, ip in nodes.items()],
                "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
            }
        ],
    }


class Layer2Bench:
    def __init__(
        self, topo: netns.Topology, cp: ControlPlane, workdir: Path, nodes: int, marker: str
    ) -> None:
        self.topo, self.cp, self.workdir, self.marker = topo, cp, workdir, marker
        self.layout = plan_lab(nodes, prefix=marker)
        self.lan = build_lan(topo, self.layout, client_suffix="c")
        self.secret = secrets.token_hex(16)
        self.env = {**os.environ, "METALLB_LAB_ID": marker, "PYTHONUNBUFFERED": "1"}
        self.speakers: dict[str, subprocess.Popen[bytes]] = {}
        self.system = ""
        self._objects()
        self.node_kubeconfig = node_kubeconfig(cp, workdir / "node-kubeconfig")
        namespaces = [ns.name for ns in self.lan.nodes.values()]
        start_portal(topo, cp, namespaces, workdir / "portal.log", self.env)
        for plan in self.layout.nodes:
            ns = self.lan.nodes[plan.name]
            add_service_ip(ns, SERVICE_IP)
            topo.spawn(ns, backend_command(plan.name, [SERVICE_IP]), env=self.env)

    def _objects(self) -> None:
        core = core_api(self.cp)
        ensure_namespace(core, NS)
        # Pods need their ServiceAccount (no controller-manager creates `default` here).
        core.create_namespaced_service_account(NS, {"metadata": {"name": "default"}})
        writer = KubeWriter(core)
        for plan in self.layout.nodes:
            objects.register(writer, objects.node(plan.name, plan.ipv4))
            objects.register(writer, objects.speaker_pod(plan.name, plan.ipv4))
        core.create_namespaced_config_map(
            NS, {"metadata": {"name": "config"}, "data": {"config": config_text(self.layout)}}
        )
        web = next(s for s in self.layout.services if s.name == SERVICE)
        svc = json.loads(
            core.create_namespaced_service(
                APPS_NAMESPACE, objects.service(web), _preload_content=False
            ).data
        )
        slice_ = objects.endpoint_slice(SERVICE, "IPv4", web.endpoint_nodes)
        discovery: Any = client.DiscoveryV1Api(core.api_client)
        discovery.create_namespaced_endpoint_slice(APPS_NAMESPACE, slice_)
        addresses = {e["nodeName"]: e["addresses"][0] for e in slice_["endpoints"]}
        core.create_namespaced_endpoints(APPS_NAMESPACE, endpoints(addresses))
        svc["status"] = {"loadBalancer": {"ingress": [{"ip": SERVICE_IP}]}}
        core.replace_namespaced_service_status(SERVICE, APPS_NAMESPACE, svc, _preload_content=False)

    def start_speaker(self, node: str) -> None:
        plan = next(p for p in self.layout.nodes if p.name == node)
        args = ["--kubeconfig", str(self.node_kubeconfig), "--namespace", NS, "--port", "7472"]
        if self.system == "metallb-py":
            argv = [sys.executable, "-m", "metallb_py", "speaker", *args]
        else:
            argv = [str(upstream_binaries() / "speaker"), *args]
        log = self.workdir / f"{self.system}-{node}.log"
        with open(log, "ab") as f:
            self.speakers[node] = self.topo.spawn(
                self.lan.nodes[node],
                argv,
                stdout=f.fileno(),
                stderr=subprocess.STDOUT,
                env={**self.env, **speaker_env(node, plan.ipv4, self.secret)},
            )

    def stop_all(self) -> None:
        for node, proc in list(self.speakers.items()):
            self.topo.kill(proc)
            self.topo.processes.remove(proc)
            del self.speakers[node]

    def use(self, system: str) -> str:
        """Speakers of `system` on every node; returns the owner once it answers steadily."""
        self.stop_all()
        self.system = system
        for plan in self.layout.nodes:
            self.start_speaker(plan.name)
        return self.wait_owner(None, 90)

    def crash(self, node: str) -> float:
        proc = self.speakers.pop(node)
        at = time.monotonic()
        os.killpg(proc.pid, 9)
        link_up(self.lan.nodes[node], False)
        proc.wait(timeout=5)
        self.topo.processes.remove(proc)
        return at

    def restore(self, node: str) -> None:
        link_up(self.lan.nodes[node], True)
        self.start_speaker(node)

    # -- the client's view --------------------------------------------------------------------

    def curl(self) -> str | None:
        proc = self.lan.client.run(
            ["curl", "-sS", "--connect-timeout", "1", "-m", "1", f"http://{SERVICE_IP}/"],
            check=False,
            timeout=10,
        )
        return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None

    def wait_owner(self, node: str | None, timeout: float) -> str:
        """Until the same node (`node`, or any) answers five curls in a row."""

        def steady() -> str | None:
            first = self.curl()
            if first is None or (node is not None and first != node):
                return None
            return first if all(self.curl() == first for _ in range(4)) else None

        what = f"{node or 'one node'} answering {SERVICE_IP} steadily ({self.system})"
        found = netns.wait_for(steady, timeout, 0.5, what)
        assert found is not None
        return found

    def measure(self, owner: str, load: float) -> Repetition:
        probe = ProbeProcess(
            self.marker,
            self.lan.client.name,
            SERVICE_IP,
            interval=PROBE_INTERVAL,
            max_seconds=PROBE_DEADLINE,
            settle=5,
        )
        try:
            probe.wait("ready", 10)
            time.sleep(0.3)  # a steady baseline before the crash
            crashed_at = self.crash(owner)
            result = analyse(probe.samples(PROBE_DEADLINE + 15), crashed_at)
        finally:
            probe.close()
        if result is None:
            raise RuntimeError(f"no answers at all from {SERVICE_IP}")
        return Repetition(
            self.system,
            result.old_owner,
            result.new_owner,
            result.gap,
            result.since(crashed_at),
            result.failed,
            load,
        )


def run_system(bench: Layer2Bench, system: str, repetitions: int, quiet: Quiet) -> list[Repetition]:
    say(f"{system}: speakers on every node, waiting for one owner")
    owner = bench.use(system)
    time.sleep(5)  # membership settles (upstream's memberlist joins)
    reps = []
    for i in range(repetitions):
        load = quiet.wait()
        say(f"{system} #{i + 1}: crashing {owner} (load {load:.2f})")
        rep = bench.measure(owner, load)
        reps.append(rep)
        gap = f"{rep.gap * 1000:.0f} ms" if rep.gap is not None else "no takeover"
        say(f"{system} #{i + 1}: {rep.old_owner} -> {rep.new_owner}: gap {gap}")
        bench.restore(owner)
        say(f"{system}: {owner} restored; waiting until it answers again")
        bench.wait_owner(owner, 120)
        time.sleep(3)
    bench.stop_all()
    return reps


def report(reps: list[Repetition]) -> str:
    lines = [
        f"Layer2 failover on crash (SIGKILL + link down) on the real kube-apiserver, client TCP "
        f"probe every {PROBE_INTERVAL * 1000:g} ms, same run",
        "",
        "| system | median gap | max gap | crash → first answer, median | gaps (ms) | load |",
        "|---|---|---|---|---|---|",
    ]
    medians = {}
    for system in SYSTEMS:
        mine = [r for r in reps if r.system == system]
        gaps = [r.gap for r in mine if r.gap is not None]
        if not gaps:
            lines.append(f"| {system} | no takeover | | | | |")
            continue
        since = [r.since_crash for r in mine if r.since_crash is not None]
        medians[system] = statistics.median(gaps)
        loads = [r.load_before for r in mine]
        lines.append(
            f"| {system} | {medians[system] * 1000:.0f} ms | {max(gaps) * 1000:.0f} ms | "
            f"{statistics.median(since) * 1000:.0f} ms | "
            f"{', '.join(f'{g * 1000:.0f}' for g in gaps)} | "
            f"{min(loads):.2f}–{max(loads):.2f} |"
        )
    if len(medians) == 2:
        lines.append("")
        lines.append(
            f"ratio of medians metallb-py ÷ upstream: "
            f"{medians['metallb-py'] / medians['upstream']:.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--logs", type=Path, help="keep the speakers' logs here")
    parser.add_argument("--json", type=Path, help="also write the repetitions here")
    Quiet.add_arguments(parser)
    args = parser.parse_args(argv)
    if not 1 <= args.repetitions <= 50 or not 2 <= args.nodes <= 9:
        parser.error("--repetitions must be 1..50 and --nodes 2..9")
    if os.geteuid() != 0:
        parser.error("needs root (network namespaces)")
    upstream_binaries()
    return run_stoppable("bench.realapi_layer2", lambda: measure(args))


def measure(args: argparse.Namespace) -> int:
    quiet = Quiet.from_args(args)
    marker = f"mlbl2{os.getpid()}"
    reps: list[Repetition] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-realapi-l2-") as tmp,
        ControlPlane() as cp,
        netns.Topology(prefix="mlbt", tag=f"{os.getpid()}u") as topo,
    ):
        workdir = args.logs or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        say(f"kube-apiserver on {cp.url}; namespaces, backends and the portal")
        bench = Layer2Bench(topo, cp, workdir, args.nodes, marker)
        for system in SYSTEMS:
            reps += run_system(bench, system, args.repetitions, quiet)
    print(report(reps))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in reps], indent=1))
    return 0 if all(r.gap is not None for r in reps) else 1


if __name__ == "__main__":
    sys.exit(main())

"""BGP speakers on the real kube-apiserver: metallb-py vs upstream MetalLB v0.12.1's native
speaker, against FRR, same server, same run (docs/upstream.md).

    python -m bench.realapi_bgp [--rounds 15] [--services 256] [--convergence-rounds 3]

Topology: a router namespace with FRR bgpd (AS 64500, passive) and a node namespace `n1` on one
veth; the portal makes the kube-apiserver reachable inside the node namespace at
127.0.0.1:6443 (TLS passes through). Both speakers run as node n1 (admin kubeconfig), each with a
ConfigMap of its own (`--config`): the same peer, its own source address (metallb-py
192.0.2.11, upstream 192.0.2.21) and its own pool (metallb-py 198.51.100.0/24, upstream
203.0.113.0/24), so each ignores the other's Services. Upstream v0.12.1's native speaker is
IPv4-only and there are 512 such documentation addresses: 256 prefixes per speaker, not 10,000
(metallb-py's 10,000-prefix run is `python -m bench.bgp`).

* *latency* (both speakers running, rounds alternate): t0 just before the bench writes a
  Service's `status.loadBalancer.ingress` (no controller); "in FRR" is FRR's own microsecond
  log timestamp of `rcvd <prefix>` (`debug bgp updates in`), checked in FRR's table afterwards;
  then the status is cleared → FRR logs the withdrawal.
* *convergence* (one speaker at a time, rounds alternate): N Services already hold IPs of the
  speaker's pool (Endpoints and EndpointSlices ready on n1); t0 = the speaker process is spawned
  → FRR reports N prefixes from it (polled back to back); also from FRR's `%ADJCHANGE ... Up`
  line to all N, and the UPDATE messages FRR received. SIGKILL ends each round (the kernel
  closes the TCP session, FRR drops the routes).

Needs root and FRR. Each measurement waits (bounded) for a quiet machine and prints the load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from metallb_lab import netns
from metallb_lab.control_plane import ControlPlane
from metallb_lab.lab import objects
from metallb_lab.routers import FRR_BGPD, FrrRouter, Neighbor, PeeringLink
from metallb_lab.signals import run_stoppable

from .realapi_common import (
    NS,
    KubeWriter,
    Quiet,
    core_api,
    ensure_namespace,
    load1,
    node_kubeconfig,
    say,
    start_portal,
    upstream_binaries,
    wait_counting,
    wait_step,
)

MY_ASN = 64512
ROUTER_ASN = 64500
APPS = "apps"
NODE = "n1"
ENDPOINT_IP = "192.0.2.50"
SYSTEMS = ("metallb-py", "upstream")
SOURCE = {"metallb-py": "192.0.2.11", "upstream": "192.0.2.21"}
POOL = {"metallb-py": "198.51.100.0/24", "upstream": "203.0.113.0/24"}
METRICS_PORT = {"metallb-py": 7472, "upstream": 7473}
FRR_STAMP = re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d+) ")


def config_text(system: str) -> str:
    return yaml.safe_dump(
        {
            "peers": [
                {
                    "peer-address": "192.0.2.1",
                    "peer-asn": ROUTER_ASN,
                    "my-asn": MY_ASN,
                    "source-address": SOURCE[system],
                    "router-id": SOURCE[system],
                }
            ],
            "address-pools": [
                {"name": system, "protocol": "bgp", "addresses": [POOL[system]]},
            ],
        }
    )


def pool_ip(system: str, i: int) -> str:
    return str(ipaddress.ip_network(POOL[system])[i])


def service(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "type": "LoadBalancer",
            "ipFamilies": ["IPv4"],
            "allocateLoadBalancerNodePorts": False,
            "selector": {"app": name},
            "ports": [{"port": 80, "protocol": "TCP"}],
        },
    }


def endpoints(name: str) -> dict[str, Any]:
    """What upstream v0.12.1 reads: kube-apiserver 1.32 no longer serves the EndpointSlice
    version it knows (discovery.k8s.io/v1beta1), so it falls back to Endpoints."""
    return {
        "metadata": {"name": name},
        "subsets": [
            {
                "addresses": [{"ip": ENDPOINT_IP, "nodeName": NODE}],
                "ports": [{"port": 80, "protocol": "TCP"}],
            }
        ],
    }


def endpoint_slice(name: str) -> dict[str, Any]:
    """What metallb-py reads (discovery.k8s.io/v1)."""
    return {
        "metadata": {"name": f"{name}-bench", "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": [ENDPOINT_IP], "nodeName": NODE, "conditions": {"ready": True}}
        ],
        "ports": [{"port": 80, "protocol": "TCP"}],
    }


def frr_time(line: str) -> float:
    stamp = FRR_STAMP.match(line)
    if stamp is None:
        raise ValueError(line)
    return dt.datetime.strptime(stamp.group(1), "%Y/%m/%d %H:%M:%S.%f").timestamp()


class FrrLogReader:
    """FRR's log from an offset on: the wall-clock time of the first new line that matches."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size

    def mark(self) -> None:
        self.offset = self.path.stat().st_size

    def find(self, pattern: re.Pattern[str]) -> float | None:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            text = f.read().decode(errors="replace")
        for line in text.splitlines():
            if pattern.search(line) and FRR_STAMP.match(line):
                return frr_time(line)
        return None

    def wait(self, pattern: re.Pattern[str], what: str, timeout: float = 10.0) -> float:
        found = netns.wait_for(lambda: self.find(pattern), timeout, 0.002, what)
        assert found is not None
        return found


def received(peer: str, prefix: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(peer)}\S* rcvd {re.escape(prefix)} IPv4 unicast")


def withdrawn(peer: str, prefix: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(peer)}\S* rcvd UPDATE about {re.escape(prefix)} .*withdrawn")


def session_up(peer: str) -> re.Pattern[str]:
    return re.compile(rf"%ADJCHANGE: neighbor {re.escape(peer)}\S* .*\bUp\b")


@dataclass
class Speaker:
    system: str
    proc: subprocess.Popen[bytes]
    log: Path
    started: float


class Bench:
    def __init__(self, topo: netns.Topology, cp: ControlPlane, workdir: Path) -> None:
        self.topo, self.cp, self.workdir = topo, cp, workdir
        self.link = PeeringLink.create(topo, extra=[f"{SOURCE['upstream']}/24"])
        assert self.link.node_v4 == SOURCE["metallb-py"]
        self.frr = FrrRouter(
            topo,
            self.link.router,
            workdir / "frr",
            ROUTER_ASN,
            self.link.router_v4,
            [Neighbor(SOURCE[s], MY_ASN, ipv6=False) for s in SYSTEMS],
        )
        self.frr.start()
        self.core = core_api(cp)
        self.discovery: Any = client.DiscoveryV1Api(self.core.api_client)
        self.speakers: dict[str, Speaker] = {}
        self._objects()
        self.node_kubeconfig = node_kubeconfig(cp, workdir / "node-kubeconfig")
        start_portal(topo, cp, [self.link.node.name], workdir / "portal.log", dict(os.environ))

    # -- set-up -------------------------------------------------------------------------------

    def _objects(self) -> None:
        core = self.core
        ensure_namespace(core, NS)
        ensure_namespace(core, APPS)
        objects.register(KubeWriter(core), objects.node(NODE, SOURCE["metallb-py"]))
        for system in SYSTEMS:
            core.create_namespaced_config_map(
                NS,
                {"metadata": {"name": f"config-{system}"}, "data": {"config": config_text(system)}},
            )

    def add_service(self, name: str, ip: str | None = None) -> None:
        core = self.core
        svc = core.create_namespaced_service(APPS, service(name), _preload_content=False)
        core.create_namespaced_endpoints(APPS, endpoints(name))
        self.discovery.create_namespaced_endpoint_slice(APPS, endpoint_slice(name))
        if ip:
            obj = json.loads(svc.data)
            obj["status"] = {"loadBalancer": {"ingress": [{"ip": ip}]}}
            core.replace_namespaced_service_status(name, APPS, obj, _preload_content=False)

    def set_status(self, name: str, ip: str | None) -> float:
        """Write the status; returns the wall-clock time just before the request."""
        svc = json.loads(self.core.read_namespaced_service(name, APPS, _preload_content=False).data)
        svc["status"] = {"loadBalancer": {"ingress": [{"ip": ip}] if ip else []}}
        t0 = time.time()
        self.core.replace_namespaced_service_status(name, APPS, svc, _preload_content=False)
        return t0

    # -- speakers -----------------------------------------------------------------------------

    def start(self, system: str) -> Speaker:
        log = self.workdir / f"speaker-{system}-{len(list(self.workdir.glob('speaker-*')))}.log"
        common = [
            "--kubeconfig",
            str(self.node_kubeconfig),
            "--namespace",
            NS,
            "--config",
            f"config-{system}",
            "--node-name",
            NODE,
            "--port",
            str(METRICS_PORT[system]),
        ]
        if system == "metallb-py":
            argv = [sys.executable, "-m", "metallb_py", "speaker", *common]
        else:
            argv = [str(upstream_binaries() / "speaker"), *common]
        env = {k: v for k, v in os.environ.items() if not k.startswith("METALLB_")}
        env["PYTHONUNBUFFERED"] = "1"
        with open(log, "wb") as f:
            started = time.time()
            proc = self.topo.spawn(
                self.link.node, argv, stdout=f.fileno(), stderr=subprocess.STDOUT, env=env
            )
        speaker = Speaker(system, proc, log, started)
        self.speakers[system] = speaker
        return speaker

    def kill(self, system: str) -> None:
        speaker = self.speakers.pop(system, None)
        if speaker is not None:
            self.topo.kill(speaker.proc)
            self.topo.processes.remove(speaker.proc)

    def alive(self, system: str) -> bool:
        speaker = self.speakers[system]
        if speaker.proc.poll() is not None:
            tail = speaker.log.read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError(f"{system} speaker exited:\n" + "\n".join(tail))
        return True

    def prefixes(self, system: str) -> int:
        return self.frr.prefix_count(SOURCE[system], "ipv4")

    def updates_received(self, system: str) -> int:
        stats = self.frr.neighbor(SOURCE[system]).get("messageStats", {})
        return int(stats.get("updatesRecv", 0))

    def in_rib(self, system: str, prefix: str) -> bool:
        paths = self.frr.json(f"show bgp ipv4 unicast {prefix} json").get("paths", [])
        return any(p["peer"]["peerId"] == SOURCE[system] for p in paths)


# -- latency ------------------------------------------------------------------------------------


def latency_round(bench: Bench, system: str, i: int, log: FrrLogReader) -> dict[str, float]:
    name, ip = f"lat-{system}-{i}", pool_ip(system, i + 1)
    prefix, peer = f"{ip}/32", SOURCE[system]
    log.mark()
    t0 = bench.set_status(name, ip)
    t1 = log.wait(received(peer, prefix), f"{prefix} in FRR")
    netns.wait_for(lambda: bench.in_rib(system, prefix), 5, 0.01, f"{prefix} in FRR's table")
    time.sleep(0.2)
    log.mark()
    t2 = bench.set_status(name, None)
    t3 = log.wait(withdrawn(peer, prefix), f"{prefix} withdrawn")
    netns.wait_for(lambda: not bench.in_rib(system, prefix), 5, 0.01, f"{prefix} gone")
    return {"announce": t1 - t0, "withdraw": t3 - t2}


def measure_latency(bench: Bench, rounds: int, quiet: Quiet) -> dict[str, Any]:
    for system in SYSTEMS:
        for i in range(rounds):
            bench.add_service(f"lat-{system}-{i}")
    for system in SYSTEMS:
        bench.start(system)
    wait_step(
        lambda: all(bench.frr.neighbor_state(SOURCE[s]) == "Established" for s in SYSTEMS),
        60,
        "both BGP sessions established",
        0.2,
    )
    time.sleep(3)  # both speakers have processed the Services without IPs
    bench.frr.vtysh("debug bgp updates in")
    log = FrrLogReader(bench.frr.log_path)
    load = quiet.wait()
    samples: dict[str, list[dict[str, float]]] = {s: [] for s in SYSTEMS}
    for i in range(rounds):
        order = SYSTEMS if i % 2 == 0 else SYSTEMS[::-1]
        for system in order:
            bench.alive(system)
            r = latency_round(bench, system, i, log)
            samples[system].append(r)
            say(
                f"latency round {i + 1}/{rounds} {system}: announce {r['announce'] * 1000:.1f} "
                f"ms, withdraw {r['withdraw'] * 1000:.1f} ms"
            )
            time.sleep(0.1)
    bench.frr.vtysh("no debug bgp updates in")
    for system in SYSTEMS:
        bench.kill(system)
    for system in SYSTEMS:
        for i in range(rounds):
            bench.core.delete_namespaced_service(f"lat-{system}-{i}", APPS)
    return {"load_before": load, "load_after": load1(), "samples": samples}


# -- convergence --------------------------------------------------------------------------------


def convergence_round(bench: Bench, system: str, n: int, quiet: Quiet) -> dict[str, float]:
    netns.wait_for(
        lambda: bench.frr.neighbor_state(SOURCE[system]) != "Established",
        120,
        0.2,
        f"no session with {system}'s address",
    )
    load = quiet.wait()
    log = FrrLogReader(bench.frr.log_path)
    updates_before = bench.updates_received(system)
    speaker = bench.start(system)
    try:
        wait_counting(
            lambda: bench.prefixes(system) if bench.alive(system) else 0,
            n,
            120,
            f"{system}: prefixes in FRR",
        )
        t_all = time.time()
        up = log.find(session_up(SOURCE[system]))
        assert up is not None
        updates = bench.updates_received(system) - updates_before
    finally:
        bench.kill(system)
    return {
        "spawn_to_all": t_all - speaker.started,
        "up_to_all": t_all - up,
        "spawn_to_up": up - speaker.started,
        "updates": updates,
        "load_before": load,
        "load_after": load1(),
    }


def measure_convergence(bench: Bench, n: int, rounds: int, quiet: Quiet) -> dict[str, Any]:
    say(f"convergence: {n} Services per speaker, with IPs and ready endpoints")
    for system in SYSTEMS:
        for i in range(n):
            bench.add_service(f"conv-{system}-{i:03d}", pool_ip(system, i))
    samples: dict[str, list[dict[str, float]]] = {s: [] for s in SYSTEMS}
    for r in range(rounds):
        order = SYSTEMS if r % 2 == 0 else SYSTEMS[::-1]
        for system in order:
            got = convergence_round(bench, system, n, quiet)
            samples[system].append(got)
            say(
                f"convergence round {r + 1}/{rounds} {system}: all {n} in FRR "
                f"{got['spawn_to_all']:.2f} s after spawn, {got['up_to_all'] * 1000:.0f} ms "
                f"after session up, {got['updates']:.0f} UPDATEs"
            )
    return {"samples": samples}


# -- report -------------------------------------------------------------------------------------


def med(samples: list[dict[str, float]], key: str) -> float:
    return statistics.median(s[key] for s in samples)


def span(samples: list[dict[str, float]], key: str, scale: float = 1.0, fmt: str = ".1f") -> str:
    values = [s[key] * scale for s in samples]
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"


def report(latency: dict[str, Any], convergence: dict[str, Any], n: int) -> str:
    lat = latency["samples"]
    conv = convergence["samples"]
    lines = [
        "BGP on the real kube-apiserver, FRR as the peer; medians (min–max); "
        f"{len(lat['upstream'])} latency rounds, {len(conv['upstream'])} convergence rounds "
        "per speaker",
        "",
        "| | metallb-py | upstream v0.12.1 | metallb-py ÷ upstream |",
        "|---|---|---|---|",
    ]
    for key, label in (
        ("announce", "status written → route in FRR (ms)"),
        ("withdraw", "status cleared → withdrawn in FRR (ms)"),
    ):
        ours, theirs = lat["metallb-py"], lat["upstream"]
        ratio = med(ours, key) / med(theirs, key)
        lines.append(
            f"| {label} | {span(ours, key, 1000)} | {span(theirs, key, 1000)} | {ratio:.2f} |"
        )
    for key, label, fmt in (
        ("spawn_to_all", f"speaker started → all {n} prefixes in FRR (s)", ".2f"),
        ("spawn_to_up", "speaker started → session up (s)", ".2f"),
        ("up_to_all", f"session up → all {n} prefixes in FRR (s)", ".3f"),
        ("updates", "UPDATE messages FRR received", ".0f"),
    ):
        ours, theirs = conv["metallb-py"], conv["upstream"]
        ratio = med(ours, key) / med(theirs, key) if med(theirs, key) else float("nan")
        lines.append(
            f"| {label} | {span(ours, key, fmt=fmt)} | {span(theirs, key, fmt=fmt)} | {ratio:.2f} |"
        )
    loads = [latency["load_before"], latency["load_after"]] + [
        s[k] for samples in conv.values() for s in samples for k in ("load_before", "load_after")
    ]
    lines.append("")
    lines.append(f"load average during the measurements: {min(loads):.2f}–{max(loads):.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="latency rounds per speaker")
    parser.add_argument("--services", type=int, default=256, help="prefixes per speaker (≤ 256)")
    parser.add_argument("--convergence-rounds", type=int, default=3)
    parser.add_argument("--logs", type=Path, help="keep the speakers' and FRR's logs here")
    parser.add_argument("--json", type=Path, help="also write the samples here")
    Quiet.add_arguments(parser)
    args = parser.parse_args(argv)
    if not 1 <= args.services <= 256 or not 1 <= args.rounds <= 100:
        parser.error("--services must be 1..256 and --rounds 1..100")
    if not os.path.exists(FRR_BGPD) or os.geteuid() != 0:
        parser.error(f"needs root and FRR ({FRR_BGPD})")
    upstream_binaries()
    return run_stoppable("bench.realapi_bgp", lambda: measure(args))


def measure(args: argparse.Namespace) -> int:
    quiet = Quiet.from_args(args)
    with (
        tempfile.TemporaryDirectory(prefix="bench-realapi-bgp-") as tmp,
        ControlPlane() as cp,
        netns.Topology() as topo,
    ):
        workdir = args.logs or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        say(f"kube-apiserver on {cp.url}; namespaces, FRR and the portal")
        bench = Bench(topo, cp, workdir)
        latency = measure_latency(bench, args.rounds, quiet)
        convergence = measure_convergence(bench, args.services, args.convergence_rounds, quiet)
    print(report(latency, convergence, args.services))
    if args.json:
        args.json.write_text(json.dumps({"latency": latency, "convergence": convergence}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""BGP: time from one Service status change to the route in FRR, ours vs gobgpd in the same run.

    python -m bench.bgp_latency [--rounds 15] [--json]

Topology: a router namespace running FRR bgpd (AS 64500, passive, `debug bgp updates in`) and a
node namespace on one veth. In the node namespace run, side by side, the real `metallb-py
speaker` (a subprocess, 192.0.2.11, reaching the in-process test API server through the portal)
and gobgpd (192.0.2.21, the reference). FRR's log has microsecond wall-clock timestamps; "in
FRR" is the moment FRR logs `rcvd <prefix>` for the UPDATE (it enters the RIB in the same event;
every route is also checked in the RIB afterwards, untimed).

Two phases, each interleaving its rounds with the reference so both see the same load:

* status: the API's Service status gets `loadBalancer.ingress[0].ip` (a direct in-process store
  update, no controller running): t0 = just before the update; then the status is cleared again
  (withdraw). Breakdown from the speaker's own log (`service announced`, µs UTC timestamps).
* controller: the controller runs (subprocess); the Service is created without an IP, the
  controller allocates and writes the status (t_status = when the API server finished that PUT),
  then as above. Reported from Service creation and from the status write.
* reference: `gobgp global rib add -a ipv4 <prefix>` (t0 = just before the CLI starts) and
  `... del`, measured the same way. Most of it is the CLI process itself; a no-op command's round
  trip is printed for context but not subtracted (the route leaves before the CLI exits, so
  the subtraction would go negative).

Needs root, FRR and gobgpd. Results in docs/benchmarks.md ("BGP"). Progress on stderr at least
every 5 s; SIGTERM or SIGINT stops the run and removes its namespaces and processes
(metallb_lab.signals).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from metallb_lab import netns
from metallb_lab.apiserver import ApiServer
from metallb_lab.progress import Progress
from metallb_lab.routers import FrrRouter, GobgpRouter, Neighbor, PeeringLink
from metallb_lab.routers import daemons_available as routers_available
from metallb_lab.signals import run_stoppable

MY_ASN = 64512
ROUTER_ASN = 64500
NS = "metallb-system"
APPS = "apps"
SPEAKER_V4 = "192.0.2.11"
GOBGP_V4 = "192.0.2.21"
CONFIG = """
peers:
- {my-asn: 64512, peer-asn: 64500, peer-address: 192.0.2.1}
address-pools:
- name: direct
  protocol: bgp
  auto-assign: false
  addresses: [203.0.113.0/25]
- name: auto
  protocol: bgp
  addresses: [203.0.113.128/25]
"""


class FrrLog:
    """Follows FRR's log file; finds lines with their timestamps."""

    STAMP = re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d+) ")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size
        self.lines: list[str] = []

    def _read(self) -> None:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        self.lines += data[:end].decode(errors="replace").splitlines()

    def wait(self, pattern: re.Pattern[str], timeout: float = 10.0) -> float:
        """Wall-clock time of the first unseen line matching `pattern` (bounded wait)."""
        deadline = time.monotonic() + timeout
        while True:
            self._read()
            for i, line in enumerate(self.lines):
                if pattern.search(line):
                    del self.lines[: i + 1]
                    stamp = self.STAMP.match(line)
                    assert stamp, line
                    return dt.datetime.strptime(stamp.group(1), "%Y/%m/%d %H:%M:%S.%f").timestamp()
            if time.monotonic() > deadline:
                raise TimeoutError(f"FRR never logged {pattern.pattern!r}")
            time.sleep(0.002)


def received(peer: str, prefix: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(peer)}\S* rcvd {re.escape(prefix)} IPv4 unicast")


def withdrawn(peer: str, prefix: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(peer)}\S* rcvd UPDATE about {re.escape(prefix)} .*withdrawn")


class JsonLog:
    """A component's JSON log file: timestamps (UTC) of lines matching fields."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def find(self, **fields: str) -> float | None:
        for line in self.path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if all(entry.get(k) == v for k, v in fields.items()):
                return (
                    dt.datetime.strptime(entry["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
                    .replace(tzinfo=dt.UTC)
                    .timestamp()
                )
        return None


def service(name: str, pool: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": APPS}
    if pool:
        meta["annotations"] = {"metallb.universe.tf/address-pool": pool}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": "LoadBalancer",
            "ipFamilies": ["IPv4"],
            "selector": {"app": name},
            "ports": [{"port": 80, "protocol": "TCP"}],
            "allocateLoadBalancerNodePorts": False,
        },
    }


def endpoint_slice(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{name}-x",
            "namespace": APPS,
            "labels": {"kubernetes.io/service-name": name},
        },
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["198.51.100.200"], "nodeName": "n1", "conditions": {"ready": True}}
        ],
        "ports": [{"port": 80, "protocol": "TCP"}],
    }


class Bench:
    def __init__(self, topo: netns.Topology, api: ApiServer, tmp: Path) -> None:
        self.topo, self.api, self.tmp = topo, api, tmp
        self.link = PeeringLink.create(topo, extra=[f"{GOBGP_V4}/24"])
        self.frr = FrrRouter(
            topo,
            self.link.router,
            tmp / "frr",
            ROUTER_ASN,
            self.link.router_v4,
            [Neighbor(SPEAKER_V4, MY_ASN, ipv6=False), Neighbor(GOBGP_V4, MY_ASN, ipv6=False)],
        )
        self.frr.start()
        self.frr.vtysh("debug bgp updates in")
        self.gobgpd = GobgpRouter(
            topo,
            self.link.node,
            tmp / "gobgpd",
            MY_ASN,
            GOBGP_V4,
            [
                Neighbor(
                    self.link.router_v4,
                    ROUTER_ASN,
                    passive=False,
                    ipv6=False,
                    local_address=GOBGP_V4,
                )
            ],
        )
        self.gobgpd.start()
        api.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "config", "namespace": NS},
                "data": {"config": CONFIG},
            }
        )
        node = api.create(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
            }
        )
        node["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
        api.update_status(node)
        topo.spawn(
            None,
            [
                sys.executable,
                "-m",
                "metallb_lab.portal",
                "--target",
                f"127.0.0.1:{api.port}",
                f"--listen={self.link.node.name}=127.0.0.1:6443",
            ],
        )
        kc = api.kubeconfig(NS)
        kc["clusters"][0]["cluster"]["server"] = "http://127.0.0.1:6443"
        (tmp / "node-kubeconfig").write_text(yaml.safe_dump(kc))
        self.speaker_log = JsonLog(tmp / "speaker.log")
        self.controller_log = JsonLog(tmp / "controller.log")

    def start_speaker(self) -> None:
        self._spawn(
            self.link.node,
            ["speaker", "--kubeconfig", str(self.tmp / "node-kubeconfig"), "--namespace", NS],
            self.speaker_log.path,
            {"METALLB_NODE_NAME": "n1"},
        )

    def start_controller(self) -> None:
        kubeconfig = self.api.kubeconfig_path(self.tmp / "kubeconfig", NS)
        self._spawn(
            None,
            ["controller", "--kubeconfig", str(kubeconfig), "--namespace", NS, "--port", "0"],
            self.controller_log.path,
            {},
        )

    def _spawn(
        self, ns: netns.Netns | None, args: list[str], log: Path, env: dict[str, str]
    ) -> None:
        with open(log, "ab") as out:
            self.topo.spawn(
                ns,
                [sys.executable, "-m", "metallb_py", *args],
                stdout=out.fileno(),
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
            )

    def speaker_metric(self, name: str) -> float:
        out = self.link.node.run(
            ["curl", "-sf", "--max-time", "5", "http://127.0.0.1:7472/metrics"], check=False
        ).stdout
        match = re.search(rf"^{name} (\S+)$", out, re.M)
        return float(match.group(1)) if match else -1.0

    def wait_speaker_idle(self, at_least: float, timeout: float = 30.0) -> None:
        """Until the speaker processed `at_least` queue items and then nothing for 0.5 s."""
        deadline = time.monotonic() + timeout
        last = -1.0
        while time.monotonic() < deadline:
            now = self.speaker_metric("metallb_k8s_client_updates_total")
            if now >= at_least and now == last:
                return
            last = now
            time.sleep(0.5)
        raise TimeoutError("the speaker did not settle")

    def in_rib(self, peer: str, prefix: str) -> bool:
        paths = self.frr.json(f"show bgp ipv4 unicast {prefix} json").get("paths", [])
        return any(p["peer"]["peerId"] == peer for p in paths)

    def check_rib(self, peer: str, prefix: str, present: bool) -> None:
        """Untimed cross-check of the log: FRR's table agrees (FRR removes a withdrawn path a
        moment after logging the UPDATE, so this waits, bounded)."""
        netns.wait_for(
            lambda: self.in_rib(peer, prefix) == present,
            5,
            0.01,
            f"{prefix} from {peer} {'in' if present else 'gone from'} FRR's table",
        )

    def set_status(self, name: str, ip: str | None) -> float:
        svc = self.api.get("services", name, APPS)
        svc["status"] = {"loadBalancer": {"ingress": [{"ip": ip}] if ip else []}}
        t0 = time.time()
        self.api.update_status(svc)
        return t0

    def status_write_time(self, name: str, since: float) -> float:
        path = f"/api/v1/namespaces/{APPS}/services/{name}/status"
        for r in self.api.requests():
            if (
                r.time >= since
                and r.method in ("PUT", "PATCH")
                and urllib.parse.urlsplit(r.path).path == path
                and r.code == 200
            ):
                return r.time
        raise LookupError(f"no status write for {name}")

    def measure_status(self, i: int, log: FrrLog) -> dict[str, float]:
        name, ip = f"s{i}", f"203.0.113.{i + 1}"
        prefix = f"{ip}/32"
        t0 = self.set_status(name, ip)
        t1 = log.wait(received(SPEAKER_V4, prefix))
        self.check_rib(SPEAKER_V4, prefix, present=True)
        decided = self.speaker_log.find(event="serviceAnnounced", service=f"{APPS}/{name}")
        time.sleep(0.1)
        t2 = self.set_status(name, None)
        t3 = log.wait(withdrawn(SPEAKER_V4, prefix))
        self.check_rib(SPEAKER_V4, prefix, present=False)
        return {
            "announce": t1 - t0,
            "withdraw": t3 - t2,
            "api_to_speaker": (decided or t1) - t0,
            "speaker_to_frr": t1 - (decided or t1),
        }

    def measure_controller(self, i: int, log: FrrLog) -> dict[str, float]:
        name = f"c{i}"
        self.api.create(endpoint_slice(name))
        time.sleep(0.1)
        t0 = time.time()
        self.api.create(service(name))

        def allocated() -> str:
            ingress = self.api.get("services", name, APPS).get("status", {}).get("loadBalancer")
            return ((ingress or {}).get("ingress") or [{}])[0].get("ip", "")

        ip = netns.wait_for(allocated, 10, 0.002, f"{name} allocated")
        t1 = log.wait(received(SPEAKER_V4, f"{ip}/32"))
        t_status = self.status_write_time(name, t0)
        self.check_rib(SPEAKER_V4, f"{ip}/32", present=True)
        return {"create_to_frr": t1 - t0, "status_to_frr": t1 - t_status}

    def measure_gobgpd(self, i: int, log: FrrLog) -> dict[str, float]:
        prefix = f"198.51.100.{i + 1}/32"
        t0 = time.time()
        self.gobgpd.gobgp("global", "rib", "add", "-a", "ipv4", prefix)
        t1 = log.wait(received(GOBGP_V4, prefix))
        self.check_rib(GOBGP_V4, prefix, present=True)
        time.sleep(0.1)
        t2 = time.time()
        self.gobgpd.gobgp("global", "rib", "del", "-a", "ipv4", prefix)
        t3 = log.wait(withdrawn(GOBGP_V4, prefix))
        self.check_rib(GOBGP_V4, prefix, present=False)
        return {"announce": t1 - t0, "withdraw": t3 - t2}

    def cli_overhead(self) -> float:
        samples = []
        for _ in range(9):
            start = time.time()
            self.gobgpd.gobgp("global")
            samples.append(time.time() - start)
        return statistics.median(samples)


def interleave(
    rounds: int,
    ours: Callable[[int], dict[str, float]],
    ref: Callable[[int], dict[str, float]],
    label: str,
    progress: Progress,
) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    got_ours: list[dict[str, float]] = []
    got_ref: list[dict[str, float]] = []
    for i in range(rounds):
        pair = (
            [("ours", ours), ("gobgpd", ref)] if i % 2 == 0 else [("gobgpd", ref), ("ours", ours)]
        )
        for who, fn in pair:
            with progress.step(f"{label} round {i + 1}/{rounds} {who}"):
                r = fn(i)
            (got_ours if who == "ours" else got_ref).append(r)
            progress.say(f"{label} round {i + 1} {who:6}: {json.dumps(r)}")
            time.sleep(0.1)
    return got_ours, got_ref


def stats(samples: list[dict[str, float]], key: str) -> dict[str, float]:
    values = sorted(s[key] for s in samples)
    return {
        "median": statistics.median(values),
        "min": values[0],
        "max": values[-1],
        "p90": values[min(len(values) - 1, int(0.9 * len(values)))],
    }


def run(rounds: int) -> dict[str, Any]:
    progress = Progress("bench.bgp_latency")
    with (
        netns.Topology() as topo,
        tempfile.TemporaryDirectory(prefix="bench-bgp-latency-") as tmp,
        ApiServer(namespaces=(NS, APPS)) as api,
    ):
        with progress.step("namespaces, FRR, gobgpd and the portal"):
            bench = Bench(topo, api, Path(tmp))
        for i in range(rounds):
            api.create(service(f"s{i}", "direct"))
            api.create(endpoint_slice(f"s{i}"))
        with progress.step("starting the speaker; waiting for both BGP sessions"):
            bench.start_speaker()
            netns.wait_for(
                lambda: (
                    bench.frr.neighbor_state(SPEAKER_V4) == "Established"
                    and bench.frr.neighbor_state(GOBGP_V4) == "Established"
                ),
                30,
                0.1,
                "both sessions established",
            )
            bench.wait_speaker_idle(rounds)
        overhead = bench.cli_overhead()
        log = FrrLog(bench.frr.log_path)
        status, ref_a = interleave(
            rounds,
            lambda i: bench.measure_status(i, log),
            lambda i: bench.measure_gobgpd(i, log),
            "status",
            progress,
        )
        # Phase A's Services would be allocated by the controller (their pool is annotated).
        for i in range(rounds):
            api.delete("services", f"s{i}", APPS)
        with progress.step("starting the controller"):
            bench.wait_speaker_idle(0)
            bench.start_controller()
            netns.wait_for(
                lambda: bench.controller_log.find(
                    op="startup", msg="caches synced; existing IPs registered"
                ),
                30,
                0.1,
                "controller synced",
            )
            time.sleep(0.5)
        controller, ref_b = interleave(
            rounds,
            lambda i: bench.measure_controller(i, log),
            lambda i: bench.measure_gobgpd(rounds + i, log),
            "controller",
            progress,
        )
    progress.close()
    ref = ref_a + ref_b
    summary: dict[str, Any] = {
        "rounds": rounds,
        "gobgp_cli_overhead": overhead,
        "status": {k: stats(status, k) for k in status[0]},
        "controller": {k: stats(controller, k) for k in controller[0]},
        "gobgpd": {k: stats(ref, k) for k in ref[0]},
    }
    for key, ours in (("announce", "announce"), ("withdraw", "withdraw")):
        summary[f"ratio_{key}"] = (
            summary["status"][ours]["median"] / summary["gobgpd"][key]["median"]
        )
    summary["raw"] = {"status": status, "controller": controller, "gobgpd": ref}
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="per phase (at least 10)")
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 120:
        parser.error("--rounds must be 1..120 (the pools and prefixes are sized for that)")
    reason = netns.available() or routers_available()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    return run_stoppable("bench.bgp_latency", lambda: _measure_and_print(args.rounds, args.json))


def _measure_and_print(rounds: int, as_json: bool) -> int:
    s = run(rounds)
    if as_json:
        print(json.dumps(s, indent=2))
        return 0
    ms = 1000.0

    def row(label: str, d: dict[str, float]) -> str:
        return (
            f"{label:44}{d['median'] * ms:8.1f}{d['p90'] * ms:8.1f}"
            f"   ({d['min'] * ms:.1f}-{d['max'] * ms:.1f})"
        )

    print(f"median of {s['rounds']} rounds per phase, ms        median     p90   (min-max)")
    print(row("status -> route in FRR (ours)", s["status"]["announce"]))
    print(row("  of which API -> speaker decision", s["status"]["api_to_speaker"]))
    print(row("  of which speaker decision -> FRR", s["status"]["speaker_to_frr"]))
    print(row("status cleared -> withdrawn in FRR (ours)", s["status"]["withdraw"]))
    print(row("Service created -> route in FRR (controller)", s["controller"]["create_to_frr"]))
    print(row("controller's status write -> route in FRR", s["controller"]["status_to_frr"]))
    print(row("gobgp rib add -> route in FRR (gobgpd)", s["gobgpd"]["announce"]))
    print(row("gobgp rib del -> withdrawn in FRR (gobgpd)", s["gobgpd"]["withdraw"]))
    print(
        f"ratio ours/gobgpd: announce {s['ratio_announce']:.2f}, withdraw "
        f"{s['ratio_withdraw']:.2f}  (target: status -> FRR < 100 ms)"
    )
    print(
        f"context: a no-op `gobgp global` takes {s['gobgp_cli_overhead'] * ms:.1f} ms end to end"
        " (start, gRPC, exit), so most of gobgpd's figure is its CLI; it is not subtracted"
        " because the route leaves before the CLI exits"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

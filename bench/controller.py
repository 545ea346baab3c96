"""Controller benchmark: how fast Services get addresses, and how fast a restart is ready.

    python -m bench.controller [--services 1000] [--restart-services 10000]

The controller runs as a subprocess against the test API server (in this process, real HTTP).
Each phase is printed with a reference measured in the same run on the same server:

* allocation: N Services created → all have `status.loadBalancer`; reference = the same N
  status writes done by a bare loop with the `kubernetes` client (the floor any controller pays);
* restart: SIGKILL, restart with M Services holding IPs → `/readyz` 200 (every status IP
  registered, config loaded); reference = one list of the M Services with the client.

Progress on stderr at least every 5 s; SIGTERM or SIGINT stops the run and kills its
controller (metallb_lab.signals).
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
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from metallb_lab.apiserver import ApiServer
from metallb_lab.lab.commands import controller_args
from metallb_lab.netns import wait_for
from metallb_lab.progress import Progress
from metallb_lab.signals import run_stoppable

NS = "metallb-system"
CONFIG = "address-pools:\n- name: v6\n  protocol: layer2\n  addresses: ['2001:db8::/112']\n"


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "bench"},
        "spec": {
            "type": "LoadBalancer",
            "ipFamilies": ["IPv6"],
            "allocateLoadBalancerNodePorts": False,
            "selector": {"app": name},
            "ports": [{"port": 80, "protocol": "TCP"}],
        },
    }


def allocated(api: ApiServer) -> int:
    return sum(
        1
        for s in api.list("services", "bench")
        if (s.get("status", {}).get("loadBalancer", {}) or {}).get("ingress")
    )


def wait_allocated(api: ApiServer, n: int, timeout: float, progress: Progress) -> None:
    """Until n Services have an IP, reporting the count."""

    def done() -> bool:
        count = allocated(api)
        progress.count(count, n, "Services with an IP")
        return count == n

    wait_for(done, timeout, interval=0.1 if n <= 1000 else 0.5, what=f"{n} allocations")


class Controller:
    """The controller subprocess; its JSON log goes to a file, its metrics port is read from it."""

    def __init__(self, kubeconfig: Path, log: Path) -> None:
        self.log_path = log
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "metallb_py", *controller_args(kubeconfig)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            self.port = wait_for(self._find_port, 30, what="the controller's metrics port")
        except BaseException:
            self.kill()
            raise

    def _find_port(self) -> int | None:
        for line in self.log_path.read_text().splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("op") == "startup" and "port" in entry:
                    return int(entry["port"])
        return None

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        if not self.log.closed:
            self.log.close()


def reference_status_writes(api: ApiServer, n: int) -> float:
    """A bare client loop writing n statuses: the floor for the allocation phase."""
    from kubernetes import client

    apic = api.client()
    core = client.CoreV1Api(apic)
    names = [f"ref{i:05d}" for i in range(n)]
    created = []
    for name in names:
        obj = service(name)
        obj["metadata"]["namespace"] = "reference"
        created.append(api.create(obj))
    # Like the controller, write each status once from an object already in hand.
    start = time.perf_counter()
    for i, svc in enumerate(created):
        svc["status"] = {"loadBalancer": {"ingress": [{"ip": f"2001:db8:1::{i + 1:x}"}]}}
        name = svc["metadata"]["name"]
        status_put: Any = core.replace_namespaced_service_status
        status_put(name, "reference", svc, _preload_content=False)
    elapsed = time.perf_counter() - start
    apic.close()
    return elapsed


def reference_list(api: ApiServer) -> float:
    from kubernetes import client

    apic = api.client()
    core = client.CoreV1Api(apic)
    start = time.perf_counter()
    resp: Any = core.list_service_for_all_namespaces(_preload_content=False)
    json.loads(resp.data)
    elapsed = time.perf_counter() - start
    apic.close()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--restart-services", type=int, default=10000)
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return run_stoppable("bench.controller", lambda: measure(args.services, args.restart_services))


def measure(n: int, m: int) -> int:
    progress = Progress("bench.controller")
    with (
        tempfile.TemporaryDirectory(prefix="bench-controller-") as tmp,
        ApiServer(namespaces=(NS, "bench", "reference")) as api,
    ):
        logdir = Path(tmp)
        kubeconfig = api.kubeconfig_path(logdir / "kubeconfig")
        api.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "config", "namespace": NS},
                "data": {"config": CONFIG},
            }
        )
        with progress.step(f"reference: a bare client writing {n} statuses"):
            ref_writes = reference_status_writes(api, n)  # before any controller runs
        controllers: list[Controller] = []
        try:
            with progress.step("starting the controller"):
                ctl = Controller(kubeconfig, logdir / "controller-1.log")
                controllers.append(ctl)
                wait_for(ctl.ready, 30, what="controller ready")

            progress.say(f"allocation: creating {n} Services")
            start = time.perf_counter()
            for i in range(n):
                api.create(service(f"s{i:05d}"))
            wait_allocated(api, n, 300, progress)
            alloc_time = time.perf_counter() - start

            progress.say(f"restart: creating {m - n} more Services")
            for i in range(n, m):
                api.create(service(f"s{i:05d}"))
                progress.count(i + 1, m, "Services created")
            wait_allocated(api, m, 900, progress)
            ctl.kill()
            before = {
                s["metadata"]["name"]: s["status"]["loadBalancer"]
                for s in api.list("services", "bench")
            }
            with progress.step(f"restart with {m} Services: waiting for /readyz"):
                start = time.perf_counter()
                ctl = Controller(kubeconfig, logdir / "controller-2.log")
                controllers.append(ctl)
                wait_for(ctl.ready, 300, interval=0.05, what="ready after restart")
                ready_time = time.perf_counter() - start
            ref_list = reference_list(api)
            time.sleep(1.0)
            after = {
                s["metadata"]["name"]: s["status"]["loadBalancer"]
                for s in api.list("services", "bench")
            }
            ctl.kill()
        finally:
            for c in controllers:
                c.kill()
        changed = sum(1 for k, v in before.items() if after.get(k) != v)
    progress.close()

    print(
        f"allocation: {n} Services -> all with status in {alloc_time:.2f} s "
        f"({n / alloc_time:.0f}/s); bare client writing {n} statuses: {ref_writes:.2f} s; "
        f"ratio {alloc_time / ref_writes:.2f}x"
    )
    print(
        f"restart: ready with {m} Services in {ready_time:.2f} s; one client list of them: "
        f"{ref_list:.2f} s; ratio {ready_time / ref_list:.1f}x; "
        f"IPs changed by the restart: {changed}"
    )
    return 0 if changed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Shared pieces of the real-server benchmarks (`bench/realapi_*.py`, docs/upstream.md).

Everything runs on one kube-apiserver + etcd on loopback (`metallb_lab.control_plane`), with
metallb-py and upstream MetalLB v0.12.1 (`scripts/build-upstream-metallb.sh`) as subprocesses
using the same admin kubeconfig, so the API server, the credentials and the Services are the same
for every system measured. Every wait is bounded and prints a progress line every few seconds;
the benches run under `metallb_lab.signals.run_stoppable`, so SIGTERM and SIGINT unwind through
the `with` blocks, which stop the processes, the namespaces and the control plane.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import yaml
from kubernetes import client, config

from metallb_lab import Obj
from metallb_lab.control_plane import ControlPlane, free_port
from metallb_lab.lab.commands import portal_command
from metallb_lab.lab.layout import NODE_API_PORT
from metallb_lab.netns import Topology, wait_for
from metallb_lab.progress import Progress
from metallb_lab.signals import raise_if_stopping

from .quiet import QUIET_LOAD, wait_quiet

NS = "metallb-system"
POOL = "2001:db8::/112"
CONFIG = f"address-pools:\n- name: v6\n  protocol: layer2\n  addresses: ['{POOL}']\n"
"""One IPv6 pool: there are only 768 IPv4 documentation addresses, and 10,000 Services."""
UPSTREAM_VERSION = "0.12.1"
UPSTREAM_DIR = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "metallb-py"
    / "upstream-metallb"
    / f"v{UPSTREAM_VERSION}"
)
CREATE_THREADS = 4
PROGRESS_EVERY = 5.0
T = TypeVar("T")


class BenchError(RuntimeError):
    """A measurement could not be made (the message says why)."""


PROGRESS = Progress("bench")
"""Progress lines on stderr (a result table on stdout stays clean)."""


def say(text: str) -> None:
    PROGRESS.say(text)


def load1() -> float:
    return os.getloadavg()[0]


def wait_counting(count: Callable[[], int], total: int, timeout: float, what: str) -> None:
    """Bounded wait until `count()` reaches `total`, with a `what: done/total` line every few
    seconds (TimeoutError when the bound is hit)."""

    def reached() -> bool:
        done = count()
        PROGRESS.count(done, total, what)
        return done >= total

    wait_for(reached, timeout, 0.2, what)


def wait_step(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Bounded wait for `condition`, saying what it waits for (and `still ...` while it does)."""
    with PROGRESS.step(what):
        return wait_for(condition, timeout, interval, what)


@dataclass(frozen=True)
class Quiet:
    """Before a measurement, wait (bounded) until the 1-minute load average is below `limit`:
    other engineers run test suites on the same cores."""

    limit: float = QUIET_LOAD
    timeout: float = 600.0

    def wait(self) -> float:
        """The load average when the measurement starts (above the limit if the wait timed
        out; the results print it either way)."""
        return wait_quiet(PROGRESS, self.limit, self.timeout)

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--quiet-load", type=float, default=QUIET_LOAD, metavar="LOAD")
        parser.add_argument("--quiet-wait", type=float, default=600.0, metavar="SECONDS")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Quiet:
        return cls(args.quiet_load, args.quiet_wait)


def upstream_binaries() -> Path:
    if all(os.access(UPSTREAM_DIR / b, os.X_OK) for b in ("controller", "speaker")):
        return UPSTREAM_DIR
    raise BenchError(
        f"upstream MetalLB v{UPSTREAM_VERSION} is not built in {UPSTREAM_DIR}: "
        "run `bash scripts/build-upstream-metallb.sh` (needs Go)"
    )


# -- the API server ----------------------------------------------------------------------------


def api_client(cp: ControlPlane) -> Any:
    return config.new_client_from_config(config_file=str(cp.kubeconfig_path))


def core_api(cp: ControlPlane) -> Any:
    return client.CoreV1Api(api_client(cp))


def prepare(cp: ControlPlane) -> None:
    """The MetalLB namespace and its config (one IPv6 layer2 pool)."""
    core = core_api(cp)
    ensure_namespace(core, NS)
    core.create_namespaced_config_map(
        NS, {"metadata": {"name": "config"}, "data": {"config": CONFIG}}
    )


class KubeWriter:
    """`objects.register`'s writer on the real server, through the `kubernetes` client."""

    def __init__(self, core: Any) -> None:
        self.core = core

    def create(self, obj: Obj) -> Obj:
        kind, ns = obj["kind"], obj["metadata"].get("namespace")
        body = {k: v for k, v in obj.items() if k != "status"}
        if kind == "Node":
            resp = self.core.create_node(body, _preload_content=False)
        elif kind == "Pod":
            resp = self.core.create_namespaced_pod(ns, body, _preload_content=False)
        else:
            raise ValueError(kind)
        created: Obj = json.loads(resp.data)
        return created

    def update_status(self, obj: Obj) -> Obj:
        kind, meta = obj["kind"], obj["metadata"]
        if kind == "Node":
            resp = self.core.replace_node_status(meta["name"], obj, _preload_content=False)
        elif kind == "Pod":
            resp = self.core.replace_namespaced_pod_status(
                meta["name"], meta["namespace"], obj, _preload_content=False
            )
        else:
            raise ValueError(kind)
        updated: Obj = json.loads(resp.data)
        return updated


def ensure_namespace(core: Any, name: str) -> None:
    try:
        core.create_namespace({"metadata": {"name": name}})
    except client.ApiException as e:
        if e.status != 409:
            raise


def service(name: str) -> dict[str, Any]:
    """A single-stack IPv6 LoadBalancer Service without node ports (the node port range would
    run out long before 10,000)."""
    return {
        "metadata": {"name": name},
        "spec": {
            "type": "LoadBalancer",
            "ipFamilies": ["IPv6"],
            "allocateLoadBalancerNodePorts": False,
            "selector": {"app": name},
            "ports": [{"port": 80, "protocol": "TCP"}],
        },
    }


def _chunks(items: list[str], n: int) -> list[list[str]]:
    return [items[i::n] for i in range(n)]


def _in_threads(cp: ControlPlane, names: list[str], work: Callable[[Any, str], Any]) -> list[Any]:
    """Run `work(core, name)` for every name on CREATE_THREADS threads, each with its own
    client; progress every few seconds."""
    done = [0]
    lock = threading.Lock()

    def run(part: list[str]) -> list[Any]:
        core = core_api(cp)
        out = []
        for name in part:
            raise_if_stopping()  # a SIGTERM ends the workers too, not only the main thread
            out.append(work(core, name))
            with lock:
                done[0] += 1
        core.api_client.close()
        return out

    with ThreadPoolExecutor(CREATE_THREADS) as pool:
        futures = [pool.submit(run, part) for part in _chunks(names, CREATE_THREADS)]
        while not all(f.done() for f in futures):
            time.sleep(0.2)
            PROGRESS.count(done[0], len(names), "  requests")
        return [r for f in futures for r in f.result()]


def create_services(cp: ControlPlane, namespace: str, names: list[str]) -> list[dict[str, Any]]:
    """Create the Services (CREATE_THREADS writers); returns the created objects as dicts."""

    def create(core: Any, name: str) -> dict[str, Any]:
        resp = core.create_namespaced_service(namespace, service(name), _preload_content=False)
        created: dict[str, Any] = json.loads(resp.data)
        return created

    return _in_threads(cp, names, create)


def delete_services(cp: ControlPlane, namespace: str) -> None:
    """Remove a phase's Services and Events, so the next controller starts from the same
    state (there is no namespace controller to empty a deleted namespace)."""
    core = core_api(cp)
    names = [s.metadata.name for s in core.list_namespaced_service(namespace).items]

    def delete(core: Any, name: str) -> None:
        core.delete_namespaced_service(name, namespace, _preload_content=False)

    if names:
        say(f"deleting {len(names)} Services of {namespace}")
        _in_threads(cp, names, delete)
    core.delete_collection_namespaced_event(namespace)
    core.api_client.close()


def status_ip(i: int) -> str:
    """The i-th address of POOL (i from 1): what the floor writes, inside the pool so that a
    controller started later keeps it."""
    return f"2001:db8::{i:x}"


def write_statuses(cp: ControlPlane, created: list[dict[str, Any]]) -> float:
    """The floor: one client writing each Service's status once, from the object in hand,
    in one loop with no decision logic. Returns the seconds the loop took."""
    core = core_api(cp)
    status_put: Any = core.replace_namespaced_service_status
    start = time.perf_counter()
    for i, svc in enumerate(created, 1):
        raise_if_stopping()
        svc["status"] = {"loadBalancer": {"ingress": [{"ip": status_ip(i)}]}}
        meta = svc["metadata"]
        status_put(meta["name"], meta["namespace"], svc, _preload_content=False)
        PROGRESS.count(i, len(created), "  floor: statuses written")
    elapsed = time.perf_counter() - start
    core.api_client.close()
    return elapsed


def list_seconds(cp: ControlPlane, namespace: str) -> float:
    """One list of a namespace's Services, parsed: what any controller pays at start-up."""
    core = core_api(cp)
    start = time.perf_counter()
    resp = core.list_namespaced_service(namespace, _preload_content=False)
    json.loads(resp.data)
    elapsed = time.perf_counter() - start
    core.api_client.close()
    return elapsed


def status_ips(cp: ControlPlane, namespace: str) -> dict[str, tuple[str, ...]]:
    core = core_api(cp)
    resp = core.list_namespaced_service(namespace, _preload_content=False)
    items = json.loads(resp.data)["items"]
    core.api_client.close()
    return {s["metadata"]["name"]: ingress_ips(s) for s in items}


def ingress_ips(svc: dict[str, Any]) -> tuple[str, ...]:
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return tuple(i["ip"] for i in ingress if i.get("ip"))


# -- node namespaces --------------------------------------------------------------------------


def node_kubeconfig(cp: ControlPlane, path: Path) -> Path:
    """The admin kubeconfig pointed at the portal's 127.0.0.1:NODE_API_PORT, for processes in
    node namespaces (TLS passes through the portal; the serving certificate names 127.0.0.1)."""
    kc = yaml.safe_load(cp.kubeconfig_path.read_text())
    kc["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{NODE_API_PORT}"
    path.write_text(yaml.safe_dump(kc))
    path.chmod(0o600)
    return path


def start_portal(
    topo: Topology, cp: ControlPlane, namespaces: Iterable[str], log: Path, env: dict[str, str]
) -> None:
    """The lab's portal: kube-apiserver reachable inside each node namespace."""
    with open(log, "wb") as f:
        topo.spawn(
            None,
            portal_command(cp.port, namespaces),
            stdout=f.fileno(),
            stderr=subprocess.STDOUT,
            env=env,
        )
    wait_for(lambda: "ready" in log.read_text(), 30, 0.1, "the portal")


# -- watching Services get their IPs -----------------------------------------------------------


class IngressWatch:
    """Notes, from a watch of one namespace's Services, when each Service first shows a status
    IP: the bench's view of "the Service has its IP" (a client watching, as kubectl would)."""

    def __init__(self, cp: ControlPlane, namespace: str, max_seconds: float = 3 * 3600) -> None:
        self.cp = cp
        self.namespace = namespace
        self.max_seconds = max_seconds
        self.first_ip: dict[str, float] = {}
        """Service name -> time.monotonic() when the watch first showed it with an IP."""
        self.ips: dict[str, tuple[str, ...]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="ingress-watch")
        self.error: BaseException | None = None

    def __enter__(self) -> IngressWatch:
        core = core_api(self.cp)
        resp = core.list_namespaced_service(self.namespace, _preload_content=False)
        listed = json.loads(resp.data)
        for svc in listed["items"]:
            self._note(svc)
        self._rv = listed["metadata"]["resourceVersion"]
        self._core = core
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
        self._core.api_client.close()

    def count(self) -> int:
        return len(self.first_ip)

    def _note(self, svc: dict[str, Any]) -> None:
        name = svc["metadata"]["name"]
        ips = ingress_ips(svc)
        self.ips[name] = ips
        if ips and name not in self.first_ip:
            self.first_ip[name] = time.monotonic()

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                self._watch_once()
        except BaseException as e:  # reported by the bench that reads the watch
            self.error = e

    def _watch_once(self) -> None:
        resp = self._core.list_namespaced_service(
            self.namespace,
            watch=True,
            resource_version=self._rv,
            allow_watch_bookmarks=True,
            timeout_seconds=5,
            _preload_content=False,
        )
        buffer = b""
        try:
            for chunk in resp.stream(65536, decode_content=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        self._event(json.loads(line))
                if self._stop.is_set():
                    return
        finally:
            resp.release_conn()

    def _event(self, event: dict[str, Any]) -> None:
        obj = event["object"]
        if event["type"] == "ERROR":
            raise BenchError(f"watch of Services failed: {obj}")
        self._rv = obj["metadata"]["resourceVersion"]
        if event["type"] in ("ADDED", "MODIFIED"):
            self._note(obj)


# -- the controllers ---------------------------------------------------------------------------


def log_time(line: dict[str, Any]) -> float:
    """A JSON log line's `ts` (RFC 3339, UTC, up to nanoseconds) as a Unix time."""
    text = str(line["ts"]).rstrip("Z")
    whole, _, frac = text.partition(".")
    base = dt.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    return base.timestamp() + (float("0." + frac) if frac else 0.0)


class ControllerProcess:
    """A controller subprocess (metallb-py or upstream) with its JSON log in a file.

    `started` is the Unix time just before the process was spawned; `ready_line` finds the log
    line that says the first pass over the cluster is done (upstream `stateSynced`, metallb-py
    `caches synced; existing IPs registered`)."""

    system = ""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log
        self.port = free_port()
        self._log = log.open("w")
        self.started = time.time()
        self.proc = subprocess.Popen(
            [*argv, "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )

    def log_lines(self) -> Iterator[dict[str, Any]]:
        for text in self.log_path.read_text(errors="replace").splitlines():
            if text.startswith("{"):
                try:
                    yield json.loads(text)
                except json.JSONDecodeError:
                    continue  # a line being written

    def ready_line(self) -> dict[str, Any] | None:
        raise NotImplementedError

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace").splitlines()[-15:]
            raise BenchError(f"{self.system} exited {self.proc.returncode}:\n" + "\n".join(tail))
        return True

    def kill(self) -> None:
        """SIGKILL: no goodbye, as a node crash or an OOM kill."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if not self._log.closed:
            self._log.close()


class MetallbPyController(ControllerProcess):
    system = "metallb-py"

    def __init__(self, cp: ControlPlane, log: Path) -> None:
        super().__init__(
            [
                sys.executable,
                "-m",
                "metallb_py",
                "controller",
                "--kubeconfig",
                str(cp.kubeconfig_path),
                "--namespace",
                NS,
            ],
            log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def readyz(self) -> bool:
        self.alive()
        try:
            url = f"http://127.0.0.1:{self.port}/readyz"
            with urllib.request.urlopen(url, timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def ready_line(self) -> dict[str, Any] | None:
        self.alive()
        for line in self.log_lines():
            if line.get("op") == "startup" and str(line.get("msg", "")).startswith("caches synced"):
                return line
        return None


class UpstreamController(ControllerProcess):
    system = "upstream"

    def __init__(self, cp: ControlPlane, log: Path) -> None:
        super().__init__(
            [
                str(upstream_binaries() / "controller"),
                "--kubeconfig",
                str(cp.kubeconfig_path),
                "--namespace",
                NS,
            ],
            log,
        )

    def ready_line(self) -> dict[str, Any] | None:
        self.alive()
        for line in self.log_lines():
            if line.get("event") == "stateSynced":
                return line
        return None


CONTROLLERS: dict[str, Callable[[ControlPlane, Path], ControllerProcess]] = {
    "metallb-py": MetallbPyController,
    "upstream": UpstreamController,
}


@contextmanager
def running(
    make: Callable[[ControlPlane, Path], ControllerProcess], cp: ControlPlane, log: Path
) -> Iterator[ControllerProcess]:
    proc = make(cp, log)
    try:
        yield proc
    finally:
        proc.kill()


def median(values: Iterable[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2

"""Build, inspect, break and remove a lab (the adapter behind `metallb-py lab`).

`up` builds what `layout.plan_lab` describes and records every process and the layout in a
state file; `Lab.load` reads it back in a later command; `down` removes everything, from the
state file and by sweeping lab-named namespaces and marked processes when the state is gone.
Every wait is bounded and every failure becomes a `LabError` with a readable message.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from metallb_lab import netns
from metallb_lab.lab import objects, processes, router
from metallb_lab.lab.kube import RestClient, RestError
from metallb_lab.lab.layout import (
    AVAILABLE_MODES,
    BACKEND_PORT,
    BRIDGE,
    CLIENT_IPV4,
    DEFAULT_PREFIX,
    METALLB_NAMESPACE,
    NODE_API_PORT,
    ROUTER_ASN,
    SPEAKER_LABELS,
    SPEAKER_METRICS_PORT,
    LabLayout,
    LayoutError,
    Mode,
    check_prefix,
    config_text,
    expected_next_hops,
    expected_owner,
    plan_lab,
)
from metallb_lab.lab.processes import ProcessRecord
from metallb_lab.lab.router import LabFrr, RouterError, RouterView
from metallb_lab.lab.topology import (
    LabTopology,
    add_service_ip,
    build_lan,
    link_is_up,
    link_up,
    mac_of,
)
from metallb_lab.netns import Netns, NetnsError
from metallb_lab.routers import FRR_BGPD

DEFAULT_DIR = Path("/run/metallb-py-lab")
STATE_FILE = "state.json"
PACKAGES = {
    "ip": "iproute2",
    "curl": "curl",
    "arping": "iputils-arping",
    "ndisc6": "ndisc6",
    "tcpdump": "tcpdump",
    "keepalived": "keepalived",
    "vtysh": "frr",
}
TOOLS_UP = ("curl", "arping", "ndisc6")
TOOLS_BGP = ("vtysh",)
"""Besides TOOLS_UP, for `--mode bgp` (and FRR's daemons in /usr/lib/frr)."""
STARTUP_TIMEOUT = 30.0
REACHABLE_TIMEOUT = 60.0
Progress = Callable[[str], None]


class LabError(RuntimeError):
    """Something the user can act on; the CLI prints it without a traceback."""


def lab_dir() -> Path:
    """METALLB_LAB_DIR, else /run/metallb-py-lab (tmpfs: gone after a reboot, as namespaces)."""
    return Path(os.environ.get("METALLB_LAB_DIR") or DEFAULT_DIR)


def lab_prefix() -> str:
    """METALLB_LAB_PREFIX, else `mlblab` (tests and benchmarks use their own)."""
    try:
        return check_prefix(os.environ.get("METALLB_LAB_PREFIX") or DEFAULT_PREFIX)
    except LayoutError as e:
        raise LabError(f"METALLB_LAB_PREFIX: {e}") from None


def preflight(tools: Sequence[str] = TOOLS_UP) -> None:
    """Root, iproute2 and the client tools, each missing one named with its package."""
    if os.geteuid() != 0:
        raise LabError("the lab builds network namespaces and needs root: run it with sudo")
    missing = [t for t in ("ip", *tools) if shutil.which(t) is None]
    if missing:
        pkgs = " ".join(PACKAGES.get(t, t) for t in missing)
        raise LabError(
            f"missing {', '.join(missing)}: run `bash scripts/setup.sh` (or apt-get install {pkgs})"
        )


def preflight_bgp() -> None:
    """FRR's vtysh, bgpd and zebra (not on PATH: /usr/lib/frr)."""
    preflight(TOOLS_BGP)
    missing = [d for d in (FRR_BGPD, router.FRR_ZEBRA) if not os.path.exists(d)]
    if missing:
        raise LabError(
            f"missing {', '.join(missing)}: run `bash scripts/setup.sh` (or apt-get install frr)"
        )


def python_command(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def speaker_args(kubeconfig: str | Path, port: int = SPEAKER_METRICS_PORT) -> list[str]:
    """`metallb-py` arguments of a lab speaker (after `python -m metallb_py`)."""
    return [
        "speaker",
        "--kubeconfig",
        str(kubeconfig),
        "--namespace",
        METALLB_NAMESPACE,
        "--port",
        str(port),
    ]


def speaker_env(node: str, address: str, secret: str) -> dict[str, str]:
    """Membership on: heartbeats from the node address, peers from the speaker Pods."""
    return {
        "METALLB_NODE_NAME": node,
        "METALLB_ML_BIND_ADDR": address,
        "METALLB_ML_LABELS": ",".join(f"{k}={v}" for k, v in SPEAKER_LABELS.items()),
        "METALLB_ML_SECRET_KEY": secret,
    }


def controller_args(kubeconfig: str | Path, port: int = 0) -> list[str]:
    return [
        "controller",
        "--kubeconfig",
        str(kubeconfig),
        "--namespace",
        METALLB_NAMESPACE,
        "--port",
        str(port),
    ]


def portal_command(api_port: int, namespaces: Iterable[str]) -> list[str]:
    return python_command(
        "metallb_lab.portal",
        "--target",
        f"127.0.0.1:{api_port}",
        *(f"--listen={ns}=127.0.0.1:{NODE_API_PORT}" for ns in namespaces),
    )


def node_kubeconfig(path: Path, namespace: str = METALLB_NAMESPACE) -> Path:
    """A kubeconfig for processes in node namespaces: the portal's 127.0.0.1:6443."""
    name = "metallb-py-lab"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": name, "cluster": {"server": f"http://127.0.0.1:{NODE_API_PORT}"}}
                ],
                "users": [{"name": name, "user": {}}],
                "contexts": [
                    {
                        "name": name,
                        "context": {"cluster": name, "user": name, "namespace": namespace},
                    }
                ],
                "current-context": name,
            },
            sort_keys=False,
        )
    )
    return path


def url_of(ip: str, port: int = BACKEND_PORT) -> str:
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}/"


def target_of(ip: str, port: int = BACKEND_PORT) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


# --- state ---------------------------------------------------------------------------------------


@dataclass
class LabState:
    prefix: str
    mode: str
    nodes: int
    directory: str
    api_url: str = ""
    kubeconfig: str = ""
    node_kubeconfig: str = ""
    secret: str = ""
    controller_port: int = 0
    macs: dict[str, str] = field(default_factory=dict)
    service_ips: dict[str, list[str]] = field(default_factory=dict)
    processes: list[ProcessRecord] = field(default_factory=list)
    created: float = field(default_factory=time.time)

    @property
    def path(self) -> Path:
        return Path(self.directory) / STATE_FILE

    def save(self) -> None:
        data = {**self.__dict__, "processes": [p.to_json() for p in self.processes]}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)

    @classmethod
    def load(cls, directory: Path) -> LabState | None:
        path = directory / STATE_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise LabError(
                f"unreadable lab state {path}: {e}; `metallb-py lab down` cleans up"
            ) from None
        try:
            procs = [ProcessRecord.from_json(p) for p in data.pop("processes", [])]
            return cls(**data, processes=procs)
        except (TypeError, KeyError, ValueError) as e:
            raise LabError(f"bad lab state {path}: {e}; `metallb-py lab down` cleans up") from None

    def running(self, role: str, node: str = "") -> ProcessRecord | None:
        for rec in reversed(self.processes):
            if rec.role == role and rec.node == node and processes.running(rec.pid, rec.start_time):
                return rec
        return None


# --- status --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeStatus:
    name: str
    netns: str
    ipv4: str
    ipv6: str
    speaker: bool
    link: bool
    bgp: str = ""
    """bgp mode: the router's session state with this node (Established, Active ...)."""
    bgp_up: bool | None = None
    """bgp mode: the speaker's `metallb_bgp_session_up` for the router (None: no series)."""
    prefixes: dict[str, int] = field(default_factory=dict)
    """bgp mode: prefixes the router accepted from this node, per family (ipv4, ipv6)."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    policy: str
    ips: tuple[str, ...]
    announcers: tuple[str, ...]
    """Nodes whose speaker reports `metallb_speaker_announced` for the IP."""
    layer2: tuple[str, ...]
    """Nodes (or unknown MACs) answering ARP/NDP for the IP from the client."""
    http: str | None
    """The node that answered `curl` from the client, None when unreachable."""
    mode: str = "layer2"
    next_hops: tuple[str, ...] = ()
    """bgp mode: nodes (by next hop address) of the route the router installed for the IP."""
    next_hop_addresses: tuple[str, ...] = ()
    """bgp mode: those next hops as FRR has them (`show ip[v6] route bgp json`, in the FIB)."""
    kernel_next_hops: tuple[str, ...] = ()
    """bgp mode: nodes behind the client kernel's route for the IP (what `curl` follows)."""

    @property
    def ok(self) -> bool:
        """Reachable, and layer2: one node answers ARP/NDP; bgp: the router's route leads to
        exactly the announcing nodes and the answer came from one of them."""
        if not self.ips or self.http is None:
            return False
        if self.mode == Mode.BGP:
            return (
                bool(self.next_hops)
                and set(self.next_hops) == set(self.announcers)
                and (self.http in self.next_hops)
            )
        return len(self.layer2) == 1


@dataclass(frozen=True)
class RouterStatus:
    """bgp mode: FRR in the client namespace."""

    asn: int
    router_id: str
    bgpd: bool
    zebra: bool
    error: str = ""
    """Why the router could not be read, if it could not."""


@dataclass(frozen=True)
class LabStatus:
    layout: LabLayout
    api_url: str
    kubeconfig: str
    processes_running: int
    processes_total: int
    nodes: tuple[NodeStatus, ...]
    services: tuple[ServiceStatus, ...]
    router: RouterStatus | None = None


@dataclass(frozen=True)
class DownReport:
    stopped: tuple[int, ...]
    namespaces: tuple[str, ...]
    leftover_namespaces: tuple[str, ...]
    leftover_processes: tuple[int, ...]

    @property
    def clean(self) -> bool:
        return not self.leftover_namespaces and not self.leftover_processes


# --- the lab -------------------------------------------------------------------------------------


class Lab:
    """A running lab, from its state file."""

    def __init__(self, state: LabState) -> None:
        self.state = state
        self.layout = plan_lab(state.nodes, Mode(state.mode), state.prefix)
        self.directory = Path(state.directory)

    @classmethod
    def load(cls, directory: Path | None = None) -> Lab:
        directory = directory or lab_dir()
        state = LabState.load(directory)
        if state is None:
            raise LabError(
                f"no lab is up (no state in {directory}); `metallb-py lab up` builds one"
            )
        try:
            return cls(state)
        except LayoutError as e:
            raise LabError(f"bad lab state: {e}") from None

    # -- handles --

    @property
    def client(self) -> Netns:
        return Netns(self.layout.client_netns)

    def node_ns(self, name: str) -> Netns:
        return Netns(self.layout.node(name).netns)

    @property
    def rest(self) -> RestClient:
        return RestClient(self.state.api_url, timeout=5)

    @property
    def api_port(self) -> int:
        return int(self.state.api_url.rsplit(":", 1)[1].strip("/"))

    def node_of_mac(self, mac: str) -> str:
        mac = mac.lower()
        return next((n for n, m in self.state.macs.items() if m == mac), mac)

    def log(self, name: str) -> Path:
        return self.directory / "logs" / f"{name}.log"

    # -- processes --

    def _spawn(
        self,
        role: str,
        argv: Sequence[str],
        *,
        node: str = "",
        netns_name: str | None = None,
        env: dict[str, str] | None = None,
    ) -> ProcessRecord:
        rec = processes.spawn(
            role,
            argv,
            self.log(f"{role}-{node}" if node else role),
            self.state.prefix,
            netns=netns_name,
            node=node,
            env=env,
        )
        self.state.processes.append(rec)
        self.state.save()
        return rec

    def start_speaker(self, node: str) -> ProcessRecord:
        plan = self.layout.node(node)
        return self._spawn(
            "speaker",
            python_command("metallb_py", *speaker_args(self.state.node_kubeconfig)),
            node=node,
            netns_name=plan.netns,
            env=speaker_env(node, plan.ipv4, self.state.secret),
        )

    def start_backend(self, node: str) -> ProcessRecord:
        ips = sorted({ip for ips in self.state.service_ips.values() for ip in ips})
        return self._spawn(
            "backend",
            python_command(
                "metallb_lab.lab.backend",
                "--name",
                node,
                *(f"--listen={target_of(ip)}" for ip in ips),
            ),
            node=node,
            netns_name=self.layout.node(node).netns,
        )

    def _wait_log(
        self, rec: ProcessRecord, found: Callable[[str], Any], what: str, timeout: float
    ) -> Any:
        def check() -> Any:
            with contextlib.suppress(OSError):
                for line in Path(rec.log).read_text(errors="replace").splitlines():
                    value = found(line)
                    if value:
                        return value
            if not processes.running(rec.pid, rec.start_time):
                raise LabError(f"{what}: the {rec.role} exited:\n{processes.tail(rec.log)}")
            return None

        try:
            return netns.wait_for(check, timeout, interval=0.05, what=what)
        except TimeoutError:
            raise LabError(f"timed out waiting for {what}:\n{processes.tail(rec.log)}") from None

    # -- probes from the client --

    def curl(self, ip: str, timeout: float = 2.0) -> str | None:
        """The node name the backend behind `ip` answers with, from the client namespace."""
        proc = self.client.run(
            [
                "curl",
                "-sS",
                "-g",
                "--connect-timeout",
                str(timeout),
                "-m",
                str(timeout),
                url_of(ip),
            ],
            check=False,
            timeout=timeout + 5,
        )
        answer = proc.stdout.strip()
        return answer if proc.returncode == 0 and answer else None

    def layer2_answers(self, ip: str, wait: float = 1.0) -> list[str]:
        """Nodes answering ARP (IPv4, arping) or NDP (IPv6, ndisc6) for `ip`, all replies
        within `wait` seconds (more than one means two nodes claim it)."""
        if ":" in ip:
            argv = ["ndisc6", "-m", "-n", "-r", "1", "-w", str(int(wait * 1000)), ip, BRIDGE]
            marker = "Target link-layer address:"
        else:
            argv = ["arping", "-c", "2", "-w", str(max(1, round(wait))), "-I", BRIDGE, ip]
            marker = ""
        out = self.client.run(argv, check=False, timeout=wait + 10).stdout
        macs: list[str] = []
        for line in out.splitlines():
            if marker and marker in line:
                macs.append(line.split(marker, 1)[1].strip().lower())
            elif not marker and "reply from" in line.lower() and "[" in line:
                macs.append(line.split("[", 1)[1].split("]", 1)[0].lower())
        return sorted({self.node_of_mac(m) for m in macs})

    def speaker_metrics(self, node: str, timeout: float = 2.0) -> str | None:
        """The speaker's /metrics text, fetched from inside its namespace; None if down."""
        from metallb_lab.portal import in_netns

        if self.state.running("speaker", node) is None:
            return None
        try:
            with in_netns(self.layout.node(node).netns):
                url = f"http://127.0.0.1:{SPEAKER_METRICS_PORT}/metrics"
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    return str(resp.read().decode())
        except OSError:
            return None

    def speaker_series(self) -> dict[str, dict[tuple[str, frozenset[tuple[str, str]]], float]]:
        """Node -> its speaker's parsed metrics (nodes whose speaker is down are left out)."""
        from metallb_py.metrics import parse_exposition

        with ThreadPoolExecutor(max_workers=len(self.layout.nodes)) as pool:
            texts = dict(
                zip(
                    self.layout.node_names,
                    pool.map(self.speaker_metrics, self.layout.node_names),
                    strict=True,
                )
            )
        return {node: parse_exposition(text) for node, text in texts.items() if text}

    def announcers(
        self,
        series: dict[str, dict[tuple[str, frozenset[tuple[str, str]]], float]] | None = None,
    ) -> dict[str, set[str]]:
        """IP -> nodes whose speaker reports `metallb_speaker_announced` for it."""
        result: dict[str, set[str]] = {}
        for node, parsed in (self.speaker_series() if series is None else series).items():
            for (name, labels), value in parsed.items():
                ip = dict(labels).get("ip")
                if name == "metallb_speaker_announced" and value == 1 and ip:
                    result.setdefault(ip, set()).add(node)
        return result

    # -- the router (bgp mode) --

    @property
    def router(self) -> LabFrr | None:
        return (
            router.lab_router(self.layout, self.directory) if self.layout.mode is Mode.BGP else None
        )

    def start_router(self) -> tuple[ProcessRecord, ProcessRecord]:
        """zebra, then bgpd connected to it, in the client namespace; both recorded (roles
        `zebra`, `bgpd`) so `down` stops them. Returns once bgpd answers vtysh."""
        frr = self.router
        if frr is None:
            raise LabError("the router runs in bgp mode only")
        try:
            router.prepare_directory(self.directory)
        except RouterError as e:
            raise LabError(str(e)) from None
        frr.write_config()
        zebra = self._spawn("zebra", frr.zebra_argv(), netns_name=self.layout.client_netns)
        self._wait_ready(zebra, frr.zebra_ready, "zebra")
        bgpd = self._spawn("bgpd", frr.argv(), netns_name=self.layout.client_netns)
        self._wait_ready(bgpd, frr.ready, "bgpd")
        return zebra, bgpd

    def _wait_ready(self, rec: ProcessRecord, ready: Callable[[], bool], what: str) -> None:
        def check() -> bool:
            if not processes.running(rec.pid, rec.start_time):
                raise LabError(f"{what} exited during start-up:\n{processes.tail(rec.log)}")
            return ready()

        try:
            netns.wait_for(check, STARTUP_TIMEOUT, interval=0.05, what=what)
        except TimeoutError:
            raise LabError(
                f"{what} did not answer within {STARTUP_TIMEOUT:.0f} s:\n{processes.tail(rec.log)}"
            ) from None

    def router_view(self) -> RouterView:
        """Sessions and installed routes as FRR shows them (RouterError if it cannot)."""
        frr = self.router
        if frr is None:
            raise RouterError("no router: the lab runs in layer2 mode")
        if self.state.running("bgpd") is None:
            raise RouterError("bgpd is not running")
        return frr.snapshot()

    def node_of_address(self, address: str) -> str:
        for n in self.layout.nodes:
            if address in (n.ipv4, n.ipv6):
                return n.name
        return address

    def route_nodes(self, view: RouterView, ip: str) -> tuple[str, ...]:
        """The nodes behind the router's installed route for `ip` (ECMP: several)."""
        return tuple(sorted(self.node_of_address(hop) for hop in view.hops_of(ip)))

    def kernel_next_hops(self, ip: str) -> tuple[str, ...]:
        """Nodes behind the route the client namespace's kernel table holds for `ip`
        (`ip route show`, following a nexthop group when zebra installed one)."""
        family = "-6" if ":" in ip else "-4"
        route = self.client.ip(family, "-j", "route", "show", ip, check=False).stdout
        entries = json.loads(route) if route.strip() else []
        gateways: set[str] = set()
        for entry in entries:
            if entry.get("protocol") != "bgp":
                continue
            gateways |= {h["gateway"] for h in entry.get("nexthops", []) if "gateway" in h}
            if "gateway" in entry:
                gateways.add(entry["gateway"])
            if "nhid" in entry and not entry.get("nexthops"):
                gateways |= self._nexthop_group(int(entry["nhid"]))
        return tuple(sorted(self.node_of_address(g) for g in gateways))

    def _nexthop_group(self, nhid: int) -> set[str]:
        out = self.client.ip("-j", "nexthop", "show", "id", str(nhid), check=False).stdout
        found: set[str] = set()
        for entry in json.loads(out) if out.strip() else []:
            if "gateway" in entry:
                found.add(entry["gateway"])
            for member in entry.get("group", []):
                found |= self._nexthop_group(int(member["id"])) if "id" in member else set()
        return found

    def refresh_service_ips(self) -> dict[str, list[str]]:
        for plan in self.layout.services:
            svc = self.rest.get("services", plan.name, objects.APPS_NAMESPACE)
            self.state.service_ips[plan.name] = objects.ingress_ips(svc)
        return self.state.service_ips

    def status(self) -> LabStatus:
        with contextlib.suppress(RestError):
            self.refresh_service_ips()
        series = self.speaker_series()
        owners = self.announcers(series)
        bgp = self.layout.mode is Mode.BGP
        view: RouterView | None = None
        router_status: RouterStatus | None = None
        if bgp:
            error = ""
            try:
                view = self.router_view()
            except RouterError as e:
                error = str(e)
            router_status = RouterStatus(
                ROUTER_ASN,
                CLIENT_IPV4,
                self.state.running("bgpd") is not None,
                self.state.running("zebra") is not None,
                error,
            )

        def node_status(n: Any) -> NodeStatus:
            running = bool(self.state.running("speaker", n.name))
            base = (n.name, n.netns, n.ipv4, n.ipv6, running, link_is_up(Netns(n.netns)))
            if not bgp:
                return NodeStatus(*base)
            peer = view.peers.get(n.ipv4) if view else None
            return NodeStatus(
                *base,
                bgp=peer.state if peer else "",
                bgp_up=session_up(series.get(n.name, {})),
                prefixes=dict(peer.prefixes) if peer else {},
            )

        nodes = tuple(node_status(n) for n in self.layout.nodes)

        def one(plan_name: str, policy: str) -> ServiceStatus:
            ips = tuple(self.state.service_ips.get(plan_name, []))
            ip = ips[0] if ips else ""
            hops = view.hops_of(ip) if view is not None and ip else ()
            return ServiceStatus(
                plan_name,
                policy,
                ips,
                tuple(sorted(owners.get(ip, set()))),
                tuple(self.layer2_answers(ip)) if ip and not bgp else (),
                self.curl(ip) if ip else None,
                mode=str(self.layout.mode),
                next_hops=tuple(sorted(self.node_of_address(h) for h in hops)),
                next_hop_addresses=hops,
                kernel_next_hops=self.kernel_next_hops(ip) if bgp and ip else (),
            )

        with ThreadPoolExecutor(max_workers=len(self.layout.services)) as pool:
            services = tuple(
                pool.map(lambda s: one(s.name, s.traffic_policy), self.layout.services)
            )
        live = sum(processes.running(p.pid, p.start_time) for p in self.state.processes)
        return LabStatus(
            self.layout,
            self.state.api_url,
            self.state.kubeconfig,
            live,
            len({(p.role, p.node) for p in self.state.processes}),
            nodes,
            services,
            router_status,
        )

    # -- failures --

    def crash(self, node: str, *, link_first: bool = False) -> float:
        """SIGKILL the node's speaker and take its link down; returns the moment of the crash
        (CLOCK_MONOTONIC). `link_first`: the link goes down before the kill, so the node sends
        nothing at all (no TCP FIN to its BGP peer: a power loss, not a process crash)."""
        rec = self.state.running("speaker", node)
        if rec is None:
            raise LabError(f"node {node} has no running speaker")
        at = time.monotonic()
        if link_first:
            link_up(self.node_ns(node), False)
        processes.signal_pid(rec.pid, 9)
        if not link_first:
            link_up(self.node_ns(node), False)
        processes.stop([(rec.pid, rec.start_time)], grace=0)
        return at

    def restore(self, node: str) -> ProcessRecord:
        """Link up again and a fresh speaker (as a rebooted node)."""
        link_up(self.node_ns(node), True)
        return self.start_speaker(node)

    def live_nodes(self) -> list[str]:
        """Nodes whose speaker runs and whose link is up."""
        return [
            n
            for n in self.layout.node_names
            if self.state.running("speaker", n) and link_is_up(self.node_ns(n))
        ]

    def expected_owners(self, live: Iterable[str] | None = None) -> dict[str, str | None]:
        """Service -> the node that must announce it when `live` (default: every node whose
        speaker runs and link is up) are alive."""
        live = self.live_nodes() if live is None else list(live)
        return {
            s.name: expected_owner(s, ips[0], live)
            if (ips := self.state.service_ips.get(s.name))
            else None
            for s in self.layout.services
        }

    def expected_routes(self, live: Iterable[str] | None = None) -> dict[str, tuple[str, ...]]:
        """bgp mode: Service -> the nodes the router's route must lead to."""
        live = self.live_nodes() if live is None else list(live)
        return {s.name: expected_next_hops(s, live) for s in self.layout.services}

    def wait_settled(self, timeout: float = REACHABLE_TIMEOUT) -> dict[str, str]:
        """Wait until every Service is announced by exactly its elected node and `curl` from
        the client gets that node's answer (speakers starting one by one briefly elect among
        themselves); in bgp mode, until the router's installed route for every Service leads
        to exactly the expected nodes and `curl` is answered by one of them. Returns Service
        -> answering node."""
        if self.layout.mode is Mode.BGP:
            return self.wait_routes(timeout)
        expected = self.expected_owners()
        last: dict[str, Any] = {}

        def settled() -> bool:
            owners = self.announcers()
            for name, ips in self.state.service_ips.items():
                ip = ips[0] if ips else ""
                announced = owners.get(ip, set())
                answer = self.curl(ip, timeout=1.0) if ip else None
                last[name] = (sorted(announced), answer)
                if announced != {expected[name]} or answer != expected[name]:
                    return False
            return True

        try:
            netns.wait_for(settled, timeout, interval=0.2, what="every Service to settle")
        except TimeoutError:
            lines = [
                f"{name}: announced by {a or 'nobody'}, curl answer {c or 'none'}, "
                f"expected {expected.get(name)}"
                for name, (a, c) in last.items()
            ]
            raise LabError(
                f"the Services did not settle within {timeout:.0f} s:\n"
                + "\n".join(lines)
                + "\n"
                + self._logs_of("speaker")
            ) from None
        return {name: str(expected[name]) for name in self.state.service_ips}

    def wait_routes(self, timeout: float = REACHABLE_TIMEOUT) -> dict[str, str]:
        """bgp mode: every Service's route installed with the expected next hops and answered
        through it. Returns Service -> answering node."""
        expected = self.expected_routes()
        last: dict[str, tuple[tuple[str, ...], str | None]] = {}
        answers: dict[str, str] = {}

        def settled() -> bool:
            try:
                view = self.router_view()
            except RouterError as e:
                last["(router)"] = ((), str(e))
                return False
            last.pop("(router)", None)
            for name, ips in self.state.service_ips.items():
                ip = ips[0] if ips else ""
                hops = self.route_nodes(view, ip) if ip else ()
                answer = self.curl(ip, timeout=1.0) if ip and hops else None
                last[name] = (hops, answer)
                if hops != expected[name] or answer not in expected[name]:
                    return False
                answers[name] = answer
            return True

        try:
            netns.wait_for(settled, timeout, interval=0.2, what="every Service's route")
        except TimeoutError:
            lines = [
                f"{name}: routed to {','.join(hops) or 'nothing'}, curl answer {answer or 'none'}"
                + (
                    f", expected {','.join(want) or 'no route'}"
                    if (want := expected.get(name))
                    else ""
                )
                for name, (hops, answer) in last.items()
            ]
            raise LabError(
                f"the Services' routes did not settle within {timeout:.0f} s:\n"
                + "\n".join(lines)
                + "\n"
                + self._logs_of("speaker", "bgpd")
            ) from None
        return answers

    def _logs_of(self, *roles: str) -> str:
        return "\n".join(
            f"--- {p.log}\n{processes.tail(p.log, 8)}"
            for p in self.state.processes
            if p.role in roles
        )


def session_up(parsed: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> bool | None:
    """A speaker's `metallb_bgp_session_up` for the lab's router (None: no such series)."""
    for (name, labels), value in parsed.items():
        if name == "metallb_bgp_session_up" and dict(labels).get("peer") == f"{CLIENT_IPV4}:179":
            return value == 1
    return None


# --- up / down -----------------------------------------------------------------------------------


def up(
    nodes: int = 3,
    mode: Mode = Mode.LAYER2,
    *,
    directory: Path | None = None,
    prefix: str | None = None,
    progress: Progress = lambda _: None,
    tools: Sequence[str] = TOOLS_UP,
) -> Lab:
    """Build the lab and wait until every Service answers from the client.

    On failure everything built so far is removed and a LabError says what went wrong.
    """
    directory = directory or lab_dir()
    prefix = prefix or lab_prefix()
    if mode not in AVAILABLE_MODES:
        raise LabError(f"--mode {mode} is not available in the lab; use --mode layer2")
    try:
        layout = plan_lab(nodes, mode, prefix)
    except LayoutError as e:
        raise LabError(str(e)) from None
    preflight(tools)
    if mode is Mode.BGP:
        preflight_bgp()
    _refuse_running(directory, prefix)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    (directory / "logs").mkdir(exist_ok=True)
    state = LabState(
        prefix=prefix,
        mode=str(mode),
        nodes=nodes,
        directory=str(directory),
        secret=secrets.token_hex(16),
    )
    state.save()
    lab = Lab(state)
    try:
        _build(lab, layout, progress)
    except BaseException as e:
        progress("failed; removing what was built")
        down(directory, prefix)
        if isinstance(e, LabError):
            raise
        if isinstance(e, (NetnsError, RestError, OSError, TimeoutError)):
            raise LabError(f"lab up failed: {e}") from None
        raise
    return lab


def _refuse_running(directory: Path, prefix: str) -> None:
    state = LabState.load(directory)
    alive = [
        p for p in (state.processes if state else []) if processes.running(p.pid, p.start_time)
    ]
    spaces = netns.list_namespaces(prefix)
    if state is not None and (alive or spaces):
        raise LabError(
            f"a lab is already up (state in {directory / STATE_FILE}); "
            "`metallb-py lab status` shows it, `metallb-py lab down` removes it"
        )
    if spaces or processes.marked_pids(prefix):
        raise LabError(
            f"leftovers of an earlier lab ({', '.join(spaces) or 'processes'}) are still there; "
            "`metallb-py lab down` removes them"
        )
    if state is not None:  # a stale state file, nothing behind it
        down(directory, prefix)


def _build(lab: Lab, layout: LabLayout, progress: Progress) -> None:
    state, directory = lab.state, lab.directory
    started = time.monotonic()
    progress("starting the test API server on 127.0.0.1")
    api = lab._spawn(
        "apiserver",
        python_command(
            "metallb_py",
            "lab",
            "apiserver",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--namespace",
            METALLB_NAMESPACE,
            "--kubeconfig-out",
            str(directory / "kubeconfig"),
        ),
    )

    def api_ready(line: str) -> dict[str, str] | None:
        with contextlib.suppress(ValueError):
            data = json.loads(line)
            if isinstance(data, dict) and "url" in data:
                return data
        return None

    ready = lab._wait_log(api, api_ready, "the API server", STARTUP_TIMEOUT)
    state.api_url = ready["url"]
    state.kubeconfig = ready.get("kubeconfig", str(directory / "kubeconfig"))
    state.node_kubeconfig = str(node_kubeconfig(directory / "node-kubeconfig"))
    state.save()

    progress(f"building namespaces: {layout.client_netns} with {BRIDGE}, {len(layout.nodes)} nodes")
    topo = LabTopology(prefix=layout.prefix)
    lan = build_lan(topo, layout)
    state.macs = {name: mac_of(ns) for name, ns in lan.nodes.items()}
    state.save()

    progress("registering Nodes, speaker Pods, the config, Services and EndpointSlices")
    rest = lab.rest
    for plan in layout.nodes:
        objects.register(rest, objects.node(plan.name, plan.ipv4))
        objects.register(rest, objects.speaker_pod(plan.name, plan.ipv4))
    rest.create(objects.config_map(config_text(layout)))
    for svc in layout.services:
        rest.create(objects.service(svc))
        rest.create(
            objects.endpoint_slice(
                svc.name, svc.family, svc.endpoint_nodes, all_nodes=layout.node_names
            )
        )
    _mode_extras(lab, layout, progress)

    portal = lab._spawn("portal", portal_command(lab.api_port, [n.netns for n in layout.nodes]))
    lab._wait_log(portal, lambda line: line.strip() == "ready", "the portal", STARTUP_TIMEOUT)

    progress("starting the controller")
    ctl = lab._spawn("controller", python_command("metallb_py", *controller_args(state.kubeconfig)))

    def allocated() -> bool:
        ips = lab.refresh_service_ips()
        return all(ips.get(s.name) for s in layout.services)

    try:
        netns.wait_for(allocated, STARTUP_TIMEOUT, interval=0.1, what="IP allocation")
    except TimeoutError:
        raise LabError(
            f"the controller allocated no IPs in {STARTUP_TIMEOUT:.0f} s:\n"
            + processes.tail(ctl.log)
        ) from None
    state.controller_port = _startup_port(ctl)
    state.save()

    progress("backends on the Service IPs in every node, then one speaker per node")
    for plan in layout.nodes:
        ns = lan.nodes[plan.name]
        for ips in state.service_ips.values():
            for ip in ips:
                add_service_ip(ns, ip)
        lab.start_backend(plan.name)
    for plan in layout.nodes:
        lab.start_speaker(plan.name)
    if layout.mode is Mode.BGP:
        progress("waiting until FRR routes every Service to its nodes and each answers curl")
    else:
        progress("waiting until every Service answers from its elected node")
    lab.wait_settled()
    progress(f"lab up in {time.monotonic() - started:.1f} s")


def _mode_extras(lab: Lab, layout: LabLayout, progress: Progress) -> None:
    """Per-mode additions to the shared LAN. Layer2 needs none; BGP starts its router: FRR
    zebra + bgpd in the client namespace, a passive neighbour per node address."""
    if layout.mode is Mode.BGP:
        progress(
            f"starting FRR (zebra + bgpd, AS {ROUTER_ASN}) in {layout.client_netns}, "
            f"peering with {len(layout.nodes)} nodes"
        )
        lab.start_router()
    elif layout.mode is not Mode.LAYER2:
        raise LabError(f"mode {layout.mode} is not yet available in the lab")


def _startup_port(rec: ProcessRecord) -> int:
    with contextlib.suppress(OSError):
        for line in Path(rec.log).read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and entry.get("op") == "startup" and "port" in entry:
                    return int(entry["port"])
    return 0


def down(directory: Path | None = None, prefix: str | None = None) -> DownReport:
    """Remove the lab: recorded processes, marked processes, lab namespaces, lab files.

    Works from the state file when there is one and by sweeping (namespaces named
    `<prefix>-*`, processes marked `METALLB_LAB_ID=<prefix>`) either way, so it also cleans up
    after a crash. Idempotent.
    """
    directory = directory or lab_dir()
    prefix = prefix or lab_prefix()
    reason = netns.available()
    if reason is not None:
        raise LabError(f"lab down: {reason}")
    try:
        state = LabState.load(directory)
    except LabError:
        state = None
    recorded = state.processes if state else []
    stopped: list[int] = []
    # Components first, while the API server and the portal still answer their goodbyes;
    # the router after the speakers (it sees their Cease, not a hold timer).
    for roles in (("speaker", "controller", "backend"), ("portal", "apiserver", "bgpd", "zebra")):
        stopped += processes.stop((p.pid, p.start_time) for p in recorded if p.role in roles)
    stopped += processes.stop((p.pid, p.start_time) for p in recorded)
    stopped += processes.stop((pid, None) for pid in processes.marked_pids(prefix))
    removed = netns.sweep(prefix, only_dead_owners=False)
    router.remove_directory(directory)
    _remove_files(directory)
    return DownReport(
        stopped=tuple(sorted(set(stopped))),
        namespaces=tuple(removed),
        leftover_namespaces=tuple(netns.list_namespaces(prefix)),
        leftover_processes=tuple(processes.marked_pids(prefix)),
    )


def _remove_files(directory: Path) -> None:
    """Only what the lab writes: the directory may be a user's METALLB_LAB_DIR."""
    for name in (STATE_FILE, "state.tmp", "kubeconfig", "node-kubeconfig"):
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()
    logs = directory / "logs"
    if logs.is_dir():
        for f in logs.glob("*.log"):
            f.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            logs.rmdir()
    with contextlib.suppress(OSError):
        directory.rmdir()


# --- failover probe ------------------------------------------------------------------------------


class ProbeProcess:
    """`metallb_lab.lab.probe` running in the client namespace against one Service IP."""

    def __init__(self, lab_id: str, client_netns: str, ip: str, **options: float) -> None:
        args = [f"--target={target_of(ip)}"]
        for key, value in options.items():
            args.append(f"--{key.replace('_', '-')}={value}")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", client_netns, *python_command("metallb_lab.lab.probe", *args)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, processes.MARKER_ENV: lab_id},
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.lines.put(json.loads(line))
        self.lines.put({"event": "exit"})

    def wait(self, event: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if msg.get("event") == event:
                return msg
            if msg.get("event") == "exit":
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise LabError(f"the probe exited before {event!r}: {err.strip()}")
        raise LabError(f"the probe sent no {event!r} within {timeout:.0f} s")

    def samples(self, timeout: float) -> list[tuple[float, float, str | None]]:
        done = self.wait("done", timeout)
        return [(float(a), float(b), c) for a, b, c in done["samples"]]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)

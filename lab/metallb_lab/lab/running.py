"""A lab that is up, read back from its state file (the adapter behind `lab status`, the demo
and the benchmarks): its processes, probes from the client namespace (curl, ARP/NDP), the
speakers' metrics, the bgp-mode router, crashing and restoring a node, and waiting until every
Service is where the election (or, in bgp mode, the routing) says it must be.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from metallb_lab import netns
from metallb_lab.lab import objects, processes, router
from metallb_lab.lab.commands import (
    backend_command,
    python_command,
    speaker_args,
    speaker_env,
    url_of,
)
from metallb_lab.lab.kube import KubeconfigError, RestClient, RestError
from metallb_lab.lab.layout import (
    BRIDGE,
    CLIENT_IPV4,
    ROUTER_ASN,
    SPEAKER_METRICS_PORT,
    LayoutError,
    Mode,
    expected_next_hops,
    expected_owner,
    plan_lab,
)
from metallb_lab.lab.processes import ProcessRecord
from metallb_lab.lab.router import LabFrr, RouterError, RouterView
from metallb_lab.lab.state import LabError, LabState, lab_dir
from metallb_lab.lab.status import (
    LabStatus,
    NodeStatus,
    RouterStatus,
    ServiceStatus,
    session_up,
)
from metallb_lab.lab.topology import (
    link_is_up,
    link_up,
    readdress,
)
from metallb_lab.netns import Netns

STARTUP_TIMEOUT = 30.0
REACHABLE_TIMEOUT = 60.0


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

    @functools.cached_property
    def rest(self) -> RestClient:
        """The admin's client (from the lab's kubeconfig: plain HTTP to the embedded server,
        HTTPS with the test CA and a client certificate to kube-apiserver)."""
        try:
            return RestClient.from_kubeconfig(self.state.kubeconfig, timeout=5)
        except KubeconfigError as e:
            raise LabError(f"{e}; `metallb-py lab down` cleans up") from None

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
            backend_command(node, ips),
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

    def start_router(self) -> tuple[ProcessRecord, ProcessRecord, ProcessRecord]:
        """zebra, then bfdd and bgpd connected to it, in the client namespace; all recorded
        (roles `zebra`, `bfdd`, `bgpd`) so `down` stops them. Returns once bgpd answers
        vtysh."""
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
        bfdd = self._spawn("bfdd", frr.bfdd_argv(), netns_name=self.layout.client_netns)
        self._wait_ready(bfdd, frr.bfdd_ready, "bfdd")
        bgpd = self._spawn("bgpd", frr.argv(), netns_name=self.layout.client_netns)
        self._wait_ready(bgpd, frr.ready, "bgpd")
        return zebra, bfdd, bgpd

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
            self.state.apiserver,
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
        """Link up again, its addresses back and a fresh speaker (as a rebooted node)."""
        link_up(self.node_ns(node), True)
        plan = self.layout.node(node)
        readdress(self.node_ns(node), (plan.ipv4_cidr, plan.ipv6_cidr))
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
        to exactly the expected nodes and `curl` is answered by one of them, and FRR's BFD
        session with every live node is Up (a crash before that would meet the hold timer).
        Returns Service -> answering node."""
        if self.layout.mode is Mode.BGP:
            started = time.monotonic()
            answers = self.wait_routes(timeout)
            self.wait_bfd(max(1.0, timeout - (time.monotonic() - started)))
            return answers
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

    def wait_bfd(self, timeout: float = REACHABLE_TIMEOUT) -> None:
        """bgp mode: FRR's BFD session with every live node is Up."""
        frr = self.router
        if frr is None:
            raise LabError("BFD runs in bgp mode only")
        addresses = [self.layout.node(n).ipv4 for n in self.live_nodes()]

        def up() -> bool:
            states = {p.get("peer"): p.get("status") for p in frr.bfd_peers()}
            return all(states.get(a) == "up" for a in addresses)

        try:
            netns.wait_for(up, timeout, interval=0.2, what="FRR's BFD sessions up")
        except TimeoutError:
            raise LabError(
                f"FRR's BFD sessions with {addresses} were not all up within {timeout:.0f} s:\n"
                + self._logs_of("speaker", "bfdd")
            ) from None

    def _logs_of(self, *roles: str) -> str:
        return "\n".join(
            f"--- {p.log}\n{processes.tail(p.log, 8)}"
            for p in self.state.processes
            if p.role in roles
        )

"""Real BGP routers (FRR bgpd, BIRD 2, GoBGP) in test namespaces, for tests, benches and the lab.

Each router runs in the foreground under a `Topology`, so it is killed with the topology even
when a test fails. Config files, control sockets and logs live in a per-router work directory.
Routers are configured *passive* towards our speakers by default (metallb-py is an active-only
speaker, as upstream): they wait for the speaker to connect.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metallb_lab.netns import Netns, NetnsError, Topology, wait_for

FRR_BGPD = "/usr/lib/frr/bgpd"
FRR_ZEBRA = "/usr/lib/frr/zebra"
FRR_BFDD = "/usr/lib/frr/bfdd"
FRR_USER = "frr"


@dataclass(frozen=True)
class Neighbor:
    """One speaker the router peers with."""

    address: str
    asn: int
    password: str = ""
    passive: bool = True
    hold_time: int | None = None
    """Seconds; None keeps the daemon's default. Keepalive is hold/3."""
    ipv4: bool = True
    ipv6: bool = True
    """Exchange IPv6 unicast (over an IPv4 session too)."""
    four_octet_as: bool = True
    """False makes the router hide the 4-octet AS capability (a "2-byte" peer)."""
    multihop: bool = False
    local_address: str | None = None
    """The router's own source address for this session (GoBGP `local-address`)."""
    bfd: bool = False
    """FRR: `neighbor X bfd` (needs `FrrBfdRouter`, which runs bfdd); BIRD: `bfd on` with a
    `protocol bfd`. BFD Down drops BGP."""


def daemons_available() -> str | None:
    """None when FRR, BIRD and GoBGP are all installed, else what is missing."""
    missing = [
        name
        for name, path in (
            ("frr", FRR_BGPD),
            ("vtysh", shutil.which("vtysh")),
            ("bird", shutil.which("bird")),
            ("birdc", shutil.which("birdc")),
            ("gobgpd", shutil.which("gobgpd")),
            ("gobgp", shutil.which("gobgp")),
        )
        if not path or not os.path.exists(path)
    ]
    return f"missing: {', '.join(missing)}" if missing else None


@dataclass
class Router:
    """Common shape: config text, start/stop/restart, process handle."""

    topo: Topology
    ns: Netns
    workdir: Path
    asn: int
    router_id: str
    neighbors: list[Neighbor] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "daemon.log"

    def argv(self) -> list[str]:
        raise NotImplementedError

    def write_config(self) -> None:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 15.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o777)
        self.write_config()
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        try:
            self.proc = self.topo.spawn(
                self.ns, self.argv(), stdout=log.fileno(), stderr=log.fileno()
            )
        finally:
            log.close()
        try:
            wait_for(self._alive_and_ready, timeout=timeout, what=f"{type(self).__name__} ready")
        except TimeoutError as exc:
            raise NetnsError(f"{exc}; log:\n{self.log_tail()}") from None

    def _alive_and_ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise NetnsError(
                f"{type(self).__name__} exited with {self.proc.returncode}:\n{self.log_tail()}"
            )
        return self.ready()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            self.topo.kill(self.proc, sig)
            if self.proc.poll() is None:
                self.topo.kill(self.proc)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


# --- FRR -----------------------------------------------------------------------------------


@dataclass
class FrrRouter(Router):
    extra_config: str = ""

    @property
    def config_path(self) -> Path:
        return self.workdir / "bgpd.conf"

    def zebra_args(self) -> list[str]:
        """How bgpd reaches zebra: not at all (`-Z`) unless a subclass runs one."""
        return ["-Z"]

    def argv(self) -> list[str]:
        return [
            FRR_BGPD,
            "-S",
            *self.zebra_args(),
            "-P",
            "0",
            "-f",
            str(self.config_path),
            "-i",
            str(self.workdir / "bgpd.pid"),
            "--vty_socket",
            str(self.workdir),
            "--log",
            "stdout",
        ]

    def config_text(self) -> str:
        lines = [
            "frr defaults traditional",
            "hostname r",
            "log stdout",
            "log timestamp precision 6",
            f"router bgp {self.asn}",
            f" bgp router-id {self.router_id}",
            " no bgp ebgp-requires-policy",
            " no bgp default ipv4-unicast",
            " bgp log-neighbor-changes",
            " no bgp network import-check",
        ]
        for n in self.neighbors:
            lines.append(f" neighbor {n.address} remote-as {n.asn}")
            lines.append(f" neighbor {n.address} timers connect 1")
            if n.passive:
                lines.append(f" neighbor {n.address} passive")
            if n.password:
                lines.append(f" neighbor {n.address} password {n.password}")
            if n.hold_time is not None:
                lines.append(
                    f" neighbor {n.address} timers {max(1, n.hold_time // 3)} {n.hold_time}"
                )
            if not n.four_octet_as:
                lines.append(f" neighbor {n.address} dont-capability-negotiate")
            if n.multihop:
                lines.append(f" neighbor {n.address} ebgp-multihop 255")
            if n.bfd:
                lines.append(f" neighbor {n.address} bfd")
                lines += self.neighbor_bfd_lines(n)
        for afi, enabled in (("ipv4", "ipv4"), ("ipv6", "ipv6")):
            lines.append(f" address-family {afi} unicast")
            for n in self.neighbors:
                if getattr(n, enabled):
                    lines.append(f"  neighbor {n.address} activate")
            lines.append(" exit-address-family")
        if self.extra_config:
            lines.append(self.extra_config)
        return "\n".join(lines) + "\n"

    def neighbor_bfd_lines(self, n: Neighbor) -> list[str]:
        """Extra `neighbor X bfd ...` lines (a subclass names its BFD profile)."""
        return []

    def write_config(self) -> None:
        self.config_path.write_text(self.config_text())
        os.chmod(self.config_path, 0o666)

    def ready(self) -> bool:
        proc = self.ns.run(self._vtysh_argv(["show bgp summary json"]), check=False, timeout=10)
        return proc.returncode == 0 and proc.stdout.strip().startswith("{")

    def _vtysh_argv(self, commands: Sequence[str]) -> list[str]:
        argv = ["vtysh", "--vty_socket", str(self.workdir)]
        for c in commands:
            argv += ["-c", c]
        return argv

    def vtysh(self, *commands: str, timeout: float = 20.0) -> str:
        return self.ns.run(self._vtysh_argv(commands), timeout=timeout).stdout

    def json(self, command: str) -> Any:
        text = self.vtysh(command)
        return json.loads(text) if text.strip() else {}

    def configure(self, *lines: str) -> None:
        """Apply configuration lines under `router bgp` at run time."""
        self.vtysh("configure terminal", f"router bgp {self.asn}", *lines)

    def neighbor(self, address: str) -> dict[str, Any]:
        data = self.json(f"show bgp neighbors {address} json")
        return dict(data.get(address, {}))

    def neighbor_state(self, address: str) -> str:
        return str(self.neighbor(address).get("bgpState", ""))

    def routes(self, afi: str = "ipv4") -> dict[str, list[dict[str, Any]]]:
        """prefix -> paths, from `show bgp <afi> unicast json`."""
        return dict(self.json(f"show bgp {afi} unicast json").get("routes", {}))

    def route_detail(self, prefix: str) -> list[dict[str, Any]]:
        afi = "ipv6" if ":" in prefix else "ipv4"
        return list(self.json(f"show bgp {afi} unicast {prefix} json").get("paths", []))

    def prefix_count(self, address: str, afi: str = "ipv4") -> int:
        """Prefixes accepted from a neighbor in one family (0 when not established)."""
        data = self.json(f"show bgp {afi} unicast summary json")
        peer = data.get("peers", {}).get(address, {})
        return int(peer.get("pfxRcd", 0) or 0)


@dataclass
class FrrBfdRouter(FrrRouter):
    """FRR with zebra and bfdd beside bgpd (bgpd reaches bfdd through zebra), one BFD profile
    `p` for every neighbour with `bfd`. zebra and bfdd drop privileges to user frr, so the
    work directory and all its parents must be searchable by that user (not pytest's
    tmp_path)."""

    bfd_receive_ms: int = 300
    bfd_transmit_ms: int = 300
    bfd_detect_mult: int = 3
    bfd_passive: bool = False
    bfd_minimum_ttl: int | None = None
    """Multihop sessions only."""
    helpers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def zserv(self) -> Path:
        return self.workdir / "zserv.api"

    def zebra_args(self) -> list[str]:
        return ["-z", str(self.zserv)]

    def neighbor_bfd_lines(self, n: Neighbor) -> list[str]:
        return [f" neighbor {n.address} bfd profile p"]

    def helper_argv(self, name: str) -> list[str]:
        binary = {"zebra": FRR_ZEBRA, "bfdd": FRR_BFDD}[name]
        argv = [binary, "-u", FRR_USER, "-g", FRR_USER, "-P", "0"]
        argv += ["-f", str(self.workdir / f"{name}.conf"), "-i", str(self.workdir / f"{name}.pid")]
        argv += ["-z", str(self.zserv), "--vty_socket", str(self.workdir), "--log", "stdout"]
        if name == "bfdd":
            argv += ["--bfdctl", str(self.workdir / "bfdd.sock")]
        return argv

    def bfdd_config_text(self) -> str:
        lines = ["hostname r", "log stdout", "log timestamp precision 6", "bfd", " profile p"]
        lines += [
            f"  receive-interval {self.bfd_receive_ms}",
            f"  transmit-interval {self.bfd_transmit_ms}",
            f"  detect-multiplier {self.bfd_detect_mult}",
        ]
        if self.bfd_passive:
            lines.append("  passive-mode")
        if self.bfd_minimum_ttl is not None:
            lines.append(f"  minimum-ttl {self.bfd_minimum_ttl}")
        lines += [" !", "!"]
        return "\n".join(lines) + "\n"

    def write_config(self) -> None:
        super().write_config()
        for name, text in (
            ("zebra", "hostname r\nlog stdout\nlog timestamp precision 6\n"),
            ("bfdd", self.bfdd_config_text()),
        ):
            path = self.workdir / f"{name}.conf"
            path.write_text(text)
            os.chmod(path, 0o644)

    def start(self, timeout: float = 15.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o777)
        self.write_config()
        for name, ready in (("zebra", "zserv.api"), ("bfdd", "bfdd.vty")):
            self.start_helper(name)
            wait_for(
                lambda ready=ready: (self.workdir / ready).exists(),  # type: ignore[misc]
                timeout=timeout,
                what=f"FRR {name} ready",
            )
        super().start(timeout)

    def start_helper(self, name: str) -> None:
        """Start zebra or bfdd (again, after `stop_helper`)."""
        if name == "bfdd":
            (self.workdir / "bfdd.vty").unlink(missing_ok=True)
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            self.helpers[name] = self.topo.spawn(
                self.ns, self.helper_argv(name), stdout=log.fileno(), stderr=log.fileno()
            )
        finally:
            log.close()

    def stop_helper(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.helpers.pop(name, None)
        if proc is not None:
            self.topo.kill(proc, sig)
            if proc.poll() is None:
                self.topo.kill(proc)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        super().stop(sig)
        for name in ("bfdd", "zebra"):
            self.stop_helper(name, sig)

    def bfd_peers(self) -> list[dict[str, Any]]:
        """`show bfd peers json`: bfdd's own view (status, timers, remote timers)."""
        data = self.json("show bfd peers json")
        return list(data) if isinstance(data, list) else []

    def bfd_peer(self, address: str) -> dict[str, Any]:
        return next((p for p in self.bfd_peers() if p.get("peer") == address), {})


# --- BIRD ----------------------------------------------------------------------------------


@dataclass
class BirdRouter(Router):
    bfd_interval_ms: int = 100
    bfd_multiplier: int = 3
    """BIRD's `protocol bfd` (one interval for both directions), used by neighbours with `bfd`."""

    @property
    def config_path(self) -> Path:
        return self.workdir / "bird.conf"

    @property
    def ctl(self) -> str:
        return str(self.workdir / "bird.ctl")

    def argv(self) -> list[str]:
        return [
            "bird",
            "-f",
            "-c",
            str(self.config_path),
            "-s",
            self.ctl,
            "-P",
            str(self.workdir / "bird.pid"),
        ]

    def protocol_name(self, n: Neighbor) -> str:
        return "p_" + re.sub(r"[^0-9A-Za-z]", "_", n.address)

    def config_text(self) -> str:
        lines = [f"router id {self.router_id};", "protocol device {}"]
        if any(n.bfd for n in self.neighbors):
            lines += [
                "protocol bfd {",
                '  interface "*" {',
                f"    interval {self.bfd_interval_ms} ms;",
                f"    multiplier {self.bfd_multiplier};",
                "  };",
                "}",
            ]
        for n in self.neighbors:
            body = [
                f"  local as {self.asn};",
                f"  neighbor {n.address} as {n.asn};",
            ]
            if n.passive:
                body.append("  passive on;")
            if n.password:
                body.append(f'  password "{n.password}";')
            if n.hold_time is not None:
                body.append(f"  hold time {n.hold_time};")
            if not n.four_octet_as:
                body.append("  enable as4 off;")
            if n.bfd:
                body.append("  bfd on;")
            if n.asn == self.asn or n.multihop:
                body.append("  direct;" if not n.multihop else "  multihop;")
            if n.ipv4:
                body.append("  ipv4 { import all; export none; };")
            if n.ipv6:
                body.append("  ipv6 { import all; export none; };")
            lines.append(f"protocol bgp {self.protocol_name(n)} {{")
            lines += body
            lines.append("}")
        return "\n".join(lines) + "\n"

    def write_config(self) -> None:
        self.config_path.write_text(self.config_text())

    def birdc(self, *args: str) -> str:
        return self.ns.run(["birdc", "-s", self.ctl, *args], timeout=20).stdout

    def ready(self) -> bool:
        return (
            os.path.exists(self.ctl)
            and "BIRD"
            in self.ns.run(
                ["birdc", "-s", self.ctl, "show", "status"], check=False, timeout=10
            ).stdout
        )

    def protocol_state(self, n: Neighbor) -> str:
        """`Established`, `Active`, `Idle`... from `show protocols`."""
        out = self.birdc("show", "protocols", "all", self.protocol_name(n))
        match = re.search(r"BGP state:\s+(\S+)", out)
        return match.group(1) if match else ""

    def routes(self) -> dict[str, dict[str, Any]]:
        """prefix -> attributes parsed from `show route all` (first path per prefix)."""
        return parse_bird_routes(self.birdc("show", "route", "all"))

    def bfd_sessions(self) -> dict[str, str]:
        """Peer address -> BFD state (`Up`, `Down`, `Init` ...) from `show bfd sessions`."""
        out = self.birdc("show", "bfd", "sessions")
        return dict(re.findall(r"^(\S+)\s+\S+\s+(Up|Down|Init|AdminDown)\b", out, re.M))


def parse_bird_routes(text: str) -> dict[str, dict[str, Any]]:
    routes: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        head = re.match(r"^(\S+/\d+)\s+(\S+)\s+\[(\S+)", line)
        if head:
            current = {"type": head.group(2), "protocol": head.group(3)}
            routes.setdefault(head.group(1), current)
            continue
        if current is None:
            continue
        attr = re.match(r"^\s+BGP\.(\w+):\s*(.*)$", line)
        if attr:
            current[attr.group(1)] = attr.group(2).strip()
        via = re.match(r"^\s+via\s+(\S+)", line)
        if via:
            current["via"] = via.group(1)
    return routes


# --- GoBGP ---------------------------------------------------------------------------------


@dataclass
class GobgpRouter(Router):
    grpc_port: int = 50051

    @property
    def config_path(self) -> Path:
        return self.workdir / "gobgp.toml"

    def argv(self) -> list[str]:
        return [
            "gobgpd",
            "-f",
            str(self.config_path),
            "-t",
            "toml",
            "--api-hosts",
            f"127.0.0.1:{self.grpc_port}",
            "--log-level",
            "info",
        ]

    def config_text(self) -> str:
        lines = [
            "[global.config]",
            f"  as = {self.asn}",
            f'  router-id = "{self.router_id}"',
        ]
        for n in self.neighbors:
            lines += [
                "[[neighbors]]",
                "  [neighbors.config]",
                f'    neighbor-address = "{n.address}"',
                f"    peer-as = {n.asn}",
            ]
            if n.password:
                lines.append(f'    auth-password = "{n.password}"')
            lines += ["  [neighbors.timers.config]", "    connect-retry = 1"]
            if n.hold_time is not None:
                lines += [
                    f"    hold-time = {n.hold_time}",
                    f"    keepalive-interval = {max(1, n.hold_time // 3)}",
                ]
            lines += [
                "  [neighbors.transport.config]",
                f"    passive-mode = {str(n.passive).lower()}",
            ]
            if n.local_address:
                lines.append(f'    local-address = "{n.local_address}"')
            if n.multihop:
                lines += [
                    "  [neighbors.ebgp-multihop.config]",
                    "    enabled = true",
                    "    multihop-ttl = 255",
                ]
            for afi, enabled in (("ipv4-unicast", n.ipv4), ("ipv6-unicast", n.ipv6)):
                if enabled:
                    lines += [
                        "  [[neighbors.afi-safis]]",
                        "    [neighbors.afi-safis.config]",
                        f'      afi-safi-name = "{afi}"',
                    ]
        return "\n".join(lines) + "\n"

    def write_config(self) -> None:
        self.config_path.write_text(self.config_text())

    def gobgp(self, *args: str, timeout: float = 30.0) -> str:
        return self.ns.run(["gobgp", "-p", str(self.grpc_port), *args], timeout=timeout).stdout

    def gobgp_json(self, *args: str) -> Any:
        text = self.gobgp(*args, "-j")
        return json.loads(text) if text.strip() else None

    def ready(self) -> bool:
        proc = self.ns.run(["gobgp", "-p", str(self.grpc_port), "global"], check=False, timeout=10)
        return proc.returncode == 0 and "AS" in proc.stdout

    def neighbor_state(self, address: str) -> str:
        data = self.gobgp_json("neighbor", address)
        if not data:
            return ""
        return str(data.get("state", {}).get("session_state", ""))

    def routes(self, afi: str = "ipv4") -> dict[str, list[dict[str, Any]]]:
        """prefix -> paths of the global RIB (`gobgp global rib -a <afi> -j`)."""
        data = self.gobgp_json("global", "rib", "-a", afi)
        return dict(data or {})

    def inject_mrt(self, path: Path, *, nexthop: str | None = None) -> None:
        """Load a TABLE_DUMPv2 file into the global RIB (fast bulk load, unlike `rib add`)."""
        args = ["mrt", "inject", "global", str(path)]
        if nexthop:
            args = ["mrt", "inject", "global", "--nexthop", nexthop, str(path)]
        self.gobgp(*args, timeout=120)


# --- helpers -------------------------------------------------------------------------------


def wait_established(router: FrrRouter, address: str, timeout: float = 30.0) -> None:
    wait_for(
        lambda: router.neighbor_state(address) == "Established",
        timeout=timeout,
        what=f"FRR session with {address} established",
    )


def mrt_table_dump_v2(
    prefixes: Sequence[ipaddress.IPv6Network | ipaddress.IPv4Network],
    *,
    peer_address: str,
    peer_asn: int,
    next_hop: str,
    collector_id: str = "192.0.2.1",
    peer_bgp_id: str | None = None,
    as_path: Sequence[int] = (),
) -> bytes:
    """A minimal MRT TABLE_DUMP_V2 (RFC 6396) file: PEER_INDEX_TABLE then one RIB entry per
    prefix with ORIGIN, AS_PATH and the family's next hop; for `gobgp mrt inject`. The AS path
    is empty by default: locally originated, as a speaker's own routes are (a path holding the
    injecting speaker's own AS would be dropped by its loop check)."""
    import struct

    from metallb_py.bgp import messages as m

    now = int(time.time())
    as_path_value = (
        bytes([m.SegmentType.AS_SEQUENCE, len(as_path)])
        + b"".join(a.to_bytes(4, "big") for a in as_path)
        if as_path
        else b""
    )

    def record(subtype: int, body: bytes) -> bytes:
        return struct.pack("!IHHI", now, 13, subtype, len(body)) + body

    peer_ip = ipaddress.ip_address(peer_address)
    peer_type = 0x02 if peer_ip.version == 4 else 0x03  # AS4, IPv4/IPv6 peer address
    index = (
        ipaddress.IPv4Address(collector_id).packed
        + struct.pack("!H", 0)
        + struct.pack("!H", 1)
        + bytes([peer_type])
        + ipaddress.IPv4Address(peer_bgp_id or collector_id).packed
        + peer_ip.packed
        + struct.pack("!I", peer_asn)
    )
    out = [record(1, index)]
    hop = ipaddress.ip_address(next_hop)
    for seq, prefix in enumerate(prefixes):
        attrs = m.encode_attribute(
            m.FLAG_TRANSITIVE, m.AttrType.ORIGIN, bytes([m.Origin.INCOMPLETE])
        )
        attrs += m.encode_attribute(m.FLAG_TRANSITIVE, m.AttrType.AS_PATH, as_path_value)
        if prefix.version == 4:
            attrs += m.encode_attribute(m.FLAG_TRANSITIVE, m.AttrType.NEXT_HOP, hop.packed)
            subtype = 2  # RIB_IPV4_UNICAST
        else:
            # The full MP_REACH_NLRI: GoBGP 3.10 does not read RFC 6396's abbreviated form.
            value = (
                struct.pack("!HBB", m.AFI_IPV6, m.SAFI_UNICAST, len(hop.packed))
                + hop.packed
                + b"\0"
                + m.encode_prefix(prefix)
            )
            attrs += m.encode_attribute(m.FLAG_OPTIONAL, m.AttrType.MP_REACH_NLRI, value)
            subtype = 4  # RIB_IPV6_UNICAST
        entry = struct.pack("!HIH", 0, now, len(attrs)) + attrs
        body = struct.pack("!I", seq) + m.encode_prefix(prefix) + struct.pack("!H", 1) + entry
        out.append(record(subtype, body))
    return b"".join(out)


@dataclass
class PeeringLink:
    """A router namespace and a node namespace joined by one veth, dual-stack:
    router 192.0.2.1 / 2001:db8::1, node 192.0.2.11 / 2001:db8::11 (plus `extra` addresses
    on the node side, e.g. a second source address)."""

    topo: Topology
    router: Netns
    node: Netns
    router_v4: str = "192.0.2.1"
    router_v6: str = "2001:db8::1"
    node_v4: str = "192.0.2.11"
    node_v6: str = "2001:db8::11"
    router_if: str = "v-r1"
    node_if: str = "v-n1"

    @classmethod
    def create(cls, topo: Topology, extra: Sequence[str] = ()) -> PeeringLink:
        router = topo.add_ns("r")
        node = topo.add_ns("n1")
        link = cls(topo, router, node)
        topo.veth(node, link.node_if, router, link.router_if)
        topo.addr(router, link.router_if, f"{link.router_v4}/24")
        topo.addr(router, link.router_if, f"{link.router_v6}/64")
        topo.addr(node, link.node_if, f"{link.node_v4}/24")
        topo.addr(node, link.node_if, f"{link.node_v6}/64")
        for cidr in extra:
            topo.addr(node, link.node_if, cidr)
        return link

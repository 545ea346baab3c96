"""The lab's BGP router (`--mode bgp`): FRR bgpd, zebra and bfdd in the client namespace.

bgpd peers passively with every node address (the speakers connect, as upstream), with BFD on
every session (bfdd; a node that vanishes is dropped within the BFD detection time); zebra
installs what bgpd selects into the client namespace's kernel table, so `curl` from the client
follows the learned routes, with one ECMP route when several nodes announce a Service.

The bgpd and bfdd configuration and the vtysh queries are `metallb_lab.routers.FrrBfdRouter`'s
(the notes' recipe: bgpd without `-Z`, zebra and bfdd as user `frr`, sharing a zserv socket);
this module adds the lab's way of running daemons: detached, recorded in the state file,
stopped by `lab down`. All files (configs, pid files, vty and zserv sockets) live in
`<lab dir>/frr`.
The parsers at the end are pure: they read `vtysh ... json` output.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import re
import stat
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from metallb_lab.lab.layout import (
    BFD_DETECT_MULTIPLIER,
    BFD_INTERVAL_MS,
    BGP_HOLD_TIME,
    CLIENT_IPV4,
    NODE_ASN,
    ROUTER_ASN,
    LabLayout,
)
from metallb_lab.netns import Netns, Topology
from metallb_lab.routers import FRR_USER, FrrBfdRouter, Neighbor

ROUTER_DIR = "frr"
ROUTER_FILES = (
    "bgpd.conf",
    "zebra.conf",
    "bfdd.conf",
    "bgpd.pid",
    "zebra.pid",
    "bfdd.pid",
    "bgpd.vty",
    "zebra.vty",
    "bfdd.vty",
    "bfdd.sock",
    "zserv.api",
)
"""Everything the daemons write in the router directory (`lab down` removes exactly these)."""
ROUTE_QUERIES = ("show bgp summary json", "show ip route bgp json", "show ipv6 route bgp json")


class LabFrr(FrrBfdRouter):
    """FrrRouter with zebra and bfdd: bgpd talks to the lab's zebra over `zserv.api` instead
    of `-Z`, and every neighbour has BFD (bfdd's profile: `BFD_INTERVAL_MS` x
    `BFD_DETECT_MULTIPLIER`, as in the speakers' config), so a vanished node is dropped
    within a third of a second instead of the hold time."""

    def zebra_argv(self) -> list[str]:
        return self.helper_argv("zebra")

    def bfdd_argv(self) -> list[str]:
        return self.helper_argv("bfdd")

    def bfdd_ready(self) -> bool:
        """bfdd answers on its vty socket."""
        if not (self.workdir / "bfdd.vty").exists():
            return False
        proc = self.ns.run(self._vtysh_argv(["show bfd peers json"]), check=False, timeout=10)
        return proc.returncode == 0 and proc.stdout.strip().startswith("[")

    def zebra_ready(self) -> bool:
        """zebra answers on its vty socket (it made the zserv socket before that)."""
        if not (self.workdir / "zebra.vty").exists():
            return False
        proc = self.ns.run(self._vtysh_argv(["show version"]), check=False, timeout=10)
        return proc.returncode == 0 and "FRRouting" in proc.stdout

    def snapshot(self, timeout: float = 10.0) -> RouterView:
        """Sessions and installed routes, from one vtysh call."""
        try:
            proc = self.ns.run(self._vtysh_argv(ROUTE_QUERIES), check=False, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RouterError(f"vtysh did not answer within {timeout:.0f} s") from None
        if proc.returncode != 0:
            raise RouterError(f"vtysh failed ({proc.returncode}): {proc.stderr.strip()}")
        try:
            return parse_snapshot(proc.stdout)
        except ValueError as e:
            raise RouterError(f"unreadable vtysh output: {e}") from None


class RouterError(RuntimeError):
    """FRR did not answer a query."""


def lab_router(layout: LabLayout, directory: Path) -> LabFrr:
    """The router of a bgp lab: AS 64500 at 192.0.2.1, one passive eBGP neighbour per node
    (hold time as in the speakers' config, IPv4 and IPv6 unicast over the IPv4 session), up
    to one ECMP path per node."""
    paths = len(layout.nodes)
    multipath = "\n".join(
        f" address-family {afi} unicast\n  maximum-paths {paths}\n exit-address-family"
        for afi in ("ipv4", "ipv6")
    )
    return LabFrr(
        topo=Topology(prefix=layout.prefix),  # unused: the lab spawns and records the daemons
        ns=Netns(layout.client_netns),
        workdir=directory / ROUTER_DIR,
        asn=ROUTER_ASN,
        router_id=CLIENT_IPV4,
        neighbors=[
            Neighbor(n.ipv4, NODE_ASN, hold_time=BGP_HOLD_TIME, bfd=True) for n in layout.nodes
        ],
        extra_config=multipath,
        bfd_receive_ms=BFD_INTERVAL_MS,
        bfd_transmit_ms=BFD_INTERVAL_MS,
        bfd_detect_mult=BFD_DETECT_MULTIPLIER,
    )


def prepare_directory(directory: Path) -> Path:
    """`<lab dir>/frr`, owned by user frr (zebra writes its pid file and sockets there); the
    lab directory becomes searchable (0711) so zebra can reach it. Raises RouterError when
    user frr is missing or a parent directory is closed to it."""
    try:
        user = pwd.getpwnam(FRR_USER)
    except KeyError:
        raise RouterError(
            f"no user {FRR_USER!r}: install FRR (`bash scripts/setup.sh` or apt-get install frr)"
        ) from None
    groups = {user.pw_gid} | {g.gr_gid for g in grp.getgrall() if FRR_USER in g.gr_mem}
    os.chmod(directory, 0o711)
    for parent in (directory, *directory.parents):
        if not searchable(parent.stat(), user.pw_uid, groups):
            raise RouterError(
                f"FRR's zebra runs as user {FRR_USER} and cannot reach {directory}: {parent} is "
                "not searchable by it (chmod o+x, or point METALLB_LAB_DIR elsewhere, e.g. "
                "the default /run/metallb-py-lab)"
            )
    workdir = directory / ROUTER_DIR
    workdir.mkdir(mode=0o750, exist_ok=True)
    os.chown(workdir, user.pw_uid, user.pw_gid)
    os.chmod(workdir, 0o750)
    return workdir


def searchable(st: os.stat_result, uid: int, gids: set[int]) -> bool:
    """Whether a directory with this stat may be traversed by uid/gids (pure)."""
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in gids:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def remove_directory(directory: Path) -> None:
    """Only what the daemons write, then the directory if it is empty."""
    workdir = directory / ROUTER_DIR
    for name in ROUTER_FILES:
        (workdir / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        workdir.rmdir()


# --- reading FRR (pure) --------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerView:
    """One neighbour as bgpd shows it."""

    address: str
    state: str
    """Established, Active, Connect, Idle ..."""
    uptime: str
    """Established for (or down for), as FRR prints it."""
    prefixes: dict[str, int]
    """Accepted prefixes per family, `ipv4` / `ipv6`."""


@dataclass(frozen=True)
class RouterView:
    peers: dict[str, PeerView]
    next_hops: dict[str, tuple[str, ...]]
    """prefix -> next hops of the installed BGP route (in zebra's FIB: the kernel table)."""

    def hops_of(self, ip: str) -> tuple[str, ...]:
        return self.next_hops.get(f"{ip}/{128 if ':' in ip else 32}", ())


def json_documents(text: str) -> list[Any]:
    """vtysh prints one JSON document per `-c`, back to back."""
    decoder = json.JSONDecoder()
    docs: list[Any] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return docs
        doc, pos = decoder.raw_decode(text, pos)
        docs.append(doc)


def parse_peers(summary: dict[str, Any]) -> dict[str, PeerView]:
    """`show bgp summary json`: {"ipv4Unicast": {"peers": {addr: {...}}}, "ipv6Unicast": ...}."""
    peers: dict[str, PeerView] = {}
    for key, family in (("ipv4Unicast", "ipv4"), ("ipv6Unicast", "ipv6")):
        for address, data in (summary.get(key) or {}).get("peers", {}).items():
            old = peers.get(address)
            counts = dict(old.prefixes) if old else {}
            counts[family] = int(data.get("pfxRcd", 0) or 0)
            peers[address] = PeerView(
                address,
                str(data.get("state", "")),
                str(data.get("peerUptime", "")),
                counts,
            )
    return peers


def parse_routes(routes: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """`show ip[v6] route bgp json`: prefix -> sorted next hops that are in the FIB."""
    out: dict[str, tuple[str, ...]] = {}
    for prefix, entries in routes.items():
        hops = {
            str(hop["ip"])
            for entry in entries
            if entry.get("installed")
            for hop in entry.get("nexthops", [])
            if hop.get("fib") and hop.get("ip")
        }
        if hops:
            out[prefix] = tuple(sorted(hops))
    return out


def parse_snapshot(text: str) -> RouterView:
    docs = json_documents(text)
    if len(docs) != len(ROUTE_QUERIES):
        raise RouterError(f"vtysh gave {len(docs)} JSON documents, expected {len(ROUTE_QUERIES)}")
    summary, v4, v6 = docs
    return RouterView(parse_peers(summary), {**parse_routes(v4), **parse_routes(v6)})


@dataclass(frozen=True)
class SessionDown:
    """A session going down, from bgpd's log."""

    at: float
    """Wall-clock seconds (the log's local time, microseconds)."""
    neighbor: str
    reason: str
    """FRR's words, with the NOTIFICATION's name when one was sent or received, e.g.
    `BGP Notification send: 4/0 Hold Timer Expired` or `Peer closed the session`."""


_LOG_TIME = re.compile(r"^(\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?) ")
_NOTIFICATION = re.compile(
    r"%NOTIFICATION: (?:sent to|received from) neighbor (\S+) (\d+/\d+) \(([^)]*)\)"
)
_DOWN = re.compile(r"%ADJCHANGE: neighbor ([^(\s]+)\S* in vrf \S+ Down (.*?)\s*$")


def sessions_down(log: str, since: float = 0.0) -> list[SessionDown]:
    """Session drops in a bgpd log (`bgp log-neighbor-changes`) at or after `since`."""
    events: list[SessionDown] = []
    notified: dict[str, str] = {}
    for line in log.splitlines():
        stamp = _LOG_TIME.match(line)
        if stamp is None:
            continue
        text = stamp.group(1)
        at = datetime.strptime(text, "%Y/%m/%d %H:%M:%S.%f" if "." in text else "%Y/%m/%d %H:%M:%S")
        if (note := _NOTIFICATION.search(line)) is not None:
            notified[note.group(1)] = f"{note.group(2)} {note.group(3)}"
        elif (down := _DOWN.search(line)) is not None:
            neighbor, reason = down.group(1), down.group(2)
            if neighbor in notified:
                reason = f"{reason}: {notified.pop(neighbor)}"
            if at.timestamp() >= since:
                events.append(SessionDown(at.timestamp(), neighbor, reason))
    return events

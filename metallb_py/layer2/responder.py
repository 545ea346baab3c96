"""ARP and NDP responders: one AF_PACKET socket per interface, read from the asyncio loop.

The kernel-side BPF filter (bpf.py) keeps everything but ARP requests / neighbor solicitations
out of Python; the decision itself is the pure `frames.arp_reply_for` / `frames.na_reply_for`.
Every frame a peer can send ends in either a reply or an `Ignored` reason: the read handler
never lets an exception reach the event loop.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import errno
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable, Iterable

from metallb_py.layer2 import bpf, frames
from metallb_py.layer2.interfaces import Interface
from metallb_py.layer2.state import IPAddress
from metallb_py.layer2.stats import Layer2Stats

log = logging.getLogger(__name__)

# Frames handled per wake-up before yielding to the loop: bounded work per callback.
_BATCH = 64
_MEMBERSHIP_FULL = {errno.ENOBUFS, errno.ENOMEM}


class Layer2Error(Exception):
    """A problem the operator must fix (privileges, a missing interface); no traceback needed."""


def check_privileges() -> None:
    """Raise a clear Layer2Error unless raw packet sockets can be opened here."""
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
    except PermissionError:
        raise Layer2Error(
            "layer2 mode needs raw packet sockets: run as root or grant CAP_NET_RAW"
        ) from None


def open_packet_socket(ifname: str, ethertype: int, program: list[bpf.Insn]) -> socket.socket:
    """A non-blocking packet socket on `ifname` with `program` attached before any frame flows.

    Created with protocol 0 (receives nothing), filtered, then bound: no unfiltered frame can
    be queued in between.
    """
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except PermissionError:
        raise Layer2Error(
            f"cannot open a raw packet socket on {ifname}: run as root or grant CAP_NET_RAW"
        ) from None
    try:
        bpf.attach(sock, program)
        sock.bind((ifname, ethertype))
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.ENODEV, errno.ENXIO):
            raise Layer2Error(f"interface {ifname!r} does not exist") from None
        raise Layer2Error(f"cannot listen on {ifname}: {exc.strerror or exc}") from None
    return sock


class Responder(abc.ABC):
    """Shared part of the two responders: socket, reader callback, target table, counters."""

    kind = ""
    ethertype = 0

    def __init__(self, iface: Interface, stats: Layer2Stats) -> None:
        self.iface = iface
        self.name = iface.name
        self.mac = iface.mac
        self.stats = stats
        # Packed IP -> canonical text: the per-frame lookup and the counters' label in one.
        self.targets: dict[bytes, str] = {}
        # Why frames were not answered (debugging and tests; the BPF filter keeps this small).
        self.ignored: collections.Counter[str] = collections.Counter()
        self.send_errors = 0
        self.gate: Callable[[str], bool] | None = None
        """May this node answer for the IP (canonical text) right now? Checked per frame:
        the layer2 lease (docs/membership.md) enforced where the answer is made."""
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @abc.abstractmethod
    def _program(self) -> list[bpf.Insn]:
        """The kernel filter for this responder's frames."""

    @abc.abstractmethod
    def _answer(self, frame: bytes) -> frames.Reply | frames.Ignored:
        """The pure decision for one received frame."""

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sock = open_packet_socket(self.name, self.ethertype, self._program())
        self._loop = loop
        loop.add_reader(self._sock.fileno(), self._on_readable)

    def close(self) -> None:
        if self._sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    @property
    def running(self) -> bool:
        return self._sock is not None

    def add_target(self, ip: IPAddress) -> None:
        self.targets[ip.packed] = str(ip)

    def remove_target(self, ip: IPAddress) -> None:
        self.targets.pop(ip.packed, None)

    def set_targets(self, ips: Iterable[IPAddress]) -> None:
        wanted = {ip.packed: ip for ip in ips}
        for packed in [p for p in self.targets if p not in wanted]:
            self.remove_target(_ip_of(packed))
        for packed, ip in wanted.items():
            if packed not in self.targets:
                self.add_target(ip)

    def send(self, frame: bytes) -> bool:
        sock = self._sock
        if sock is None:
            return False
        try:
            sock.send(frame)
        except OSError as exc:
            self.send_errors += 1
            if self.send_errors == 1 or self.send_errors % 1000 == 0:  # no log flood
                log.warning(
                    "%s responder on %s: send failed (%d so far): %s",
                    self.kind,
                    self.name,
                    self.send_errors,
                    exc,
                )
            return False
        return True

    def _on_readable(self) -> None:
        """Answer what is queued (bounded per wake-up). The reply goes out before any
        bookkeeping; the kernel filter already dropped our own outgoing frames."""
        sock = self._sock
        if sock is None:
            return
        answer = self._answer
        stats = self.stats
        for _ in range(_BATCH):
            try:
                frame = sock.recv(bpf.SNAP_LEN)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. ENETDOWN while the link goes away; the scan cleans up
                log.warning("%s responder on %s: receive failed: %s", self.kind, self.name, exc)
                return
            try:
                result = answer(frame)
            except Exception:  # a parser bug must not kill the responder; count and go on
                log.exception("%s responder on %s: error on a frame", self.kind, self.name)
                self.ignored["internal error"] += 1
                continue
            if isinstance(result, frames.Reply):
                if self.gate is not None and not self.gate(result.ip):
                    self.ignored["no lease"] += 1
                    continue
                sent = self.send(result.frame)
                stats.got_request(result.ip)
                if sent:
                    stats.sent_response(result.ip)
            else:
                self.ignored[result.reason] += 1

    @abc.abstractmethod
    def gratuitous(self, ip: IPAddress) -> int:
        """Send this family's unsolicited announcement(s) for `ip`; returns frames sent."""


def _ip_of(packed: bytes) -> IPAddress:
    return ipaddress.ip_address(packed)


class ArpResponder(Responder):
    kind = "ARP"
    ethertype = frames.ETH_P_ARP

    def _program(self) -> list[bpf.Insn]:
        return bpf.arp_request_filter()

    def _answer(self, frame: bytes) -> frames.Reply | frames.Ignored:
        return frames.arp_reply_for(frame, self.mac, self.targets)

    def gratuitous(self, ip: IPAddress) -> int:
        request, reply = frames.build_gratuitous_arp(self.mac, ip.packed)
        return int(self.send(request)) + int(self.send(reply))


class NdpResponder(Responder):
    """Answers neighbor solicitations and holds the solicited-node groups of its targets.

    Group membership uses IPV6_JOIN_GROUP on the interface, so the kernel also reports it with
    MLD and snooping switches/bridges forward the solicitations here. Each group is joined while
    at least one target maps to it (set semantics: docs/behaviour-differences.md, "Set semantics
    per Service"), including targets that existed before this responder was created.
    """

    kind = "NDP"
    ethertype = frames.ETH_P_IPV6

    def __init__(self, iface: Interface, stats: Layer2Stats) -> None:
        super().__init__(iface, stats)
        link_local = iface.link_local
        if link_local is None:
            raise Layer2Error(f"interface {iface.name!r} has no IPv6 link-local address")
        self.link_local = link_local.packed
        self.groups: dict[bytes, set[bytes]] = {}
        self._membership_socks: list[socket.socket] = []
        self._group_sock: dict[bytes, socket.socket] = {}
        self.membership_errors = 0

    def _program(self) -> list[bpf.Insn]:
        return bpf.neighbor_solicitation_filter()

    def _answer(self, frame: bytes) -> frames.Reply | frames.Ignored:
        return frames.na_reply_for(frame, self.mac, self.link_local, self.targets)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        super().start(loop)
        for group in self.groups:
            self._join(group)

    def close(self) -> None:
        super().close()
        for sock in self._membership_socks:  # closing leaves every group it joined
            sock.close()
        self._membership_socks.clear()
        self._group_sock.clear()

    def add_target(self, ip: IPAddress) -> None:
        super().add_target(ip)
        group = frames.solicited_node_multicast(ip.packed)
        members = self.groups.setdefault(group, set())
        if not members and self.running:
            self._join(group)
        members.add(ip.packed)

    def remove_target(self, ip: IPAddress) -> None:
        super().remove_target(ip)
        group = frames.solicited_node_multicast(ip.packed)
        members = self.groups.get(group)
        if members is None:
            return
        members.discard(ip.packed)
        if not members:
            del self.groups[group]
            self._leave(group)

    def joined_groups(self) -> set[bytes]:
        return set(self._group_sock)

    def membership_sockets(self) -> int:
        """How many sockets hold the memberships (one per ~2,300 groups on Linux 6.x)."""
        return len(self._membership_socks)

    def _mreq(self, group: bytes) -> bytes:
        return group + struct.pack("@I", self.iface.index)

    def _join(self, group: bytes) -> None:
        if group in self._group_sock:
            return
        mreq = self._mreq(group)
        # One socket holds a bounded number of groups (socket option memory): when every
        # socket is full, open another.
        for sock in self._membership_socks:
            try:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
            except OSError as exc:
                if exc.errno in _MEMBERSHIP_FULL:
                    continue
                self._join_failed(group, exc)
                return
            self._group_sock[group] = sock
            return
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self._membership_socks.append(sock)
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
        except OSError as exc:
            self._join_failed(group, exc)
            return
        self._group_sock[group] = sock

    def _join_failed(self, group: bytes, exc: OSError) -> None:
        self.membership_errors += 1
        log.warning("NDP responder on %s: cannot join %s: %s", self.name, _ip_of(group), exc)

    def _leave(self, group: bytes) -> None:
        sock = self._group_sock.pop(group, None)
        if sock is None:
            return
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_LEAVE_GROUP, self._mreq(group))
        except OSError as exc:
            log.warning("NDP responder on %s: cannot leave %s: %s", self.name, _ip_of(group), exc)

    def gratuitous(self, ip: IPAddress) -> int:
        return int(self.send(frames.build_unsolicited_na(self.mac, ip.packed)))

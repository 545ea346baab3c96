"""BFD sessions on UDP (RFC 5881 single hop, RFC 5883 multihop), on the running event loop.

`BfdService` holds the receiving sockets (one per address family and port, opened with the
first session that needs it) and the sessions. Each `BfdPeer` has its own sending socket,
bound to the BGP source address (or the kernel's choice) and a port in 49152-65535, sending
with TTL 255 to port 3784 (single hop) or 4784 (multihop). A received packet must come with
TTL 255 on the single-hop port (the GTSM check of RFC 5881; the kernel tells the TTL through
IP_RECVTTL / IPV6_RECVHOPLIMIT), and with at least the profile's minimum TTL on the multihop
port. It is then decoded, matched to a session by Your Discriminator or, while that is 0, by the
peer's address, and given to the pure state machine (`session.py`), whose answers go out at
once; one timer per session runs `advance` at its `next_wakeup`. docs/bgp.md, "BFD".
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import random
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from metallb_py.bfd import packet as p
from metallb_py.bfd.session import Actions, BfdSession, Settings, Transition

log = logging.getLogger("metallb.bfd")

SINGLE_HOP_PORT = 3784
MULTIHOP_PORT = 4784
SOURCE_PORTS = (49152, 65535)
SEND_TTL = 255
DEFAULT_MINIMUM_TTL = 254
"""Multihop packets below this TTL are dropped unless the profile says otherwise (FRR's
default)."""
IP_RECVTTL = 12
"""<linux/in.h>; Python's socket module does not name it."""
RECEIVE_BATCH = 64
"""At most this many datagrams per readiness callback, so one busy socket cannot starve the
loop."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
OnTransition = Callable[["BfdPeer", Transition], None]
RunIn = Callable[[Callable[[], socket.socket]], socket.socket]
"""Where sockets are made: `bgp.host.LocalHost.run` makes them in the speaker's network
namespace (the BGP sessions' own); by default, here."""


def _here(make: Callable[[], socket.socket]) -> socket.socket:
    return make()


@dataclass
class ReceiveStats:
    """Packets the listeners dropped before any session saw them, by reason."""

    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


class BfdPeer:
    """One BFD session to one peer address: its sending socket and its timer."""

    def __init__(
        self,
        service: BfdService,
        peer: IPAddress,
        source: IPAddress | None,
        multihop: bool,
        settings: Settings,
        minimum_ttl: int,
        on_transition: OnTransition,
    ) -> None:
        self.peer = peer
        self.source = source
        self.multihop = multihop
        self.minimum_ttl = minimum_ttl
        self.send_errors = 0
        self._service = service
        self._loop = service.loop
        self._on_transition = on_transition
        self.session = BfdSession(settings, service.new_discriminator(), self._loop.time())
        port = MULTIHOP_PORT if multihop else SINGLE_HOP_PORT
        self._sock = service.run_in(lambda: _sending_socket(peer, source, port))
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._apply(self.session.advance(self._loop.time()))

    @property
    def label(self) -> str:
        return str(self.peer)

    def update_settings(self, settings: Settings, minimum_ttl: int) -> None:
        self.minimum_ttl = minimum_ttl
        self._apply(self.session.update_settings(settings, self._loop.time()))

    def receive(self, packet: p.ControlPacket) -> None:
        actions = self.session.receive(packet, self._loop.time())
        if actions.discarded:
            self._service.stats.drop(actions.discarded)
        self._apply(actions)

    def close(self) -> None:
        """AdminDown to the peer (it keeps its BGP session up for it), then stop."""
        if self._closed:
            return
        self._apply(self.session.admin_down(self._loop.time()))
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._sock.close()

    def _on_timer(self) -> None:
        self._timer = None
        self._apply(self.session.advance(self._loop.time()))

    def _apply(self, actions: Actions) -> None:
        if self._closed:
            return
        for packet in actions.send:
            try:
                self._sock.send(p.encode(packet))
                self.session.counters.packets_out += 1
            except OSError as exc:  # link down, no route, buffer full: BFD's business to notice
                self.send_errors += 1
                if self.send_errors == 1 or exc.errno not in (
                    errno.ENETUNREACH,
                    errno.EHOSTUNREACH,
                ):
                    log.debug("BFD peer %s: send failed: %s", self.label, exc)
        for t in actions.transitions:
            log.info(
                "BFD peer %s: %s -> %s (%s)",
                self.label,
                t.old.name,
                t.new.name,
                _diag_name(t.diag),
            )
            self._on_transition(self, t)
        if self._closed:  # the callback closed us
            return
        wake = self.session.next_wakeup()
        if self._timer is not None and (wake is None or self._timer.when() != wake):
            self._timer.cancel()
            self._timer = None
        if wake is not None and self._timer is None:
            self._timer = self._loop.call_at(wake, self._on_timer)


class BfdService:
    """The sessions of one speaker and the sockets they receive on (must be created inside the
    running loop)."""

    def __init__(self, run_in: RunIn = _here) -> None:
        self.loop = asyncio.get_running_loop()
        self.run_in = run_in
        self.stats = ReceiveStats()
        self.peers: list[BfdPeer] = []
        self._listeners: dict[tuple[int, int], socket.socket] = {}
        self._discriminators: set[int] = set()

    def new_discriminator(self) -> int:
        while True:
            value = random.randint(1, 0xFFFFFFFF)
            if value not in self._discriminators:
                self._discriminators.add(value)
                return value

    def add(
        self,
        peer: IPAddress,
        source: IPAddress | None,
        *,
        multihop: bool,
        settings: Settings,
        minimum_ttl: int = DEFAULT_MINIMUM_TTL,
        on_transition: OnTransition,
    ) -> BfdPeer:
        """Start a session (raises OSError when a socket cannot be opened)."""
        port = MULTIHOP_PORT if multihop else SINGLE_HOP_PORT
        self._listen(peer.version, port)
        bfd = BfdPeer(self, peer, source, multihop, settings, minimum_ttl, on_transition)
        self.peers.append(bfd)
        return bfd

    def remove(self, bfd: BfdPeer) -> None:
        bfd.close()
        self._discriminators.discard(bfd.session.my_discriminator)
        if bfd in self.peers:
            self.peers.remove(bfd)

    def close(self) -> None:
        for bfd in list(self.peers):
            self.remove(bfd)
        for sock in self._listeners.values():
            self.loop.remove_reader(sock)
            sock.close()
        self._listeners.clear()

    # --- receiving -------------------------------------------------------------------------------

    def _listen(self, version: int, port: int) -> None:
        if (version, port) in self._listeners:
            return
        sock = self.run_in(lambda: _receiving_socket(version, port))
        self._listeners[(version, port)] = sock
        self.loop.add_reader(sock, self._readable, sock, port)

    def _readable(self, sock: socket.socket, port: int) -> None:
        for _ in range(RECEIVE_BATCH):
            try:
                data, ancillary, _, source = sock.recvmsg(512, socket.CMSG_SPACE(4) * 2)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("BFD: receive failed: %s", exc)
                return
            self._datagram(data, _ttl(ancillary), source[0], port)

    def _datagram(self, data: bytes, ttl: int | None, source: str, port: int) -> None:
        """Checks, decode, demultiplex (every drop counted by reason)."""
        multihop = port == MULTIHOP_PORT
        if ttl is None:
            self.stats.drop("no TTL")
            return
        if not multihop and ttl != SEND_TTL:
            self.stats.drop("TTL not 255 on the single-hop port")
            return
        try:
            packet = p.decode(data)
        except p.DiscardedError as exc:
            self.stats.drop(exc.rule.value)
            return
        try:
            address = ipaddress.ip_address(source.split("%", 1)[0])
        except ValueError:
            self.stats.drop("unreadable source address")
            return
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        bfd = self._session_for(packet, address, multihop)
        if bfd is None:
            self.stats.drop("no session for this peer and discriminator")
            return
        if multihop and ttl < bfd.minimum_ttl:
            self.stats.drop("TTL below the profile's minimum-ttl")
            return
        bfd.receive(packet)

    def _session_for(
        self, packet: p.ControlPacket, address: IPAddress, multihop: bool
    ) -> BfdPeer | None:
        candidates = [b for b in self.peers if b.peer == address and b.multihop == multihop]
        if packet.your_discriminator:
            return next(
                (b for b in candidates if b.session.my_discriminator == packet.your_discriminator),
                None,
            )
        # By address: the session that knows this discriminator, else one of that address (a
        # peer that restarted its session comes back with a new one).
        known = [b for b in candidates if b.session.remote_discriminator == packet.my_discriminator]
        chosen = known or candidates
        return chosen[0] if chosen else None


def _diag_name(diag: int) -> str:
    try:
        return p.Diag(diag).name.lower().replace("_", " ")
    except ValueError:
        return f"diag {diag}"


def _ttl(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancillary:
        if (level, kind) in (
            (socket.IPPROTO_IP, socket.IP_TTL),
            (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT),
        ) and len(data) >= 4:
            return int(struct.unpack("=i", data[:4])[0])
    return None


def _receiving_socket(version: int, port: int) -> socket.socket:
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        # No SO_REUSEADDR: a second BFD speaker on this host (FRR's bfdd) must be an error
        # here, not a silent split of the peers' packets.
        if version == 4:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
            sock.bind(("0.0.0.0", port))
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
            sock.bind(("::", port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _sending_socket(peer: IPAddress, source: IPAddress | None, port: int) -> socket.socket:
    """A UDP socket from a free port in 49152-65535 (RFC 5881 section 4) with TTL 255,
    connected to the peer (so the kernel picks the source address when none is given)."""
    family = socket.AF_INET if peer.version == 4 else socket.AF_INET6
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if peer.version == 4:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, SEND_TTL)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, SEND_TTL)
        host = str(source) if source is not None else ("0.0.0.0" if peer.version == 4 else "::")
        low, high = SOURCE_PORTS
        for attempt in range(200):
            try:
                sock.bind((host, random.randint(low, high)))
                break
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or attempt == 199:
                    raise
        sock.connect((str(peer), port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock

"""One TCP connection to a BGP peer, up to Established: the socket (TTL for eBGP, TCP-MD5, the
source address), the OPEN/KEEPALIVE exchange, what it settles (router-id, hold time, families,
next hops, 2- or 4-octet AS numbers), and framed messages in and out.

The session (`session.py`) dials through here with its deadline, then owns what happens while
established and the retries (docs/bgp.md, "Session life cycle").
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from metallb_py.bgp import messages as m
from metallb_py.bgp.host import (
    TCP_MD5SIG,
    InterfaceAddress,
    LocalHost,
    first_address,
    owner_interface,
    tcp_md5sig,
)
from metallb_py.config.model import IPAddress, Peer

log = logging.getLogger(__name__)

NOTIFICATION_FLUSH_TIMEOUT = 0.3
"""How long a NOTIFICATION may wait for a peer that stopped reading: a closing speaker must
say goodbye within its termination grace (the whole shutdown has a second)."""
GRACEFUL_CLOSE_WAIT = 0.3
"""How long a graceful-restart goodbye waits for the peer to close its side (within the same
second of shutdown as a NOTIFICATION)."""
OUR_FAMILIES = (m.IPV4_UNICAST, m.IPV6_UNICAST)

M = TypeVar("M", bound=m.Message)


def derive_router_id(
    configured: IPAddress | None,
    local: IPAddress,
    addresses: Sequence[InterfaceAddress],
    node_name: str,
) -> ipaddress.IPv4Address:
    """As upstream (docs/bgp.md): configured IPv4 router-id; else the local IPv4 connection
    address; else the first IPv4 on the interface owning the local IPv6 address; else CRC-32
    (IEEE) of the node name written little-endian."""
    if isinstance(configured, ipaddress.IPv4Address):
        return configured
    if isinstance(local, ipaddress.IPv4Address):
        return local
    found = first_address(addresses, owner_interface(local, addresses), 4, link_local=False)
    if isinstance(found, ipaddress.IPv4Address):
        return found
    crc = zlib.crc32(node_name.encode())
    return ipaddress.IPv4Address(crc.to_bytes(4, "little"))


@dataclass(frozen=True)
class NextHops:
    v4: ipaddress.IPv4Address | None
    v6: ipaddress.IPv6Address | None
    link_local: ipaddress.IPv6Address | None


def choose_next_hops(
    local: IPAddress, addresses: Sequence[InterfaceAddress], *, with_link_local: bool
) -> NextHops:
    """The connection's local address is the next hop of its own family; for the other family
    use the first (global) address of that family on the same interface. With
    `with_link_local` (single-hop eBGP), IPv6 routes also carry that interface's link-local."""
    ifindex = owner_interface(local, addresses)
    v4 = local if local.version == 4 else first_address(addresses, ifindex, 4, link_local=False)
    v6 = local if local.version == 6 else first_address(addresses, ifindex, 6, link_local=False)
    ll = None
    if with_link_local and v6 is not None:
        ll = first_address(addresses, owner_interface(v6, addresses), 6, link_local=True)
    return NextHops(
        v4 if isinstance(v4, ipaddress.IPv4Address) else None,
        v6 if isinstance(v6, ipaddress.IPv6Address) and not v6.is_link_local else None,
        ll if isinstance(ll, ipaddress.IPv6Address) else None,
    )


class SessionDownError(Exception):
    """Why a connection ended; the session logs it and reconnects."""


class PeerNotificationError(SessionDownError):
    def __init__(self, notification: m.Notification) -> None:
        self.notification = notification
        super().__init__(f"peer sent NOTIFICATION {notification}")


_NO_ROUTER_ID = ipaddress.IPv4Address(0)


@dataclass
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    local: IPAddress
    external: bool
    """eBGP: the decoder applies the rules for an external peer's UPDATEs."""
    router_id: ipaddress.IPv4Address = _NO_ROUTER_ID
    hold_time: int = 0
    four_octet_as: bool = True
    families: frozenset[m.AfiSafi] = frozenset()
    context: m.UpdateContext | None = None
    sent_notification: bool = False
    held_back: int = 0
    refresh: set[int] = field(default_factory=set)
    """AFIs whose routes the peer asked to receive again (ROUTE-REFRESH)."""
    peer_graceful_restart: m.GracefulRestart | None = None
    """The peer's Graceful Restart capability, as received (recorded, not acted on: the
    speaker keeps no routes from its peers, so it has none to keep as stale)."""
    graceful_restart: bool = False
    """Both sides sent the Graceful Restart capability: a restart of this speaker may close
    the connection without a NOTIFICATION and the peer keeps our routes (docs/bgp.md)."""

    finished: bool = False
    """We sent our FIN (graceful restart goodbye): nothing more is written."""

    def send(self, data: bytes) -> None:
        if not self.finished:
            self.writer.write(data)

    async def read(self) -> m.Message:
        try:
            header = await self.reader.readexactly(m.HEADER_LEN)
            _, length = m.decode_header(header)
            body = await self.reader.readexactly(length - m.HEADER_LEN)
        except asyncio.IncompleteReadError:
            raise SessionDownError("connection closed by peer") from None
        return m.decode_message(
            header + body, four_octet_as=self.four_octet_as, external=self.external
        )

    async def expect(self, kind: type[M], subcode: int, unexpected: str) -> M:
        """The next message, which the FSM requires to be a `kind`: a NOTIFICATION ends the
        connection; anything else is an FSM error with `subcode` ("<Type> `unexpected`")."""
        msg = await self.read()
        if isinstance(msg, m.Notification):
            raise PeerNotificationError(msg)
        if not isinstance(msg, kind):
            raise m.BgpError(m.ErrorCode.FSM, subcode, b"", f"{type(msg).__name__} {unexpected}")
        return msg

    async def notify(self, code: int, subcode: int, data: bytes = b"") -> None:
        """Send a NOTIFICATION (best effort, bounded) and close the connection."""
        if self.sent_notification or self.writer.is_closing():
            return
        self.sent_notification = True
        try:
            self.writer.write(m.encode_notification(code, subcode, data))
            await asyncio.wait_for(self.writer.drain(), NOTIFICATION_FLUSH_TIMEOUT)
        except (OSError, TimeoutError, RuntimeError):
            pass
        self.abort()

    async def close_for_restart(self) -> None:
        """The graceful restart goodbye: FIN without a NOTIFICATION, then wait (at most
        `GRACEFUL_CLOSE_WAIT`) until the peer has closed its side too, i.e. has seen ours and
        keeps our routes as stale. Only then may anything else that says we are gone follow
        (the BFD session's AdminDown): FRR 8.4 answers a BFD Down that reaches it while the
        session is still up with Cease/BFD Down and drops the routes."""
        transport = self.writer.transport
        if transport.is_closing() or self.finished:
            return
        self.finished = True
        try:
            if self.writer.can_write_eof():
                self.writer.write_eof()
            async with asyncio.timeout(GRACEFUL_CLOSE_WAIT):
                while not self.reader.at_eof() and not transport.is_closing():
                    await asyncio.sleep(0.005)  # the session's reader consumes until EOF
        except (OSError, TimeoutError, RuntimeError):
            pass
        transport.close()

    def abort(self) -> None:
        transport = self.writer.transport
        if not transport.is_closing():
            if self.sent_notification:
                transport.close()  # let the NOTIFICATION leave before FIN
            else:
                transport.abort()


async def dial(peer: Peer, host: LocalHost, addresses: Sequence[InterfaceAddress]) -> Connection:
    """The TCP connection to `peer` (the caller bounds the time)."""
    sock = await asyncio.to_thread(make_socket, peer, host, addresses)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (str(peer.address), peer.port))
        reader, writer = await asyncio.open_connection(sock=sock)
    except BaseException:
        sock.close()
        raise
    local = ipaddress.ip_address(writer.get_extra_info("sockname")[0].split("%")[0])
    return Connection(reader, writer, local, external=not peer.is_ibgp)


def make_socket(
    peer: Peer, host: LocalHost, addresses: Sequence[InterfaceAddress]
) -> socket.socket:
    """A socket for `peer`: TTL 1 (255 with ebgp-multihop) for eBGP, the TCP-MD5 key, and the
    source address when it is a local address of the peer's family."""
    family = socket.AF_INET if peer.address.version == 4 else socket.AF_INET6
    sock = host.socket(family)
    try:
        if not peer.is_ibgp:
            ttl = 255 if peer.ebgp_multihop else 1
            if family == socket.AF_INET:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
        if peer.password:
            try:
                md5 = tcp_md5sig(peer.address, peer.password.encode())
            except ValueError as exc:  # longer than the kernel's 80 bytes
                raise SessionDownError(f"password unusable: {exc}") from None
            sock.setsockopt(socket.IPPROTO_TCP, TCP_MD5SIG, md5)
        source = peer.source_address
        if source is not None:
            if source.version != peer.address.version:
                log.warning(
                    "BGP peer %s: source-address %s is not of the peer's family; "
                    "letting the kernel choose",
                    peer.endpoint,
                    source,
                )
            elif all(a.address != source for a in addresses):
                log.warning(
                    "BGP peer %s: source-address %s is not a local address; "
                    "letting the kernel choose",
                    peer.endpoint,
                    source,
                )
            else:
                sock.bind((str(source), 0))
    except BaseException:
        sock.close()
        raise
    return sock


async def open_exchange(
    conn: Connection,
    peer: Peer,
    addresses: Sequence[InterfaceAddress],
    node_name: str,
    *,
    link_local_next_hop: bool,
    graceful_restart: m.GracefulRestart | None = None,
) -> None:
    """OPEN and KEEPALIVE both ways; on return `conn` is Established and holds what was
    settled. `graceful_restart`: our capability, None to send none. A `BgpError` names the
    NOTIFICATION to send."""
    conn.router_id = derive_router_id(peer.router_id, conn.local, addresses, node_name)
    hold = min(peer.hold_time, 0xFFFF)  # the OPEN field is 16 bits
    conn.send(m.encode_open(peer.my_asn, hold, conn.router_id, graceful_restart=graceful_restart))
    # OpenSent
    msg = await conn.expect(m.Open, m.FsmSubcode.UNEXPECTED_IN_OPENSENT, "before OPEN")
    m.validate_peer_open(msg, peer_asn=peer.peer_asn, local_id=conn.router_id, ibgp=peer.is_ibgp)
    conn.four_octet_as = msg.four_octet_as is not None
    conn.hold_time = min(hold, msg.hold_time)
    conn.families = msg.families & frozenset(OUR_FAMILIES)
    conn.peer_graceful_restart = msg.graceful_restart
    conn.graceful_restart = graceful_restart is not None and msg.graceful_restart is not None
    hops = choose_next_hops(
        conn.local,
        addresses,
        with_link_local=link_local_next_hop and not peer.is_ibgp and not peer.ebgp_multihop,
    )
    conn.context = m.UpdateContext(
        my_asn=peer.my_asn,
        ibgp=peer.is_ibgp,
        four_octet_as=conn.four_octet_as,
        next_hop_v4=hops.v4,
        next_hop_v6=hops.v6,
        link_local_v6=hops.link_local,
    )
    conn.send(m.encode_keepalive())
    # OpenConfirm: established only once the peer's KEEPALIVE arrives.
    await conn.expect(m.Keepalive, m.FsmSubcode.UNEXPECTED_IN_OPENCONFIRM, "instead of KEEPALIVE")

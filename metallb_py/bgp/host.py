"""The local side of a BGP session: where its sockets are made and which addresses are ours.

A speaker normally runs in the node's own network namespace (`LocalHost()`). Tests, the lab
and the benchmarks run many "nodes" in one process, so a `LocalHost("ns-name")` creates its
sockets and reads its addresses inside that named namespace instead; a socket stays bound to
the namespace it was created in, so the asyncio code that uses it afterwards is the same.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from metallb_py.config.model import IPAddress

T = TypeVar("T")
_CLONE_NEWNET = 0x40000000
TCP_MD5SIG = 14
TCP_MD5SIG_MAXKEYLEN = 80


@dataclass(frozen=True)
class InterfaceAddress:
    ifindex: int
    ifname: str
    address: IPAddress
    prefixlen: int

    @property
    def is_link_local(self) -> bool:
        return self.address.is_link_local


class LocalHost:
    """The network namespace a session lives in (None: the process's own)."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns

    def run(self, fn: Callable[[], T]) -> T:
        """Call `fn` with the calling context moved into the namespace (blocking, short)."""
        if self.netns is None:
            return fn()
        return _run_in_netns(self.netns, fn)

    def socket(self, family: int) -> socket.socket:
        """A non-blocking TCP socket of `family` created in this namespace."""
        sock = self.run(lambda: socket.socket(family, socket.SOCK_STREAM))
        sock.setblocking(False)
        return sock

    def addresses(self) -> list[InterfaceAddress]:
        """Every address on every interface, in the kernel's order (netlink)."""
        return self.run(_read_addresses)


def _read_addresses() -> list[InterfaceAddress]:
    from pyroute2 import IPRoute

    out: list[InterfaceAddress] = []
    with IPRoute() as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for msg in ipr.get_addr():
            text = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
            if not text:
                continue
            address = ipaddress.ip_address(text.split("%")[0])
            out.append(
                InterfaceAddress(
                    msg["index"], names.get(msg["index"], ""), address, msg["prefixlen"]
                )
            )
    return out


def _run_in_netns(name: str, fn: Callable[[], T]) -> T:
    """setns(2) is per thread: do the work in a short-lived thread so no pooled thread is
    ever left in the wrong namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    result: list[T] = []
    error: list[BaseException] = []

    def worker() -> None:
        try:
            target = os.open(f"/run/netns/{name}", os.O_RDONLY)
            try:
                if libc.setns(target, _CLONE_NEWNET) != 0:
                    errno = ctypes.get_errno()
                    raise OSError(errno, f"setns({name}): {os.strerror(errno)}")
            finally:
                os.close(target)
            result.append(fn())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=worker, name=f"netns-{name}", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def owner_interface(local: IPAddress, addresses: Sequence[InterfaceAddress]) -> int | None:
    """ifindex of the interface that carries `local`."""
    for a in addresses:
        if a.address == local:
            return a.ifindex
    return None


def first_address(
    addresses: Sequence[InterfaceAddress], ifindex: int | None, version: int, link_local: bool
) -> IPAddress | None:
    """First address of a family on an interface; `link_local` picks fe80::/10 or the rest."""
    if ifindex is None:
        return None
    for a in addresses:
        if a.ifindex == ifindex and a.address.version == version:
            if version == 6 and a.is_link_local != link_local:
                continue
            return a.address
    return None


def tcp_md5sig(peer: IPAddress, key: bytes) -> bytes:
    """`struct tcp_md5sig` for setsockopt(IPPROTO_TCP, TCP_MD5SIG): the peer's
    sockaddr_storage (128 bytes), flags, prefix length, key length, ifindex, 80-byte key."""
    if len(key) > TCP_MD5SIG_MAXKEYLEN:
        raise ValueError(f"TCP MD5 key is {len(key)} bytes; Linux allows at most 80")
    if peer.version == 4:
        addr = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 0) + peer.packed
    else:
        addr = (
            struct.pack("=H", socket.AF_INET6)
            + struct.pack("!HI", 0, 0)
            + peer.packed
            + struct.pack("=I", 0)
        )
    return (
        addr.ljust(128, b"\0")
        + struct.pack("=BBHI", 0, 0, len(key), 0)
        + key.ljust(TCP_MD5SIG_MAXKEYLEN, b"\0")
    )

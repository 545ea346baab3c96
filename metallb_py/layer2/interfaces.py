"""Which interfaces get ARP/NDP responders (docs/layer2.md, "Interfaces") and which of them
answer for an IP.

The rules are pure functions over `Interface` values; `list_interfaces()` is the thin netlink
adapter (pyroute2) that produces them. It blocks briefly, so async callers run it in a thread.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from metallb_py.layer2.state import IPAddress

IFF_UP = 0x1
IFF_BROADCAST = 0x2
IFF_NOARP = 0x80

AnyInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclass(frozen=True)
class Interface:
    name: str
    index: int
    mac: bytes
    flags: int
    enslaved: bool
    addresses: tuple[AnyInterface, ...] = ()

    @property
    def link_local(self) -> ipaddress.IPv6Address | None:
        for addr in self.addresses:
            if addr.version == 6 and addr.ip.is_link_local:
                return ipaddress.IPv6Address(int(addr.ip))
        return None

    def _eligible(self) -> bool:
        return bool(self.flags & IFF_UP) and not self.enslaved and not self.flags & IFF_NOARP

    @property
    def wants_arp(self) -> bool:
        """Up, not a bond/bridge member, not NOARP, and BROADCAST."""
        return self._eligible() and bool(self.flags & IFF_BROADCAST) and len(self.mac) == 6

    @property
    def wants_ndp(self) -> bool:
        """Up, not a member, not NOARP, with an IPv6 link-local address."""
        return self._eligible() and self.link_local is not None and len(self.mac) == 6

    def contains(self, ip: IPAddress) -> bool:
        """Some configured (non link-local) subnet on this interface contains `ip`."""
        return any(
            addr.version == ip.version and not addr.ip.is_link_local and ip in addr.network
            for addr in self.addresses
        )


def answering_interfaces(
    ip: IPAddress, candidates: Sequence[Interface], restrict_to_subnet: bool = True
) -> frozenset[str]:
    """Interfaces that answer for `ip`: those whose subnet contains it, if any; else all.

    metallb-py's restriction (docs/layer2.md, "Which interfaces answer for an IP"): upstream
    answers on every qualifying interface
    (`restrict_to_subnet=False`), which leaks replies onto CNI bridges and other segments the IP
    does not belong to. `candidates` are the interfaces with a responder of the IP's family.
    """
    if restrict_to_subnet:
        matching = frozenset(i.name for i in candidates if i.contains(ip))
        if matching:
            return matching
    return frozenset(i.name for i in candidates)


def list_interfaces() -> list[Interface]:
    """All links of the current network namespace with their addresses (netlink dump)."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        links = list(ipr.get_links())
        addrs = list(ipr.get_addr())
    by_index: dict[int, list[AnyInterface]] = {}
    for msg in addrs:
        local = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
        if not local:
            continue
        try:
            iface = ipaddress.ip_interface(f"{local.split('%')[0]}/{msg['prefixlen']}")
        except ValueError:
            continue
        by_index.setdefault(msg["index"], []).append(iface)
    result = []
    for msg in links:
        mac_text = msg.get_attr("IFLA_ADDRESS") or ""
        try:
            mac = bytes.fromhex(mac_text.replace(":", ""))
        except ValueError:
            mac = b""
        result.append(
            Interface(
                name=msg.get_attr("IFLA_IFNAME"),
                index=msg["index"],
                mac=mac,
                flags=msg["flags"],
                enslaved=bool(msg.get_attr("IFLA_MASTER")),
                addresses=tuple(by_index.get(msg["index"], ())),
            )
        )
    return result

"""Building pools and IPs for allocator tests without going through the config parser."""

from __future__ import annotations

import ipaddress

from metallb_py.allocator import Port, Usage
from metallb_py.config.model import AddressPool, IPAddress, IPNetwork, Protocol


def cidrs(*addresses: str) -> tuple[IPNetwork, ...]:
    """CIDRs or `A-B` ranges, expanded the way the config parser does."""
    out: list[IPNetwork] = []
    for text in addresses:
        if "-" in text:
            start, end = (ipaddress.ip_address(p.strip()) for p in text.split("-", 1))
            out.extend(ipaddress.summarize_address_range(start, end))
        else:
            out.append(ipaddress.ip_network(text, strict=False))
    return tuple(out)


def pool(
    name: str,
    *addresses: str,
    avoid_buggy_ips: bool = False,
    auto_assign: bool = True,
    protocol: Protocol = Protocol.LAYER2,
) -> AddressPool:
    return AddressPool(
        name=name,
        protocol=protocol,
        cidrs=cidrs(*addresses),
        addresses=tuple(addresses),
        avoid_buggy_ips=avoid_buggy_ips,
        auto_assign=auto_assign,
    )


def ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


def ips(*texts: str) -> tuple[IPAddress, ...]:
    return tuple(ip(t) for t in texts)


def usage(*ports: str, key: str = "", backend: str = "") -> Usage:
    """`usage("TCP/80", "UDP/53", key="k")`."""
    parsed = []
    for p in ports:
        proto, number = p.split("/")
        parsed.append(Port(proto, int(number)))
    return Usage(tuple(parsed), key, backend)


def strs(addresses: tuple[IPAddress, ...]) -> list[str]:
    return [str(a) for a in addresses]

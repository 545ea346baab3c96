"""IP literals, families and the integer keys the allocator indexes by.

The allocator never walks addresses, it bisects over integers. IPv4 and IPv6 share one key space
by putting IPv6 above 2**128, so every IPv4 key sorts below every IPv6 key and a CIDR is always
one contiguous key interval.
"""

from __future__ import annotations

import enum
import ipaddress
import json
from collections.abc import Iterable, Sequence

from metallb_py.config.model import IPAddress, IPNetwork

V6_BASE = 1 << 128
"""Added to an IPv6 address's integer value to form its key."""


class Family(enum.StrEnum):
    """A Service's IP family as MetalLB names it (`ipfamily` upstream)."""

    IPV4 = "ipv4"
    IPV6 = "ipv6"
    DUAL = "dual"

    @property
    def versions(self) -> tuple[int, ...]:
        if self is Family.DUAL:
            return (4, 6)
        return (4,) if self is Family.IPV4 else (6,)


class FamilyError(ValueError):
    """A list of addresses that has no valid family (wrong count, same family twice, garbage)."""


def parse_ip(text: object) -> IPAddress | None:
    """Parse one IP literal the way Go's `net.ParseIP` accepts it, or None.

    IPv4-mapped IPv6 literals (`::ffff:192.0.2.1`) become the IPv4 address, as Go treats them
    (`To4()` succeeds). Zone suffixes (`%eth0`) are not IP literals for Kubernetes and fail.
    """
    if not isinstance(text, str) or "%" in text:
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def family_of(ips: Sequence[IPAddress]) -> Family:
    """One address gives its family; two of different families give dual; anything else fails."""
    if len(ips) == 1:
        return Family.IPV4 if ips[0].version == 4 else Family.IPV6
    if len(ips) == 2:
        if ips[0].version == ips[1].version:
            raise FamilyError(f"same address family {go_quote_list(str(i) for i in ips)}")
        return Family.DUAL
    raise FamilyError(f"invalid ips length {len(ips)} {go_quote_list(str(i) for i in ips)}")


def family_of_strings(texts: Sequence[str]) -> tuple[Family, tuple[IPAddress, ...]]:
    """Family of a list of IP literals (e.g. `spec.clusterIPs`), with the parsed addresses.

    Unlike upstream (where one malformed address reads as IPv6), a malformed literal is an error.
    """
    parsed: list[IPAddress] = []
    for text in texts:
        ip = parse_ip(text)
        if ip is None:
            raise FamilyError(f"invalid address {go_quote(str(text))} in {go_quote_list(texts)}")
        parsed.append(ip)
    return family_of(parsed), tuple(parsed)


def ip_key(ip: IPAddress) -> int:
    return int(ip) + V6_BASE if ip.version == 6 else int(ip)


def key_ip(key: int) -> IPAddress:
    if key >= V6_BASE:
        return ipaddress.IPv6Address(key - V6_BASE)
    return ipaddress.IPv4Address(key)


def cidr_bounds(net: IPNetwork) -> tuple[int, int]:
    """First and last key of a CIDR (network and broadcast address included)."""
    first = int(net.network_address)
    last = first + net.num_addresses - 1
    if net.version == 6:
        return first + V6_BASE, last + V6_BASE
    return first, last


def is_buggy_key(key: int) -> bool:
    """An IPv4 address ending in .0 or .255: smurf protection on cheap CPE drops traffic to it."""
    return key < V6_BASE and (key & 0xFF) in (0, 0xFF)


def is_buggy(ip: IPAddress) -> bool:
    return ip.version == 4 and is_buggy_key(int(ip))


def go_quote(text: str) -> str:
    """Go's `%q` of a string (close enough: JSON escaping without forcing ASCII)."""
    return json.dumps(text, ensure_ascii=False)


def go_quote_list(items: Iterable[object]) -> str:
    """Go's `%q` of a slice, e.g. `["192.0.2.1" "2001:db8::1"]` as MetalLB's events print it."""
    return "[" + " ".join(go_quote(str(i)) for i in items) + "]"

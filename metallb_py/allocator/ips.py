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
from socket import AF_INET, AF_INET6, inet_ntop, inet_pton

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


def parse_ip_or_none(text: object) -> IPAddress | None:
    """Parse one IP literal the way Go's `net.ParseIP` accepts it, or None: for reading what
    Services carry, where garbage is skipped or reported by the caller.

    The config's `metallb_py.config.addresses.parse_ip` accepts exactly the same literals (a
    test in tests/allocator checks it) but raises with the reason, for user-facing messages;
    this one is four times faster, which matters when 50,000 Services are re-read.
    IPv4-mapped IPv6 literals (`::ffff:192.0.2.1`) become the IPv4 address, as Go treats them
    (`To4()` succeeds). Zone suffixes (`%eth0`) are not IP literals for Kubernetes and fail.
    `inet_pton` accepts exactly what `ipaddress` accepts (no leading zeros in IPv4, no zones)
    at a sixth of its cost.
    """
    if not isinstance(text, str):
        return None
    try:
        if ":" in text:
            ip6 = ipaddress.IPv6Address(inet_pton(AF_INET6, text))
            mapped = ip6.ipv4_mapped
            return ip6 if mapped is None else mapped
        return ipaddress.IPv4Address(inet_pton(AF_INET, text))
    except (OSError, ValueError):
        return None


def ip_text(ip: IPAddress) -> str:
    """`str(ip)` (RFC 5952, as Go prints it), via `inet_ntop` where that agrees: a tenth of
    the cost for IPv6. glibc writes IPv4-compatible addresses as `::a.b.c.d`; those fall back."""
    if ip.version == 4:
        return inet_ntop(AF_INET, ip.packed)
    text = inet_ntop(AF_INET6, ip.packed)
    return str(ip) if "." in text else text


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
        ip = parse_ip_or_none(text)
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
    if text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return json.dumps(text, ensure_ascii=False)


def go_quote_list(items: Iterable[object]) -> str:
    """Go's `%q` of a slice, e.g. `["192.0.2.1" "2001:db8::1"]` as MetalLB's events print it."""
    return "[" + " ".join(go_quote(_text(i)) for i in items) + "]"


def _text(item: object) -> str:
    if isinstance(item, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return ip_text(item)
    return str(item)

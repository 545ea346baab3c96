"""IP literals, pool address entries and BGP communities, with MetalLB's syntax.

Python's `ipaddress` is more liberal than Go's `net.ParseIP`/`net.ParseCIDR` in a few places
(scope IDs `fe80::1%eth0`, netmask prefixes `10.0.0.0/255.255.255.0`, Unicode digits), so
every literal is checked against Go's grammar before `ipaddress` sees it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from metallb_py.config.model import Community, IPAddress, IPNetwork
from metallb_py.config.yamltree import shorten

_IPV4_RE = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_IPV6_CHARS_RE = re.compile(r"[0-9A-Fa-f:.]+")
_PREFIX_RE = re.compile(r"[0-9]+")
_COMMUNITY_RE = re.compile(r"([0-9]+):([0-9]+)")


class AddressError(ValueError):
    """Why a literal is not acceptable; the message is user-facing."""


def parse_ip(text: str) -> IPAddress:
    """A single IP literal as `net.ParseIP` accepts it; IPv4-mapped IPv6 becomes IPv4 (as Go).

    Leading zeros in IPv4 octets are refused: Go 1.16 (which built v0.12.1) read them as
    decimal, inet_aton as octal; an ambiguous address is not worth guessing.
    """
    if _IPV4_RE.fullmatch(text):
        try:
            return ipaddress.IPv4Address(text)
        except ipaddress.AddressValueError as exc:
            raise AddressError(_ipv4_reason(text, exc)) from None
    if ":" in text and _IPV6_CHARS_RE.fullmatch(text):
        try:
            v6 = ipaddress.IPv6Address(text)
        except ipaddress.AddressValueError:
            raise AddressError(f"{shorten(text)} is not a valid IPv6 address") from None
        return v6.ipv4_mapped or v6
    raise AddressError(f"{shorten(text)} is not an IP address (hostnames are not allowed)")


def _ipv4_reason(text: str, exc: Exception) -> str:
    if any(len(o) > 1 and o.startswith("0") for o in text.split(".")):
        return f"{shorten(text)} has leading zeros in an octet (ambiguous: decimal or octal?)"
    return f"{shorten(text)} is not a valid IPv4 address ({exc})"


@dataclass(frozen=True)
class AddressEntry:
    """One `addresses` item expanded to CIDRs."""

    cidrs: tuple[IPNetwork, ...]
    host_bits_set: bool = False
    """A CIDR written with host bits (`10.0.0.5/24`), widened to its network like upstream."""
    is_range: bool = False

    @property
    def version(self) -> int:
        return self.cidrs[0].version

    @property
    def widest_prefix(self) -> int:
        """Shortest prefix length among the CIDRs: the entry's largest block."""
        return min(c.prefixlen for c in self.cidrs)


def _pool_ip(text: str, what: str) -> IPAddress:
    ip = parse_ip(text)
    if ip.version == 4 and ":" in text:
        raise AddressError(
            f"{what} {shorten(text)} is an IPv4-mapped IPv6 address; write it as {ip} instead"
        )
    return ip


def parse_address_entry(text: str) -> AddressEntry:
    """`CIDR` or `START-END` (spaces around the dash allowed), as in MetalLB's ParseCIDR."""
    if "-" not in text:
        return _parse_cidr(text)
    start_text, _, end_text = text.partition("-")
    start_text, end_text = start_text.strip(), end_text.strip()
    problems = []
    start = end = None
    try:
        start = _pool_ip(start_text, "range start")
    except AddressError as exc:
        problems.append(f"invalid start of range: {exc}")
    try:
        end = _pool_ip(end_text, "range end")
    except AddressError as exc:
        problems.append(f"invalid end of range: {exc}")
    if problems:
        raise AddressError("; ".join(problems))
    assert start is not None and end is not None
    if start.version != end.version:
        raise AddressError(
            f"range mixes IPv{start.version} start {start} and IPv{end.version} end {end};"
            " both ends must be the same family (upstream silently ignores such a range)"
        )
    if start > end:  # type: ignore[operator]
        raise AddressError(f"start IP {start} is after the end IP {end}")
    cidrs: tuple[IPNetwork, ...] = tuple(ipaddress.summarize_address_range(start, end))
    return AddressEntry(cidrs=cidrs, is_range=True)


def _parse_cidr(text: str) -> AddressEntry:
    addr_text, slash, prefix_text = text.partition("/")
    if not slash:
        raise AddressError(
            f"{shorten(text)} is neither a CIDR nor a range: a single address needs a prefix length"
            " (/32 for IPv4, /128 for IPv6)"
            if _looks_like_ip(text)
            else f"{shorten(text)} is not a CIDR (ADDRESS/LENGTH) or a range (START-END)"
        )
    ip = _pool_ip(addr_text, "address")
    if not _PREFIX_RE.fullmatch(prefix_text):
        raise AddressError(f"prefix length {shorten(prefix_text)} is not a number")
    bits = 32 if ip.version == 4 else 128
    # Compare digit strings first: Python refuses to convert more than 4300 digits.
    significant = prefix_text.lstrip("0") or "0"
    length = int(significant) if len(significant) <= 3 else bits + 1
    if length > bits:
        shown = prefix_text if len(prefix_text) <= 10 else f"{prefix_text[:10]}..."
        raise AddressError(f"prefix length /{shown} is longer than {bits} bits")
    net = ipaddress.ip_network((ip, length), strict=False)
    return AddressEntry(cidrs=(net,), host_bits_set=net.network_address != ip)


def _looks_like_ip(text: str) -> bool:
    try:
        parse_ip(text)
    except AddressError:
        return False
    return True


def parse_community(text: str) -> Community:
    """`A:B`, two decimal numbers 0-65535, as MetalLB's ParseCommunity."""
    m = _COMMUNITY_RE.fullmatch(text)
    if m is None:
        raise AddressError(
            f"{shorten(text)} is not a community: expected two numbers separated by one colon (A:B)"
        )
    parts = [(name, digits) for name, digits in (("first", m.group(1)), ("second", m.group(2)))]
    # Compare digit strings first: Python refuses to convert more than 4300 digits.
    bad = [
        f"{name} part {digits if len(digits) <= 10 else digits[:10] + '...'} is larger than 65535"
        for name, digits in parts
        if len(digits.lstrip("0")) > 5 or int(digits.lstrip("0") or "0") > 0xFFFF
    ]
    if bad:
        raise AddressError(f"community {shorten(text)}: " + " and ".join(bad))
    high, low = (int(digits.lstrip("0") or "0") for _, digits in parts)
    return Community((high << 16) + low)

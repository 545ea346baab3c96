"""Pools compiled for lookups: owning pool by bisection over sorted CIDR intervals.

Built once per accepted config; immutable afterwards, so a refused config change can simply
drop the candidate set and leave the allocator untouched.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from metallb_py.allocator.ips import cidr_bounds, is_buggy_key
from metallb_py.config.model import AddressPool, IPNetwork

MAX_INT64 = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class CompiledCidr:
    net: IPNetwork
    first: int
    last: int
    version: int


@dataclass(frozen=True, slots=True)
class CompiledPool:
    name: str
    index: int
    """Position in the configuration: the order automatic allocation tries pools in."""
    cidrs: tuple[CompiledCidr, ...]
    avoid_buggy_ips: bool
    auto_assign: bool
    addresses_total: int

    def owns_key(self, key: int) -> bool:
        """Whether this pool may hand out `key` (it contains it and it is not avoided)."""
        if self.avoid_buggy_ips and is_buggy_key(key):
            return False
        return any(c.first <= key <= c.last for c in self.cidrs)


def addresses_total(pool: AddressPool) -> int:
    """`metallb_allocator_addresses_total`: the addresses the pool may hand out (without
    .0/.255 under avoid-buggy-ips), capped at 2^63-1 for huge IPv6 CIDRs."""
    total = 0
    for net in pool.cidrs:
        host_bits = net.max_prefixlen - net.prefixlen
        if host_bits >= 62:
            return MAX_INT64
        size = 1 << host_bits
        if pool.avoid_buggy_ips and net.version == 4:
            if net.prefixlen <= 24:
                size -= 2 * (1 << (24 - net.prefixlen))
            else:
                # Upstream counts a /32's only address twice (capacity -1); count it once.
                first, last = cidr_bounds(net)
                size -= int(is_buggy_key(first)) + int(last != first and is_buggy_key(last))
        total += size
    return total


class InvalidPoolsError(ValueError):
    """Overlapping CIDRs or duplicate names: the parser rejects both, only hand-built configs
    get here, and the allocator turns it into a refusal rather than an exception."""


class PoolSet:
    """The pools of one config, in configuration order, with an interval index."""

    def __init__(self, pools: Sequence[AddressPool] = ()) -> None:
        compiled: list[CompiledPool] = []
        names: set[str] = set()
        for index, pool in enumerate(pools):
            if pool.name in names:
                raise InvalidPoolsError(f"duplicate pool name {pool.name!r}")
            names.add(pool.name)
            cidrs = tuple(CompiledCidr(net, *cidr_bounds(net), net.version) for net in pool.cidrs)
            compiled.append(
                CompiledPool(
                    name=pool.name,
                    index=index,
                    cidrs=cidrs,
                    avoid_buggy_ips=pool.avoid_buggy_ips,
                    auto_assign=pool.auto_assign,
                    addresses_total=addresses_total(pool),
                )
            )
        self.pools: tuple[CompiledPool, ...] = tuple(compiled)
        self.by_name: dict[str, CompiledPool] = {p.name: p for p in compiled}
        spans = sorted((c.first, c.last, p.index) for p in compiled for c in p.cidrs)
        for (_, last, pi), (first, _, qi) in itertools.pairwise(spans):
            if first <= last:
                raise InvalidPoolsError(
                    f"CIDRs of pools {compiled[pi].name!r} and {compiled[qi].name!r} overlap"
                )
        self._starts = [s[0] for s in spans]
        self._ends = [s[1] for s in spans]
        self._owner = [compiled[s[2]] for s in spans]

    def pool_containing(self, key: int) -> CompiledPool | None:
        """The pool with a CIDR containing `key`, ignoring avoid-buggy-ips."""
        i = bisect.bisect_right(self._starts, key) - 1
        if i >= 0 and key <= self._ends[i]:
            return self._owner[i]
        return None

    def owner_of_key(self, key: int) -> CompiledPool | None:
        pool = self.pool_containing(key)
        if pool is None or (pool.avoid_buggy_ips and is_buggy_key(key)):
            return None
        return pool

    def owner_of(self, keys: Sequence[int]) -> CompiledPool | None:
        """The one pool that owns every address of the set, or None."""
        if not keys:
            return None
        pool = self.owner_of_key(keys[0])
        if pool is None:
            return None
        for key in keys[1:]:
            if self.owner_of_key(key) is not pool:
                return None
        return pool

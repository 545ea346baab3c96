"""The allocator (spec section 2): who holds which IPs, and whether a Service may take one.

Pure state machine, no I/O. Every lookup is a dict access or a bisection: used addresses are
kept as maximal runs of integer keys, so "first free address at or after X" is one bisect, and
IPs that a sharing key may pack onto are kept per key in a sorted list. Allocating 50,000
Services from one pool therefore never walks the pool.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from metallb_py.allocator.ips import (
    Family,
    FamilyError,
    family_of,
    go_quote,
    go_quote_list,
    ip_key,
    ip_text,
    is_buggy_key,
    key_ip,
)
from metallb_py.allocator.pools import CompiledCidr, InvalidPoolsError, PoolSet
from metallb_py.config.model import AddressPool, IPAddress

_VERSIONS = {family: family.versions for family in Family}


class AllocatorError(ValueError):
    """An assignment or allocation that cannot be made; the message is user-facing."""


class Port(NamedTuple):
    """One `spec.ports[]` entry; two ports conflict when protocol and number are equal."""

    protocol: str
    port: int

    def __str__(self) -> str:
        return f"{self.protocol}/{self.port}"


class Usage(NamedTuple):
    """How a Service wants to use an IP: the inputs of the sharing check (spec 2.1, 2.3)."""

    ports: tuple[Port, ...] = ()
    sharing_key: str = ""
    """Annotation `metallb.universe.tf/allow-shared-ip`; empty means no sharing."""
    backend_key: str = ""
    """Sorted `k=v` selector pairs for `externalTrafficPolicy: Local`, else empty."""


class Allocation(NamedTuple):
    """What one Service holds. A NamedTuple: immutable and cheap to build 50,000 times."""

    service: str
    pool: str
    ips: tuple[IPAddress, ...]
    """In assignment order: as requested, or the order the pool's CIDRs were visited."""
    ports: tuple[Port, ...]
    sharing_key: str
    backend_key: str
    keys: tuple[int, ...] = ()
    """The allocator's integer keys of `ips` (see `ips.ip_key`)."""
    held: bool = False
    """Kept although no pool of the config owns the IPs (`Allocator.hold`); `pool` is empty."""

    @property
    def usage(self) -> Usage:
        return Usage(self.ports, self.sharing_key, self.backend_key)


class Blocker(NamedTuple):
    """A Service whose current IPs the proposed pools cannot own (spec 2.8).

    `causes` is the raw finding per IP (the pool containing it, if any, and whether
    avoid-buggy-ips rules it out); `reason` turns it into text only when asked, so checking a
    config that 60,000 Services block stays cheap."""

    service: str
    ips: tuple[IPAddress, ...]
    causes: tuple[tuple[str | None, bool], ...]

    @property
    def reason(self) -> str:
        reasons: list[str] = []
        owners: list[str] = []
        for ip, (pool, buggy) in zip(self.ips, self.causes, strict=True):
            if pool is None:
                reasons.append(f"{ip_text(ip)} is not in any pool")
            elif buggy:
                reasons.append(
                    f"{ip_text(ip)} ends in .0 or .255 and pool {go_quote(pool)} sets "
                    "avoid-buggy-ips"
                )
            else:
                owners.append(pool)
        if not reasons and len(set(owners)) > 1:
            reasons.append(
                "the addresses are in different pools " + ", ".join(map(go_quote, owners))
            )
        return "; ".join(reasons) or "no pool owns these addresses"

    def __str__(self) -> str:
        return (
            f"service {go_quote(self.service)} cannot own "
            f"{go_quote_list(self.ips)} under new config: {self.reason}"
        )


@dataclass(frozen=True, slots=True)
class PoolChange:
    accepted: bool
    blockers: tuple[Blocker, ...] = ()
    """Every blocking Service, sorted by key; empty when accepted."""
    reason: str = ""
    """Why the pool set itself is unusable (overlap), independent of any Service."""

    @property
    def message(self) -> str:
        if self.accepted:
            return "accepted"
        if self.reason:
            return f"new config not usable: {self.reason}"
        return "new config not compatible with assigned IPs: " + "; ".join(
            str(b) for b in self.blockers
        )


@dataclass(frozen=True, slots=True)
class PoolStats:
    """The three `metallb_allocator_*` gauges of one pool (spec 2.9)."""

    addresses_total: int
    addresses_in_use: int
    services_allocated: int


class _Runs:
    """Used keys as maximal runs [start, end], so the first free key is one bisect away."""

    __slots__ = ("ends", "starts")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def add(self, key: int) -> None:
        starts, ends = self.starts, self.ends
        i = bisect.bisect_right(starts, key) - 1
        if i >= 0 and ends[i] >= key:
            raise AssertionError(f"key {key} already used")
        join_left = i >= 0 and ends[i] == key - 1
        join_right = i + 1 < len(starts) and starts[i + 1] == key + 1
        if join_left and join_right:
            ends[i] = ends[i + 1]
            del starts[i + 1], ends[i + 1]
        elif join_left:
            ends[i] = key
        elif join_right:
            starts[i + 1] = key
        else:
            starts.insert(i + 1, key)
            ends.insert(i + 1, key)

    def remove(self, key: int) -> None:
        starts, ends = self.starts, self.ends
        i = bisect.bisect_right(starts, key) - 1
        if i < 0 or ends[i] < key:
            raise AssertionError(f"key {key} not used")
        start, end = starts[i], ends[i]
        if start == end:
            del starts[i], ends[i]
        elif key == start:
            starts[i] = key + 1
        elif key == end:
            ends[i] = key - 1
        else:
            ends[i] = key - 1
            starts.insert(i + 1, key + 1)
            ends.insert(i + 1, end)

    def first_free(self, lo: int) -> int:
        i = bisect.bisect_right(self.starts, lo) - 1
        if i >= 0 and self.ends[i] >= lo:
            return self.ends[i] + 1
        return lo


class _IPUse:
    """Who uses one IP. All users have the same keys (the sharing check guarantees it)."""

    __slots__ = ("backend_key", "ports", "sharing_key", "users")

    def __init__(self, sharing_key: str, backend_key: str) -> None:
        self.sharing_key = sharing_key
        self.backend_key = backend_key
        self.users: dict[str, None] = {}
        self.ports: dict[Port, str] = {}


def _keys_conflict(use: _IPUse, sharing_key: str, backend_key: str) -> str | None:
    """Spec 2.3 step 2: why a Service with these keys may not join the IP's users, or None."""
    if use.sharing_key == "":
        return "existing service does not allow sharing"
    if sharing_key == "":
        return "new service does not allow sharing"
    if use.sharing_key != sharing_key:
        return (
            f"sharing key {go_quote(sharing_key)} does not match existing sharing key "
            f"{go_quote(use.sharing_key)}"
        )
    if use.backend_key != backend_key:
        return (
            f"backend key {go_quote(backend_key)} does not match existing backend key "
            f"{go_quote(use.backend_key)}"
        )
    return None


class Allocator:
    """Pools plus per-Service allocations. Methods either succeed completely or raise
    `AllocatorError` without changing anything."""

    def __init__(self, pools: Sequence[AddressPool] = ()) -> None:
        self._pools = PoolSet(pools)
        self._allocs: dict[str, Allocation] = {}
        self._uses: dict[int, _IPUse] = {}
        self._runs = _Runs()
        self._groups: dict[tuple[str, str], list[int]] = {}
        self._pool_ips: dict[str, dict[int, int]] = {}
        self._pool_services: dict[str, int] = {}

    # ---- queries -------------------------------------------------------------------------

    @property
    def pool_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self._pools.pools)

    def allocation(self, service: str) -> Allocation | None:
        return self._allocs.get(service)

    def allocations(self) -> dict[str, Allocation]:
        return dict(self._allocs)

    def pool_of(self, service: str) -> str | None:
        """The pool that owns the Service's IPs (`Pool(key)` upstream), or None (also for a
        held allocation, which no pool owns)."""
        alloc = self._allocs.get(service)
        return alloc.pool if alloc is not None and not alloc.held else None

    def held_allocations(self) -> list[Allocation]:
        """Allocations kept outside every pool, sorted by Service."""
        return sorted((a for a in self._allocs.values() if a.held), key=lambda a: a.service)

    def pool_for(self, ips: Sequence[IPAddress]) -> str | None:
        """Spec 2.2: the pool that owns every one of `ips`, or None."""
        pool = self._pools.owner_of([ip_key(ip) for ip in ips])
        return pool.name if pool is not None else None

    def users_of(self, ip: IPAddress) -> tuple[str, ...]:
        use = self._uses.get(ip_key(ip))
        return tuple(use.users) if use is not None else ()

    def stats(self) -> dict[str, PoolStats]:
        return {
            p.name: PoolStats(
                addresses_total=p.addresses_total,
                addresses_in_use=len(self._pool_ips.get(p.name, ())),
                services_allocated=self._pool_services.get(p.name, 0),
            )
            for p in self._pools.pools
        }

    # ---- assign / allocate / release -----------------------------------------------------

    def assign(self, service: str, ips: Sequence[IPAddress], usage: Usage) -> Allocation:
        """Spec 2.4: give `service` exactly `ips`, replacing what it held before."""
        existing = self._allocs.get(service)
        if (
            existing is not None
            and existing.ips == tuple(ips)
            and existing.ports == usage.ports
            and existing.sharing_key == usage.sharing_key
            and existing.backend_key == usage.backend_key
        ):
            # Re-validating an unchanged allocation (every reconcile does): it is owned and
            # compatible by construction, set_pools keeps it so, and re-recording it would
            # only churn the indexes.
            return existing
        keys = tuple([ip_key(ip) for ip in ips])
        pool = self._pools.owner_of(keys)
        if pool is None:
            raise AllocatorError(f"{go_quote_list(ips)} is not allowed in config")
        return self._take(service, ips, keys, usage, pool.name)

    def hold(self, service: str, ips: Sequence[IPAddress], usage: Usage) -> Allocation:
        """Record IPs a Service already holds although no pool owns them, so they stay
        reserved (the sharing rules still apply) and the config that orphans them is never
        accepted while they are held: the controller keeps what a Service holds instead of
        clearing it (docs/behaviour-differences.md, durable config). A later pool set that owns
        them turns the allocation into an ordinary one."""
        return self._take(service, ips, tuple([ip_key(ip) for ip in ips]), usage, None)

    def _take(
        self,
        service: str,
        ips: Sequence[IPAddress],
        keys: tuple[int, ...],
        usage: Usage,
        pool: str | None,
    ) -> Allocation:
        """Check the set itself and the sharing rules, then record it (owned by `pool`, or
        held when None)."""
        if len(ips) > 2:
            raise AllocatorError(f"more than two addresses {go_quote_list(ips)}")
        if len(ips) == 2 and ips[0].version == ips[1].version:
            raise AllocatorError(f"{go_quote_list(ips)} have the same family")
        for ip, key in zip(ips, keys, strict=True):
            reason = self._sharing_problem(service, ip, key, usage)
            if reason is not None:
                raise AllocatorError(reason)
        alloc = Allocation(
            service=service,
            pool=pool or "",
            ips=tuple(ips),
            ports=usage.ports,
            sharing_key=usage.sharing_key,
            backend_key=usage.backend_key,
            keys=keys,
            held=pool is None,
        )
        self._record(alloc)
        return alloc

    def allocate_from_pool(
        self, service: str, family: Family, pool_name: str, usage: Usage
    ) -> Allocation:
        """Spec 2.5: the lowest usable address of each wanted family, CIDRs in config order."""
        existing = self._allocs.get(service)
        if existing is not None:
            return self._reassign(existing, family, usage)
        pool = self._pools.by_name.get(pool_name)
        if pool is None:
            raise AllocatorError(f"unknown pool {go_quote(pool_name)}")
        wanted = list(_VERSIONS[family])
        keys: list[int] = []
        for cidr in pool.cidrs:
            if cidr.version not in wanted:
                continue
            key = self._first_fit(cidr, pool.avoid_buggy_ips, service, usage)
            if key is not None:
                keys.append(key)
                wanted.remove(cidr.version)
                if not wanted:
                    break
        if wanted:
            raise AllocatorError(
                f"no available IPs in pool {go_quote(pool_name)} for {family} IPFamily"
            )
        # _first_fit only returns addresses the pool owns and the sharing rules allow, one per
        # family, so the checks of `assign` would only repeat themselves.
        alloc = Allocation(
            service,
            pool.name,
            (key_ip(keys[0]),) if len(keys) == 1 else tuple([key_ip(k) for k in keys]),
            usage.ports,
            usage.sharing_key,
            usage.backend_key,
            tuple(keys),
        )
        self._record(alloc)
        return alloc

    def allocate(self, service: str, family: Family, usage: Usage) -> Allocation:
        """Spec 2.6: the first auto-assign pool, in configuration order, that can serve."""
        existing = self._allocs.get(service)
        if existing is not None:
            return self.assign(service, existing.ips, usage)
        for pool in self._pools.pools:
            if not pool.auto_assign:
                continue
            try:
                return self.allocate_from_pool(service, family, pool.name, usage)
            except AllocatorError:
                continue
        raise AllocatorError("no available IPs")

    def release(self, service: str) -> bool:
        """Spec 2.7. Returns whether the Service held anything."""
        alloc = self._allocs.pop(service, None)
        if alloc is None:
            return False
        for key in alloc.keys:
            use = self._uses[key]
            del use.users[service]
            for port in alloc.ports:
                if use.ports.get(port) == service:
                    del use.ports[port]
            if not use.users:
                del self._uses[key]
                self._runs.remove(key)
                if use.sharing_key:
                    gkey = (use.sharing_key, use.backend_key)
                    group = self._groups[gkey]
                    del group[bisect.bisect_left(group, key)]
                    if not group:
                        del self._groups[gkey]
        self._uncount(alloc)
        return True

    # ---- config change -------------------------------------------------------------------

    def check_pools(self, pools: Sequence[AddressPool]) -> PoolChange:
        """Spec 2.8 precondition, without changing anything: every Service that would block."""
        change, _, _ = self._plan_pools(pools)
        return change

    def set_pools(self, pools: Sequence[AddressPool]) -> PoolChange:
        """Spec 2.8: switch to `pools` if every current allocation stays owned; else nothing
        changes at all. Allocations whose owning pool was renamed are re-homed, and so are held
        ones (every held allocation must be owned for the change to be accepted)."""
        change, new, rehome = self._plan_pools(pools)
        if not change.accepted or new is None:
            return change
        self._pools = new
        for service, pool_name in rehome:
            self._rehome(self._allocs[service], pool_name)
        return change

    def _plan_pools(
        self, pools: Sequence[AddressPool]
    ) -> tuple[PoolChange, PoolSet | None, list[tuple[str, str]]]:
        try:
            new = PoolSet(pools)
        except InvalidPoolsError as exc:
            return PoolChange(accepted=False, reason=str(exc)), None, []
        blockers: list[Blocker] = []
        rehome: list[tuple[str, str]] = []
        for service, alloc in self._allocs.items():
            owner = new.owner_of(alloc.keys)
            if owner is None:
                blockers.append(Blocker(service, alloc.ips, _causes(new, alloc.keys)))
            elif owner.name != alloc.pool:
                rehome.append((service, owner.name))
        if blockers:
            blockers.sort(key=lambda b: b.service)
            return PoolChange(accepted=False, blockers=tuple(blockers)), None, []
        return PoolChange(accepted=True), new, rehome

    # ---- introspection for tests and debugging -------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Canonical, JSON-able dump of the whole state, derived indexes included, so tests
        can prove that a refused change left everything exactly as it was."""
        return {
            "pools": [
                {
                    "name": p.name,
                    "cidrs": [str(c.net) for c in p.cidrs],
                    "avoid_buggy_ips": p.avoid_buggy_ips,
                    "auto_assign": p.auto_assign,
                }
                for p in self._pools.pools
            ],
            "allocations": {
                s: {
                    "pool": a.pool,
                    "held": a.held,
                    "ips": [str(ip) for ip in a.ips],
                    "ports": [str(p) for p in a.ports],
                    "sharing_key": a.sharing_key,
                    "backend_key": a.backend_key,
                }
                for s, a in sorted(self._allocs.items())
            },
            "uses": {
                str(key_ip(k)): {
                    "users": list(u.users),
                    "ports": {str(p): s for p, s in sorted(u.ports.items())},
                    "sharing_key": u.sharing_key,
                    "backend_key": u.backend_key,
                }
                for k, u in sorted(self._uses.items())
            },
            "runs": [
                [str(key_ip(s)), str(key_ip(e))]
                for s, e in zip(self._runs.starts, self._runs.ends, strict=True)
            ],
            "groups": {
                f"{s}|{b}": [str(key_ip(k)) for k in keys]
                for (s, b), keys in sorted(self._groups.items())
            },
            "pool_ips": {
                p: {str(key_ip(k)): n for k, n in sorted(ips.items())}
                for p, ips in sorted(self._pool_ips.items())
            },
            "pool_services": dict(sorted(self._pool_services.items())),
        }

    def verify(self) -> None:
        """Recompute every derived index from the allocations and compare (tests only)."""
        fresh = Allocator()
        fresh._pools = self._pools
        for alloc in self._allocs.values():
            fresh._record(alloc)
        mine, theirs = self.snapshot(), fresh.snapshot()
        for part in ("uses", "runs", "groups", "pool_ips", "pool_services"):
            if part == "uses":
                for u in (*mine[part].values(), *theirs[part].values()):
                    u["users"] = sorted(u["users"])
            if mine[part] != theirs[part]:
                raise AssertionError(f"allocator index {part!r} is inconsistent")

    # ---- internals -----------------------------------------------------------------------

    def _reassign(self, existing: Allocation, family: Family, usage: Usage) -> Allocation:
        try:
            held = family_of(existing.ips)
        except FamilyError as exc:
            raise AllocatorError(str(exc)) from None
        if held != family:
            raise AllocatorError(
                f"IP for wrong family assigned alloc {held} service family {family}"
            )
        return self.assign(existing.service, existing.ips, usage)

    def _sharing_problem(self, service: str, ip: IPAddress, key: int, usage: Usage) -> str | None:
        """Spec 2.3 for one IP: None when `service` may use it, else the reason."""
        use = self._uses.get(key)
        if use is None:
            return None
        conflict = _keys_conflict(use, usage.sharing_key, usage.backend_key)
        if conflict is not None:
            others = [u for u in use.users if u != service]
            if others:
                return f"address {ip} is already in use by {','.join(others)}: {conflict}"
        for port in usage.ports:
            owner = use.ports.get(port)
            if owner is not None and owner != service:
                return f"port {port} is already in use on {go_quote(str(ip))} by {owner}"
        return None

    def _first_fit(
        self, cidr: CompiledCidr, avoid_buggy: bool, service: str, usage: Usage
    ) -> int | None:
        """Lowest key of `cidr` that `service` may use: the first unused address, or a lower
        address already used by compatible sharers with no port in common."""
        free: int | None = None
        candidate = cidr.first
        while candidate <= cidr.last:
            candidate = self._runs.first_free(candidate)
            if candidate > cidr.last:
                break
            if avoid_buggy and is_buggy_key(candidate):
                candidate += 1
                continue
            free = candidate
            break
        if not usage.sharing_key:
            return free
        group = self._groups.get((usage.sharing_key, usage.backend_key))
        if not group:
            return free
        limit = cidr.last if free is None else free - 1
        i = bisect.bisect_left(group, cidr.first)
        wanted = set(usage.ports)
        while i < len(group) and group[i] <= limit:
            key = group[i]
            i += 1
            if avoid_buggy and is_buggy_key(key):
                continue
            use = self._uses[key]
            if not any(use.ports.get(p, service) != service for p in wanted):
                return key
        return free

    def _rehome(self, alloc: Allocation, pool_name: str) -> None:
        """Move an allocation to the pool that now owns its IPs (a renamed pool, or a held
        allocation a pool now owns); the IP indexes do not depend on pool names, only the
        per-pool counters move."""
        self._uncount(alloc)
        moved = alloc._replace(pool=pool_name, held=False)
        self._allocs[alloc.service] = moved
        self._count(moved)

    def _count(self, alloc: Allocation) -> None:
        """Add the allocation to its pool's counters (IPs in use, Services)."""
        if alloc.held:
            return
        pool_ips = self._pool_ips.setdefault(alloc.pool, {})
        for key in alloc.keys:
            pool_ips[key] = pool_ips.get(key, 0) + 1
        self._pool_services[alloc.pool] = self._pool_services.get(alloc.pool, 0) + 1

    def _uncount(self, alloc: Allocation) -> None:
        """Take the allocation out of its pool's counters; empty entries go, so the counters'
        sizes are the pool statistics."""
        if alloc.held:
            return
        pool_ips = self._pool_ips[alloc.pool]
        for key in alloc.keys:
            count = pool_ips[key] - 1
            if count:
                pool_ips[key] = count
            else:
                del pool_ips[key]
        if not pool_ips:
            del self._pool_ips[alloc.pool]
        remaining = self._pool_services[alloc.pool] - 1
        if remaining:
            self._pool_services[alloc.pool] = remaining
        else:
            del self._pool_services[alloc.pool]

    def _record(self, alloc: Allocation) -> None:
        """Unconditionally make `alloc` the Service's allocation; callers checked it."""
        service = alloc.service
        if service in self._allocs:
            self.release(service)
        self._allocs[service] = alloc
        for key in alloc.keys:
            use = self._uses.get(key)
            if use is None:
                use = _IPUse(alloc.sharing_key, alloc.backend_key)
                self._uses[key] = use
                self._runs.add(key)
                if alloc.sharing_key:
                    group = self._groups.setdefault((alloc.sharing_key, alloc.backend_key), [])
                    bisect.insort(group, key)
            use.users[service] = None
            for port in alloc.ports:
                use.ports[port] = service
        self._count(alloc)


_ONE_CAUSE: dict[tuple[str | None, bool], tuple[tuple[str | None, bool], ...]] = {}
"""Interned single-IP causes: a refusal naming 60,000 Services allocates 60,000 fewer tuples."""


def _causes(pools: PoolSet, keys: tuple[int, ...]) -> tuple[tuple[str | None, bool], ...]:
    if len(keys) == 1:
        pool = pools.pool_containing(keys[0])
        cause = (
            (None, False)
            if pool is None
            else (pool.name, pool.avoid_buggy_ips and is_buggy_key(keys[0]))
        )
        interned = _ONE_CAUSE.get(cause)
        if interned is None:
            interned = _ONE_CAUSE[cause] = (cause,)
        return interned
    out: list[tuple[str | None, bool]] = []
    for key in keys:
        pool = pools.pool_containing(key)
        if pool is None:
            out.append((None, False))
        else:
            out.append((pool.name, pool.avoid_buggy_ips and is_buggy_key(key)))
    return tuple(out)

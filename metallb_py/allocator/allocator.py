"""The allocator: who holds which IPs, and whether a Service may take one.

The rules, as MetalLB v0.12 has them (our deviations are in docs/behaviour-differences.md,
"Allocator and controller"):
* a pool owns an address when one of its CIDRs contains it, unless the pool avoids buggy IPs
  and the address ends in .0 or .255; a set of addresses is owned only when one pool owns all;
* two Services may use one IP only when both carry the same non-empty sharing key and the same
  backend key (the selector of `externalTrafficPolicy: Local` Services), and no port
  (protocol and number) is used by both;
* `assign` gives a Service exactly the IPs it asks for; `allocate_from_pool` picks, per wanted
  family, the lowest usable address, CIDRs in configuration order; `allocate` tries the
  auto-assign pools in configuration order;
* a new pool set is taken only if every current allocation stays owned, else nothing changes.

Pure state machine, no I/O. Every lookup is a dict access or a bisection: used addresses are
kept as maximal runs of integer keys, so "first free address at or after X" is one bisect, and
IPs that a sharing key may pack onto are kept per key in a sorted list. Allocating 50,000
Services from one pool therefore never walks the pool.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

from metallb_py.allocator.allocation import (
    Allocation,
    AllocatorError,
    Blocker,
    PoolChange,
    PoolStats,
    Usage,
)
from metallb_py.allocator.index import IPUse, UsedRuns, keys_conflict
from metallb_py.allocator.ips import (
    Family,
    FamilyError,
    family_of,
    go_quote,
    go_quote_list,
    ip_key,
    is_buggy_key,
    key_ip,
)
from metallb_py.allocator.pools import CompiledCidr, InvalidPoolsError, PoolSet
from metallb_py.config.model import AddressPool, IPAddress

_VERSIONS = {family: family.versions for family in Family}


class Allocator:
    """Pools plus per-Service allocations. Methods either succeed completely or raise
    `AllocatorError` without changing anything."""

    def __init__(self, pools: Sequence[AddressPool] = ()) -> None:
        self._pools = PoolSet(pools)
        self._allocs: dict[str, Allocation] = {}
        self._uses: dict[int, IPUse] = {}
        self._runs = UsedRuns()
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
        """The pool that owns every one of `ips`, or None."""
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
        """Give `service` exactly `ips`, replacing what it held before."""
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
        """The lowest usable address of each wanted family, CIDRs in config order; a Service
        that already holds IPs keeps them (if their family is the one wanted)."""
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
        """The first auto-assign pool, in configuration order, that can serve; a Service that
        already holds IPs keeps them."""
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
        """Forget what the Service holds (its IPs, ports and, with the last user of an IP, the
        IP's sharing keys). Returns whether the Service held anything."""
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
        """What `set_pools` would answer, without changing anything: every Service that would
        block."""
        change, _, _ = self._plan_pools(pools)
        return change

    def set_pools(self, pools: Sequence[AddressPool]) -> PoolChange:
        """Switch to `pools` if every current allocation stays owned; else nothing
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
        """The sharing rules for one IP: None when `service` may use it, else the reason."""
        use = self._uses.get(key)
        if use is None:
            return None
        conflict = keys_conflict(use, usage.sharing_key, usage.backend_key)
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
                use = IPUse(alloc.sharing_key, alloc.backend_key)
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

"""The indexed allocator against a brute-force reference that walks every address.

The fast path (runs of used keys, per-key sorted share lists) must pick exactly the address the
literal reading of the rule (`allocator/allocator.py`, module docstring) picks: CIDRs in configuration order, addresses ascending, the first
one that is unused or usable by a compatible sharer, skipping .0/.255 under avoid-buggy-ips.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from metallb_py.allocator import Allocation, Allocator, AllocatorError, Family, Usage
from metallb_py.config.model import AddressPool, IPAddress
from tests.allocator.helpers import pool, usage

BLOCKS = ("192.0.2.0/29", "192.0.2.252/30", "198.51.100.255/32", "2001:db8::/126", "203.0.113.8/31")
SERVICES = tuple(f"ns/s{i}" for i in range(10))
USAGES = (
    usage("TCP/80"),
    usage("TCP/80", key="k"),
    usage("TCP/81", key="k"),
    usage("UDP/80", key="k"),
    usage("TCP/80", "TCP/81", key="k"),
    usage("TCP/82", key="k", backend="app=x"),
    usage("TCP/83", key="j"),
)
FAMILIES = (Family.IPV4, Family.IPV6, Family.DUAL)


def reference_pick(
    pools: tuple[AddressPool, ...],
    allocations: dict[str, Allocation],
    family: Family,
    pool_name: str,
    use: Usage,
) -> list[IPAddress] | None:
    target = next((p for p in pools if p.name == pool_name), None)
    if target is None:
        return None
    wanted = list(family.versions)
    picked: list[IPAddress] = []
    for net in target.cidrs:
        if net.version not in wanted:
            continue
        for address in net:
            if (
                target.avoid_buggy_ips
                and net.version == 4
                and str(address).split(".")[-1]
                in (
                    "0",
                    "255",
                )
            ):
                continue
            users = [a for a in allocations.values() if address in a.ips]
            if users:
                keys = {(u.sharing_key, u.backend_key) for u in users}
                if keys != {(use.sharing_key, use.backend_key)} or not use.sharing_key:
                    continue
                if {p for u in users for p in u.ports} & set(use.ports):
                    continue
            picked.append(address)
            wanted.remove(net.version)
            break
    return None if wanted else picked


@st.composite
def pool_sets(draw: st.DrawFn) -> tuple[AddressPool, ...]:
    blocks = draw(st.permutations(BLOCKS))
    cut = sorted(draw(st.lists(st.integers(0, len(blocks)), min_size=2, max_size=2)))
    parts = [blocks[: cut[0]], blocks[cut[0] : cut[1]], blocks[cut[1] :]]
    return tuple(
        pool(
            f"p{i}",
            *part,
            avoid_buggy_ips=draw(st.booleans()),
            auto_assign=draw(st.booleans()),
        )
        for i, part in enumerate(parts)
        if part
    )


class AllocatorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.pools: tuple[AddressPool, ...] = (pool("p0", *BLOCKS),)
        self.alloc = Allocator(self.pools)

    @rule(
        service=st.sampled_from(SERVICES),
        family=st.sampled_from(FAMILIES),
        pool_name=st.sampled_from(("p0", "p1", "p2")),
        use=st.sampled_from(USAGES),
    )
    def allocate_from_pool(self, service: str, family: Family, pool_name: str, use: Usage) -> None:
        self.alloc.release(service)
        expected = reference_pick(self.pools, self.alloc.allocations(), family, pool_name, use)
        try:
            got = list(self.alloc.allocate_from_pool(service, family, pool_name, use).ips)
        except AllocatorError:
            got = None
        assert got == expected

    @rule(
        service=st.sampled_from(SERVICES),
        family=st.sampled_from(FAMILIES),
        use=st.sampled_from(USAGES),
    )
    def allocate_any(self, service: str, family: Family, use: Usage) -> None:
        self.alloc.release(service)
        expected = None
        for p in self.pools:
            if p.auto_assign:
                expected = reference_pick(self.pools, self.alloc.allocations(), family, p.name, use)
                if expected is not None:
                    break
        try:
            got = list(self.alloc.allocate(service, family, use).ips)
        except AllocatorError:
            got = None
        assert got == expected

    @rule(service=st.sampled_from(SERVICES))
    def release(self, service: str) -> None:
        self.alloc.release(service)

    @precondition(lambda self: bool(self.alloc.allocations()))
    @rule(data=st.data(), use=st.sampled_from(USAGES))
    def assign_someone_elses_ip(self, data: st.DataObject, use: Usage) -> None:
        holder = data.draw(st.sampled_from(sorted(self.alloc.allocations())))
        service = data.draw(st.sampled_from(SERVICES))
        target = self.alloc.allocation(holder).ips  # type: ignore[union-attr]
        before = json.dumps(self.alloc.snapshot())
        others = [
            a
            for s, a in self.alloc.allocations().items()
            if s != service and set(a.ips) & set(target)
        ]
        ok = all(
            (a.sharing_key, a.backend_key) == (use.sharing_key, use.backend_key)
            and use.sharing_key
            and not set(a.ports) & set(use.ports)
            for a in others
        )
        try:
            self.alloc.assign(service, target, use)
        except AllocatorError:
            assert not ok
            assert json.dumps(self.alloc.snapshot()) == before
        else:
            assert ok

    @rule(pools=pool_sets())
    def set_pools(self, pools: tuple[AddressPool, ...]) -> None:
        before = json.dumps(self.alloc.snapshot())
        held = {s: a.ips for s, a in self.alloc.allocations().items()}
        change = self.alloc.set_pools(pools)
        probe = Allocator(pools)
        blocking = {s for s, ips in held.items() if probe.pool_for(ips) is None}
        assert {b.service for b in change.blockers} == blocking
        assert change.accepted == (not blocking)
        if change.accepted:
            self.pools = pools
            assert {s: a.ips for s, a in self.alloc.allocations().items()} == held
        else:
            assert json.dumps(self.alloc.snapshot()) == before

    @invariant()
    def indexes_agree(self) -> None:
        self.alloc.verify()


AllocatorMachine.TestCase.settings = settings(
    max_examples=120,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAllocatorProperties = AllocatorMachine.TestCase

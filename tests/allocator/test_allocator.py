"""Spec section 2, rule by rule, with the exact addresses MetalLB v0.12 hands out."""

from __future__ import annotations

import json

import pytest

from metallb_py.allocator import (
    MAX_INT64,
    Allocator,
    AllocatorError,
    Family,
    PoolStats,
    addresses_total,
)
from tests.allocator.helpers import ip, ips, pool, strs, usage

V4, V6, DUAL = Family.IPV4, Family.IPV6, Family.DUAL
WEB = usage("TCP/80")


def snapshot(a: Allocator) -> str:
    return json.dumps(a.snapshot(), sort_keys=True)


# ---- 2.5 allocate from a named pool ------------------------------------------------------


def test_ascending_walk_includes_network_address() -> None:
    a = Allocator([pool("p", "192.0.2.0/24")])
    got = [strs(a.allocate_from_pool(f"ns/s{i}", V4, "p", WEB).ips) for i in range(3)]
    assert got == [["192.0.2.0"], ["192.0.2.1"], ["192.0.2.2"]]
    a.verify()


def test_avoid_buggy_ips_skips_dot0_and_dot255() -> None:
    a = Allocator([pool("p", "192.0.2.0/23", avoid_buggy_ips=True)])
    first = a.allocate_from_pool("ns/s0", V4, "p", WEB)
    assert strs(first.ips) == ["192.0.2.1"]
    for i in range(1, 254):
        a.allocate_from_pool(f"ns/s{i}", V4, "p", WEB)
    assert strs(a.allocation("ns/s253").ips) == ["192.0.2.254"]  # type: ignore[union-attr]
    # .255 of the first /24 and .0 of the second are skipped.
    assert strs(a.allocate_from_pool("ns/next", V4, "p", WEB).ips) == ["192.0.3.1"]
    a.verify()


def test_cidrs_are_walked_in_configuration_order() -> None:
    a = Allocator([pool("p", "198.51.100.8/30", "192.0.2.0/30")])
    got = [str(a.allocate_from_pool(f"ns/s{i}", V4, "p", WEB).ips[0]) for i in range(6)]
    assert got == [
        "198.51.100.8",
        "198.51.100.9",
        "198.51.100.10",
        "198.51.100.11",
        "192.0.2.0",
        "192.0.2.1",
    ]


def test_range_then_exhausted() -> None:
    a = Allocator([pool("p", "192.0.2.10-192.0.2.12")])
    got = [str(a.allocate_from_pool(f"ns/s{i}", V4, "p", WEB).ips[0]) for i in range(3)]
    assert got == ["192.0.2.10", "192.0.2.11", "192.0.2.12"]
    with pytest.raises(AllocatorError, match='no available IPs in pool "p" for ipv4 IPFamily'):
        a.allocate_from_pool("ns/full", V4, "p", WEB)
    assert a.allocation("ns/full") is None


def test_unknown_pool() -> None:
    a = Allocator([pool("p", "192.0.2.0/24")])
    with pytest.raises(AllocatorError, match='unknown pool "nope"'):
        a.allocate_from_pool("ns/s", V4, "nope", WEB)


def test_families_and_dual_stack_order() -> None:
    v4_first = pool("p", "192.0.2.0/30", "2001:db8::/126")
    v6_first = pool("q", "2001:db8:1::/126", "198.51.100.0/30")
    a = Allocator([v4_first, v6_first])
    assert strs(a.allocate_from_pool("ns/four", V4, "p", WEB).ips) == ["192.0.2.0"]
    assert strs(a.allocate_from_pool("ns/six", V6, "p", WEB).ips) == ["2001:db8::"]
    assert strs(a.allocate_from_pool("ns/dual", DUAL, "p", WEB).ips) == [
        "192.0.2.1",
        "2001:db8::1",
    ]
    assert strs(a.allocate_from_pool("ns/dual2", DUAL, "q", WEB).ips) == [
        "2001:db8:1::",
        "198.51.100.0",
    ]
    a.verify()


def test_dual_stack_needs_both_families() -> None:
    a = Allocator([pool("p", "192.0.2.0/30")])
    with pytest.raises(AllocatorError, match='no available IPs in pool "p" for dual IPFamily'):
        a.allocate_from_pool("ns/s", DUAL, "p", WEB)
    with pytest.raises(AllocatorError, match="for ipv6 IPFamily"):
        a.allocate_from_pool("ns/s", V6, "p", WEB)
    assert a.snapshot()["uses"] == {}


def test_dual_stack_fails_whole_when_one_family_is_exhausted() -> None:
    a = Allocator([pool("p", "192.0.2.0/32", "2001:db8::/126")])
    a.allocate_from_pool("ns/a", V4, "p", WEB)
    with pytest.raises(AllocatorError, match="for dual IPFamily"):
        a.allocate_from_pool("ns/b", DUAL, "p", WEB)
    assert a.allocation("ns/b") is None
    assert a.users_of(ip("2001:db8::")) == ()


def test_already_allocated_reassigns_same_ips_even_from_another_pool() -> None:
    a = Allocator([pool("p", "192.0.2.0/30"), pool("q", "198.51.100.0/30")])
    a.allocate_from_pool("ns/s", V4, "p", WEB)
    again = a.allocate_from_pool("ns/s", V4, "q", usage("TCP/443"))
    assert strs(again.ips) == ["192.0.2.0"]
    assert again.pool == "p"
    assert strs(again.ips) == ["192.0.2.0"] and [str(p) for p in again.ports] == ["TCP/443"]
    with pytest.raises(AllocatorError, match="wrong family"):
        a.allocate_from_pool("ns/s", V6, "q", WEB)


# ---- 2.3 sharing -----------------------------------------------------------------------


def test_compatible_services_share_an_ip() -> None:
    a = Allocator([pool("p", "192.0.2.0/24")])
    first = a.allocate_from_pool("ns/a", V4, "p", usage("TCP/80", key="k"))
    second = a.allocate_from_pool("ns/b", V4, "p", usage("UDP/80", key="k"))
    assert strs(first.ips) == strs(second.ips) == ["192.0.2.0"]
    assert a.users_of(ip("192.0.2.0")) == ("ns/a", "ns/b")
    a.verify()


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (usage("TCP/80", key="k"), usage("TCP/80", key="k")),  # port clash
        (usage("TCP/80", key="k"), usage("TCP/81", key="other")),  # different key
        (usage("TCP/80"), usage("TCP/81", key="k")),  # existing does not share
        (usage("TCP/80", key="k"), usage("TCP/81")),  # new does not share
        (usage("TCP/80", key="k", backend="app=a"), usage("TCP/81", key="k")),  # Local+Cluster
        (
            usage("TCP/80", key="k", backend="app=a"),
            usage("TCP/81", key="k", backend="app=b"),
        ),  # Local, different selectors
    ],
)
def test_incompatible_services_get_different_ips(first, second) -> None:
    a = Allocator([pool("p", "192.0.2.0/24")])
    assert strs(a.allocate_from_pool("ns/a", V4, "p", first).ips) == ["192.0.2.0"]
    assert strs(a.allocate_from_pool("ns/b", V4, "p", second).ips) == ["192.0.2.1"]
    with pytest.raises(AllocatorError):
        a.assign("ns/c", ips("192.0.2.0"), second)


def test_local_services_with_identical_selectors_share() -> None:
    a = Allocator([pool("p", "192.0.2.0/24")])
    a.allocate_from_pool("ns/a", V4, "p", usage("TCP/80", key="k", backend="app=x,tier=web"))
    b = a.allocate_from_pool("ns/b", V4, "p", usage("TCP/81", key="k", backend="app=x,tier=web"))
    assert strs(b.ips) == ["192.0.2.0"]


def test_sharers_pack_onto_lowest_shareable_ip() -> None:
    a = Allocator([pool("p", "192.0.2.0/24")])
    a.assign("ns/high", ips("192.0.2.7"), usage("TCP/80", key="k"))
    a.allocate_from_pool("ns/lone", V4, "p", WEB)  # .0, not shareable
    a.allocate_from_pool("ns/low", V4, "p", usage("TCP/80", key="k"))  # .1
    # TCP/81 fits on .1 (lower than .7 and lower than the first free .2).
    got = a.allocate_from_pool("ns/new", V4, "p", usage("TCP/81", key="k"))
    assert strs(got.ips) == ["192.0.2.1"]
    # TCP/80 clashes on .1 and .7: first free address.
    got = a.allocate_from_pool("ns/clash", V4, "p", usage("TCP/80", key="k"))
    assert strs(got.ips) == ["192.0.2.2"]
    a.verify()


def test_shared_ip_is_used_before_a_lower_free_one_only_if_lower() -> None:
    a = Allocator([pool("p", "192.0.2.0/24")])
    a.assign("ns/x", ips("192.0.2.5"), usage("TCP/80", key="k"))
    got = a.allocate_from_pool("ns/y", V4, "p", usage("TCP/81", key="k"))
    assert strs(got.ips) == ["192.0.2.0"]  # .0 is free and lower than the shareable .5


def test_only_user_may_change_its_sharing_key() -> None:
    a = Allocator([pool("p", "192.0.2.0/24")])
    a.assign("ns/a", ips("192.0.2.1"), usage("TCP/80", key="k"))
    a.assign("ns/a", ips("192.0.2.1"), usage("TCP/80", key="changed"))
    assert a.allocation("ns/a").sharing_key == "changed"  # type: ignore[union-attr]
    a.assign("ns/b", ips("192.0.2.1"), usage("TCP/81", key="changed"))
    with pytest.raises(AllocatorError, match="already in use by ns/b"):
        a.assign("ns/a", ips("192.0.2.1"), usage("TCP/80", key="again"))
    assert a.allocation("ns/a").sharing_key == "changed"  # type: ignore[union-attr]
    a.verify()


def test_port_clash_message() -> None:
    a = Allocator([pool("p", "192.0.2.0/24")])
    a.assign("ns/a", ips("192.0.2.1"), usage("TCP/80", key="k"))
    with pytest.raises(AllocatorError, match=r'port TCP/80 is already in use on "192\.0\.2\.1"'):
        a.assign("ns/b", ips("192.0.2.1"), usage("UDP/53", "TCP/80", key="k"))
    # Same number, other protocol: fine.
    a.assign("ns/b", ips("192.0.2.1"), usage("UDP/80", key="k"))


def test_sharing_messages() -> None:
    a = Allocator([pool("p", "192.0.2.0/24")])
    a.assign("ns/a", ips("192.0.2.1"), usage("TCP/80"))
    with pytest.raises(AllocatorError, match="existing service does not allow sharing"):
        a.assign("ns/b", ips("192.0.2.1"), usage("TCP/81", key="k"))
    a.assign("ns/c", ips("192.0.2.2"), usage("TCP/80", key="k"))
    with pytest.raises(AllocatorError, match="new service does not allow sharing"):
        a.assign("ns/b", ips("192.0.2.2"), usage("TCP/81"))
    with pytest.raises(AllocatorError, match=r'sharing key "j" does not match.*"k"'):
        a.assign("ns/b", ips("192.0.2.2"), usage("TCP/81", key="j"))
    with pytest.raises(AllocatorError, match='backend key "app=x" does not match'):
        a.assign("ns/b", ips("192.0.2.2"), usage("TCP/81", key="k", backend="app=x"))


# ---- 2.4 assign --------------------------------------------------------------------------


def test_assign_requires_an_owning_pool() -> None:
    a = Allocator([pool("p", "192.0.2.0/24")])
    with pytest.raises(AllocatorError, match=r'\["198.51.100.1"\] is not allowed in config'):
        a.assign("ns/s", ips("198.51.100.1"), WEB)


def test_avoid_buggy_blocks_explicit_dot0_and_dot255() -> None:
    a = Allocator([pool("p", "192.0.2.0/24", avoid_buggy_ips=True)])
    for bad in ("192.0.2.0", "192.0.2.255"):
        with pytest.raises(AllocatorError, match="is not allowed in config"):
            a.assign("ns/s", ips(bad), WEB)
    assert strs(a.assign("ns/s", ips("192.0.2.254"), WEB).ips) == ["192.0.2.254"]


def test_avoid_buggy_does_not_touch_ipv6() -> None:
    a = Allocator([pool("p", "2001:db8::/120", avoid_buggy_ips=True)])
    assert strs(a.allocate_from_pool("ns/s", V6, "p", WEB).ips) == ["2001:db8::"]
    assert strs(a.assign("ns/t", ips("2001:db8::ff"), WEB).ips) == ["2001:db8::ff"]


def test_auto_assign_false_blocks_only_automatic_picks() -> None:
    manual = pool("manual", "192.0.2.0/24", auto_assign=False)
    a = Allocator([manual, pool("auto", "198.51.100.0/24")])
    assert strs(a.allocate("ns/any", V4, WEB).ips) == ["198.51.100.0"]
    assert strs(a.assign("ns/explicit", ips("192.0.2.9"), WEB).ips) == ["192.0.2.9"]
    assert a.pool_of("ns/explicit") == "manual"
    # A named pool is an explicit request too (upstream does not check auto-assign there).
    assert strs(a.allocate_from_pool("ns/named", V4, "manual", WEB).ips) == ["192.0.2.0"]


def test_assign_family_rules() -> None:
    a = Allocator([pool("p", "192.0.2.0/24", "2001:db8::/64")])
    with pytest.raises(AllocatorError, match="more than two addresses"):
        a.assign("ns/s", ips("192.0.2.1", "2001:db8::1", "192.0.2.2"), WEB)
    with pytest.raises(AllocatorError, match="have the same family"):
        a.assign("ns/s", ips("192.0.2.1", "192.0.2.2"), WEB)
    both = a.assign("ns/s", ips("2001:db8::1", "192.0.2.1"), WEB)
    assert strs(both.ips) == ["2001:db8::1", "192.0.2.1"]


def test_dual_ips_in_two_pools_are_not_owned() -> None:
    a = Allocator([pool("p", "192.0.2.0/24"), pool("q", "2001:db8::/64")])
    with pytest.raises(AllocatorError, match="not allowed in config"):
        a.assign("ns/s", ips("192.0.2.1", "2001:db8::1"), WEB)


def test_reassign_is_idempotent_and_updates_ports() -> None:
    a = Allocator([pool("p", "192.0.2.0/24")])
    a.assign("ns/a", ips("192.0.2.1"), usage("TCP/80", key="k"))
    before = snapshot(a)
    a.assign("ns/a", ips("192.0.2.1"), usage("TCP/80", key="k"))
    assert snapshot(a) == before
    a.assign("ns/a", ips("192.0.2.1"), usage("TCP/8080", key="k"))
    a.assign("ns/b", ips("192.0.2.1"), usage("TCP/80", key="k"))  # 80 is free now
    a.verify()


def test_assign_replaces_the_previous_allocation() -> None:
    a = Allocator([pool("p", "192.0.2.0/24")])
    a.assign("ns/a", ips("192.0.2.1"), WEB)
    a.assign("ns/a", ips("192.0.2.2"), WEB)
    assert a.users_of(ip("192.0.2.1")) == ()
    assert a.stats()["p"] == PoolStats(256, 1, 1)


def test_failed_assign_keeps_the_previous_allocation() -> None:
    a = Allocator([pool("p", "192.0.2.0/24")])
    a.assign("ns/a", ips("192.0.2.1"), WEB)
    a.assign("ns/b", ips("192.0.2.2"), WEB)
    before = snapshot(a)
    with pytest.raises(AllocatorError):
        a.assign("ns/a", ips("192.0.2.2"), WEB)
    assert snapshot(a) == before


# ---- 2.6 allocate from any pool ----------------------------------------------------------


def test_any_pool_in_configuration_order() -> None:
    a = Allocator(
        [
            pool("off", "203.0.113.0/24", auto_assign=False),
            pool("b", "198.51.100.0/31"),
            pool("c", "192.0.2.0/31"),
        ]
    )
    got = [strs(a.allocate(f"ns/s{i}", V4, WEB).ips)[0] for i in range(4)]
    assert got == ["198.51.100.0", "198.51.100.1", "192.0.2.0", "192.0.2.1"]
    assert a.pool_of("ns/s2") == "c"
    with pytest.raises(AllocatorError, match=r"^no available IPs$"):
        a.allocate("ns/s4", V4, WEB)


def test_any_pool_skips_pools_without_the_family() -> None:
    a = Allocator([pool("v4", "192.0.2.0/24"), pool("v6", "2001:db8::/64")])
    assert strs(a.allocate("ns/s", V6, WEB).ips) == ["2001:db8::"]


def test_any_pool_keeps_an_existing_allocation() -> None:
    a = Allocator([pool("p", "192.0.2.0/24", auto_assign=False)])
    a.assign("ns/s", ips("192.0.2.200"), WEB)
    assert strs(a.allocate("ns/s", V4, WEB).ips) == ["192.0.2.200"]


# ---- 2.7 release -------------------------------------------------------------------------


def test_release_frees_ports_and_forgets_the_sharing_key() -> None:
    a = Allocator([pool("p", "192.0.2.0/24")])
    a.assign("ns/a", ips("192.0.2.1"), usage("TCP/80", key="k"))
    a.assign("ns/b", ips("192.0.2.1"), usage("TCP/81", key="k"))
    assert a.release("ns/a") is True
    assert a.release("ns/a") is False
    a.assign("ns/c", ips("192.0.2.1"), usage("TCP/80", key="k"))  # port 80 free again
    a.release("ns/b")
    a.release("ns/c")
    a.assign("ns/d", ips("192.0.2.1"), usage("TCP/80"))  # no sharing key recorded any more
    assert a.stats()["p"] == PoolStats(256, 1, 1)
    a.verify()


def test_released_address_is_reused_lowest_first() -> None:
    a = Allocator([pool("p", "192.0.2.0/29")])
    for i in range(5):
        a.allocate_from_pool(f"ns/s{i}", V4, "p", WEB)
    a.release("ns/s3")
    a.release("ns/s1")
    assert strs(a.allocate_from_pool("ns/n1", V4, "p", WEB).ips) == ["192.0.2.1"]
    assert strs(a.allocate_from_pool("ns/n2", V4, "p", WEB).ips) == ["192.0.2.3"]
    assert strs(a.allocate_from_pool("ns/n3", V4, "p", WEB).ips) == ["192.0.2.5"]
    a.verify()


# ---- 2.8 replacing the pools -------------------------------------------------------------


def test_removing_a_used_pool_is_refused_naming_every_service() -> None:
    a = Allocator([pool("p", "192.0.2.0/24"), pool("q", "198.51.100.0/24")])
    a.assign("ns/b", ips("192.0.2.5"), WEB)
    a.assign("ns/a", ips("192.0.2.4"), WEB)
    a.assign("ns/keep", ips("198.51.100.1"), WEB)
    before = snapshot(a)
    change = a.set_pools([pool("q", "198.51.100.0/24")])
    assert not change.accepted
    assert [(b.service, strs(b.ips)) for b in change.blockers] == [
        ("ns/a", ["192.0.2.4"]),
        ("ns/b", ["192.0.2.5"]),
    ]
    assert change.blockers[0].reason == "192.0.2.4 is not in any pool"
    assert 'service "ns/a" cannot own ["192.0.2.4"] under new config' in change.message
    assert 'service "ns/b"' in change.message
    assert snapshot(a) == before
    assert a.check_pools([pool("q", "198.51.100.0/24")]).blockers == change.blockers


def test_shrinking_and_avoid_buggy_over_used_ips_are_refused() -> None:
    a = Allocator([pool("p", "192.0.2.0/24")])
    a.assign("ns/zero", ips("192.0.2.0"), WEB)
    a.assign("ns/high", ips("192.0.2.200"), WEB)
    before = snapshot(a)
    change = a.set_pools([pool("p", "192.0.2.0/25", avoid_buggy_ips=True)])
    assert not change.accepted
    reasons = {b.service: b.reason for b in change.blockers}
    assert reasons == {
        "ns/high": "192.0.2.200 is not in any pool",
        "ns/zero": '192.0.2.0 ends in .0 or .255 and pool "p" sets avoid-buggy-ips',
    }
    assert snapshot(a) == before


def test_dual_stack_split_across_pools_is_refused() -> None:
    a = Allocator([pool("p", "192.0.2.0/24", "2001:db8::/64")])
    a.assign("ns/d", ips("192.0.2.1", "2001:db8::1"), WEB)
    change = a.set_pools([pool("v4", "192.0.2.0/24"), pool("v6", "2001:db8::/64")])
    assert not change.accepted
    assert change.blockers[0].reason == 'the addresses are in different pools "v4", "v6"'


def test_accepted_change_rehomes_renamed_pools_and_keeps_allocations() -> None:
    a = Allocator([pool("old", "192.0.2.0/24"), pool("gone", "198.51.100.0/24")])
    a.assign("ns/a", ips("192.0.2.1"), usage("TCP/80", key="k"))
    a.assign("ns/b", ips("192.0.2.1"), usage("TCP/81", key="k"))
    a.assign("ns/c", ips("192.0.2.2"), WEB)
    change = a.set_pools([pool("new", "192.0.2.0/23", auto_assign=False)])
    assert change.accepted and change.blockers == ()
    assert {s: al.pool for s, al in a.allocations().items()} == {
        "ns/a": "new",
        "ns/b": "new",
        "ns/c": "new",
    }
    assert a.stats() == {"new": PoolStats(512, 2, 3)}
    # auto-assign false keeps what is there but gives nothing new automatically.
    with pytest.raises(AllocatorError, match="no available IPs"):
        a.allocate("ns/d", V4, WEB)
    a.verify()


def test_hand_built_overlapping_pools_are_refused_not_raised() -> None:
    a = Allocator([pool("p", "192.0.2.0/24")])
    before = snapshot(a)
    change = a.set_pools([pool("x", "192.0.2.0/24"), pool("y", "192.0.2.128/25")])
    assert not change.accepted and "overlap" in change.message
    change = a.set_pools([pool("x", "192.0.2.0/25"), pool("x", "192.0.2.128/25")])
    assert not change.accepted and "duplicate pool name" in change.message
    assert snapshot(a) == before


# ---- 2.9 statistics ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("addresses", "avoid", "total"),
    [
        (("192.0.2.0/24",), False, 256),
        (("192.0.2.0/24",), True, 254),
        (("192.0.2.0/23",), True, 508),
        (("192.0.2.0/25",), True, 127),  # starts on .0
        (("192.0.2.128/25",), True, 127),  # ends on .255
        (("192.0.2.64/26",), True, 64),
        (("192.0.2.0/32",), True, 0),
        (("192.0.2.10-192.0.2.20",), False, 11),
        (("192.0.2.0/24", "2001:db8::/120"), True, 254 + 256),
        (("2001:db8::/67",), False, 1 << 61),
        (("2001:db8::/66",), False, MAX_INT64),
        (("192.0.2.0/24", "2001:db8::/64"), False, MAX_INT64),
    ],
)
def test_addresses_total(addresses, avoid, total) -> None:
    assert addresses_total(pool("p", *addresses, avoid_buggy_ips=avoid)) == total


def test_in_use_counts_shared_ips_once_and_services_per_pool() -> None:
    a = Allocator([pool("p", "192.0.2.0/24", "2001:db8::/120"), pool("q", "198.51.100.0/24")])
    a.allocate_from_pool("ns/a", V4, "p", usage("TCP/80", key="k"))
    a.allocate_from_pool("ns/b", V4, "p", usage("TCP/81", key="k"))
    a.allocate_from_pool("ns/d", DUAL, "p", WEB)
    assert a.stats() == {
        "p": PoolStats(512, 3, 3),
        "q": PoolStats(256, 0, 0),
    }
    a.release("ns/d")
    assert a.stats()["p"] == PoolStats(512, 1, 2)

"""`address-pools[]` (docs/config.md): address forms, pool fields, duplicates and overlaps."""

from __future__ import annotations

import ipaddress

import pytest

from metallb_py.config import Protocol
from metallb_py.config.addresses import AddressError, parse_address_entry

from .util import one, parse, pool, problems, warnings


def nets(*texts: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(t) for t in texts)


@pytest.mark.parametrize(
    ("entry", "cidrs"),
    [
        ("192.0.2.0/24", nets("192.0.2.0/24")),
        ("192.0.2.7/32", nets("192.0.2.7/32")),
        ("2001:db8::/120", nets("2001:db8::/120")),
        ("2001:db8::5/128", nets("2001:db8::5/128")),
        ("192.0.2.0/024", nets("192.0.2.0/24")),
        ("10.0.0.5/24", nets("10.0.0.0/24")),  # host bits cleared (with a warning)
        (
            "40.0.0.150-40.0.0.200",
            nets(
                "40.0.0.150/31", "40.0.0.152/29", "40.0.0.160/27", "40.0.0.192/29", "40.0.0.200/32"
            ),
        ),
        (
            "40.0.0.210 - 40.0.0.240",
            nets(
                "40.0.0.210/31", "40.0.0.212/30", "40.0.0.216/29", "40.0.0.224/28", "40.0.0.240/32"
            ),
        ),
        ("192.0.2.9-192.0.2.9", nets("192.0.2.9/32")),
        ("192.0.2.0-192.0.2.255", nets("192.0.2.0/24")),
        ("2001:db8::1-2001:db8::4", nets("2001:db8::1/128", "2001:db8::2/127", "2001:db8::4/128")),
        ("2001:db8::ff - 2001:db8::ff", nets("2001:db8::ff/128")),
    ],
)
def test_address_forms(entry: str, cidrs: tuple[object, ...]) -> None:
    (p,) = parse(pool(f"['{entry}']")).pools
    assert p.cidrs == cidrs
    assert p.addresses == (entry,)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("192.0.2.7", "a single address needs a prefix length (/32 for IPv4, /128 for IPv6)"),
        ("2001:db8::7", "a single address needs a prefix length"),
        ("lb.example.com", "is not a CIDR (ADDRESS/LENGTH) or a range (START-END)"),
        ("192.0.2.0/33", "prefix length /33 is longer than 32 bits"),
        ("2001:db8::/129", "prefix length /129 is longer than 128 bits"),
        ("192.0.2.0/255.255.255.0", "prefix length '255.255.255.0' is not a number"),
        ("192.0.2.0/", "prefix length '' is not a number"),
        ("192.0.2.0/-1", "invalid start of range"),  # a dash makes it a range
        (" 192.0.2.0/24", "is not an IP address"),
        ("192.0.2.256/32", "not a valid IPv4 address"),
        ("192.0.02.0/24", "leading zeros"),
        ("fe80::1%eth0/64", "is not an IP address"),
        ("::ffff:192.0.2.0/120", "IPv4-mapped IPv6 address; write it as 192.0.2.0"),
        ("192.0.2.20-192.0.2.10", "start IP 192.0.2.20 is after the end IP 192.0.2.10"),
        ("192.0.2.1-2001:db8::1", "range mixes IPv4 start 192.0.2.1 and IPv6 end 2001:db8::1"),
        ("192.0.2.1-", "invalid end of range"),
        ("-192.0.2.1", "invalid start of range"),
        (
            "a-b",
            "invalid start of range: 'a' is not an IP address (hostnames are not allowed);"
            " invalid end of range",
        ),
        ("192.0.2.1-192.0.2.2-192.0.2.3", "invalid end of range"),
        ("192.0.2.0/24-192.0.2.255", "invalid start of range"),
        ("", "is not a CIDR"),
    ],
)
def test_rejected_address_forms(entry: str, reason: str) -> None:
    problem = one(pool(f"['{entry}']"))
    assert problem.path == "address-pools[0].addresses[0]"
    assert f"invalid address {entry!r}: " in problem.reason
    assert reason in problem.reason
    assert problem.value == entry
    assert problem.line == 4


def test_address_entry_reports_its_largest_block() -> None:
    assert parse_address_entry("203.0.113.10-203.0.113.20").widest_prefix == 30
    assert parse_address_entry("3.3.3.2-3.3.3.254").widest_prefix == 26
    with pytest.raises(AddressError):
        parse_address_entry("203.0.113.20-203.0.113.10")


def test_host_bits_are_cleared_with_a_warning() -> None:
    text = pool("[10.0.0.5/24, 2001:db8::1/64]")
    assert parse(text).pools[0].cidrs == nets("10.0.0.0/24", "2001:db8::/64")
    found = warnings(text)
    assert [(w.path, w.value) for w in found] == [
        ("address-pools[0].addresses[0]", "10.0.0.5/24"),
        ("address-pools[0].addresses[1]", "2001:db8::1/64"),
    ]
    assert "MetalLB uses the whole network 10.0.0.0/24" in found[0].reason


def test_pool_fields_and_defaults() -> None:
    config = parse(
        """\
        address-pools:
        - name: a
          protocol: layer2
          addresses: [192.0.2.0/28, 2001:db8::/124]
        - name: b
          protocol: bgp
          addresses:
          - 198.51.100.0/24
          avoid-buggy-ips: true
          auto-assign: false
        """
    )
    a, b = config.pools
    assert (a.name, a.protocol, a.avoid_buggy_ips, a.auto_assign) == (
        "a",
        Protocol.LAYER2,
        False,
        True,
    )
    assert a.bgp_advertisements == ()
    assert a.contains(ipaddress.ip_address("2001:db8::f"))
    assert (b.protocol, b.avoid_buggy_ips, b.auto_assign) == (Protocol.BGP, True, False)
    assert len(b.bgp_advertisements) == 1
    assert config.pool("b") is b and config.pool("c") is None


@pytest.mark.parametrize(
    ("text", "path", "reason"),
    [
        (
            "address-pools:\n- protocol: layer2\n  addresses: [192.0.2.0/24]\n",
            "address-pools[0].name",
            "missing pool name",
        ),
        (
            "address-pools:\n- name: ''\n  protocol: layer2\n  addresses: [192.0.2.0/24]\n",
            "address-pools[0].name",
            "missing pool name",
        ),
        (
            "address-pools:\n- name: p\n  addresses: [192.0.2.0/24]\n",
            "address-pools[0].protocol",
            "address pool is missing the protocol field",
        ),
        (
            "address-pools:\n- name: p\n  protocol: ospf\n  addresses: [192.0.2.0/24]\n",
            "address-pools[0].protocol",
            "unknown protocol 'ospf': must be layer2 or bgp",
        ),
        (
            "address-pools:\n- name: p\n  protocol: Layer2\n  addresses: [192.0.2.0/24]\n",
            "address-pools[0].protocol",
            "protocol names are lower-case: write 'layer2'",
        ),
        (
            "address-pools:\n- name: p\n  protocol: layer2\n",
            "address-pools[0].addresses",
            "pool has no addresses (prefixes) defined",
        ),
        (
            "address-pools:\n- name: p\n  protocol: layer2\n  addresses: []\n",
            "address-pools[0].addresses",
            "pool has no addresses",
        ),
        (
            "address-pools:\n- name: p\n  protocol: layer2\n  addresses: 192.0.2.0/24\n",
            "address-pools[0].addresses",
            "expected a list, got a string",
        ),
        (
            "address-pools:\n- name: p\n  protocol: layer2\n  addresses: [192.0.2.0/24]\n"
            "  bgp-advertisements: [{}]\n",
            "address-pools[0].bgp-advertisements",
            "only allowed in a bgp pool, not in a layer2 pool",
        ),
        ("address-pools: {name: p}\n", "address-pools", "expected a list, got a mapping"),
        (
            "address-pools: [p]\n",
            "address-pools[0]",
            "expected an address pool (a mapping), got a string",
        ),
    ],
)
def test_pool_errors(text: str, path: str, reason: str) -> None:
    problem = one(text)
    assert problem.path == path
    assert reason in problem.reason


def test_layer2_pool_may_have_an_empty_advertisement_list() -> None:
    assert parse(pool("[192.0.2.0/24]", extra="bgp-advertisements: []")).pools[0]


def test_empty_pool_item_reports_every_missing_field() -> None:
    found = problems("address-pools:\n-\n")
    assert [p.path for p in found] == [
        "address-pools[0].name",
        "address-pools[0].addresses",
        "address-pools[0].protocol",
    ]


def test_duplicate_pool_names() -> None:
    text = """\
        address-pools:
        - {name: a, protocol: layer2, addresses: [192.0.2.0/28]}
        - {name: a, protocol: bgp, addresses: [192.0.2.16/28]}
        - {name: a, protocol: bgp, addresses: [192.0.2.32/28]}
        """
    found = problems(text)
    assert [(p.path, p.line) for p in found] == [
        ("address-pools[1].name", 3),
        ("address-pools[2].name", 4),
    ]
    assert "duplicate definition of pool 'a' (first: address-pools[0])" in found[0].reason


@pytest.mark.parametrize(
    ("pools", "overlaps"),
    [
        # across pools: equal, containing, contained
        ([["192.0.2.0/24"], ["192.0.2.0/24"]], [("address-pools[1].addresses[0]", "192.0.2.0/24")]),
        (
            [["192.0.2.0/24"], ["192.0.2.128/25"]],
            [("address-pools[1].addresses[0]", "192.0.2.0/24")],
        ),
        (
            [["192.0.2.128/25"], ["192.0.2.0/24"]],
            [("address-pools[1].addresses[0]", "192.0.2.128/25")],
        ),
        # inside one pool
        ([["192.0.2.0/24", "192.0.2.0/24"]], [("address-pools[0].addresses[1]", "192.0.2.0/24")]),
        (
            [["192.0.2.0/24", "192.0.2.10-192.0.2.20"]],
            [("address-pools[0].addresses[1]", "192.0.2.0/24")],
        ),
        # ranges against ranges, after expansion
        (
            [["192.0.2.10-192.0.2.20"], ["192.0.2.20-192.0.2.30"]],
            [("address-pools[1].addresses[0]", "192.0.2.20/32")],
        ),
        # adjacent, disjoint, other family: fine
        ([["192.0.2.0/25"], ["192.0.2.128/25"]], []),
        ([["192.0.2.10-192.0.2.20"], ["192.0.2.21-192.0.2.30"]], []),
        ([["0.0.0.0/0"], ["::/0"]], []),
        ([["192.0.2.0/24", "2001:db8::/64"], ["2001:db8:1::/64"]], []),
        # every overlap is reported, each naming the earliest block it overlaps
        (
            [["192.0.2.0/25"], ["192.0.2.0/24"], ["192.0.2.128/25"]],
            [
                ("address-pools[1].addresses[0]", "192.0.2.0/25"),
                ("address-pools[2].addresses[0]", "192.0.2.0/24"),
            ],
        ),
    ],
)
def test_overlaps(pools: list[list[str]], overlaps: list[tuple[str, str]]) -> None:
    text = "address-pools:\n" + "".join(
        f"- {{name: p{i}, protocol: layer2, addresses: {[str(a) for a in addrs]}}}\n"
        for i, addrs in enumerate(pools)
    )
    if not overlaps:
        assert len(parse(text).pools) == len(pools)
        return
    found = problems(text)
    assert [p.path for p in found] == [path for path, _ in overlaps]
    for problem, (_, earlier) in zip(found, overlaps, strict=True):
        assert f"overlaps with already defined CIDR {earlier} (pool " in problem.reason


def test_overlap_is_checked_even_when_the_pool_has_other_problems() -> None:
    found = problems(
        """\
        address-pools:
        - {name: a, protocol: layer2, addresses: [192.0.2.0/24]}
        - {name: b, protocol: nonsense, addresses: [192.0.2.0/26, bad]}
        """
    )
    assert [p.path for p in found] == [
        "address-pools[1].addresses[1]",
        "address-pools[1].protocol",
        "address-pools[1].addresses[0]",
    ]


def test_many_disjoint_entries_are_accepted() -> None:
    entries = [f"2001:db8:{i:x}::/64" for i in range(3000)]
    entries.reverse()  # worst order for a naive sorted insert
    (p,) = parse(pool(str(entries))).pools
    assert len(p.cidrs) == 3000

"""The two readers of IP literals: `parse_ip_or_none` (Services, fast, None on garbage) and the
config's `parse_ip` (raises with the reason). They must accept exactly the same literals."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metallb_py.allocator.ips import parse_ip_or_none
from metallb_py.config.addresses import AddressError, parse_ip


def _strict(text: str) -> object:
    try:
        return parse_ip(text)
    except AddressError:
        return None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.1", ipaddress.IPv4Address("192.0.2.1")),
        ("2001:db8::1", ipaddress.IPv6Address("2001:db8::1")),
        ("::ffff:192.0.2.1", ipaddress.IPv4Address("192.0.2.1")),  # IPv4-mapped: the IPv4
        ("192.0.2.01", None),  # leading zero: ambiguous
        ("fe80::1%eth0", None),  # zones are not IP literals
        ("192.0.2.256", None),
        ("192.0.2.1 ", None),
        ("\u0661.2.3.4", None),  # a Unicode digit
        ("example.com", None),
        ("", None),
    ],
)
def test_both_readers_on_known_literals(text: str, expected: object) -> None:
    assert parse_ip_or_none(text) == expected
    assert _strict(text) == expected


def test_garbage_types_read_as_none() -> None:
    assert parse_ip_or_none(None) is None
    assert parse_ip_or_none(3232235777) is None
    assert parse_ip_or_none(["192.0.2.1"]) is None


_LITERAL_CHARS = "0123456789abcdefABCDEF:.%/ -"


@given(
    st.one_of(
        st.text(alphabet=_LITERAL_CHARS, max_size=45),
        st.ip_addresses().map(str),
        st.ip_addresses(v=6).map(lambda ip: ip.exploded),
        st.ip_addresses(v=4).map(lambda ip: f"::ffff:{ip}"),
    )
)
def test_the_readers_accept_the_same_literals(text: str) -> None:
    assert parse_ip_or_none(text) == _strict(text)

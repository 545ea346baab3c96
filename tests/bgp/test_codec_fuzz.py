"""Property tests: whatever bytes arrive, the decoder returns a message or raises BgpError with
a NOTIFICATION that can be sent, and never through its catch-all fallback (which would mean a
validation is missing). The seeds are our own encodings and messages written by scapy
(`peer_wire.sample_messages`); the NOTIFICATION is read back by scapy too."""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metallb_py.bgp import messages as m
from metallb_py.config.model import Community
from tests.bgp.peer_wire import SeenNotification, read_message, sample_messages

CTX = m.UpdateContext(
    my_asn=4200000001,
    ibgp=False,
    four_octet_as=False,
    next_hop_v4=ipaddress.IPv4Address("192.0.2.11"),
    next_hop_v6=ipaddress.IPv6Address("2001:db8::11"),
    link_local_v6=ipaddress.IPv6Address("fe80::1"),
)

VALID = [
    m.encode_open(4200000001, 90, ipaddress.IPv4Address("192.0.2.11")),
    m.encode_open(64512, 3, ipaddress.IPv4Address("192.0.2.12"), route_refresh=False),
    m.encode_keepalive(),
    m.encode_notification(6, 2, b"\x03bye"),
    m.encode_route_refresh(2, 1),
    m.encode_end_of_rib(m.IPV6_UNICAST),
    *m.pack_announcements(
        [
            m.Route(ipaddress.ip_network("198.51.100.0/24"), 7, (Community(1), Community(2))),
            m.Route(ipaddress.ip_network("2001:db8:1::/48"), 7, (Community(1),)),
        ],
        CTX,
    ),
    *m.pack_withdrawals(
        [ipaddress.ip_network("203.0.113.0/25"), ipaddress.ip_network("2001:db8::/64")]
    ),
    *sample_messages(),
]


def check(data: bytes, four_octet_as: bool) -> None:
    try:
        msg = m.decode_message(data, four_octet_as=four_octet_as)
    except m.BgpError as exc:
        assert not exc.detail.startswith("undecodable"), exc
        assert 1 <= exc.code <= 7
        note = m.decode_message(exc.notification())
        assert isinstance(note, m.Notification)
        assert (note.code, note.subcode) == (exc.code, exc.subcode)
        data = exc.data[: 4096 - 21]  # what fits in a 4096-byte NOTIFICATION
        assert read_message(exc.notification()) == SeenNotification(exc.code, exc.subcode, data)
        return
    assert isinstance(msg, m.Open | m.Update | m.Notification | m.Keepalive | m.RouteRefresh)


def with_length(data: bytes) -> bytes:
    """Fix the header's length so the body checks run instead of the length check."""
    if len(data) < 19 or len(data) > m.MAX_MESSAGE_LEN:
        return data
    return data[:16] + len(data).to_bytes(2, "big") + data[18:]


@settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200), st.booleans())
def test_random_bytes(data: bytes, four_octet_as: bool) -> None:
    check(data, four_octet_as)


@settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 5), st.binary(max_size=300), st.booleans())
def test_random_bodies_behind_a_valid_header(mtype: int, body: bytes, four_octet_as: bool) -> None:
    check(m.MARKER + (19 + len(body)).to_bytes(2, "big") + bytes([mtype]) + body, four_octet_as)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.sampled_from([0, 1, 2, 3, 4, 0x3F, 0x40, 0x80, 0xC0, 0xFF]))
        elif op == "cut":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 4))]
    out = bytes(data)
    return with_length(out) if draw(st.booleans()) else out


@settings(max_examples=4000, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), st.booleans())
def test_mutated_valid_messages(data: bytes, four_octet_as: bool) -> None:
    check(data, four_octet_as)


def test_every_valid_sample_decodes() -> None:
    for data in VALID:
        m.decode_message(data, four_octet_as=False)

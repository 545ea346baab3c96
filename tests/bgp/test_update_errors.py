"""RFC 7606 error handling of received UPDATEs: which malformed path attributes are
treat-as-withdraw, which are attribute discard, and which still reset the session; then a
session fed every kept kind by a scripted peer stays Established, sends no NOTIFICATION and
logs each kind once.

The UPDATEs are written out byte by byte (the comments derive them), independently of the codec
under test; the FRR-like one is built with scapy's BGP layer.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket

import pytest

from metallb_py.bgp import messages as m
from metallb_py.bgp.session import BgpSession, ThrottledLog
from metallb_py.config.model import Peer
from tests.bgp.peer_wire import Seen, SeenNotification, SeenUpdate, route_refresh
from tests.bgp.scripted_peer import PeerConn, ScriptedPeer

TAW = m.ErrorAction.TREAT_AS_WITHDRAW
DISCARD = m.ErrorAction.ATTRIBUTE_DISCARD


def h(text: str) -> bytes:
    """Hex with spaces allowed, so each field can be read on its own."""
    return bytes.fromhex(text)


def update(attrs: bytes, nlri: bytes = b"", withdrawn: bytes = b"") -> bytes:
    """A whole UPDATE message: 16 x 0xff marker, 2-byte length (19-byte header + 2-byte withdrawn
    length + withdrawn + 2-byte attribute length + attributes + NLRI), type 2."""
    body = (
        len(withdrawn).to_bytes(2, "big") + withdrawn + len(attrs).to_bytes(2, "big") + attrs + nlri
    )
    return b"\xff" * 16 + (19 + len(body)).to_bytes(2, "big") + b"\x02" + body


# Attributes: flags (0x40 well-known transitive, 0x80 optional, 0xc0 optional transitive,
# 0x20 partial), type code, 1-byte length, value.
ORIGIN = h("40 01 01 02")  # ORIGIN = INCOMPLETE (2)
AS_PATH = h("40 02 06 02 01 0000fbf4")  # one AS_SEQUENCE (2) of 1 ASN: 64500, 4 bytes
AS_PATH_2 = h("40 02 04 02 01 fbf4")  # the same with 2-byte ASNs
NEXT_HOP = h("40 03 04 c0000201")  # 192.0.2.1
GOOD = ORIGIN + AS_PATH + NEXT_HOP
P24 = h("18 c63364")  # 198.51.100.0/24: length 24, 3 address bytes
P32 = h("20 cb007107")  # 203.0.113.7/32
# MP_REACH_NLRI (14), optional: AFI 2, SAFI 1, next hop length 16, 2001:db8::1, reserved 0,
# NLRI 2001:db8:5::/64 (length 64 = 0x40, 8 address bytes). Value: 3+1+16+1+9 = 30 = 0x1e.
MP_REACH_V6 = h("80 0e 1e 0002 01 10 20010db8000000000000000000000001 00 40 20010db800050000")
MP_REACH_V6_TRANSITIVE = h("c0") + MP_REACH_V6[1:]  # flags 0xc0: MP_REACH is not transitive
# MP_UNREACH_NLRI (15): AFI 2, SAFI 1, withdrawn 2001:db8:5::/64. Value 3+9 = 12.
MP_UNREACH_V6 = h("80 0f 0c 0002 01 40 20010db800050000")


# (name, UPDATE, four_octet_as, external, action, (code, subcode), NOTIFICATION data RFC 4271
# would have sent)
KEPT = [
    # NEXT_HOP (RFC 4271 6.3: not a host address; RFC 7606 3 (e), 7.3)
    ("NEXT_HOP 0.0.0.0", update(ORIGIN + AS_PATH + h("40 03 04 00000000"), P24), 8),
    ("NEXT_HOP 224.0.0.1", update(ORIGIN + AS_PATH + h("40 03 04 e0000001"), P24), 8),
    ("NEXT_HOP 127.0.0.1", update(ORIGIN + AS_PATH + h("40 03 04 7f000001"), P24), 8),
    ("NEXT_HOP length 5", update(ORIGIN + AS_PATH + h("40 03 05 c000020100"), P24), 5),
    ("NEXT_HOP optional flag", update(ORIGIN + AS_PATH + h("c0 03 04 c0000201"), P24), 4),
    # ORIGIN (7.1)
    ("ORIGIN 7", update(h("40 01 01 07") + AS_PATH + NEXT_HOP, P24), 6),
    ("ORIGIN length 2", update(h("40 01 02 0200") + AS_PATH + NEXT_HOP, P24), 5),
    ("ORIGIN optional flag", update(h("c0 01 01 02") + AS_PATH + NEXT_HOP, P24), 4),
    ("ORIGIN partial bit", update(h("60 01 01 02") + AS_PATH + NEXT_HOP, P24), 4),
    # AS_PATH (7.2): segment type 9; segment length 0; segment of 2 ASNs with 1 present;
    # a single byte after the last segment
    ("AS_PATH segment type 9", update(ORIGIN + h("40 02 06 09 01 00000001") + NEXT_HOP, P24), 11),
    ("AS_PATH empty segment", update(ORIGIN + h("40 02 02 02 00") + NEXT_HOP, P24), 11),
    ("AS_PATH overrun", update(ORIGIN + h("40 02 06 02 02 00000001") + NEXT_HOP, P24), 11),
    ("AS_PATH underrun", update(ORIGIN + h("40 02 07 02 01 00000001 02") + NEXT_HOP, P24), 11),
    ("AS_PATH optional flag", update(ORIGIN + h("80 02 06 02 01 0000fbf4") + NEXT_HOP, P24), 4),
    # MULTI_EXIT_DISC (7.4), LOCAL_PREF from an internal neighbor (7.5)
    ("MED length 3", update(GOOD + h("80 04 03 000005"), P24), 5),
    ("MED well-known flags", update(GOOD + h("40 04 04 00000005"), P24), 4),
    ("LOCAL_PREF length 2", update(GOOD + h("40 05 02 0064"), P24), 5),
    ("LOCAL_PREF optional flag", update(GOOD + h("80 05 04 00000064"), P24), 4),
    # COMMUNITIES (7.8): not a non-zero multiple of 4, or not transitive
    ("COMMUNITIES length 6", update(GOOD + h("c0 08 06 000000070000"), P24), 5),
    ("COMMUNITIES length 0", update(GOOD + h("c0 08 00"), P24), 5),
    ("COMMUNITIES non-transitive", update(GOOD + h("80 08 04 00000007"), P24), 4),
    # ORIGINATOR_ID, CLUSTER_LIST from an internal neighbor (7.9, 7.10)
    ("ORIGINATOR_ID length 3", update(GOOD + h("80 09 03 c00002"), P24), 5),
    ("CLUSTER_LIST length 0", update(GOOD + h("80 0a 00"), P24), 5),
    # EXTENDED_COMMUNITIES (7.14): multiple of 8; LARGE_COMMUNITY (RFC 8092): of 12
    ("EXTENDED_COMMUNITIES length 7", update(GOOD + h("c0 10 07 00020000000000"), P24), 5),
    ("LARGE_COMMUNITY length 11", update(GOOD + h("c0 20 0b 0000fbf4 00000001 000000"), P24), 5),
    # missing well-known mandatory attributes (3 (d)); NEXT_HOP only for the NLRI field
    ("ORIGIN missing", update(AS_PATH + NEXT_HOP, P24), 3),
    ("AS_PATH missing", update(ORIGIN + NEXT_HOP, P24), 3),
    ("NEXT_HOP missing", update(ORIGIN + AS_PATH, P24), 3),
    ("AS_PATH missing with MP_REACH_NLRI", update(ORIGIN + MP_REACH_V6), 3),
    # MP_REACH_NLRI with wrong flags but parsable: its NLRI is known (3 (c), 3 (j))
    ("MP_REACH_NLRI transitive flag", update(ORIGIN + AS_PATH + MP_REACH_V6_TRANSITIVE), 4),
    # Section 4: the last attribute overruns the list (COMMUNITIES says 8, 4 bytes follow);
    # fewer than 3 bytes left for an attribute header. The NLRI is found through the total
    # path attribute length.
    ("attribute overruns the list", update(GOOD + h("c0 08 08 00000007"), P24), 1),
    ("two bytes left in the list", update(GOOD + h("c0 08"), P24), 1),
]

# Attribute discard (3 (f), 3 (g), 7.6, 7.7, RFC 6793 6): the UPDATE is processed without it.
DISCARDED = [
    ("ATOMIC_AGGREGATE length 1", update(GOOD + h("40 06 01 00"), P24), True, 5),
    ("AGGREGATOR length 7", update(GOOD + h("c0 07 07 0000fbf4c00002"), P24), True, 5),
    (
        "AGGREGATOR 2-octet length 8",
        update(ORIGIN + AS_PATH_2 + NEXT_HOP + h("c0 07 08 0000fbf4c0000201"), P24),
        False,
        5,
    ),
    ("AGGREGATOR well-known flag", update(GOOD + h("40 07 08 0000fbf4c0000201"), P24), True, 4),
    ("AS4_AGGREGATOR length 6", update(GOOD + h("c0 12 06 0000fbf4c000"), P24), True, 5),
    # 2-octet session: AS4_PATH with a segment of length 0
    (
        "AS4_PATH malformed",
        update(ORIGIN + AS_PATH_2 + NEXT_HOP + h("c0 11 02 02 00"), P24),
        False,
        9,
    ),
    ("ORIGIN twice", update(GOOD + h("40 01 01 00"), P24), True, 1),
    ("COMMUNITIES twice", update(GOOD + h("c0 08 04 00000007 c0 08 04 00000009"), P24), True, 1),
    ("unknown optional twice", update(GOOD + h("c0 63 01 aa c0 63 01 bb"), P24), True, 1),
]


def decode(data: bytes, four_octet_as: bool = True, external: bool = False) -> m.Update:
    msg = m.decode_message(data, four_octet_as=four_octet_as, external=external)
    assert isinstance(msg, m.Update)
    return msg


@pytest.mark.parametrize(("name", "data", "subcode"), KEPT, ids=[k[0] for k in KEPT])
def test_treat_as_withdraw(name: str, data: bytes, subcode: int) -> None:
    u = decode(data)
    assert u.action is TAW and u.treat_as_withdraw
    assert [(p.code, p.subcode) for p in u.problems if p.action is TAW] == [(3, subcode)]
    # The routes to withdraw are known: the NLRI field, or the MP_REACH_NLRI prefixes.
    announced = list(u.nlri) + list(u.attributes.mp_reach.nlri if u.attributes.mp_reach else [])
    assert announced in (
        [ipaddress.ip_network("198.51.100.0/24")],
        [ipaddress.ip_network("2001:db8:5::/64")],
    )
    assert not u.is_end_of_rib


def test_problems_carry_what_rfc_4271_would_have_sent() -> None:
    [p] = decode(KEPT[0][1]).problems
    assert p == m.UpdateProblem(TAW, 3, 8, h("40 03 04 00000000"), "NEXT_HOP 0.0.0.0")
    assert str(p) == "3/8 UPDATE Message Error / Invalid NEXT_HOP Attribute: NEXT_HOP 0.0.0.0"
    [p] = decode(update(AS_PATH + NEXT_HOP, P24)).problems
    assert (p.subcode, p.data) == (3, b"\x01")  # Missing Well-known Attribute: type code 1
    [p] = decode(update(h("c0 01 01 02") + AS_PATH + NEXT_HOP, P24)).problems
    assert p.data == h("c0 01 01 02")  # Attribute Flags Error: the whole attribute


@pytest.mark.parametrize(
    ("name", "data", "four_octet_as", "subcode"), DISCARDED, ids=[d[0] for d in DISCARDED]
)
def test_attribute_discard(name: str, data: bytes, four_octet_as: bool, subcode: int) -> None:
    u = decode(data, four_octet_as=four_octet_as)
    assert u.action is DISCARD and not u.treat_as_withdraw
    assert [(p.action, p.code, p.subcode) for p in u.problems] == [(DISCARD, 3, subcode)]
    # The rest of the UPDATE is read as usual.
    assert u.nlri == (ipaddress.ip_network("198.51.100.0/24"),)
    a = u.attributes
    assert (a.origin, a.next_hop) == (2, ipaddress.ip_address("192.0.2.1"))
    assert a.as_path == (m.AsPathSegment(2, (64500,)),)


def test_a_repeated_attribute_keeps_its_first_copy() -> None:
    u = decode(DISCARDED[-2][1])
    assert u.attributes.communities == (7,)
    u = decode(DISCARDED[-1][1])
    assert u.attributes.other == (m.RawAttribute(0xC0, 0x63, b"\xaa"),)


def test_the_strongest_action_wins() -> None:
    # ATOMIC_AGGREGATE of length 1 (discard) and ORIGIN 7 (treat-as-withdraw).
    u = decode(update(h("40 01 01 07") + AS_PATH + NEXT_HOP + h("40 06 01 00"), P24))
    assert [p.action for p in u.problems] == [TAW, DISCARD]
    assert u.action is TAW


def test_attributes_for_internal_neighbors_are_discarded_from_external_ones() -> None:
    # RFC 7606 7.5, 7.9, 7.10: LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST from an eBGP neighbor
    # are discarded unread, malformed or not.
    data = update(GOOD + h("40 05 02 0064") + h("80 09 03 c00002") + h("80 0a 00"), P24)
    u = decode(data, external=True)
    assert u.problems == () and u.attributes.local_pref is None
    assert decode(update(GOOD + h("40 05 04 00000064"), P24), external=True).attributes == (
        decode(update(GOOD, P24)).attributes
    )
    assert decode(data).action is TAW  # from an iBGP neighbor they are checked


def test_as4_path_from_a_4_octet_speaker_is_discarded() -> None:
    # RFC 6793: only 2-octet sessions carry AS4_PATH; a 4-octet peer's copy is dropped.
    u = decode(update(GOOD + h("c0 11 06 02 01 fbf4fbf4"), P24))
    assert u.problems == () and u.attributes.as4_path is None


def test_frr_ipv4_update_with_next_hop_0_0_0_0_built_by_scapy() -> None:
    """What FRR without zebra sends for IPv4 unicast on an IPv6-transport session (iBGP here,
    so the AS_PATH is empty and the AS number width does not matter)."""
    from scapy.contrib import bgp

    attrs = [
        bgp.BGPPathAttr(type_flags=0x40, type_code=1, attribute=bgp.BGPPAOrigin(origin=0)),
        bgp.BGPPathAttr(type_flags=0x40, type_code=2, attribute=bgp.BGPPAASPath(segments=[])),
        bgp.BGPPathAttr(
            type_flags=0x40, type_code=3, attribute=bgp.BGPPANextHop(next_hop="0.0.0.0")
        ),
        bgp.BGPPathAttr(type_flags=0x80, type_code=4, attribute=bgp.BGPPAMultiExitDisc(med=0)),
        bgp.BGPPathAttr(type_flags=0x40, type_code=5, attribute=bgp.BGPPALocalPref(local_pref=100)),
    ]
    data = bytes(
        bgp.BGPHeader()
        / bgp.BGPUpdate(path_attr=attrs, nlri=[bgp.BGPNLRI_IPv4(prefix="198.51.100.0/24")])
    )
    u = decode(data)
    assert u.treat_as_withdraw
    assert [(p.code, p.subcode, p.data) for p in u.problems] == [(3, 8, h("40 03 04 00000000"))]
    assert u.nlri == (ipaddress.ip_network("198.51.100.0/24"),)
    assert (u.attributes.origin, u.attributes.as_path, u.attributes.local_pref) == (0, (), 100)


@pytest.mark.parametrize(
    ("data", "subcode", "err_data"),
    [
        # RFC 7606 5.2: attributes besides MP_UNREACH_NLRI but nothing announced: the errors
        # that would be treat-as-withdraw reset the session.
        (update(h("40 01 01 07") + AS_PATH + NEXT_HOP, withdrawn=P32), 6, h("40 01 01 07")),
        (update(ORIGIN + AS_PATH + h("40 03 04 00000000")), 8, h("40 03 04 00000000")),
        (update(GOOD + h("c0 08 08 00000007")), 1, b""),
        # MP_REACH_NLRI without NLRI counts as announcing nothing
        (update(AS_PATH + h("80 0e 15 0002 01 10 20010db8000000000000000000000001 00")), 3, b"\1"),
        # 3 (g): MP_REACH_NLRI or MP_UNREACH_NLRI twice
        (update(ORIGIN + AS_PATH + MP_REACH_V6 + MP_REACH_V6), 1, b""),
        (update(MP_UNREACH_V6 + MP_UNREACH_V6), 1, b""),
        # 7.11: next hop length 7 for IPv6; the NLRI cannot be located
        (update(ORIGIN + AS_PATH + h("80 0e 0c 0002 01 07 00000000000000 00")), 9, None),
        # 5.3: NLRI inside MP_REACH_NLRI that does not parse (a /129). Value: AFI, SAFI, next
        # hop length 16, 2001:db8::1, reserved, prefix length 0x81: 3+1+16+1+1 = 22 = 0x16.
        (
            update(
                ORIGIN + AS_PATH + h("80 0e 16 0002 01 10 20010db8000000000000000000000001 00 81")
            ),
            9,
            None,
        ),
    ],
)
def test_errors_that_still_reset_the_session(
    data: bytes, subcode: int, err_data: bytes | None
) -> None:
    with pytest.raises(m.BgpError) as info:
        m.decode_message(data)
    assert (info.value.code, info.value.subcode) == (3, subcode)
    if err_data is not None:
        assert info.value.data == err_data


def test_what_5_2_does_not_cover_stays_up() -> None:
    # Only MP_UNREACH_NLRI, with a flags error: a withdrawal whose prefixes are known.
    u = decode(update(h("c0") + MP_UNREACH_V6[1:]))
    assert u.action is TAW
    assert u.attributes.mp_unreach is not None
    # Only attribute discard in an UPDATE that announces nothing: processed.
    u = decode(update(h("40 06 01 00"), withdrawn=P32))
    assert u.action is DISCARD and u.withdrawn == (ipaddress.ip_network("203.0.113.7/32"),)


# --- the session ------------------------------------------------------------------------------


def test_session_stays_up_without_notification_for_every_kept_kind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A scripted iBGP peer sends every treat-as-withdraw and attribute-discard UPDATE above (the
    NEXT_HOP 0.0.0.0 one 50 times), then a ROUTE-REFRESH: the re-sent route proves the session
    read them all; it is still the first session, it sent no NOTIFICATION, it counted every
    UPDATE, and it logged each kind once."""
    caplog.set_level(logging.INFO, logger="metallb_py.bgp")
    four_octet = [data for _, data, *_ in KEPT] + [d for _, d, four, _ in DISCARDED if four]
    repeats = 50
    sent = four_octet + [KEPT[0][1]] * (repeats - 1)
    route = m.Route(ipaddress.ip_network("2001:db8:5::/64"))

    async def main() -> tuple[list[Seen], BgpSession]:
        received: list[Seen] = []
        refreshed = asyncio.Event()

        async def peer_script(conn: PeerConn) -> None:
            await conn.establish(asn=64512)
            # After the initial table: a ROUTE-REFRESH before it would be answered by it.
            await conn.until_end_of_rib()
            for data in sent:
                conn.send(data)
            conn.send(route_refresh(2, 1))  # AFI IPv6, SAFI unicast
            async with asyncio.timeout(10):
                while sum(_announces(x) for x in conn.received) < 2:
                    await conn.read()
            refreshed.set()
            await conn.until_notification(timeout=20)  # the Cease of close()
            received.extend(conn.received)

        peer = ScriptedPeer([peer_script])
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        await peer.start(sock)
        session = BgpSession(
            Peer(64512, 64512, ipaddress.ip_address("127.0.0.1"), port=sock.getsockname()[1]), "n"
        )
        session.set_routes([route])
        await session.wait_established(10)
        async with asyncio.timeout(10):
            while session.stats.malformed_updates < len(sent):
                await asyncio.sleep(0.01)
        # Close only once the ROUTE-REFRESH was answered: on a busy machine the session may
        # still be reading it when the last malformed UPDATE has been counted.
        await asyncio.wait_for(refreshed.wait(), 10)
        assert session.stats.up and session.stats.established_count == 1
        await session.close()
        await asyncio.wait_for(peer.done[0].wait(), 10)
        await peer.close()
        assert not peer.errors, peer.errors
        return received, session

    received, session = run(main())
    notes = [x for x in received if isinstance(x, SeenNotification)]
    assert [(n.code, n.subcode) for n in notes] == [(6, 3)]  # only the Cease from close()
    assert session.stats.malformed_updates == len(sent)
    assert "NEXT_HOP 0.0.0.0" in session.stats.last_update_problem
    lines = [r.getMessage() for r in caplog.records if "malformed UPDATE" in r.getMessage()]
    assert sum("Invalid NEXT_HOP" in line for line in lines) == 1  # 52 such UPDATEs
    # Kinds of problem, from the tables (each of their UPDATEs has exactly one problem).
    kinds = {(TAW, 3, subcode) for _, _, subcode in KEPT} | {
        (DISCARD, 3, subcode) for _, _, four, subcode in DISCARDED if four
    }
    assert len(lines) == len(kinds) <= 20
    assert "session failed" not in caplog.text


def _announces(msg: Seen) -> bool:
    return isinstance(msg, SeenUpdate) and bool(msg.mp_reach_nlri)


def run(coro, timeout: float = 60.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_throttled_log_counts_what_it_does_not_log() -> None:
    now = [0.0]
    throttle = ThrottledLog(60.0, lambda: now[0])
    assert throttle.event("treat-as-withdraw 3/8") == 0  # the first one is logged
    assert throttle.event("treat-as-withdraw 3/8") is None
    assert throttle.event("attribute discard 3/5") == 0  # kinds are separate
    now[0] = 59.9
    assert throttle.event("treat-as-withdraw 3/8") is None
    now[0] = 60.0
    assert throttle.event("treat-as-withdraw 3/8") == 2  # logged, with the 2 in between
    assert throttle.event("treat-as-withdraw 3/8") is None

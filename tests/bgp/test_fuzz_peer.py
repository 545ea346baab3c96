"""A hand-made hostile peer sends malformed headers, OPENs and UPDATEs (and goes silent):
the session answers each with the right NOTIFICATION and reconnects, while a second session
to FRR in the same event loop stays up untouched. UPDATEs whose malformed attributes RFC 7606
handles by treat-as-withdraw get no NOTIFICATION: that session keeps answering."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from metallb_lab.routers import FrrRouter, Neighbor, PeeringLink
from metallb_py.bgp.host import LocalHost
from metallb_py.config.model import Peer
from tests.bgp.conftest import ROUTES, FastSleep, run, session, start_router
from tests.bgp.peer_wire import (
    Seen,
    SeenNotification,
    SeenUpdate,
    notification,
    route_refresh,
)
from tests.bgp.scripted_peer import PeerConn, Script, ScriptedPeer
from tests.bgp.test_messages import AS_PATH, NEXT_HOP, ORIGIN, attr, frame, header, update_body

pytestmark = pytest.mark.netns
PORT = 1790
ID = ipaddress.IPv4Address("192.0.2.1")
P24 = bytes([24, 198, 51, 100])


def open_msg(
    version: int = 4,
    asn: int = 64500,
    hold: int = 90,
    bgp_id: int = int(ID),
    params: bytes | None = None,
) -> bytes:
    if params is None:
        caps = bytes([1, 4, 0, 1, 0, 1, 65, 4]) + asn.to_bytes(4, "big")
        params = bytes([2, len(caps)]) + caps
    two = asn if asn <= 0xFFFF else 23456  # AS_TRANS (RFC 6793)
    return frame(1, struct.pack("!BHHIB", version, two, hold, bgp_id, len(params)) + params)


def bad_update(attrs: bytes, nlri: bytes = P24, withdrawn: bytes = b"") -> bytes:
    return frame(2, update_body(withdrawn=withdrawn, attrs=attrs, nlri=nlri))


@dataclass
class Case:
    name: str
    phase: str  # "opensent", "openconfirm" or "established"
    send: bytes
    code: int
    subcode: int
    data: bytes | None = b""
    """Expected NOTIFICATION data; None: do not check."""


FLAGS = attr(0xC0, 1, b"\x02")
LENGTH = attr(0x40, 1, b"\x02\x00")
BAD_ORIGIN = attr(0x40, 1, b"\x07")
BAD_HOP = attr(0x40, 3, bytes([224, 0, 0, 1]))
WELL_KNOWN = attr(0x40, 77, b"\x01")
MP_BAD = attr(0x80, 14, struct.pack("!HBB", 2, 1, 7) + bytes(7) + b"\0")
RR_BAD = frame(5, b"\x00\x02\x00\x01\x00\x00")
PARAM1 = bytes([1, 2, 0, 0])

CASES = [
    Case("bad marker", "opensent", header(19, 4, marker=bytes(16)), 1, 1),
    Case("length over 4096", "opensent", header(5000, 2), 1, 2, (5000).to_bytes(2, "big")),
    Case("unknown type", "opensent", header(19, 9), 1, 3, b"\x09"),
    Case("KEEPALIVE of 20 bytes", "opensent", header(20, 4) + b"\0", 1, 2, (20).to_bytes(2, "big")),
    Case("OPEN version 3", "opensent", open_msg(version=3), 2, 1, b"\x00\x04"),
    Case("OPEN wrong AS", "opensent", open_msg(asn=64999), 2, 2),
    Case("OPEN identifier 0", "opensent", open_msg(bgp_id=0), 2, 3),
    Case("OPEN parameter type 1", "opensent", open_msg(params=PARAM1), 2, 4, PARAM1),
    Case("OPEN hold time 2", "opensent", open_msg(hold=2), 2, 6),
    Case("OPEN capability overrun", "opensent", open_msg(params=bytes([2, 4, 65, 9, 0, 0])), 2, 0),
    Case("UPDATE in OpenSent", "opensent", bad_update(b"", b""), 5, 1),
    Case("UPDATE in OpenConfirm", "openconfirm", bad_update(b"", b""), 5, 2),
    Case("attribute list overrun", "established", frame(2, b"\x00\x00\x00\x09" + ORIGIN), 3, 1),
    # RFC 7606 5.2: a malformed attribute in an UPDATE that announces nothing is a reset.
    Case(
        "ORIGIN 7 without NLRI",
        "established",
        bad_update(BAD_ORIGIN + AS_PATH + NEXT_HOP, b"", P24),
        3,
        6,
        BAD_ORIGIN,
    ),
    Case(
        "NLRI /33",
        "established",
        bad_update(ORIGIN + AS_PATH + NEXT_HOP, bytes([33, 1, 2, 3, 4, 5])),
        3,
        10,
    ),
    Case(
        "unknown well-known",
        "established",
        bad_update(ORIGIN + AS_PATH + NEXT_HOP + WELL_KNOWN),
        3,
        2,
        WELL_KNOWN,
    ),
    Case(
        "MP_REACH next hop", "established", bad_update(ORIGIN + AS_PATH + MP_BAD, b""), 3, 9, MP_BAD
    ),
    Case("OPEN when Established", "established", open_msg(), 5, 3),
    Case("ROUTE-REFRESH of 6 bytes", "established", RR_BAD, 7, 1, RR_BAD),
]


# The names RFC 4271 6.1-6.6, RFC 6608 and RFC 7313 give the errors above, as the log shows them.
RFC_NAMES = {
    (1, 1): "Message Header Error / Connection Not Synchronized",
    (1, 2): "Message Header Error / Bad Message Length",
    (1, 3): "Message Header Error / Bad Message Type",
    (2, 0): "OPEN Message Error / Unspecific",
    (2, 1): "OPEN Message Error / Unsupported Version Number",
    (2, 2): "OPEN Message Error / Bad Peer AS",
    (2, 3): "OPEN Message Error / Bad BGP Identifier",
    (2, 4): "OPEN Message Error / Unsupported Optional Parameter",
    (2, 6): "OPEN Message Error / Unacceptable Hold Time",
    (3, 1): "UPDATE Message Error / Malformed Attribute List",
    (3, 2): "UPDATE Message Error / Unrecognized Well-known Attribute",
    (3, 6): "UPDATE Message Error / Invalid ORIGIN Attribute",
    (3, 9): "UPDATE Message Error / Optional Attribute Error",
    (3, 10): "UPDATE Message Error / Invalid Network Field",
    (5, 1): "Finite State Machine Error / Receive Unexpected Message in OpenSent State",
    (5, 2): "Finite State Machine Error / Receive Unexpected Message in OpenConfirm State",
    (5, 3): "Finite State Machine Error / Receive Unexpected Message in Established State",
    (7, 1): "ROUTE-REFRESH Message Error / Invalid Message Length",
}


# RFC 7606: the same errors in UPDATEs that announce a prefix are treat-as-withdraw.
KEPT = {
    "ORIGIN flags": bad_update(FLAGS + AS_PATH + NEXT_HOP),
    "ORIGIN length": bad_update(LENGTH + AS_PATH + NEXT_HOP),
    "no NEXT_HOP": bad_update(ORIGIN + AS_PATH),
    "ORIGIN 7": bad_update(BAD_ORIGIN + AS_PATH + NEXT_HOP),
    "multicast NEXT_HOP": bad_update(ORIGIN + AS_PATH + BAD_HOP),
    "AS_PATH segment type 9": bad_update(
        ORIGIN + attr(0x40, 2, bytes([9, 1, 0, 0, 0, 1])) + NEXT_HOP
    ),
}


def kept(name: str, data: bytes, results: dict[str, list[Seen]]) -> Script:
    """Send the UPDATE, then a ROUTE-REFRESH: the re-sent routes prove the session read past
    the UPDATE and stayed up; then hang up."""

    async def script(conn: PeerConn) -> None:
        await conn.establish()
        await conn.until_end_of_rib()  # a ROUTE-REFRESH before it would be answered by it
        conn.send(data)
        conn.send(route_refresh(1, 1))  # AFI IPv4, SAFI unicast
        async with asyncio.timeout(10):
            while sum(isinstance(x, SeenUpdate) and bool(x.nlri) for x in conn.received) < 2:
                await conn.read()
        results[name] = list(conn.received)

    return script


def scripted(
    case: Case, results: dict[str, tuple[int, int, bytes]]
) -> Callable[[PeerConn], Awaitable[None]]:
    async def script(conn: PeerConn) -> None:
        if case.phase == "opensent":
            await conn.expect_open()
        elif case.phase == "openconfirm":
            await conn.expect_open()
            conn.send(open_msg())
        else:
            await conn.establish()
        conn.send(case.send)
        note = await conn.until_notification()
        results[case.name] = (note.code, note.subcode, note.data)

    return script


async def silent_peer(conn: PeerConn) -> None:
    """Establish with hold time 3 s, then say nothing: expect Hold Timer Expired."""
    await conn.establish(hold=3)
    loop = asyncio.get_running_loop()
    start = loop.time()
    note = await conn.until_notification(timeout=10)
    waited = str(loop.time() - start).encode()
    conn.received.append(SeenNotification(note.code, note.subcode, waited))


async def notify_at_open(conn: PeerConn) -> None:
    """A NOTIFICATION instead of OPEN: the session must not answer with one of its own."""
    await conn.expect_open()
    conn.send(notification(6, 5))
    await conn.until_eof()
    assert not any(isinstance(msg, SeenNotification) for msg in conn.received)


def test_hostile_peer_gets_the_right_notifications(
    link: PeeringLink, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="metallb_py.bgp")
    router = start_router("frr", link, tmp_path, 64500, [Neighbor(link.node_v4, 64512)])
    assert isinstance(router, FrrRouter)
    results: dict[str, tuple[int, int, bytes]] = {}
    silent_conn: list[PeerConn] = []

    async def silent(conn: PeerConn) -> None:
        silent_conn.append(conn)
        await silent_peer(conn)

    kept_results: dict[str, list[Seen]] = {}
    scripts = (
        [scripted(c, results) for c in CASES]
        + [kept(name, data, kept_results) for name, data in KEPT.items()]
        + [silent, notify_at_open]
    )

    async def main() -> None:
        good = session(link, Peer(64512, 64500, ipaddress.ip_address(link.router_v4)))
        good.set_routes(ROUTES)
        await good.wait_flushed(30)
        downs: list[str] = []

        async def watch() -> None:
            while True:
                if not good.stats.up:
                    downs.append(good.stats.last_error)
                await asyncio.sleep(0.02)

        watcher = asyncio.create_task(watch())
        peer = ScriptedPeer(scripts)
        listener = LocalHost(link.node.name).run(
            lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        )
        listener.bind((link.node_v4, PORT))
        listener.setblocking(False)
        await peer.start(listener)
        hostile = session(
            link,
            Peer(64512, 64500, ipaddress.ip_address(link.node_v4), port=PORT),
            sleep=FastSleep(cap=0.05),
        )
        hostile.set_routes(ROUTES[:1])
        # Every scripted connection, then one more: the session is still reconnecting.
        await peer.wait_connections(len(scripts) + 1, timeout=90)
        await hostile.wait_established(10)
        assert not hostile.closed
        await hostile.close()
        await peer.close()
        watcher.cancel()
        assert not downs, downs
        assert good.stats.up and good.stats.established_count == 1
        assert good.stats.updates_sent == 4 + 2
        prefixes = set(router.routes("ipv4")) | set(router.routes("ipv6"))
        assert prefixes == {str(r.prefix) for r in ROUTES}
        await good.close()
        assert not peer.errors, peer.errors

    run(main(), timeout=150)
    for case in CASES:
        code, subcode, data = results[case.name]
        assert (code, subcode) == (case.code, case.subcode), case.name
        if case.data is not None:
            assert data == case.data, case.name
        assert (
            f"sent NOTIFICATION {case.code}/{case.subcode} {RFC_NAMES[(case.code, case.subcode)]}"
            in caplog.text
        )
    assert set(kept_results) == set(KEPT)
    for name, received in kept_results.items():
        assert not any(isinstance(x, SeenNotification) for x in received), name
    assert "handled by treat-as-withdraw (RFC 7606), no NOTIFICATION sent" in caplog.text
    [conn] = silent_conn
    note = conn.received[-1]
    assert isinstance(note, SeenNotification) and (note.code, note.subcode) == (4, 0)
    assert 2.5 <= float(note.data) <= 4.5
    assert "peer sent NOTIFICATION 6/5 Cease / Connection Rejected" in caplog.text

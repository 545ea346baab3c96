"""Graceful restart (RFC 4724) without namespaces: the capability on the wire, read and written
by scapy as the independent side, and the session's behaviour against a scripted peer on
loopback (Restart State bit, no Cease on a graceful close, first table held for the complete
route set). docs/bgp.md, "Graceful restart"."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from metallb_py.bgp import messages as m
from metallb_py.bgp.session import BgpSession
from metallb_py.config.model import Peer
from tests.bgp.peer_wire import (
    Seen,
    SeenKeepalive,
    SeenNotification,
    SeenOpen,
    SeenUpdate,
    open_message,
    read_graceful_restart,
    read_message,
)
from tests.bgp.scripted_peer import PeerConn, ScriptedPeer
from tests.bgp.test_session_unit import run, start_peer

V4 = ipaddress.IPv4Address
LOOPBACK = ipaddress.ip_address("127.0.0.1")
FRR_LIKE_GR = (0, 120, ((1, 1, 0), (2, 1, 0)))
"""A helper's capability as FRR sends it: no flags, 120 s, both families without F."""


def gr_capabilities(seen: SeenOpen) -> list[bytes]:
    return [value for code, value in seen.capabilities if code == 64]


# --- the codec ---------------------------------------------------------------------------------


def test_our_capability_as_scapy_reads_it() -> None:
    ours = m.GracefulRestart(
        120, restarted=True, families=((m.IPV4_UNICAST, True), (m.IPV6_UNICAST, True))
    )
    data = m.encode_open(64512, 90, V4("192.0.2.11"), graceful_restart=ours)
    seen = read_message(data)
    assert isinstance(seen, SeenOpen)
    [value] = gr_capabilities(seen)
    assert len(value) == 2 + 2 * 4
    # R is the top bit of the 4 flag bits; F the top bit of a family's flags.
    assert read_graceful_restart(value) == (0b1000, 120, ((1, 1, 0x80), (2, 1, 0x80)))
    # The other capabilities are still there, in one parameter.
    assert [code for code, _ in seen.capabilities] == [1, 1, 2, 64, 65]
    decoded = m.decode_message(data)
    assert isinstance(decoded, m.Open) and decoded.graceful_restart == ours


def test_restart_state_clear_and_the_largest_restart_time() -> None:
    ours = m.GracefulRestart(4095, families=((m.IPV4_UNICAST, False),))
    assert read_graceful_restart(ours.encode()) == (0, 4095, ((1, 1, 0),))
    # Byte by byte: flags 0 and 4095 in 16 bits, AFI 1, SAFI 1, flags 0.
    assert ours.encode() == bytes.fromhex("0fff" + "0001" + "01" + "00")
    with pytest.raises(ValueError):
        m.GracefulRestart(4096).encode()


def test_open_without_graceful_restart_has_no_capability_64() -> None:
    seen = read_message(m.encode_open(64512, 90, V4("192.0.2.11")))
    assert isinstance(seen, SeenOpen) and gr_capabilities(seen) == []


def test_a_peer_capability_written_by_scapy_is_read() -> None:
    # R and N (RFC 8538) set, 300 s, IPv4 with F, IPv6 without.
    data = open_message(graceful_restart=(0b1100, 300, ((1, 1, 0x80), (2, 1, 0))))
    decoded = m.decode_message(data)
    assert isinstance(decoded, m.Open)
    assert decoded.graceful_restart == m.GracefulRestart(
        300, restarted=True, families=((m.IPV4_UNICAST, True), (m.IPV6_UNICAST, False))
    )


def test_helper_only_capability_and_lenient_reading() -> None:
    # FRR in helper mode sends the capability with no families.
    decoded = m.decode_message(open_message(graceful_restart=(0, 120, ())))
    assert isinstance(decoded, m.Open)
    assert decoded.graceful_restart == m.GracefulRestart(120)
    assert m.decode_message(open_message()).graceful_restart is None  # type: ignore[union-attr]
    # Hand-written values: too short is no capability; a partial tuple is dropped; the last of
    # two capabilities counts.
    assert m.GracefulRestart.decode(b"\x00") is None
    assert m.GracefulRestart.decode(bytes.fromhex("0078" + "000101" + "80" + "0002")) == (
        m.GracefulRestart(120, families=((m.IPV4_UNICAST, True),))
    )
    two = m.Open(
        4,
        64500,
        90,
        V4("192.0.2.1"),
        (m.Capability(64, bytes.fromhex("0010")), m.Capability(64, bytes.fromhex("8020"))),
    )
    assert two.graceful_restart == m.GracefulRestart(32, restarted=True)


# --- the session against a scripted peer ------------------------------------------------------


def gr_peer(port: int, restart_time: int | None = 120) -> Peer:
    return Peer(64512, 64500, LOOPBACK, port=port, graceful_restart_time=restart_time)


ROUTE = m.Route(ipaddress.ip_network("2001:db8:5::/64"))


def test_restart_state_only_before_the_first_established_session() -> None:
    """R=1 in the OPENs of a new session object (a new process), R=0 after it was once up."""

    async def main() -> list[SeenOpen]:
        opens: list[SeenOpen] = []

        async def up_then_drop(conn: PeerConn) -> None:
            opens.append(await conn.establish(graceful_restart=FRR_LIKE_GR))
            await conn.until_end_of_rib()

        async def hold(conn: PeerConn) -> None:
            opens.append(await conn.establish(graceful_restart=FRR_LIKE_GR))
            await conn.until_eof()

        peer = ScriptedPeer([up_then_drop, hold])
        port = await start_peer(peer)
        session = BgpSession(gr_peer(port, 300), "n")
        await peer.wait_connections(2, 20)
        await asyncio.wait_for(session.wait_established(10), 10)
        await session.close()
        await peer.close()
        assert not peer.errors, peer.errors
        return opens

    opens = run(main())
    families = ((1, 1, 0x80), (2, 1, 0x80))
    assert [read_graceful_restart(v) for o in opens for v in gr_capabilities(o)] == [
        (0b1000, 300, families),
        (0, 300, families),
    ]


async def close_and_watch(
    restart_time: int | None, peer_gr: bool, graceful: bool
) -> tuple[list[Seen], bool]:
    """Establish, take the table, close the session; what the peer got after the table, and
    whether the connection ended (EOF)."""
    after: list[Seen] = []
    ended = asyncio.Event()

    async def watch(conn: PeerConn) -> None:
        await conn.establish(graceful_restart=FRR_LIKE_GR if peer_gr else None)
        await conn.until_end_of_rib()
        try:
            while True:
                after.append(await conn.read(10))
        except (asyncio.IncompleteReadError, ConnectionError):
            ended.set()

    peer = ScriptedPeer([watch])
    port = await start_peer(peer)
    session = BgpSession(gr_peer(port, restart_time), "n")
    session.set_routes([ROUTE])
    await session.wait_flushed(10)
    await session.close(m.CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, graceful=graceful)
    await asyncio.wait_for(peer.done[0].wait(), 10)
    await peer.close()
    return after, ended.is_set()


@pytest.mark.parametrize(
    ("restart_time", "peer_gr", "graceful", "cease"),
    [
        (120, True, True, False),  # negotiated, process restarting: quiet close
        (120, False, True, True),  # the peer did not offer it: Cease as before
        (None, True, True, True),  # not configured: Cease as before
        (120, True, False, True),  # negotiated but the peer was removed: Cease
    ],
)
def test_graceful_close_sends_no_cease_only_when_negotiated(
    restart_time: int | None, peer_gr: bool, graceful: bool, cease: bool
) -> None:
    after, ended = run(close_and_watch(restart_time, peer_gr, graceful))
    assert ended
    notes = [(n.code, n.subcode) for n in after if isinstance(n, SeenNotification)]
    assert notes == ([(6, 2)] if cease else [])
    assert all(isinstance(x, SeenNotification | SeenKeepalive) for x in after), after


def test_first_table_and_end_of_rib_wait_for_routes_complete() -> None:
    async def main() -> None:
        got: list[Seen] = []
        release = asyncio.Event()

        async def watch(conn: PeerConn) -> None:
            await conn.establish(graceful_restart=FRR_LIKE_GR)
            with pytest.raises(TimeoutError):  # nothing while the routes are incomplete
                got.append(await conn.read(1.0))
            release.set()
            await conn.until_end_of_rib()
            got.extend(conn.received)
            await conn.until_eof()

        peer = ScriptedPeer([watch])
        port = await start_peer(peer)
        session = BgpSession(gr_peer(port), "n", wait_for_routes=True)
        session.set_routes([])  # the start-up set, not complete yet
        await session.wait_established(10)
        session.set_routes([ROUTE])
        await asyncio.wait_for(release.wait(), 10)
        assert not session.flushed.is_set()
        session.routes_complete()
        await session.wait_flushed(10)
        await session.close()
        await peer.close()
        assert not peer.errors, peer.errors
        updates = [u for u in got if isinstance(u, SeenUpdate)]
        # The table, then one End-of-RIB per family, and nothing before the table.
        assert [u.announced for u in updates[:1]] == [("2001:db8:5::/64",)]
        assert [u.is_end_of_rib for u in updates] == [False, True, True]

    run(main())


@pytest.mark.parametrize(
    ("peer_closes_after", "at_least", "at_most"), [(0.15, 0.15, 1.0), (None, 0.25, 1.0)]
)
def test_graceful_close_waits_for_the_peer_to_close_its_side(
    peer_closes_after: float | None, at_least: float, at_most: float
) -> None:
    """Our FIN first; close() returns once the peer closed too (it has then seen the session
    end and keeps our routes), or after GRACEFUL_CLOSE_WAIT (0.3 s) if it does not."""

    async def main() -> float:
        got_eof = asyncio.Event()

        async def watch(conn: PeerConn) -> None:
            await conn.establish(graceful_restart=FRR_LIKE_GR)
            await conn.until_end_of_rib()
            await conn.until_eof(timeout=10)
            got_eof.set()
            if peer_closes_after is None:
                await asyncio.sleep(3)  # never answers our FIN within the wait
            else:
                await asyncio.sleep(peer_closes_after)

        peer = ScriptedPeer([watch])
        port = await start_peer(peer)
        session = BgpSession(gr_peer(port), "n")
        session.set_routes([ROUTE])
        await session.wait_flushed(10)
        started = asyncio.get_running_loop().time()
        await session.close(m.CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, graceful=True)
        took = asyncio.get_running_loop().time() - started
        assert got_eof.is_set()  # our FIN was there before close() returned
        await asyncio.wait_for(peer.done[0].wait(), 10)
        await peer.close()
        assert not peer.errors, peer.errors
        return took

    took = run(main())
    assert at_least <= took <= at_most, took

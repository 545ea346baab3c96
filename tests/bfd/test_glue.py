"""The speaker's BFD glue (`PeerSessions`) with stand-in BGP sessions, its sockets in a test
namespace (`link`): two config peers to one address (other ports, allowed in native mode)
share one BFD session, as the router has one per address pair; its Down drops both BGP
sessions; it ends only with the last peer using it; its packets are counted once."""

from __future__ import annotations

import asyncio

from metallb_lab.routers import PeeringLink
from metallb_py.bfd.packet import ControlPacket, State
from metallb_py.bgp.host import LocalHost
from metallb_py.config import BgpType, parse_config
from metallb_py.speaker.bgp_sessions import PeerSessions
from tests.bgp.conftest import run

PEER_DISCRIMINATOR = 0x77


class StandInSession:
    """What the glue asks of a BGP session: Established, its label, `drop`."""

    def __init__(self, label: str) -> None:
        self.established = asyncio.Event()
        self.established.set()
        self.peer_label = label
        self.dropped: list[str] = []

    def drop(self, reason: str) -> None:
        self.dropped.append(reason)


def config(address: str, ports: list[int]) -> str:
    text = "peers:\n"
    for port in ports:
        text += (
            f"- peer-address: {address}\n  peer-port: {port}\n  peer-asn: 64500\n"
            "  my-asn: 64512\n  bfd-profile: fast\n"
        )
    return text + (
        "bfd-profiles:\n- name: fast\n  transmit-interval: 100\n  receive-interval: 100\n"
        "address-pools:\n- name: p\n  protocol: bgp\n  addresses: [198.51.100.0/24]\n"
    )


def test_two_peers_to_one_address_share_one_bfd_session(link: PeeringLink) -> None:
    address = link.router_v4
    both = parse_config(config(address, [179, 1179]), BgpType.NATIVE)
    one = parse_config(config(address, [1179]), BgpType.NATIVE)
    first, second = both.peers

    async def scenario() -> None:
        sessions = PeerSessions("node-1", list, host=LocalHost(link.node.name))
        stand_ins = {first: StandInSession("a"), second: StandInSession("b")}
        sessions.sessions = dict(stand_ins)  # type: ignore[arg-type]
        try:
            sessions._sync_bfd(both)
            (bfd,) = {id(b): b for _, b in sessions.bfd.values()}.values()
            assert set(sessions.bfd) == {first, second}
            assert sessions.bfd_service is not None and sessions.bfd_service.peers == [bfd]
            # the router's session comes Up, then says Down: both BGP sessions go
            mine = bfd.session.my_discriminator

            def packet(state: State, your: int) -> ControlPacket:
                return ControlPacket(state, PEER_DISCRIMINATOR, your, 1_000_000, 100_000, 3)

            bfd.receive(packet(State.DOWN, 0))
            bfd.receive(packet(State.UP, mine))
            assert bfd.session.state is State.UP
            (stats,) = sessions.bfd_stats()
            assert stats.up_events == 1 and stats.control_packets_in == 2  # counted once
            bfd.receive(packet(State.DOWN, mine))
            assert [len(s.dropped) for s in stand_ins.values()] == [1, 1]
            # one peer leaves: the session stays for the other
            sessions.sessions = {second: stand_ins[second]}  # type: ignore[dict-item]
            sessions._sync_bfd(one)
            assert list(sessions.bfd) == [second] and sessions.bfd_service.peers == [bfd]
            assert bfd.session.state is not State.ADMIN_DOWN
            sessions.sessions = {}
            sessions._sync_bfd(None)
            assert sessions.bfd == {} and bfd.session.state is State.ADMIN_DOWN
        finally:
            sessions.stop_bfd()

    run(scenario())

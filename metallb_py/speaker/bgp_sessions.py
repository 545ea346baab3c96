"""The speaker's BGP sessions and the routes it gives them: which peers have a session on this
node, one coalesced push of the node's route set after a burst of changes, and a BFD session
beside each BGP session whose peer names a `bfd-profile` (peers to the same address share one;
BFD going Down drops the BGP session at once; docs/bgp.md, "BFD").

Glue between the pure decisions (`decision.plan_sessions`, `decision.speaker_routes`),
`bgp.session.BgpSession` and `bfd.transport`; runs on the speaker's event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from metallb_py.bfd.packet import State
from metallb_py.bfd.session import Settings, Transition
from metallb_py.bfd.transport import DEFAULT_MINIMUM_TTL, BfdPeer, BfdService
from metallb_py.bgp import messages as bgp_messages
from metallb_py.bgp.host import LocalHost
from metallb_py.bgp.session import BgpSession
from metallb_py.config import BfdProfile, Config, IPAddress, Peer
from metallb_py.logs import kv
from metallb_py.metrics.metallb import BfdPeerStats, BgpPeerStats
from metallb_py.speaker import decision as d

log = logging.getLogger("metallb.speaker")

ROUTE_PUSH_DELAY = 0.005
"""Route changes within this many seconds go out in one push."""
BFD_DEFAULT_INTERVAL_MS = 300
BFD_DEFAULT_DETECT_MULTIPLIER = 3
"""A profile's omitted fields mean FRR's defaults (docs/config.md), in native mode too."""


BfdPath = tuple[IPAddress, IPAddress | None, bool]
"""Peer address, source address, multihop: what a BFD session is for."""


def bfd_path(peer: Peer) -> BfdPath:
    """Config peers with the same path share one BFD session: the router has one session per
    address pair (RFC 5881), so two of ours (two peers to one address, on other ports or with
    other timers) would take turns being the one it answers."""
    return (peer.address, peer.source_address, peer.ebgp_multihop)


def bfd_settings(profile: BfdProfile) -> tuple[Settings, int]:
    """The session timers (microseconds) and minimum TTL a profile asks for."""
    settings = Settings(
        desired_min_tx=(profile.transmit_interval or BFD_DEFAULT_INTERVAL_MS) * 1000,
        required_min_rx=(profile.receive_interval or BFD_DEFAULT_INTERVAL_MS) * 1000,
        detect_mult=profile.detect_multiplier or BFD_DEFAULT_DETECT_MULTIPLIER,
        passive=profile.passive_mode,
    )
    return settings, profile.minimum_ttl or DEFAULT_MINIMUM_TTL


class PeerSessions:
    """The open sessions, keyed by the config peer they serve.

    `wanted_routes` is asked at push time for the routes this node announces, so a push
    scheduled before a burst of reconciles sends the state after it.
    """

    def __init__(
        self,
        node_name: str,
        wanted_routes: Callable[[], Iterable[d.AdvertisedRoute]],
        *,
        host: LocalHost | None = None,
    ) -> None:
        self.node_name = node_name
        self.host = host or LocalHost()
        """Where the sessions' sockets live (tests: a node's network namespace)."""
        self.sessions: dict[Peer, BgpSession] = {}
        self.bfd: dict[Peer, tuple[BfdProfile, BfdPeer]] = {}
        """The BFD session beside a BGP session, with the profile the peer names. Peers with
        the same `bfd_path` share one session, which runs the first one's profile."""
        self.bfd_service: BfdService | None = None
        self._bfd_profiles: dict[str, BfdProfile] = {}
        self._bfd_stopped = False
        self._bfd_waits: dict[Peer, asyncio.Task[None]] = {}
        """BFD sessions waiting for their BGP session's first Established (`_sync_bfd`)."""
        self._wanted_routes = wanted_routes
        self._route_push: asyncio.TimerHandle | None = None
        self.routes_complete = False
        """The start-up reconcile is over; until then sessions hold their first table and
        End-of-RIB (docs/bgp.md, "Graceful restart")."""

    @property
    def any_selected(self) -> bool:
        """At least one config peer has a session on this node."""
        return bool(self.sessions)

    async def sync(self, config: Config | None, labels: Mapping[str, str] | None) -> None:
        """Open/close sessions for the config and this Node's labels (`labels` None: the Node
        was not seen yet, docs/bgp.md "Speaker integration").

        Peers are matched by full equality, so a peer whose any field changed is closed (Cease
        6/3 "Peer De-configured") and its replacement opened; untouched peers keep their
        sessions. Closing runs concurrently (each waits up to 1 s for its NOTIFICATION to
        leave); new sessions get the full route set at once.
        """
        plan = d.plan_sessions(self.sessions, config, labels)
        closing = []
        for peer, reason in plan.close:
            session = self.sessions.pop(peer)
            log.info(
                "closing BGP session",
                extra=kv(op="peerRemoved", peer=session.peer_label, reason=reason),
            )
            closing.append(session.close())
        if closing:
            await asyncio.gather(*closing, return_exceptions=True)
        for peer in plan.open:
            session = BgpSession(
                peer, self.node_name, host=self.host, wait_for_routes=not self.routes_complete
            )
            self.sessions[peer] = session
            log.info(
                "BGP session added",
                extra=kv(
                    op="peerAdded",
                    peer=session.peer_label,
                    my_asn=peer.my_asn,
                    peer_asn=peer.peer_asn,
                ),
            )
        self._sync_bfd(config)
        if plan.changed:
            self.push_routes()

    def _sync_bfd(self, config: Config | None) -> None:
        """BFD sessions for exactly the open BGP sessions whose peer names a profile; a
        profile whose values changed is applied to the running session (a Poll Sequence).

        A BFD session starts once its BGP session is first Established, then runs on its own
        (BGP reconnects leave it alone): FRR re-creates its BFD session for a neighbour when the
        BGP session comes up (it learns the local address then), and a BFD session already Up
        would go Down with it, taking FRR's new BGP session down at once (Cease/BFD Down).
        A session that cannot open its sockets is logged and tried again at the next sync."""
        self._bfd_profiles = {p.name: p for p in config.bfd_profiles} if config else {}
        for peer in list(self.bfd):
            if peer not in self.sessions or peer.bfd_profile not in self._bfd_profiles:
                _, bfd = self.bfd.pop(peer)
                if any(b is bfd for _, b in self.bfd.values()):
                    continue  # another peer still uses it
                log.info("BFD session removed", extra=kv(op="bfdRemoved", peer=bfd.label))
                assert self.bfd_service is not None
                self.bfd_service.remove(bfd)
        for peer in list(self._bfd_waits):
            if peer not in self.sessions or peer.bfd_profile not in self._bfd_profiles:
                self._bfd_waits.pop(peer).cancel()
        for peer, session in self.sessions.items():
            profile = self._bfd_profiles.get(peer.bfd_profile)
            if profile is None or peer in self._bfd_waits:
                continue  # no BFD, or it starts with the profile in force then
            held = self.bfd.get(peer)
            if held is not None:
                self.bfd[peer] = (profile, held[1])
            elif session.established.is_set():
                self._start_bfd(peer, session)
            else:
                self._bfd_waits[peer] = asyncio.get_running_loop().create_task(
                    self._start_bfd_when_established(peer, session),
                    name=f"bfd-wait-{session.peer_label}",
                )
        for bfd, profile in self._bfd_owner_profiles().items():
            bfd.update_settings(*bfd_settings(profile))  # a no-op when nothing changed

    def _bfd_owner_profiles(self) -> dict[BfdPeer, BfdProfile]:
        """Each BFD session and the profile it runs: its first peer's."""
        owners: dict[BfdPeer, BfdProfile] = {}
        for profile, bfd in self.bfd.values():
            owners.setdefault(bfd, profile)
        return owners

    async def _start_bfd_when_established(self, peer: Peer, session: BgpSession) -> None:
        await session.established.wait()
        self._bfd_waits.pop(peer, None)
        if self.sessions.get(peer) is session:
            self._start_bfd(peer, session)

    def _start_bfd(self, peer: Peer, session: BgpSession) -> None:
        profile = self._bfd_profiles.get(peer.bfd_profile)
        if profile is None or peer in self.bfd or self._bfd_stopped:
            return
        shared = next((b for p, (_, b) in self.bfd.items() if bfd_path(p) == bfd_path(peer)), None)
        if shared is not None:
            self.bfd[peer] = (profile, shared)
            log.info("BFD session shared", extra=kv(op="bfdAdded", peer=shared.label))
            return
        settings, minimum_ttl = bfd_settings(profile)
        if self.bfd_service is None:
            self.bfd_service = BfdService(self.host.run)
        try:
            bfd = self.bfd_service.add(
                peer.address,
                peer.source_address,
                multihop=peer.ebgp_multihop,
                settings=settings,
                minimum_ttl=minimum_ttl,
                on_transition=self._bfd_changed,
            )
        except OSError as exc:
            log.error(
                "cannot start BFD session",
                extra=kv(op="bfdAdded", peer=session.peer_label, error=str(exc)),
            )
            return
        self.bfd[peer] = (profile, bfd)
        log.info("BFD session added", extra=kv(op="bfdAdded", peer=bfd.label, profile=profile.name))

    def _bfd_changed(self, bfd: BfdPeer, t: Transition) -> None:
        """Up -> Down drops the BGP sessions it serves now, unless the peer went AdminDown on
        purpose (RFC 5882: its clients stay up); our own AdminDown (stopping) is not a
        failure."""
        if t.old is State.UP and t.new is State.DOWN and t.peer_state is not State.ADMIN_DOWN:
            reason = f"BFD session down ({t.diag.name.lower().replace('_', ' ')})"
            for peer, (_, held) in list(self.bfd.items()):
                session = self.sessions.get(peer)
                if held is bfd and session is not None:
                    session.drop(reason)

    def start_up_done(self) -> None:
        """Every Service was reconciled once: the route set is whole, first tables may go."""
        if self.routes_complete:
            return
        self.routes_complete = True
        self.push_routes()
        for session in self.sessions.values():
            session.routes_complete()

    def schedule_push(self) -> None:
        """Coalesce route changes: one push for a burst of reconciles (a no-op outside the
        event loop)."""
        if self._route_push is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._route_push = loop.call_later(ROUTE_PUSH_DELAY, self.push_routes)

    def push_routes(self) -> None:
        """Give every session the union of this node's BGP routes (sessions send only the
        difference)."""
        if self._route_push is not None:
            self._route_push.cancel()
            self._route_push = None
        routes = [
            bgp_messages.Route(r.prefix, r.localpref, r.communities) for r in self._wanted_routes()
        ]
        for session in self.sessions.values():
            session.set_routes(routes)

    async def close_all(self) -> None:
        """The process stops: Cease 6/2 "Administrative Shutdown" to every peer, concurrently;
        a peer with graceful restart negotiated gets none and keeps our routes (docs/bgp.md)."""
        sessions = list(self.sessions.values())
        self.sessions.clear()
        await asyncio.gather(
            *(
                s.close(bgp_messages.CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, graceful=True)
                for s in sessions
            ),
            return_exceptions=True,
        )
        self.stop_bfd()

    def stop_bfd(self) -> None:
        """AdminDown to every BFD peer and no new BFD session. Only once the BGP sessions are
        closed: FRR 8.4 answers a peer's AdminDown on an established session with Cease/BFD
        Down (RFC 5882 asks it not to), which would also end graceful restart
        (docs/bgp.md, "BFD")."""
        self._bfd_stopped = True
        for wait in self._bfd_waits.values():
            wait.cancel()
        self._bfd_waits.clear()
        self.bfd.clear()
        if self.bfd_service is not None:
            self.bfd_service.close()
            self.bfd_service = None

    def stats(self) -> list[BgpPeerStats]:
        """One sample set per `peer` label; a closed session is gone from `sessions`, so its
        series disappear with it."""
        return merge_peer_stats(
            BgpPeerStats(
                s.peer_label,
                s.stats.up,
                s.stats.updates_sent,
                s.stats.announced_prefixes,
                s.stats.pending_prefixes,
            )
            for s in list(self.sessions.values())
        )

    def bfd_stats(self) -> list[BfdPeerStats]:
        """The `metallb_bfd_*` samples: one set per BFD peer address; a removed session's
        series disappear with it."""
        return merge_bfd_stats(
            BfdPeerStats(
                bfd.label,
                bfd.session.state is State.UP,
                bfd.session.counters.packets_in,
                bfd.session.counters.packets_out,
                bfd.session.counters.up_events,
                bfd.session.counters.down_events,
            )
            for bfd in self._bfd_owner_profiles()
        )


PeerStats = TypeVar("PeerStats", BgpPeerStats, BfdPeerStats)


def _one_per_peer(
    stats: Iterable[PeerStats], combine: Callable[[PeerStats, PeerStats], PeerStats]
) -> list[PeerStats]:
    """One entry per `peer` label, sorted by it; entries sharing a label are combined."""
    merged: dict[str, PeerStats] = {}
    for s in stats:
        held = merged.get(s.peer)
        merged[s.peer] = s if held is None else combine(held, s)
    return [merged[p] for p in sorted(merged)]


def merge_bfd_stats(stats: Iterable[BfdPeerStats]) -> list[BfdPeerStats]:
    """One entry per `peer` address (two config peers may share it): up only while all are
    up, counters summed."""
    return _one_per_peer(
        stats,
        lambda a, b: BfdPeerStats(
            a.peer,
            a.up and b.up,
            a.control_packets_in + b.control_packets_in,
            a.control_packets_out + b.control_packets_out,
            a.up_events + b.up_events,
            a.down_events + b.down_events,
        ),
    )


def merge_peer_stats(stats: Iterable[BgpPeerStats]) -> list[BgpPeerStats]:
    """One entry per `peer` label. Two config peers may share `host:port` (they differ in
    another field, e.g. source address or hold time); one series each would be a duplicate in
    the exposition, so they merge: up only while all are up, UPDATEs summed, prefix gauges the
    largest."""
    return _one_per_peer(
        stats,
        lambda a, b: BgpPeerStats(
            a.peer,
            a.up and b.up,
            a.updates_sent + b.updates_sent,
            max(a.announced_prefixes, b.announced_prefixes),
            max(a.pending_prefixes, b.pending_prefixes),
        ),
    )

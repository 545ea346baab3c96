"""The speaker's BGP sessions and the routes it gives them: which peers have a session on this
node, and one coalesced push of the node's route set after a burst of changes.

Glue between the pure decisions (`decision.plan_sessions`, `decision.speaker_routes`) and
`bgp.session.BgpSession`; runs on the speaker's event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping

from metallb_py.bgp import messages as bgp_messages
from metallb_py.bgp.session import BgpSession
from metallb_py.config import Config, Peer
from metallb_py.logs import kv
from metallb_py.metrics.metallb import BgpPeerStats
from metallb_py.speaker import decision as d

log = logging.getLogger("metallb.speaker")

ROUTE_PUSH_DELAY = 0.005
"""Route changes within this many seconds go out in one push."""


class PeerSessions:
    """The open sessions, keyed by the config peer they serve.

    `wanted_routes` is asked at push time for the routes this node announces, so a push
    scheduled before a burst of reconciles sends the state after it.
    """

    def __init__(
        self, node_name: str, wanted_routes: Callable[[], Iterable[d.AdvertisedRoute]]
    ) -> None:
        self.node_name = node_name
        self.sessions: dict[Peer, BgpSession] = {}
        self._wanted_routes = wanted_routes
        self._route_push: asyncio.TimerHandle | None = None

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
            session = BgpSession(peer, self.node_name)
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
        if plan.changed:
            self.push_routes()

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
        """The process stops: Cease 6/2 "Administrative Shutdown" to every peer, concurrently."""
        sessions = list(self.sessions.values())
        self.sessions.clear()
        await asyncio.gather(
            *(s.close(bgp_messages.CeaseSubcode.ADMINISTRATIVE_SHUTDOWN) for s in sessions),
            return_exceptions=True,
        )

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


def merge_peer_stats(stats: Iterable[BgpPeerStats]) -> list[BgpPeerStats]:
    """One entry per `peer` label. Two config peers may share `host:port` (they differ in
    another field, e.g. source address or hold time); one series each would be a duplicate in
    the exposition, so they merge: up only while all are up, UPDATEs summed, prefix gauges the
    largest."""
    merged: dict[str, BgpPeerStats] = {}
    for s in stats:
        held = merged.get(s.peer)
        merged[s.peer] = (
            s
            if held is None
            else BgpPeerStats(
                s.peer,
                held.up and s.up,
                held.updates_sent + s.updates_sent,
                max(held.announced_prefixes, s.announced_prefixes),
                max(held.pending_prefixes, s.pending_prefixes),
            )
        )
    return [merged[p] for p in sorted(merged)]

"""Which nodes have a live speaker, as the layer2 election needs it: membership heartbeats when
membership is enabled (docs/membership.md), else Ready Nodes running a speaker Pod as the API
shows them (`nodes.fallback_live_nodes`). Either way the Nodes' Ready condition counts.

Glue: it lists the speaker Pods every POD_POLL_INTERVAL (the heartbeat peers, or the fallback's
input) and calls `on_change` whenever the live set or the partition verdict changes, so the
speaker re-evaluates every Service at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from metallb_py.k8s.informer import Informer
from metallb_py.k8s.objects import (
    Obj,
    is_terminating,
    name_of,
    node_ready,
    string,
    value_at,
)
from metallb_py.logs import kv
from metallb_py.speaker.heartbeat import IPAddress, View
from metallb_py.speaker.membership import Membership
from metallb_py.speaker.nodes import fallback_live_nodes

log = logging.getLogger("metallb.speaker")

POD_POLL_INTERVAL = 10.0
MEMBERSHIP_SETTLE_TIMEOUT = 5.0


class LiveNodes:
    """The live-node set and the partition verdict of one speaker. `await start()` once the
    Node informer synced, run `poll()` as a task, feed `node_changed`, read `view()`."""

    def __init__(
        self,
        node_name: str,
        core: Any,
        nodes: Informer,
        on_change: Callable[[], None],
        *,
        namespace: str,
        ml_labels: str,
        membership_enabled: bool,
        ml_secret_key: str = "",
        ml_bind_addr: str = "",
        ml_bind_port: int = 7946,
        claims: Callable[[], Iterable[IPAddress]] | None = None,
    ) -> None:
        """`claims`: the layer2 IPs this node answers for now (the announcer's), sent in every
        heartbeat so that a peer elected for one of them waits for the handover."""
        self.node_name = node_name
        self.core = core
        self.nodes = nodes
        self.on_change = on_change
        self.namespace = namespace
        self.ml_labels = ml_labels
        self.membership_enabled = membership_enabled
        self.ml_secret_key = ml_secret_key
        self.ml_bind_addr = ml_bind_addr
        self.ml_bind_port = ml_bind_port
        self.claims = claims
        self.membership: Membership | None = None
        self._fallback_live: frozenset[str] = frozenset()
        self._decided_on: tuple[object, ...] | None = None
        self._speaker_pods: list[Obj] = []

    async def start(self) -> None:
        await self._list_speaker_pods()
        if not self.membership_enabled:
            log.warning(
                "membership disabled (--ml-labels/--ml-bindaddr empty): live speakers are taken "
                "from Ready Nodes running a speaker Pod, which notices a crash only after the "
                "Node turns NotReady",
                extra=kv(op="startup"),
            )
            self._refresh_fallback_live()
            return
        self.membership = Membership(
            self.node_name,
            secret=self.ml_secret_key or None,
            bind_host=self.ml_bind_addr,
            port=self.ml_bind_port,
            on_change=self._membership_changed,
            claims=self.claims,
        )
        await self.membership.start()
        for node in self.nodes.items():
            self.membership.set_node_ready(name_of(node), node_ready(node))
        self.membership.set_peers(self._peer_addresses())
        try:
            await asyncio.wait_for(self.membership.wait_settled(), MEMBERSHIP_SETTLE_TIMEOUT)
        except TimeoutError:
            log.warning("membership did not settle within 5 s", extra=kv(op="startup"))

    def _membership_changed(self, view: View) -> None:
        """Re-evaluate only when something the decision reads changed (not, say, one lease of
        a quorum that still holds)."""
        decided_on = (view.live_nodes, view.may_keep, view.may_answer, view.claimed)
        if decided_on != self._decided_on:
            self._decided_on = decided_on
            self.on_change()

    async def stop(self) -> None:
        if self.membership is not None:
            await self.membership.stop()

    async def poll(self) -> None:
        """Re-list the speaker Pods forever (run as a task; cancelled at shutdown)."""
        while True:
            await asyncio.sleep(POD_POLL_INTERVAL)
            await self._list_speaker_pods()
            if self.membership is not None:
                self.membership.set_peers(self._peer_addresses())
            else:
                self._refresh_fallback_live()

    def node_changed(self, key: str, new: Obj | None) -> None:
        """A Node was added, changed or (`new` None) deleted."""
        if self.membership is not None:
            self.membership.set_node_ready(key, node_ready(new) if new is not None else False)
        else:
            self._refresh_fallback_live()

    def view(self) -> tuple[frozenset[str], bool]:
        """The live nodes, and whether this speaker must give up its layer2 `Cluster` IPs: in a
        minority partition, without link, not settled, or without acknowledgements for as long
        as a peer needs to take over (docs/membership.md, "Layer2 lease"); a shorter lapse of
        the lease only closes the responders' gate."""
        if self.membership is not None:
            view = self.membership.view()
            return view.live_nodes, not view.may_keep
        return self._fallback_live, False

    def may_start(self) -> bool:
        """This node holds its layer2 lease now (always without membership)."""
        view = self.membership_view()
        return view is None or view.may_answer

    def membership_view(self) -> View | None:
        """Membership's view at this instant (None without membership)."""
        return self.membership.view() if self.membership is not None else None

    def claimed(self) -> frozenset[IPAddress] | None:
        """Layer2 IPs a live peer answers for (empty without membership; None: unknown)."""
        view = self.membership_view()
        return view.claimed if view is not None else frozenset()

    def _peer_addresses(self) -> dict[str, str]:
        """Node name -> Pod IP of every speaker Pod that is not being deleted."""
        peers = {}
        for pod in self._speaker_pods:
            node = string(value_at(pod, "spec", "nodeName"))
            ip = string(value_at(pod, "status", "podIP"))
            if node and ip and not is_terminating(pod):
                peers[node] = ip
        return peers

    async def _list_speaker_pods(self) -> None:
        if not self.ml_labels:
            self._speaker_pods = []
            return
        try:
            resp: Any = await asyncio.to_thread(
                self.core.list_namespaced_pod,
                self.namespace,
                label_selector=self.ml_labels,
                _preload_content=False,
                _request_timeout=10,
            )
            self._speaker_pods = list(json.loads(resp.data).get("items") or [])
        except Exception as e:
            log.warning("listing speaker pods failed", extra=kv(op="memberDiscovery", error=str(e)))

    def _refresh_fallback_live(self) -> None:
        nodes = self.nodes.items()
        if self.ml_labels:
            live = fallback_live_nodes(nodes, self._speaker_pods)
        else:
            # No way to see speaker Pods: every Ready Node is assumed to run a speaker.
            live = frozenset(name_of(n) for n in nodes if node_ready(n) is True) | {self.node_name}
        if live != self._fallback_live:
            self._fallback_live = live
            self.on_change()

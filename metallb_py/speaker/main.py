"""The `metallb-py speaker` process: glue between the API, the pure decisions and the protocols.

One asyncio loop runs everything that touches the network (layer2 responders, BGP sessions,
membership heartbeats) and the single worker that reconciles queue items in order; informers
run in threads and only enqueue keys. Membership changes re-queue every Service at once, without
the retry rate limiter, so a takeover is decided within one heartbeat deadline
(docs/behaviour-differences.md, "Controller and speaker processes").

Before the first reconcile the speaker waits for its caches and for membership to settle, so it
never elects itself for every IP just because it has not heard the others yet. It starts from the
last config the controller accepted (the store, `metallb_py.k8s.accepted`): the ConfigMap's
config replaces it only if every IP that Services hold under it stays covered, so a restart never
makes the speaker drop an IP a refused config would orphan.

Rooms of their own: the BGP sessions and the route push (`bgp_sessions.py`), which nodes are
live (`live_nodes.py`), the decisions (`decision.py`). The config judgement stays here: it
reads what this process announces and its caches, and its outcome drives the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from metallb_py.config import Config, Protocol
from metallb_py.k8s.component import (
    CONFIG_ITEM,
    ComponentSettings,
    ConfigProcess,
    Item,
    call_in_loop,
)
from metallb_py.k8s.configmap import ConfigLoad, load_configmap
from metallb_py.k8s.informer import Informer
from metallb_py.k8s.objects import Obj, labels_of, string, value_at
from metallb_py.k8s.outcome import Outcome
from metallb_py.layer2.announcer import Announcer
from metallb_py.logs import kv
from metallb_py.metrics.metallb import SpeakerMetrics
from metallb_py.speaker import decision as d
from metallb_py.speaker.bgp_sessions import PeerSessions
from metallb_py.speaker.endpoints import (
    ServiceEndpoints,
    from_endpoint_slices,
    from_endpoints,
    slice_service_name,
)
from metallb_py.speaker.live_nodes import LiveNodes

log = logging.getLogger("metallb.speaker")

NODE_ITEM: Item = ("node", "")
"""The speaker's own queue item: this Node's labels changed (which BGP peers it selects)."""


@dataclass(frozen=True, kw_only=True)
class SpeakerSettings(ComponentSettings):
    node_name: str
    ml_bind_addr: str = ""
    ml_bind_port: int = 7946
    ml_labels: str = ""
    ml_secret_key: str = ""
    disable_epslices: bool = False
    layer2_interfaces: tuple[str, ...] | None = None
    """Limit layer2 to these interfaces (None: every qualifying interface)."""

    @property
    def membership_enabled(self) -> bool:
        return bool(self.ml_labels and self.ml_bind_addr)


@dataclass
class _Index:
    """Service key -> keys of its EndpointSlices (maintained from informer threads)."""

    by_service: dict[str, set[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def update(self, slice_key: str, old: Obj | None, new: Obj | None) -> set[str]:
        touched = set()
        with self.lock:
            for obj, add in ((old, False), (new, True)):
                if obj is None:
                    continue
                svc = _slice_service_key(obj)
                if not svc:
                    continue
                touched.add(svc)
                keys = self.by_service.setdefault(svc, set())
                if add:
                    keys.add(slice_key)
                else:
                    keys.discard(slice_key)
                    if not keys:
                        del self.by_service[svc]
        return touched

    def slices(self, svc: str) -> list[str]:
        with self.lock:
            return list(self.by_service.get(svc, ()))


def _slice_service_key(obj: Obj) -> str:
    name = slice_service_name(obj)
    ns = string(value_at(obj, "metadata", "namespace"))
    return f"{ns}/{name}" if name and ns else ""


class SpeakerProcess(ConfigProcess[SpeakerSettings]):
    def __init__(self, settings: SpeakerSettings, api_client: Any) -> None:
        super().__init__(settings, api_client, d.COMPONENT, log, event_host=settings.node_name)
        self.announcer = Announcer(
            only_interfaces=settings.layer2_interfaces, gate=self._may_answer_layer2
        )
        self.bgp = PeerSessions(settings.node_name, self._bgp_routes)
        self.metrics = SpeakerMetrics(
            self.registry, self.announcer.stats.snapshot, self.bgp.stats, self.bgp.bfd_stats
        )
        self.config: Config | None = None
        self._config_applied = False
        """Sessions and routes follow `config` (set by `_apply_config`)."""
        self._stored: Config | None = None
        """The last accepted config read from the store at start-up, until the first decision."""
        self.announced: dict[str, d.Announcement] = {}
        self._slice_index = _Index()
        self.nodes = Informer("nodes", self.core.list_node, self._on_node)
        self.live = LiveNodes(
            settings.node_name,
            self.core,
            self.nodes,
            self._live_changed,
            namespace=settings.namespace,
            ml_labels=settings.ml_labels,
            membership_enabled=settings.membership_enabled,
            ml_secret_key=settings.ml_secret_key,
            ml_bind_addr=settings.ml_bind_addr,
            ml_bind_port=settings.ml_bind_port,
            claims=self.announcer.announced,
        )
        self.endpoints: Informer | None = None
        self.use_slices = False

    def informers(self) -> list[Informer]:
        """The config's informers, Nodes, and Endpoints or EndpointSlices once chosen."""
        extra = [self.nodes] if self.endpoints is None else [self.nodes, self.endpoints]
        return super().informers() + extra

    # -- informer callbacks (threads) -----------------------------------------------------------

    def _on_slice(self, key: str, old: Obj | None, new: Obj | None) -> None:
        touched = self._slice_index.update(key, old, new)
        self._enqueue(*(("service", svc) for svc in touched))

    def _on_endpoints(self, key: str, old: Obj | None, new: Obj | None) -> None:
        self._enqueue(("service", key))

    def _on_node(self, key: str, old: Obj | None, new: Obj | None) -> None:
        call_in_loop(self._loop, self._node_changed, key, old, new)

    def _node_changed(self, key: str, old: Obj | None, new: Obj | None) -> None:
        self.live.node_changed(key, new)
        if key == self.settings.node_name and labels_of(old) != labels_of(new):
            self.queue.add(NODE_ITEM)

    # -- life cycle -------------------------------------------------------------------------------

    async def run(self) -> None:
        self._start_serving()
        log.info(
            "speaker starting",
            extra=kv(op="startup", node=self.settings.node_name, port=self.metrics_server.port),
        )
        await self.announcer.start()
        await self._choose_endpoint_source()
        if self._stop.is_set():
            return
        if not await self._start_informers():
            return
        self._take_stored()
        await self.live.start()
        pods_task = asyncio.create_task(self.live.poll())
        self._ready_reason = ""  # ready: caches synced, layer2 sockets and membership up
        self.queue.add(CONFIG_ITEM)
        self.queue.add(NODE_ITEM)
        worker = asyncio.create_task(self._worker())
        try:
            await self._stop.wait()
        finally:
            # Say goodbye also when run() is cancelled. What is still queued is moot: every
            # announcement is withdrawn now.
            self.queue.shutdown()
            pods_task.cancel()
            worker.cancel()
            await asyncio.gather(pods_task, worker, return_exceptions=True)
            await self._shutdown_protocols()

    async def _shutdown_protocols(self) -> None:
        # Stop answering ARP/NDP before membership tells the peers we left: they take the IPs
        # over the moment they hear it (docs/membership.md, "Heal: the handover").
        await self.announcer.close()
        await self.bgp.close_all()
        await self.live.stop()

    async def _choose_endpoint_source(self) -> None:
        """EndpointSlices (discovery.k8s.io/v1) unless `--disable-epslices` or the API server
        answers a probe list with a client error (not 429); then core v1 Endpoints."""
        discovery = client.DiscoveryV1Api(self.api_client)
        delay = 0.2
        while not self.settings.disable_epslices and not self._stop.is_set():
            try:
                # A blocking API call: keep it off the loop, where the responders already run.
                await asyncio.to_thread(
                    discovery.list_endpoint_slice_for_all_namespaces, limit=1, _request_timeout=10
                )
                self.use_slices = True
                break
            except ApiException as e:
                if e.status is not None and e.status < 500 and e.status != 429:
                    log.info(
                        "EndpointSlices not available, using Endpoints",
                        extra=kv(op="startup", error=f"{e.status} {e.reason}"),
                    )
                    break
                error = f"{e.status} {e.reason}"
            except Exception as e:
                error = f"{type(e).__name__}: {e}"
            # The API server is unreachable or failing: retry, as the informers would.
            log.warning(
                "cannot reach the API server; retrying",
                extra=kv(op="startup", error=error, retry_in=round(delay, 1)),
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            delay = min(delay * 2, 10.0)
        if self.use_slices:
            self.endpoints = Informer(
                "endpointslices", discovery.list_endpoint_slice_for_all_namespaces, self._on_slice
            )
        else:
            self.endpoints = Informer(
                "endpoints", self.core.list_endpoints_for_all_namespaces, self._on_endpoints
            )

    # -- re-evaluation ----------------------------------------------------------------------------

    def _reprocess_all(self) -> None:
        super()._reprocess_all()
        for key in list(self.announced):
            self.queue.add(("service", key))

    def _live_changed(self) -> None:
        """The live set, the layer2 lease or the peers' claims changed. Losing the lease must
        stop layer2 answers within its 50 ms margin (docs/membership.md, "Layer2 lease"), so the
        layer2 Services announced here are decided again now, not behind the queue; then
        everything is re-queued as for any change."""
        _, minority = self.live.view()
        if minority:
            for key, record in list(self.announced.items()):
                if record.protocol is Protocol.LAYER2:
                    self._handle_service(key)
        self._reprocess_all()

    def _may_answer_layer2(self, ip: str) -> bool:
        """Asked by the responders before every reply and gratuitous ARP/NA
        (docs/membership.md, "Layer2 lease"): never for an IP a live peer says it answers
        for (at a heal the peer that is not elected withdraws within a round); `Cluster` IPs
        only with the layer2 lease at this instant (a process that stalled past its lease
        must not answer requests queued meanwhile before its timers run); `Local` ones without
        it, as in the decision."""
        view = self.live.membership_view()
        if view is None:
            return True
        return d.answer_allowed(
            ipaddress.ip_address(ip), view.claimed, view.may_answer, lambda: self._local_ip(ip)
        )

    def _local_ip(self, ip: str) -> bool:
        """`ip` belongs to a layer2 Service announced here with `externalTrafficPolicy: Local`."""
        for key, record in self.announced.items():
            if record.protocol is Protocol.LAYER2 and any(str(a) == ip for a in record.ips):
                svc = self.services.get(key)
                if svc is not None and d.traffic_local(svc):
                    return True
        return False

    def _node_view(self) -> d.NodeView:
        live, minority = self.live.view()
        return d.NodeView(
            self.settings.node_name,
            live,
            minority,
            has_bgp_peers=self.bgp.any_selected,
            may_start=self.live.may_start(),
            claimed=self.live.claimed(),
        )

    # -- the worker -------------------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            try:
                outcome = await self._handle(item)
            except Exception:
                log.exception("unexpected error", extra=kv(op="process", item=":".join(item)))
                outcome = Outcome.ERROR
            self._finish(item, outcome)
            if self._config_applied and not len(self.queue):
                self.bgp.start_up_done()  # every Service seen once: BGP tables are whole
            # Let responders, sessions and heartbeats run between items.
            await asyncio.sleep(0)

    async def _handle(self, item: Item) -> Outcome:
        kind, key = item
        if kind == "config":
            return await self._handle_config()
        if kind == "node":
            return await self._handle_node()
        return self._handle_service(key)

    def _take_stored(self) -> None:
        """Start from the stored config until the first decision (`_take_config`)."""
        stored = self._read_store()
        if stored.load is not None and stored.load.config is not None:
            self._stored = stored.load.config

    async def _handle_config(self) -> Outcome:
        outcome = self._take_config(
            load_configmap(self.configmaps.get(self.configmap_key), self.settings.bgp_type)
        )
        self._stored = None
        if self.config is not None and not self._config_applied:
            await self._apply_config()
            if outcome is not Outcome.REPROCESS_ALL:
                self._reprocess_all()
        return outcome

    def _take_config(self, load: ConfigLoad) -> Outcome:
        """Decide which config is in force (judged against what Services hold as well as
        against what this node announces: docs/behaviour-differences.md, "Durable config");
        the caller applies it. The first decision falls back to the stored config."""
        if self.config is None and self._stored is not None:
            current: Config | None = self._stored
            fallback = True
        else:
            current, fallback = self.config, False
        if load.missing:
            if fallback:
                self.config = current
            if not self._configmap_seen:
                self.k8s_metrics.config_stale.set(0)
                log.info(
                    "no config yet: nothing is announced until the ConfigMap exists",
                    extra=kv(op="setConfig"),
                )
                return Outcome.ERROR_NO_RETRY
            self.k8s_metrics.config_stale.set(1)
            log.error("configmap missing: keeping the config in force", extra=kv(op="setConfig"))
            return Outcome.ERROR_NO_RETRY
        self._configmap_seen = True
        if load.config is None:
            if fallback:
                self.config = current
            self.k8s_metrics.config_stale.set(1)
            summary = load.summary()
            if summary != self._last_config_problem:
                self._last_config_problem = summary
                log.error(
                    "config invalid, keeping the previous one",
                    extra=kv(op="setConfig", error=summary),
                )
            return Outcome.SUCCESS
        if load.config == self.config:
            self._blockers.clear()
            self.k8s_metrics.config_stale.set(0)
            return Outcome.SUCCESS
        blockers = d.config_blockers(load.config, self.announced, current, self.services.items())
        if blockers:
            if fallback:
                self.config = current
            self._blockers = {b.service for b in blockers}
            self.k8s_metrics.config_stale.set(1)
            log.error(
                "config refused: Services hold IPs it does not cover; the previous config "
                "stays in force",
                extra=kv(
                    op="setConfig",
                    blockers=len(blockers),
                    first_blockers=self._first_blockers(
                        f"{b.service} [{','.join(map(str, b.ips))}]" for b in blockers
                    ),
                    retry=self.queue.retries(CONFIG_ITEM),
                ),
            )
            return Outcome.ERROR
        self.config = load.config
        self._config_applied = False
        self._blockers.clear()
        self._last_config_problem = ""
        self.k8s_metrics.config_stale.set(0)
        log.info("config loaded", extra=kv(op="setConfig", event="configLoaded"))
        return Outcome.REPROCESS_ALL

    async def _apply_config(self) -> None:
        """Sessions and routes follow the config in force."""
        self._config_applied = True
        await self._sync_sessions()
        # Routes depend on the config too (advertisements, communities, aggregation, a pool's
        # protocol): a Service whose record is unchanged still needs its routes recomputed.
        self.bgp.schedule_push()
        self.k8s_metrics.config_loaded.set(1)

    async def _handle_node(self) -> Outcome:
        had_peers = self.bgp.any_selected
        await self._sync_sessions()
        return Outcome.REPROCESS_ALL if self.bgp.any_selected != had_peers else Outcome.SUCCESS

    async def _sync_sessions(self) -> None:
        """BGP sessions follow the config in force and this Node's labels."""
        own = self.nodes.get(self.settings.node_name)
        await self.bgp.sync(self.config, labels_of(own) if own is not None else None)

    def _handle_service(self, key: str) -> Outcome:
        svc = self.services.get(key)
        endpoints = self._endpoints_of(key)
        current = self.announced.get(key)
        result = d.decide(svc, endpoints, self.config, self._node_view(), current)
        if isinstance(result, d.Unchanged):
            return Outcome.SUCCESS
        if isinstance(result, d.Withdraw):
            if current is not None:
                self._withdraw(key, current, result.replaced or result.reason)
            return Outcome.SUCCESS
        if result.replaced is not None and current is not None:
            self._withdraw(key, current, result.replaced)
            current = None
        new = result.announcement
        if result.changed or current is None:
            if new.protocol is Protocol.LAYER2:
                self.announcer.announce(key, new.ips)
            self.announced[key] = new
            if new.protocol is Protocol.BGP:
                self.bgp.schedule_push()
            self._set_announced_gauge(key, current, new)
            log.info(
                "service announced",
                extra=kv(
                    event="serviceAnnounced",
                    service=key,
                    protocol=str(new.protocol),
                    ips=",".join(map(str, new.ips)),
                ),
            )
        if result.node_assigned and svc is not None:
            self.events.event(
                svc, "Normal", d.EVENT_NODE_ASSIGNED, d.event_message(self.settings.node_name)
            )
        return Outcome.SUCCESS

    def _withdraw(self, key: str, current: d.Announcement, reason: str) -> None:
        self.announced.pop(key, None)
        if current.protocol is Protocol.LAYER2:
            self.announcer.withdraw(key)
        else:
            self.bgp.schedule_push()
        self._set_announced_gauge(key, current, None)
        log.info(
            "service withdrawn", extra=kv(event="serviceWithdrawn", service=key, reason=reason)
        )

    def _set_announced_gauge(
        self, key: str, old: d.Announcement | None, new: d.Announcement | None
    ) -> None:
        """`metallb_speaker_announced` shows what this node tells the network: in BGP mode only
        while the node has a selected peer (`Announcement.assigned`), and the series are
        deleted on withdrawal (docs/behaviour-differences.md, "`metallb_speaker_announced` in
        BGP mode")."""
        node = self.settings.node_name
        before = _gauge_series(old)
        after = _gauge_series(new)
        for protocol, ip in before - after:
            self.metrics.announced.remove(key, protocol, node, ip)
        for protocol, ip in after:
            self.metrics.announced.set(1, key, protocol, node, ip)

    def _endpoints_of(self, key: str) -> ServiceEndpoints | None:
        if self.endpoints is None:
            return None
        if self.use_slices:
            slices = [s for k in self._slice_index.slices(key) if (s := self.endpoints.get(k))]
            if not slices:
                return None
            return from_endpoint_slices(slices, key.split("/", 1)[-1])
        return from_endpoints(self.endpoints.get(key))

    def _bgp_routes(self) -> tuple[d.AdvertisedRoute, ...]:
        """The routes of every BGP Service this node announces (none before a config)."""
        if self.config is None:
            return ()
        return d.speaker_routes(self.config, self.announced)


def _gauge_series(record: d.Announcement | None) -> set[tuple[str, str]]:
    if record is None or (record.protocol is Protocol.BGP and not record.assigned):
        return set()
    return {(str(record.protocol), str(ip)) for ip in record.ips}


def run_speaker(settings: SpeakerSettings, api_client: Any) -> int:
    process = SpeakerProcess(settings, api_client)
    from metallb_py.layer2.responder import Layer2Error

    started = time.monotonic()
    try:
        process.serve()
    except Layer2Error as e:
        log.error("cannot start layer2", extra=kv(op="startup", error=str(e)))
        return 1
    except OSError as e:
        log.error("cannot start", extra=kv(op="startup", error=str(e)))
        return 1
    log.info(
        "speaker stopped", extra=kv(op="shutdown", uptime=round(time.monotonic() - started, 1))
    )
    return 0

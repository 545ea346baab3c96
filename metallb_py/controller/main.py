"""The `metallb-py controller` process: glue between the API and the pure `Controller`.

Start-up order (upstream's, with the restart race closed: docs/behaviour-differences.md,
"Restart race" and "Durable config"):
1. metrics server up (liveness), memberlist Secret ensured if asked;
2. informers on all Services, the ConfigMap and the accepted-config store, until synced;
3. bootstrap in one step: judge the live config against what Services hold (falling back to the
   last accepted config kept in the store, `metallb_py.k8s.accepted`), register every status
   IP, and only then allow any allocation — no Service can be handed an IP another Service
   holds but has not re-registered, and no Service loses its IP because the process restarted;
4. queue every Service and the ConfigMap; one worker processes the queue in order. Every config
   accepted from then on is written to the store (queue item STORE_ITEM, retried on failure;
   a store edited or deleted by hand is rewritten).

Informer threads only enqueue keys (thread-safe hand-off to the asyncio loop); the worker reads
objects from the informer caches, so it always works on the latest version.

One concern, the process's glue, in one module of about 600 lines: the decisions are in
`controller/reconcile.py`, the API calls in `k8s/`; what stays here is the order of start-up,
the worker with its concurrent status writes, and how a config decision is reported (metrics,
logs, events), which share the process's state.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import logging
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from metallb_py.controller.reconcile import COMPONENT, ConfigDecision, Controller, Decision
from metallb_py.k8s import accepted
from metallb_py.k8s.component import CONFIG_ITEM, ComponentSettings, ConfigProcess, Item
from metallb_py.k8s.configmap import ConfigLoad, load_configmap
from metallb_py.k8s.objects import Obj
from metallb_py.k8s.outcome import Outcome
from metallb_py.k8s.writes import StatusConflictError, write_service_status
from metallb_py.logs import kv
from metallb_py.metrics.metallb import PoolUsage, register_allocator_metrics

log = logging.getLogger("metallb.controller")

STORE_ITEM: Item = ("store", "")
"""The controller's own queue item: keep the store equal to the accepted config."""
MAX_WRITES_IN_FLIGHT = 8
EVENT_LIMIT = 512 * 1024
"""Longest event message: a refusal names every blocker, well below etcd's object limit."""
REFUSAL_EVENT_INTERVAL = 30.0
"""A refusal of the same config text is re-announced by event at most this often."""


class StartupError(RuntimeError):
    """The controller cannot start (bad flags, memberlist Secret not creatable)."""


@dataclass(frozen=True, kw_only=True)
class ControllerSettings(ComponentSettings):
    kubeconfig: str | None = None
    ml_secret_name: str = ""
    deployment: str = ""


def ensure_memberlist_secret(
    core: Any, apps: Any, namespace: str, name: str, deployment: str
) -> bool:
    """Create the memberlist Secret (key `secretkey`, 16 random bytes, base64), owned by the
    controller Deployment, unless it exists, as upstream's controller does at start-up when
    `--ml-secret-name` is set. Returns True when it was created."""
    existing = core.list_namespaced_secret(namespace, field_selector=f"metadata.name={name}")
    if existing.items:
        return False
    if not deployment:
        raise StartupError("--ml-secret-name is set but --deployment is empty")
    dep = apps.read_namespaced_deployment(deployment, namespace)
    key = base64.b64encode(secrets.token_bytes(16)).decode().rstrip("=")
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": deployment,
                    "uid": dep.metadata.uid,
                }
            ],
        },
        "data": {"secretkey": base64.b64encode(key.encode()).decode()},
    }
    core.create_namespaced_secret(namespace, body)
    return True


class ControllerProcess(ConfigProcess[ControllerSettings]):
    def __init__(self, settings: ControllerSettings, api_client: Any) -> None:
        super().__init__(settings, api_client, COMPONENT, log)
        self.logic = Controller()
        register_allocator_metrics(self.registry, self._pool_usage)
        self._refusal_event_text: str | None = None
        self._refusal_event_at = 0.0
        self._accepted_text: str | None = None
        self._stored_text_written: str | None = None
        """The text of the config in force if it was accepted (what the store must hold)."""

    # -- metrics ------------------------------------------------------------------------------

    def _pool_usage(self) -> list[PoolUsage]:
        return [
            PoolUsage(pool, s.addresses_total, s.addresses_in_use, s.services_allocated)
            for pool, s in self.logic.allocator.stats().items()
        ]

    def _on_store(self, key: str, old: Obj | None, new: Obj | None) -> None:
        self._enqueue(STORE_ITEM)

    # -- life cycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        self._start_serving()
        log.info("controller starting", extra=kv(op="startup", version=_version(), port=self.port))
        if self.settings.ml_secret_name:
            try:
                created = await asyncio.to_thread(
                    ensure_memberlist_secret,
                    self.core,
                    client.AppsV1Api(self.api_client),
                    self.settings.namespace,
                    self.settings.ml_secret_name,
                    self.settings.deployment,
                )
            except StartupError:
                raise
            except Exception as e:
                raise StartupError(f"cannot create the memberlist secret: {e}") from e
            if created:
                log.info("created memberlist secret", extra=kv(op="startup"))
        if not await self._start_informers():
            return
        self._bootstrap()
        worker = asyncio.create_task(self._worker())
        await self._stop.wait()
        self.queue.shutdown()
        # Exit now: what is still queued is reconciled by the next controller from its lists,
        # and a status write in flight is one PUT (it lands whole or not at all).
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker

    @property
    def port(self) -> int:
        return self.metrics_server.port

    def _bootstrap(self) -> None:
        cm = self.configmaps.get(self.configmap_key)
        load = load_configmap(cm, self.settings.bgp_type)
        stored = self._read_store()
        report = self.logic.bootstrap(
            load.config, self.services.items(), stored.load.config if stored.load else None
        )
        if report.source == "stored":
            self._accepted_text = stored.text
            log.warning(
                "the last accepted config is in force, not the ConfigMap's",
                extra=kv(op="startup", configmap=self.configmap_key, store=self.store_key),
            )
        elif report.live is not None and report.live.accepted:
            self._accepted_text = load.text
        if report.source:
            self.k8s_metrics.config_loaded.set(1)
        self._publish_load(cm, load, report.live)
        for claim in report.refused:
            log.warning(
                "status IP cannot be kept; the Service will be re-allocated",
                extra=kv(
                    op="startup", service=claim.service, ip=",".join(claim.ips), error=claim.reason
                ),
            )
        log.info(
            "caches synced; existing IPs registered",
            extra=kv(
                op="startup",
                config=report.source or "none",
                registered=len(report.registered),
                held=len(report.held),
                refused=len(report.refused),
            ),
        )
        # The cached objects live as long as the process: keep the collector from re-scanning
        # them on every collection (a large share of reconcile time with 50,000 Services).
        gc.freeze()
        self._ready_reason = ""  # ready: caches synced, status IPs registered
        self._reprocess_all()
        self.queue.add(CONFIG_ITEM)
        self.queue.add(STORE_ITEM)

    # -- the worker ---------------------------------------------------------------------------

    async def _worker(self) -> None:
        """Reconcile items one at a time, in order; status writes run concurrently.

        Decisions are sequential (the allocator sees every change in order), but a decision does
        not wait for its status write: up to MAX_WRITES_IN_FLIGHT writes proceed while the next
        Services are reconciled. A Service stays "processing" in the queue until its write
        finished, so two writes of one Service never race.
        """
        slots = asyncio.Semaphore(MAX_WRITES_IN_FLIGHT)
        writes: set[asyncio.Task[None]] = set()
        while True:
            item = await self.queue.get()
            if item is None:
                break
            try:
                if item == CONFIG_ITEM:
                    self._finish(item, self._handle_config())
                    continue
                if item == STORE_ITEM:
                    self._finish(item, await self._handle_store())
                    continue
                key = item[1]
                svc = self.services.get(key)
                decision = self.logic.reconcile(key, svc)
                for entry in decision.log:
                    log.info(
                        entry.get("msg", entry.get("event", "")),
                        extra=kv(service=key, **_no_msg(entry)),
                    )
                if decision.write and svc is not None:
                    await slots.acquire()
                    task = asyncio.create_task(self._write_status(item, svc, decision))
                    writes.add(task)
                    task.add_done_callback(writes.discard)
                    task.add_done_callback(lambda _t: slots.release())
                    continue
                self._emit_events(svc, decision)
                self._finish(item, decision.outcome)
            except Exception:
                log.exception("unexpected error", extra=kv(op="process", item=":".join(item)))
                self._finish(item, Outcome.ERROR)
        await asyncio.gather(*writes, return_exceptions=True)

    async def _write_status(self, item: Item, svc: Obj, decision: Decision) -> None:
        key = item[1]
        assert decision.load_balancer is not None
        outcome = decision.outcome
        try:
            await asyncio.to_thread(write_service_status, self.core, svc, decision.load_balancer)
        except StatusConflictError as e:
            log.info(
                "service changed during status write; retrying",
                extra=kv(service=key, error=str(e)),
            )
            outcome = Outcome.ERROR
        except Exception as e:
            log.warning(
                "failed to update service status",
                extra=kv(op="updateServiceStatus", service=key, error=_api_error(e)),
            )
            outcome = Outcome.ERROR
        else:
            log.info("updated service object", extra=kv(event="serviceUpdated", service=key))
            self._emit_events(svc, decision)
        self._finish(item, outcome)

    def _emit_events(self, svc: Obj | None, decision: Decision) -> None:
        if svc is not None:
            for ev in decision.events:
                self.events.event(svc, ev.type, ev.reason, ev.message)

    def _handle_config(self) -> Outcome:
        cm = self.configmaps.get(self.configmap_key)
        load = load_configmap(cm, self.settings.bgp_type)
        self._configmap_seen = self._configmap_seen or cm is not None
        if load.config is None:
            self._publish_load(cm, load, None)
            return Outcome.ERROR_NO_RETRY if load.missing else Outcome.SUCCESS
        if load.config == self.logic.config and not self._blockers:
            self.k8s_metrics.config_stale.set(0)
            self._accept_text(load.text)
            return Outcome.SUCCESS
        decision = self.logic.set_config(load.config)
        if decision.in_force:
            self.k8s_metrics.config_loaded.set(1)
        if decision.accepted:
            self._accept_text(load.text)
        self._publish_load(cm, load, decision)
        return decision.outcome

    def _accept_text(self, text: str) -> None:
        """Remember the accepted text; the store follows (a comment-only edit too, so the store
        always shows what the ConfigMap says once it is in force)."""
        if text != self._accepted_text:
            self._accepted_text = text
            self.queue.add(STORE_ITEM)

    async def _handle_store(self) -> Outcome:
        """Keep the store equal to the accepted config; a failed write is retried with backoff
        (the config stays in force meanwhile: it was accepted against the Services' IPs)."""
        text = self._accepted_text
        if text is None:
            return Outcome.SUCCESS
        current = self.store.get(self.store_key)
        if accepted.holds(current, text):
            return Outcome.SUCCESS
        if current is not None and self._stored_text_written == text:
            log.warning(
                "the stored accepted config was changed by someone else; rewriting it",
                extra=kv(op="storeConfig", store=self.store_key),
            )
        cm = self.configmaps.get(self.configmap_key) or {}
        source = str((cm.get("metadata") or {}).get("resourceVersion") or "")
        body = accepted.stored_configmap(
            accepted.store_name(self.settings.config_name), self.settings.namespace, text, source
        )
        try:
            await asyncio.to_thread(accepted.write_stored, self.core, body, current)
        except Exception as e:
            log.warning(
                "cannot store the accepted config; retrying",
                extra=kv(op="storeConfig", store=self.store_key, error=_api_error(e)),
            )
            return Outcome.ERROR
        self._stored_text_written = text
        log.info("accepted config stored", extra=kv(op="storeConfig", store=self.store_key))
        return Outcome.SUCCESS

    def _publish_load(
        self, cm: Obj | None, load: ConfigLoad, decision: ConfigDecision | None
    ) -> None:
        """Metrics, logs and (for problems) a Warning event on the ConfigMap."""
        if load.missing:
            if not self._configmap_seen:
                # A fresh install: nothing is stale, MetalLB just has nothing to do yet.
                self.k8s_metrics.config_stale.set(0)
                log.info(
                    "no config yet: MetalLB allocates nothing until the ConfigMap exists",
                    extra=kv(op="setConfig", configmap=self.configmap_key),
                )
                self._config_event(
                    _configmap_ref(self.settings.namespace, self.settings.config_name),
                    "NoConfig",
                    f"waiting for ConfigMap {self.configmap_key} (data key config); "
                    "no address is allocated until it exists",
                    "Normal",
                )
                return
            self.k8s_metrics.config_stale.set(1)
            log.error(
                "configmap missing: keeping the config in force",
                extra=kv(op="setConfig", configmap=self.configmap_key),
            )
            return
        if load.config is None:
            self.k8s_metrics.config_stale.set(1)
            summary = load.summary()
            log.error(
                "config invalid, keeping the previous one",
                extra=kv(op="setConfig", configmap=self.configmap_key, error=summary),
            )
            self._config_event(
                cm, "InvalidConfig", f"config rejected, previous config kept: {summary}"
            )
            self._blockers.clear()
            return
        for warning in load.warnings:
            log.warning("config warning", extra=kv(op="setConfig", warning=str(warning)))
        if decision is None:
            return
        if decision.accepted:
            self.k8s_metrics.config_loaded.set(1)
            self.k8s_metrics.config_stale.set(0)
            self._blockers.clear()
            self._last_config_problem = ""
            log.info("config loaded", extra=kv(op="setConfig", event="configLoaded"))
            return
        self.k8s_metrics.config_stale.set(1)
        self._blockers = {b.service for b in decision.blockers}
        log.error(
            "config refused: Services would lose their IPs; the previous config stays in force"
            if not decision.in_force
            else "config refused: Services hold IPs it does not cover; they keep them",
            extra=kv(
                op="setConfig",
                blockers=len(decision.blockers),
                first_blockers=self._first_blockers(
                    f"{b.service} [{','.join(str(ip) for ip in b.ips)}]: {b.reason}"
                    for b in decision.blockers
                )
                or decision.message,
                retry=self.queue.retries(CONFIG_ITEM),
            ),
        )
        if decision.blockers:
            names = "; ".join(
                f"{b.service} [{', '.join(str(ip) for ip in b.ips)}]: {b.reason}"
                for b in decision.blockers
            )
            message = (
                f"config refused, previous config kept: {len(decision.blockers)} Service(s) "
                f"would lose their IPs: {names}"
                if not decision.in_force
                else f"config refused, Services keep their IPs: {len(decision.blockers)} "
                f"Service(s) hold IPs no pool of this config owns: {names}"
            )
        else:
            message = f"config refused, previous config kept: {decision.message}"
        now = time.monotonic()
        if message != self._last_config_problem and (
            load.text != self._refusal_event_text
            or now - self._refusal_event_at >= REFUSAL_EVENT_INTERVAL
        ):
            self._last_config_problem = message
            self._refusal_event_text, self._refusal_event_at = load.text, now
            self._config_event(cm, "ConfigRefused", message)

    def _config_event(
        self, cm: Obj | None, reason: str, message: str, type_: str = "Warning"
    ) -> None:
        if cm is not None:
            self.events.event(cm, type_, reason, _truncate(message, EVENT_LIMIT))


def _configmap_ref(namespace: str, name: str) -> Obj:
    """An event target for a ConfigMap that does not exist (yet)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"namespace": namespace, "name": name},
    }


def _api_error(e: Exception) -> str:
    if isinstance(e, ApiException):
        return f"{e.status} {e.reason}"
    return f"{type(e).__name__}: {e}"


def _no_msg(entry: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in entry.items() if k != "msg"}


def _truncate(message: str, limit: int = 1024) -> str:
    return message if len(message) <= limit else message[: limit - 3] + "..."


def _version() -> str:
    from metallb_py import __version__

    return __version__


def run_controller(settings: ControllerSettings, api_client: Any) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit code."""
    process = ControllerProcess(settings, api_client)
    try:
        process.serve()
    except StartupError as e:
        log.error("cannot start", extra=kv(op="startup", error=str(e)))
        return 1
    log.info("controller stopped", extra=kv(op="shutdown", pid=os.getpid()))
    return 0

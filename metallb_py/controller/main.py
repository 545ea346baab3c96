"""The `metallb-py controller` process: glue between the API and the pure `Controller`.

Start-up order (spec 3.2, with the restart race of 9.22 closed):
1. metrics server up (liveness), memberlist Secret ensured if asked;
2. informers on all Services and on the ConfigMap, until both caches are synced;
3. bootstrap in one step: parse the config, register every status IP, and only then allow any
   allocation — no Service can be handed an IP another Service holds but has not re-registered;
4. queue every Service and the ConfigMap; one worker processes the queue in order.

Informer threads only enqueue keys (thread-safe hand-off to the asyncio loop); the worker reads
objects from the informer caches, so it always works on the latest version.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import logging
import os
import secrets
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from metallb_py.config import BgpType
from metallb_py.controller.reconcile import COMPONENT, ConfigDecision, Controller, Decision
from metallb_py.k8s.component import call_in_loop, finish_item, run_until_signal
from metallb_py.k8s.configmap import ConfigLoad, load_configmap
from metallb_py.k8s.informer import Informer, Obj
from metallb_py.k8s.workqueue import Outcome, WorkQueue
from metallb_py.k8s.writes import EventRecorder, StatusConflictError, write_service_status
from metallb_py.logs import kv
from metallb_py.metrics import Registry
from metallb_py.metrics.metallb import K8sClientMetrics, PoolUsage, register_allocator_metrics
from metallb_py.metrics.server import MetricsServer

log = logging.getLogger("metallb.controller")

CONFIG_ITEM = ("config", "")
MAX_WRITES_IN_FLIGHT = 8
Item = tuple[str, str]
"""Queue items: ("service", "ns/name") or CONFIG_ITEM."""


class StartupError(RuntimeError):
    """The controller cannot start (bad flags, memberlist Secret not creatable)."""


@dataclass(frozen=True)
class ControllerSettings:
    namespace: str
    config_name: str = "config"
    kubeconfig: str | None = None
    port: int = 7472
    host: str = ""
    ml_secret_name: str = ""
    deployment: str = ""
    bgp_type: BgpType = BgpType.NATIVE
    enable_pprof: bool = False


def ensure_memberlist_secret(
    core: Any, apps: Any, namespace: str, name: str, deployment: str
) -> bool:
    """Spec 3.2 step 2: create the memberlist Secret, owned by the controller Deployment, unless
    it exists. Returns True when it was created."""
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


class ControllerProcess:
    def __init__(self, settings: ControllerSettings, api_client: Any) -> None:
        self.settings = settings
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.logic = Controller()
        self.registry = Registry()
        self.k8s_metrics = K8sClientMetrics(self.registry)
        register_allocator_metrics(self.registry, self._pool_usage)
        self.queue: WorkQueue[Item] = WorkQueue()
        self.events = EventRecorder(self.core, COMPONENT)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready_reason = "informer caches not synced"
        self._blockers: set[str] = set()
        """Services named by the last refused config: their changes retry the config at once."""
        self._last_config_problem = ""
        self._stop = asyncio.Event()
        ns, name = settings.namespace, settings.config_name
        self.services = Informer(
            "services", self.core.list_service_for_all_namespaces, self._on_service
        )
        self.configmaps = Informer(
            "configmap",
            self.core.list_namespaced_config_map,
            self._on_configmap,
            kwargs={"namespace": ns, "field_selector": f"metadata.name={name}"},
        )
        self.metrics_server = MetricsServer(
            self.registry,
            settings.host,
            settings.port,
            readiness=self._readiness,
            enable_pprof=settings.enable_pprof,
        )

    # -- metrics and readiness ---------------------------------------------------------------

    def _pool_usage(self) -> list[PoolUsage]:
        return [
            PoolUsage(pool, s.addresses_total, s.addresses_in_use, s.services_allocated)
            for pool, s in self.logic.allocator.stats().items()
        ]

    def _readiness(self) -> tuple[bool, str]:
        if self._ready_reason:
            return False, self._ready_reason
        if self.logic.config is None:
            return False, "no configuration loaded"
        return True, "ok"

    # -- informer callbacks (informer threads) -----------------------------------------------

    def _enqueue(self, item: Item) -> None:
        call_in_loop(self._loop, self._add, item)

    def _add(self, item: Item) -> None:
        self.queue.add(item)
        if item[0] == "service" and item[1] in self._blockers:
            self.queue.add(CONFIG_ITEM)

    def _on_service(self, key: str, old: Obj | None, new: Obj | None) -> None:
        self._enqueue(("service", key))

    def _on_configmap(self, key: str, old: Obj | None, new: Obj | None) -> None:
        self._enqueue(CONFIG_ITEM)

    # -- life cycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.metrics_server.start()
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
        self.services.start()
        self.configmaps.start()
        while not (self.services.synced and self.configmaps.synced):
            if self._stop.is_set():
                return
            await asyncio.sleep(0.05)
        self._bootstrap()
        worker = asyncio.create_task(self._worker())
        await self._stop.wait()
        self.queue.shutdown()
        await worker

    @property
    def port(self) -> int:
        return self.metrics_server.port

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.services.stop()
        self.configmaps.stop()
        self.events.stop()
        self.metrics_server.stop()

    def _bootstrap(self) -> None:
        cm = self.configmaps.get(self._cm_name())
        load = load_configmap(cm, self.settings.bgp_type)
        report = self.logic.bootstrap(load.config, self.services.items())
        self._publish_load(cm, load, report.config)
        for claim in report.refused:
            log.warning(
                "status IP cannot be kept; the Service will be re-allocated",
                extra=kv(
                    op="startup", service=claim.service, ip=",".join(claim.ips), error=claim.reason
                ),
            )
        log.info(
            "caches synced; existing IPs registered",
            extra=kv(op="startup", registered=len(report.registered), refused=len(report.refused)),
        )
        # The cached objects live as long as the process: keep the collector from re-scanning
        # them on every collection (a large share of reconcile time with 50,000 Services).
        gc.freeze()
        self._ready_reason = ""
        self._reprocess_all()
        self.queue.add(CONFIG_ITEM)

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

    def _finish(self, item: Item, outcome: Outcome) -> None:
        finish_item(self.queue, self.k8s_metrics, item, outcome, self._reprocess_all)

    def _reprocess_all(self) -> None:
        for key in self.services.list_keys():
            self.queue.add(("service", key))

    def _handle_config(self) -> Outcome:
        cm = self.configmaps.get(self._cm_name())
        load = load_configmap(cm, self.settings.bgp_type)
        if load.config is None:
            self._publish_load(cm, load, None)
            return Outcome.ERROR_NO_RETRY if load.missing else Outcome.SUCCESS
        if load.config == self.logic.config and not self._blockers:
            self.k8s_metrics.config_stale.set(0)
            return Outcome.SUCCESS
        decision = self.logic.set_config(load.config)
        self._publish_load(cm, load, decision)
        return decision.outcome

    def _publish_load(
        self, cm: Obj | None, load: ConfigLoad, decision: ConfigDecision | None
    ) -> None:
        """Metrics, logs and (for problems) a Warning event on the ConfigMap."""
        if load.missing:
            self.k8s_metrics.config_stale.set(1)
            log.error(
                "configmap missing: MetalLB will not allocate new addresses",
                extra=kv(op="setConfig", configmap=self._cm_name()),
            )
            return
        if load.config is None:
            self.k8s_metrics.config_stale.set(1)
            summary = load.summary()
            log.error(
                "config invalid, keeping the previous one",
                extra=kv(op="setConfig", configmap=self._cm_name(), error=summary),
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
        for b in decision.blockers:
            log.error(
                "config refused: service would lose its IPs",
                extra=kv(
                    op="setConfig",
                    service=b.service,
                    ip=",".join(str(ip) for ip in b.ips),
                    error=b.reason,
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
            )
        else:
            message = f"config refused, previous config kept: {decision.message}"
        if message != self._last_config_problem:
            self._last_config_problem = message
            self._config_event(cm, "ConfigRefused", message)

    def _config_event(self, cm: Obj | None, reason: str, message: str) -> None:
        if cm is not None:
            self.events.event(cm, "Warning", reason, _truncate(message))

    def _cm_name(self) -> str:
        return f"{self.settings.namespace}/{self.settings.config_name}"


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
        run_until_signal(process.run, process.stop)
    except StartupError as e:
        log.error("cannot start", extra=kv(op="startup", error=str(e)))
        return 1
    finally:
        process.close()
    log.info("controller stopped", extra=kv(op="shutdown", pid=os.getpid()))
    return 0

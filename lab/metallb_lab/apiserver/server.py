"""`ApiServer`: the test Kubernetes API server in a background thread, its fault switches and
direct store access for tests.

    with ApiServer() as api:
        client = kubernetes.client.CoreV1Api(api.client())
        api.outage(10)            # connections refused for 10 s
        api.conflict_storm(5, "services")

The fault switches (faults.py) are also reachable over HTTP under `/_fault/...` so a server
running as a subprocess (`metallb-py lab apiserver`) can be driven by tests and the lab.
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import logging
import shutil
import socket
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import HTTPServer
from pathlib import Path
from socketserver import TCPServer
from types import TracebackType
from typing import Any

import yaml

from metallb_lab import Obj
from metallb_lab.apiserver.errors import ApiError
from metallb_lab.apiserver.faults import FaultSwitches
from metallb_lab.apiserver.handler import ApiRequestHandler
from metallb_lab.apiserver.patch import APPLY_PATCH, JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH
from metallb_lab.apiserver.resources import (
    DEFAULT_RESOURCES,
    ResourceTable,
    ResourceType,
    served_resources,
)
from metallb_lab.apiserver.selectors import parse_field_selector, parse_label_selector
from metallb_lab.apiserver.services import ClusterConfig
from metallb_lab.apiserver.store import Store

log = logging.getLogger(__name__)

PATCH_ALIASES = {
    "merge": MERGE_PATCH,
    "strategic": STRATEGIC_PATCH,
    "json": JSON_PATCH,
    "apply": APPLY_PATCH,
}
SEED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass(frozen=True)
class RequestRecord:
    time: float
    method: str
    path: str
    code: int
    seconds: float


class _HttpServer(HTTPServer):
    """The listening socket; each connection gets a tracked daemon thread."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: ApiServer, family: int) -> None:
        self.api = api
        self.address_family = family
        self.connections: dict[socket.socket, threading.Thread] = {}
        self.conn_lock = threading.Lock()
        super().__init__(address, ApiRequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), which can stall; skip it.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        if self.api.refusing():  # accepted just before the listener closed for an outage
            self.shutdown_request(request)
            return
        thread = threading.Thread(
            target=self._run_connection,
            args=(request, client_address),
            name="apiserver-conn",
            daemon=True,
        )
        with self.conn_lock:
            self.connections[request] = thread
        thread.start()

    def _run_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except (ConnectionError, TimeoutError, OSError):
            pass
        except Exception:
            log.exception("connection from %s failed", client_address)
        finally:
            self.shutdown_request(request)
            with self.conn_lock:
                self.connections.pop(request, None)

    def drop_connections(self) -> list[threading.Thread]:
        """Shut every client connection but the caller's own (a /_fault request must answer)."""
        me = threading.current_thread()
        with self.conn_lock:
            conns = [(s, t) for s, t in self.connections.items() if t is not me]
        for sock, _ in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return [t for _, t in conns]


class ApiServer:
    """A Kubernetes API server for tests, on `host` and a free port unless `port` is given.

    It serves the built-in groups of a stock Kubernetes 1.32 (`DEFAULT_RESOURCES`);
    `with_monitoring_crds` adds the Prometheus operator's custom resources and
    `with_legacy_apis` the versions Kubernetes 1.25 removed (`LEGACY_RESOURCES`).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        resources: tuple[ResourceType, ...] = DEFAULT_RESOURCES,
        with_monitoring_crds: bool = False,
        with_legacy_apis: bool = False,
        cluster: ClusterConfig | None = None,
        history_size: int = 10_000,
        max_watch_queue: int = 100_000,
        bookmark_interval: float = 5.0,
        watch_timeout: float = 1800.0,
        namespaces: tuple[str, ...] = (),
        seed: bool = True,
        request_log_size: int = 10_000,
    ) -> None:
        self.table = ResourceTable(
            served_resources(
                resources,
                with_monitoring_crds=with_monitoring_crds,
                with_legacy_apis=with_legacy_apis,
            )
        )
        self.store = Store(self.table, cluster, history_size, max_watch_queue)
        self.store.watch_gate = lambda: not self.outage_active()
        self.bookmark_interval = bookmark_interval
        self.watch_timeout = watch_timeout
        self._requested = (host, port)
        self._extra_namespaces = namespaces
        self._seed = seed
        self.faults = FaultSwitches()
        # The switches that do not touch the listener or the store are the FaultSwitches' own.
        self.outage_active = self.faults.outage_active
        self.refusing = self.faults.refusing
        self.fail_next = self.faults.fail_next
        self.delay = self.faults.set_delay
        self.conflict_storm = self.faults.conflict_storm
        self.clear_faults = self.faults.clear
        self._requests: deque[RequestRecord] = deque(maxlen=request_log_size)
        self._stop = threading.Event()
        self._http: _HttpServer | None = None
        self._listening = False
        self._listener_down = threading.Event()
        self._loop: threading.Thread | None = None
        self._tmpdir: Path | None = None
        self.host = host
        self.port = port

    # --- life cycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The address clients use (loopback when listening on a wildcard address)."""
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> ApiServer:
        if self._http is not None:
            return self
        family = socket.AF_INET6 if ":" in self._requested[0] else socket.AF_INET
        self._http = _HttpServer(self._requested, self, family)
        self.port = int(self._http.server_address[1])
        self._http.timeout = 0.1
        self._listening = True
        if self._seed:
            self._seed_objects()
        for ns in self._extra_namespaces:
            self.ensure_namespace(ns)
        self._loop = threading.Thread(target=self._serve, name="apiserver-accept", daemon=True)
        self._loop.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving; every watch ends and every connection thread is joined."""
        if self._http is None:
            return
        self._stop.set()
        self.store.close_watchers("shutdown")
        if self._loop is not None:
            self._loop.join(timeout)
        threads = self._http.drop_connections()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(OSError):
            self._http.server_close()
        self._http = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def connection_threads(self) -> int:
        """Open client connections (watches and kept-alive requests)."""
        if self._http is None:
            return 0
        with self._http.conn_lock:
            return len(self._http.connections)

    def _serve(self) -> None:
        http = self._http
        assert http is not None
        while not self._stop.is_set():
            if self.refusing():
                if self._listening:
                    http.socket.close()
                    self._listening = False
                self._listener_down.set()
                self._stop.wait(0.05)
                continue
            self._listener_down.clear()
            if not self._listening:
                try:
                    http.socket = socket.socket(http.address_family, socket.SOCK_STREAM)
                    http.server_bind()
                    http.server_activate()
                    self._listening = True
                except OSError:
                    log.warning("cannot listen on port %s again yet", self.port)
                    with contextlib.suppress(OSError):
                        http.socket.close()
                    self._stop.wait(0.1)
                    continue
            with contextlib.suppress(OSError, ValueError):
                http.handle_request()
        with contextlib.suppress(OSError):
            http.socket.close()

    # --- client configuration --------------------------------------------------------------------

    def kubeconfig(self, namespace: str = "default") -> Obj:
        name = "metallb-py-test"
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": {"server": self.url}}],
            "users": [{"name": name, "user": {}}],
            "contexts": [
                {"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}
            ],
            "current-context": name,
            "preferences": {},
        }

    def kubeconfig_path(self, path: str | Path | None = None, namespace: str = "default") -> Path:
        """Write a kubeconfig for this server (for the `kubernetes` client and kubectl)."""
        if path is None:
            if self._tmpdir is None:
                self._tmpdir = Path(tempfile.mkdtemp(prefix="metallb-py-apiserver-"))
            path = self._tmpdir / "kubeconfig"
        target = Path(path)
        target.write_text(yaml.safe_dump(self.kubeconfig(namespace), sort_keys=False))
        return target

    def client(self) -> Any:
        """A `kubernetes.client.ApiClient` for this server (close it when done)."""
        import kubernetes.client

        configuration = kubernetes.client.Configuration()
        configuration.host = self.url
        return kubernetes.client.ApiClient(configuration)

    # --- direct store access (objects are plain dicts, returned as copies) -----------------------

    def resource(self, what: str, api_version: str | None = None) -> ResourceType:
        try:
            return self.table.find(what, api_version)
        except KeyError:
            raise ValueError(f"the test API server serves no resource {what!r}") from None

    def _rt_of(self, obj: Obj) -> ResourceType:
        rt = self.table.by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        if rt is None:
            raise ValueError(f"unknown apiVersion/kind {obj.get('apiVersion')}/{obj.get('kind')}")
        return rt

    def create(self, obj: Obj, namespace: str | None = None) -> Obj:
        rt = self._rt_of(obj)
        ns = namespace or (obj.get("metadata") or {}).get("namespace") or "default"
        return copy.deepcopy(self.store.create(rt, ns if rt.namespaced else None, obj))

    def get(
        self, what: str, name: str, namespace: str | None = None, api_version: str | None = None
    ) -> Obj:
        rt = self.resource(what, api_version)
        ns = (namespace or "default") if rt.namespaced else None
        return copy.deepcopy(self.store.get(rt, ns, name))

    def list(
        self,
        what: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        api_version: str | None = None,
    ) -> list[Obj]:
        rt = self.resource(what, api_version)
        result = self.store.list(
            rt,
            namespace if rt.namespaced else None,
            parse_label_selector(label_selector),
            parse_field_selector(field_selector, rt.selectable_fields()),
        )
        return copy.deepcopy(result.items)

    def update(self, obj: Obj, subresource: str = "") -> Obj:
        rt = self._rt_of(obj)
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace") or "default" if rt.namespaced else None
        result, _ = self.store.update(rt, ns, meta.get("name", ""), obj, subresource=subresource)
        return copy.deepcopy(result)

    def update_status(self, obj: Obj) -> Obj:
        return self.update(obj, "status")

    def patch(
        self,
        what: str,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: str = "merge",
        subresource: str = "",
        api_version: str | None = None,
    ) -> Obj:
        rt = self.resource(what, api_version)
        ns = (namespace or "default") if rt.namespaced else None
        kind = PATCH_ALIASES.get(patch_type, patch_type)
        result, _ = self.store.patch(
            rt, ns, name, kind, patch, subresource=subresource, field_manager="test"
        )
        return copy.deepcopy(result)

    def delete(
        self, what: str, name: str, namespace: str | None = None, api_version: str | None = None
    ) -> Obj:
        rt = self.resource(what, api_version)
        ns = (namespace or "default") if rt.namespaced else None
        return copy.deepcopy(self.store.delete(rt, ns, name))

    def ensure_namespace(self, name: str) -> Obj:
        rt = self.resource("namespaces")
        try:
            return self.get("namespaces", name)
        except ApiError as e:
            if e.code != 404:
                raise
        return copy.deepcopy(self.store.create(rt, None, {"metadata": {"name": name}}))

    @property
    def resource_version(self) -> int:
        return self.store.rv

    def watch_count(self) -> int:
        return len(self.store.watchers())

    def requests(self) -> builtins.list[RequestRecord]:
        """Requests served so far (oldest first; bounded)."""
        return list(self._requests)

    def _record_request(self, method: str, path: str, code: int, seconds: float) -> None:
        self._requests.append(RequestRecord(time.time(), method, path, code, seconds))

    def _seed_objects(self) -> None:
        """What every cluster has: the system namespaces and the `kubernetes` Service."""
        for ns in SEED_NAMESPACES:
            self.ensure_namespace(ns)
        cidr = self.store.strategies.services.networks
        primary = next(iter(cidr.values()))
        cluster_ip = str(primary.network_address + 1)
        self.create(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": "kubernetes",
                    "namespace": "default",
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "clusterIP": cluster_ip,
                    "ports": [
                        {"name": "https", "port": 443, "protocol": "TCP", "targetPort": self.port}
                    ],
                },
            }
        )
        address = self.host if self.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        family = "IPv6" if ":" in address else "IPv4"
        self.create(
            {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": "kubernetes", "namespace": "default"},
                "subsets": [
                    {
                        "addresses": [{"ip": address}],
                        "ports": [{"name": "https", "port": self.port, "protocol": "TCP"}],
                    }
                ],
            }
        )
        self.create(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": "kubernetes",
                    "namespace": "default",
                    "labels": {"kubernetes.io/service-name": "kubernetes"},
                },
                "addressType": family,
                "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
                "ports": [{"name": "https", "port": self.port, "protocol": "TCP"}],
            }
        )

    # --- faults ----------------------------------------------------------------------------------

    def drop_watches(self, abrupt: bool = False) -> int:
        """End every open watch now (cleanly, or by resetting the connection); returns how many."""
        return self.store.close_watchers("abrupt" if abrupt else "dropped")

    def expire_history(self) -> None:
        """The next watch (or exact list, or continue) from any older version gets 410 Gone."""
        self.store.expire_history()

    def outage(self, seconds: float, mode: str = "refuse") -> None:
        """An outage: `refuse` closes the listener (connection refused), `503` answers 503.
        Either way every open watch and connection is dropped when it starts."""
        self.faults.start_outage(seconds, mode)
        if mode == "refuse":
            self._listener_down.clear()
        if mode == "refuse" and self._loop is not None and seconds > 0:
            # Close the listener before cutting connections, so that no client reconnects in
            # between and keeps a watch through the outage; return once connections are refused.
            self._listener_down.wait(min(seconds, 2.0))
        self.store.close_watchers("abrupt")
        if self._http is not None:
            self._http.drop_connections()

    def send_bookmarks(self) -> None:
        """Every watch that asked for bookmarks gets one now."""
        self.store.request_bookmarks()

    def fault_state(self) -> Obj:
        return {
            **self.faults.state(),
            "watches": self.watch_count(),
            "resourceVersion": self.store.rv,
        }

    def _before_request(self, method: str, path: str) -> None:
        """Faults that hit every API request: delay, 503 outage, injected failures."""
        delay = self.faults.delay()
        if delay:
            self._stop.wait(delay)
        self.faults.check_request(method, path)

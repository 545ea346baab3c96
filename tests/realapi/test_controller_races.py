"""The controller on the real server, with the manifests' `controller` ServiceAccount token:
IP sharing and requested IPs as kube-apiserver stores them, a concurrent writer making its
status writes fail with 409 Conflict, and a watch that expires (410) after etcd compaction.

The expected IPs are written out here; uniqueness and "0 IPs changed" are read from the Services'
statuses; that 409s and 410s really happened is read from kube-apiserver's request metrics and
from the controller's own log."""

from __future__ import annotations

import base64
import contextlib
import json
import queue
import re
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from metallb_lab.control_plane import ControlPlane, free_port
from metallb_lab.lab.commands import controller_args
from metallb_lab.netns import wait_for
from tests.e2e.conftest import Component

from .conftest import (
    NS,
    _bin_dir,
    admin,
    ensure_namespace,
    install,
    kubectl,
    service,
    set_config,
    statuses,
)

pytestmark = pytest.mark.slow

CONFIG = """
address-pools:
- name: main
  protocol: layer2
  addresses: ["198.51.100.0/26"]
- name: reserved
  protocol: layer2
  addresses: ["192.0.2.200/29"]
  auto-assign: false
"""
SHARED_IP = "192.0.2.201"
ANNOTATED_IP = "192.0.2.202"
SHARE = "metallb.universe.tf/allow-shared-ip"
LB_IPS = "metallb.universe.tf/loadBalancerIPs"


def _events(core: Any, namespace: str, reason: str) -> set[str]:
    """Names of the objects that got an Event with `reason` in `namespace`."""
    return {
        e.involved_object.name
        for e in core.list_namespaced_event(namespace).items
        if e.reason == reason
    }


def _annotated(name: str, annotations: dict[str, str], **spec: Any) -> dict[str, Any]:
    body = service(name, **spec)
    body["metadata"]["annotations"] = annotations
    return body


@pytest.fixture(scope="module")
def cluster(module_control_plane: ControlPlane) -> ControlPlane:
    install(module_control_plane)
    set_config(client.CoreV1Api(admin(module_control_plane)), CONFIG)
    return module_control_plane


def test_sharing_and_requested_ips(
    cluster: ControlPlane, controller_of: Callable[[ControlPlane], Component]
) -> None:
    ensure_namespace(cluster, "share")
    core: Any = client.CoreV1Api(admin(cluster))
    key = {SHARE: "k"}
    first = [
        # Two Services on one requested IP, same sharing key, different ports: shared.
        _annotated("web", key, loadBalancerIP=SHARED_IP),
        _annotated("tls", key, loadBalancerIP=SHARED_IP, ports=[{"port": 443}]),
        # The annotation from a non-auto-assign pool, and an IP no pool holds.
        _annotated("annotated", {LB_IPS: ANNOTATED_IP}),
        service("outside", loadBalancerIP="203.0.113.9"),
        # Both ways of asking at once: refused.
        _annotated("both", {LB_IPS: "192.0.2.203"}, loadBalancerIP="192.0.2.203"),
    ]
    # Once web and tls hold the IP (the controller takes Services in no promised order):
    later = [
        # Same key, but port 80 is taken on that IP: refused.
        _annotated("clash", key, loadBalancerIP=SHARED_IP),
        # Another key on the same IP: refused.
        _annotated("other", {SHARE: "z"}, loadBalancerIP=SHARED_IP, ports=[{"port": 8080}]),
    ]
    for body in first:
        core.create_namespaced_service("share", body)
    stored = core.read_namespaced_service("tls", "share")
    assert stored.spec.load_balancer_ip == SHARED_IP  # kube-apiserver keeps the deprecated field

    ctl = controller_of(cluster)
    want = {"web": [SHARED_IP], "tls": [SHARED_IP], "annotated": [ANNOTATED_IP]}

    def allocated() -> dict[str, list[str]]:
        return {k: v for k, v in statuses(core, "share").items() if v}

    wait_for(lambda: allocated() == want, 60, 0.5, "the shared and the requested IPs")
    for body in later:
        core.create_namespaced_service("share", body)
    failed = {"clash", "other", "outside", "both"}
    wait_for(
        lambda: (
            failed
            <= _events(core, "share", "AllocationFailed")
            | _events(core, "share", "LoadBalancerFailed")
        ),
        30,
        0.5,
        "an event for every refused request",
    )
    time.sleep(2)  # nothing more arrives later
    assert allocated() == want
    assert ctl.proc is not None and ctl.proc.poll() is None


def _apiserver_count(cp: ControlPlane, code: str, verb: str, subresource: str) -> float:
    """kube-apiserver's own count of Service requests answered with `code`."""
    text = kubectl(cp, "get", "--raw", "/metrics").stdout
    total = 0.0
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        if (labels.get("resource"), labels.get("subresource"), labels.get("verb")) == (
            "services",
            subresource,
            verb,
        ) and labels.get("code") == code:
            total += float(line.rsplit(" ", 1)[1])
    return total


class DelayProxy:
    """A TCP forwarder to kube-apiserver that hands every byte of the answers to the client
    `delay` seconds late (requests go through at once): a client behind it acts on objects
    at least `delay` old, so another writer's change lands between its read and its write."""

    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port, self.delay = target_port, delay
        self.port = free_port()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.sockets: list[socket.socket] = [self.listener]
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                downstream, _ = self.listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                return
            upstream.settimeout(None)
            self.sockets += [downstream, upstream]
            chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()
            for target, args in (
                (self._pipe, (downstream, upstream)),
                (self._read, (upstream, chunks)),
                (self._write_late, (chunks, downstream)),
            ):
                threading.Thread(target=target, args=args, daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    @staticmethod
    def _read(source: socket.socket, chunks: queue.Queue[tuple[float, bytes]]) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                chunks.put((time.monotonic(), data))
        chunks.put((time.monotonic(), b""))

    def _write_late(self, chunks: queue.Queue[tuple[float, bytes]], sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                at, data = chunks.get()
                time.sleep(max(0.0, at + self.delay - time.monotonic()))
                if not data:
                    break
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.stopped.set()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()


class LabelWriter:
    """Another client relabelling every Service of a namespace in rounds (at most one a
    `round_seconds`, bounded by `seconds`), so the controller's status writes race a newer
    resourceVersion now and then, not always (always would starve it)."""

    def __init__(
        self, cp: ControlPlane, namespace: str, seconds: float, round_seconds: float
    ) -> None:
        self.core: Any = client.CoreV1Api(admin(cp))
        self.namespace = namespace
        self.deadline = time.monotonic() + seconds
        self.round_seconds = round_seconds
        self.stop = threading.Event()
        self.writes = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        round_ = 0
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            round_ += 1
            started = time.monotonic()
            for svc in self.core.list_namespaced_service(self.namespace).items:
                patch = {"metadata": {"labels": {"round": str(round_)}}}
                self.core.patch_namespaced_service(svc.metadata.name, self.namespace, patch)
                self.writes += 1
            self.stop.wait(max(0.0, started + self.round_seconds - time.monotonic()))

    def __enter__(self) -> LabelWriter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def test_a_concurrent_writer_causes_409s_and_no_work_is_lost(
    cluster: ControlPlane, tmp_path: Path
) -> None:
    """The controller behind a DelayProxy (0.3 s), the writer relabelling each Service about
    once a second: about a third of the status writes meet a 409."""
    ensure_namespace(cluster, "busy")
    core: Any = client.CoreV1Api(admin(cluster))
    names = [f"b{i:02d}" for i in range(40)]
    for name in names:
        core.create_namespaced_service("busy", service(name))
    conflicts_before = _apiserver_count(cluster, "409", "PUT", "status")
    proxy = DelayProxy(cluster.port, delay=0.3)
    kubeconfig = cluster.token_kubeconfig(tmp_path / "controller", NS, "controller")
    kubeconfig.write_text(
        kubeconfig.read_text().replace(cluster.url, f"https://127.0.0.1:{proxy.port}")
    )
    ctl = Component(controller_args(kubeconfig))
    try:
        with LabelWriter(cluster, "busy", seconds=120, round_seconds=1.0) as writer:
            time.sleep(1)  # the writer is going when the controller starts
            ctl.start()
            wait_for(
                lambda: all(statuses(core, "busy").values()), 100, 0.5, "40 IPs despite the writer"
            )
            first = statuses(core, "busy")
            time.sleep(3)  # the writer goes on: labels move, IPs must not
            assert statuses(core, "busy") == first
        assert ctl.proc is not None and ctl.proc.poll() is None
    finally:
        ctl.kill()
        proxy.close()
    assert writer.writes > len(names)
    conflicts = _apiserver_count(cluster, "409", "PUT", "status") - conflicts_before
    assert conflicts > 0, "the writer caused no 409 on services/status: the test proves nothing"
    ips = [ip for v in first.values() for ip in v]
    assert len(ips) == len(names) == len(set(ips))
    assert all(ip.startswith("198.51.100.") for ip in ips)
    assert set(first) == set(names)
    # Nothing lost: no status write was given up on for good (each 409 was retried on the fresh
    # object, or the Service re-queued).
    errors = [e for e in ctl.logs() if e.get("level") == "error"]
    assert errors == [], errors
    print(f"{conflicts:.0f} status writes met 409; {writer.writes} label writes")


def _etcd(cp: ControlPlane, path: str, body: dict[str, Any]) -> Any:
    """One call to etcd's v3 HTTP/JSON gateway (etcdctl is not built)."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{cp.etcd_port}{path}", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def compact_to_now(cp: ControlPlane) -> int:
    """Compact etcd to its current revision: every older revision is gone."""
    key = base64.b64encode(b"/registry/").decode()
    revision = int(_etcd(cp, "/v3/kv/range", {"key": key, "limit": 1})["header"]["revision"])
    _etcd(cp, "/v3/kv/compaction", {"revision": revision, "physical": True})
    return revision


@pytest.mark.parametrize("watch_cache", [False, True], ids=["etcd-answers", "watch-cache-answers"])
def test_watch_expired_by_etcd_compaction_is_relisted_and_nothing_moves(
    controller_of: Callable[[ControlPlane], Component], watch_cache: bool
) -> None:
    """Without its watch cache, kube-apiserver passes a watch resumed from an old
    resourceVersion to etcd, and only the compaction can make it 410. With the cache (the
    default), the restarted kube-apiserver's new cache starts at the compacted revision and
    answers the 410 itself."""
    extra = () if watch_cache else ("--watch-cache=false",)
    with ControlPlane(_bin_dir(), extra_apiserver_args=extra) as cp:
        install(cp)
        ensure_namespace(cp, "apps")
        core: Any = client.CoreV1Api(admin(cp))
        set_config(core, CONFIG)
        for i in range(20):
            core.create_namespaced_service("apps", service(f"s{i:02d}"))
        ctl = controller_of(cp)
        wait_for(lambda: all(statuses(core, "apps").values()), 60, 0.5, "20 IPs")
        before = statuses(core, "apps")
        # Writes the controller's watches do not see move etcd's revision past theirs.
        ensure_namespace(cp, "elsewhere")
        for i in range(5):
            core.create_namespaced_config_map("elsewhere", {"metadata": {"name": f"c{i}"}})
        compact_to_now(cp)
        # The open watches are cut; each resumes from its last resourceVersion, now compacted.
        cp.stop_apiserver()
        cp.start_apiserver()
        core = client.CoreV1Api(admin(cp))

        def expired() -> list[str]:
            return [
                str(e["msg"])
                for e in ctl.logs()
                if "informer services" in str(e.get("msg")) and "410" in str(e.get("msg"))
            ]

        (line, *_) = wait_for(expired, 60, 0.5, "the services watch to get 410")
        assert "too old" in line, line
        core.create_namespaced_service("apps", service("after"))
        core.delete_namespaced_service("s00", "apps")
        wait_for(lambda: statuses(core, "apps").get("after"), 60, 0.5, "an IP for a new Service")
        now = statuses(core, "apps")
        assert "s00" not in now
        assert {k: v for k, v in now.items() if k != "after"} == {
            k: v for k, v in before.items() if k != "s00"
        }
        assert now["after"][0] not in {ip for k, v in now.items() if k != "after" for ip in v}
        assert ctl.proc is not None and ctl.proc.poll() is None

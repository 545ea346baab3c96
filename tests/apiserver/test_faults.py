"""Every fault switch, from Python and over the `/_fault` HTTP endpoints, seen by real clients."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from typing import Any

import pytest
from kubernetes import client, watch

from metallb_lab.apiserver import ApiServer
from metallb_lab.netns import wait_for
from tests.apiserver.conftest import raw, service, status_of


def cm(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {}}


def can_connect(api: ApiServer) -> bool:
    try:
        with socket.create_connection((api.host, api.port), timeout=1):
            return True
    except OSError:
        return False


class Consumer:
    """A `kubernetes.watch.Watch` running in a thread, recording what it sees."""

    def __init__(self, core: Any, **kwargs: Any) -> None:
        self.watch = watch.Watch()
        self.events: list[tuple[str, str]] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(core, kwargs), daemon=True)
        self.thread.start()

    def _run(self, core: Any, kwargs: dict[str, Any]) -> None:
        try:
            for event in self.watch.stream(core.list_namespaced_config_map, "default", **kwargs):
                self.events.append((event["type"], event["object"].metadata.name))
        except BaseException as e:  # recorded for the test to inspect
            self.error = e

    def stop(self, api: ApiServer) -> None:
        self.watch.stop()
        api.drop_watches()  # wakes a stream blocked waiting for its next event
        self.thread.join(10)
        assert not self.thread.is_alive()


def test_drop_watches_ends_open_streams(core: Any, api: ApiServer) -> None:
    consumer = Consumer(core, timeout_seconds=60, resource_version=str(api.resource_version))
    wait_for(lambda: api.watch_count() == 1, timeout=5, what="the watch to open")
    assert api.drop_watches() == 1
    consumer.thread.join(5)
    assert not consumer.thread.is_alive() and consumer.error is None
    wait_for(lambda: api.watch_count() == 0, timeout=5, what="the watch to close")


def test_client_resumes_after_a_drop_without_losing_events(core: Any, api: ApiServer) -> None:
    consumer = Consumer(core, resource_version=str(api.resource_version))  # reconnects by itself
    wait_for(lambda: api.watch_count() == 1, timeout=5, what="the watch to open")
    api.create(cm("a"))
    wait_for(lambda: consumer.events, timeout=5, what="the first event")
    api.drop_watches()
    api.create(cm("b"))  # happens while no watch is open
    wait_for(lambda: len(consumer.events) >= 2, timeout=5, what="the resumed watch")
    api.create(cm("c"))
    wait_for(lambda: len(consumer.events) >= 3, timeout=5, what="the live event")
    consumer.stop(api)
    assert consumer.events == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c")]


def test_abrupt_drop_resets_the_stream(api: ApiServer) -> None:
    conn = http.client.HTTPConnection(api.host, api.port, timeout=10)
    conn.request("GET", f"/api/v1/configmaps?watch=1&resourceVersion={api.resource_version}")
    resp = conn.getresponse()
    wait_for(lambda: api.watch_count() == 1, timeout=5, what="the watch to open")
    api.drop_watches(abrupt=True)
    with pytest.raises(http.client.IncompleteRead):  # no terminating chunk
        resp.read()
    conn.close()


def test_outage_refuses_connections_then_recovers(core: Any, api: ApiServer) -> None:
    api.create(cm("kept"))
    consumer = Consumer(core, timeout_seconds=60, resource_version=str(api.resource_version))
    wait_for(lambda: api.watch_count() == 1, timeout=5, what="the watch to open")
    api.outage(1.5)
    assert not can_connect(api)
    consumer.thread.join(5)
    assert not consumer.thread.is_alive()  # the open watch was cut
    assert api.outage_active()
    wait_for(lambda: can_connect(api), timeout=10, what="the listener to come back")
    assert not api.outage_active()
    assert [c.metadata.name for c in core.list_namespaced_config_map("default").items] == ["kept"]


def test_outage_503(core: Any, api: ApiServer) -> None:
    api.outage(1.0, mode="503")
    with pytest.raises(client.ApiException) as info:
        core.list_namespaced_config_map("default")
    assert info.value.status == 503
    assert status_of(info.value)["reason"] == "ServiceUnavailable"
    wait_for(lambda: not api.outage_active(), timeout=5, what="the outage to end")
    core.list_namespaced_config_map("default")


def test_fail_next_requests(core: Any, api: ApiServer) -> None:
    api.fail_next(2)
    for _ in range(2):
        with pytest.raises(client.ApiException) as info:
            core.list_namespaced_config_map("default")
        assert info.value.status == 500
        assert status_of(info.value)["reason"] == "InternalError"
    core.list_namespaced_config_map("default")
    api.fail_next(1, code=429, methods=("POST",))
    core.list_namespaced_config_map("default")  # GETs are not affected
    with pytest.raises(client.ApiException) as info:
        core.create_namespaced_config_map("default", cm("x"))
    assert info.value.status == 429
    core.create_namespaced_config_map("default", cm("x"))
    api.fail_next(1, code=503, resource="secrets")
    core.list_namespaced_config_map("default")
    with pytest.raises(client.ApiException) as info:
        core.list_namespaced_secret("default")
    assert info.value.status == 503


def test_delay(core: Any, api: ApiServer) -> None:
    api.delay(0.4)
    started = time.monotonic()
    core.list_namespaced_config_map("default")
    assert time.monotonic() - started >= 0.4
    api.delay(0)
    assert api.fault_state()["delaySeconds"] == 0


def test_conflict_storm(core: Any, api: ApiServer) -> None:
    api.create(service("s", type="LoadBalancer"))
    api.create(cm("other"))
    api.conflict_storm(2, "services", namespace="default", name="s", subresource="status")
    body = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}
    for _ in range(2):
        fresh = core.read_namespaced_service("s", "default")  # a current resourceVersion
        fresh.status.load_balancer.ingress = [client.V1LoadBalancerIngress(ip="192.0.2.1")]
        with pytest.raises(client.ApiException) as info:
            core.replace_namespaced_service_status("s", "default", fresh)
        assert status_of(info.value)["reason"] == "Conflict"
        core.patch_namespaced_config_map("other", "default", {"data": {"x": "y"}})  # unaffected
    out = core.patch_namespaced_service_status("s", "default", body)
    assert out.status.load_balancer.ingress[0].ip == "192.0.2.1"


def test_clear_faults(core: Any, api: ApiServer) -> None:
    api.fail_next(5)
    api.conflict_storm(5)
    api.delay(5)
    api.clear_faults()
    core.create_namespaced_config_map("default", cm("ok"))
    core.patch_namespaced_config_map("ok", "default", {"data": {"a": "b"}})


def post(api: ApiServer, action: str, **params: Any) -> dict[str, Any]:
    code, body, _ = raw(api, "POST", f"/_fault/{action}", json.dumps(params))
    assert code == 200, body
    return body


def test_fault_endpoints_over_http(core: Any, api: ApiServer) -> None:
    consumer = Consumer(core, timeout_seconds=60, resource_version=str(api.resource_version))
    wait_for(lambda: api.watch_count() == 1, timeout=5, what="the watch to open")
    assert post(api, "drop-watches") == {"dropped": 1}
    consumer.thread.join(5)
    post(api, "fail", count=1, code=500)
    with pytest.raises(client.ApiException):
        core.list_namespaced_config_map("default")
    post(api, "conflict", count=1, resource="configmaps")
    api.create(cm("c"))
    with pytest.raises(client.ApiException) as info:
        core.patch_namespaced_config_map("c", "default", {"data": {"a": "b"}})
    assert info.value.status == 409
    state = post(api, "delay", seconds=0.2)
    assert state["delaySeconds"] == 0.2
    post(api, "reset")
    old = api.resource_version
    api.create(cm("d"))
    post(api, "expire-history")
    code, _, _ = raw(
        api, "GET", f"/api/v1/configmaps?resourceVersion={old}&resourceVersionMatch=Exact"
    )
    assert code == 410
    post(api, "outage", seconds=0.5, mode="503")
    assert raw(api, "GET", "/api/v1/configmaps")[0] == 503
    assert raw(api, "GET", "/_fault")[1]["outageMode"] == "503"  # faults never block /_fault
    code, _, _ = raw(api, "POST", "/_fault/no-such-thing")
    assert code == 404
    code, _, _ = raw(api, "POST", "/_fault/fail", "not json")
    assert code == 400
    requests = raw(api, "GET", "/_admin/requests")[1]["requests"]
    assert any(r["code"] == 503 for r in requests)


def test_no_watch_survives_an_outage_even_with_eager_reconnects(api: ApiServer) -> None:
    stop = threading.Event()
    path = "/api/v1/configmaps?watch=1&resourceVersion=1"

    def hammer() -> None:  # reconnects as fast as it can, like a client without backoff
        while not stop.is_set():
            try:
                conn = http.client.HTTPConnection(api.host, api.port, timeout=2)
                conn.request("GET", path)
                conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: api.watch_count() >= 1, timeout=5, what="the watches to open")
        api.outage(1.5)
        assert api.watch_count() == 0
        deadline = time.monotonic() + 0.8
        while time.monotonic() < deadline:  # bounded: the outage lasts 1.5 s
            assert api.watch_count() == 0
            time.sleep(0.05)
        wait_for(lambda: api.watch_count() >= 1, timeout=10, what="watches after the outage")
    finally:
        stop.set()
        api.drop_watches()
        for t in threads:
            t.join(10)

"""Watch semantics through `kubernetes.watch.Watch` and plain HTTP: resume from a version,
bookmarks, timeouts, selectors, 410 on expired versions, and the wire format."""

from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Any

import pytest
from kubernetes import client, watch

from metallb_lab.apiserver import ApiServer
from metallb_lab.netns import wait_for
from tests.apiserver.conftest import service


def cm(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}  # fmt: skip


def raw_watch(api: ApiServer, path: str) -> tuple[http.client.HTTPResponse, list[dict[str, Any]]]:
    """Run a watch that ends by itself (give it timeoutSeconds) and return all its events."""
    conn = http.client.HTTPConnection(api.host, api.port, timeout=30)
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp, [json.loads(line) for line in body.splitlines() if line.strip()]


def collect(stream: Any, count: int) -> list[dict[str, Any]]:
    out = []
    for event in stream:
        out.append(event)
        if len(out) >= count:
            break
    return out


def test_watch_from_resource_version_sees_later_changes_in_order(core: Any, api: ApiServer) -> None:
    api.create(cm("before"))
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    api.create(cm("x"))
    api.patch("configmaps", "x", {"data": {"k": "v2"}})
    api.delete("configmaps", "x")
    w: Any = watch.Watch()
    events = collect(w.stream(core.list_namespaced_config_map, "default",
                              resource_version=rv, timeout_seconds=5), 3)  # fmt: skip
    w.stop()
    assert [(e["type"], e["object"].metadata.name) for e in events] == [
        ("ADDED", "x"), ("MODIFIED", "x"), ("DELETED", "x")
    ]  # fmt: skip
    versions = [int(e["object"].metadata.resource_version) for e in events]
    assert versions == sorted(versions) and versions[0] > int(rv)
    assert events[1]["object"].data == {"k": "v2"}


def test_watch_without_version_starts_with_current_objects(core: Any, api: ApiServer) -> None:
    api.create(cm("a"))
    api.create(cm("b"))
    w: Any = watch.Watch()
    stream = w.stream(core.list_namespaced_config_map, "default", timeout_seconds=5)
    first = collect(stream, 2)
    api.create(cm("c"))
    later = collect(stream, 1)
    w.stop()
    assert [(e["type"], e["object"].metadata.name) for e in first] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
    ]
    assert (later[0]["type"], later[0]["object"].metadata.name) == ("ADDED", "c")


def test_live_events_arrive_while_watching(core: Any, api: ApiServer) -> None:
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    timer = threading.Timer(0.3, lambda: api.create(cm("late")))
    timer.start()
    w: Any = watch.Watch()
    started = time.monotonic()
    events = collect(w.stream(core.list_namespaced_config_map, "default",
                              resource_version=rv, timeout_seconds=10), 1)  # fmt: skip
    w.stop()
    timer.join()
    assert events[0]["object"].metadata.name == "late"
    assert time.monotonic() - started < 5


def test_other_namespaces_are_not_seen(core: Any, api: ApiServer) -> None:
    api.ensure_namespace("other")
    rv = str(api.resource_version)
    api.create(cm("there"), namespace="other")
    api.create(cm("here"))
    w: Any = watch.Watch()
    events = collect(w.stream(core.list_namespaced_config_map, "default",
                              resource_version=rv, timeout_seconds=5), 1)  # fmt: skip
    w.stop()
    assert events[0]["object"].metadata.name == "here"
    w = watch.Watch()
    everywhere = collect(w.stream(core.list_config_map_for_all_namespaces,
                                  resource_version=rv, timeout_seconds=5), 2)  # fmt: skip
    w.stop()
    assert [e["object"].metadata.name for e in everywhere] == ["there", "here"]


def test_bookmarks_arrive_as_raw_dicts(core: Any, api: ApiServer) -> None:
    listed = core.list_namespaced_service("default")
    w: Any = watch.Watch()
    stream = w.stream(core.list_namespaced_service, "default", allow_watch_bookmarks=True,
                      resource_version=listed.metadata.resource_version, timeout_seconds=10)  # fmt: skip
    api.create(cm("unrelated"))  # moves the global version; a bookmark reports it
    event = next(stream)
    w.stop()
    assert event["type"] == "BOOKMARK"
    assert isinstance(event["object"], dict)
    assert event["object"]["kind"] == "Service" and event["object"]["apiVersion"] == "v1"
    bookmark_rv = event["object"]["metadata"]["resourceVersion"]
    assert int(bookmark_rv) == api.resource_version
    assert w.resource_version == bookmark_rv


def test_no_bookmarks_unless_asked(api: ApiServer) -> None:
    _, events = raw_watch(api, "/api/v1/namespaces/default/services?watch=1&timeoutSeconds=1&"
                               f"resourceVersion={api.resource_version}")  # fmt: skip
    assert events == []


def test_send_bookmarks_now(core: Any) -> None:
    with ApiServer(bookmark_interval=3600) as api:
        c = api.client()
        try:
            v1: Any = client.CoreV1Api(c)
            w: Any = watch.Watch()
            stream = w.stream(v1.list_namespaced_service, "default", allow_watch_bookmarks=True,
                              resource_version=str(api.resource_version), timeout_seconds=10)  # fmt: skip
            threading.Timer(0.3, api.send_bookmarks).start()
            started = time.monotonic()
            event = next(stream)
            w.stop()
            assert event["type"] == "BOOKMARK" and time.monotonic() - started < 5
        finally:
            c.close()


def test_timeout_seconds_ends_the_stream(core: Any) -> None:
    started = time.monotonic()
    events = list(watch.Watch().stream(core.list_namespaced_config_map, "default",
                                       resource_version="1", timeout_seconds=1))  # fmt: skip
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 4
    assert all(e["type"] != "ERROR" for e in events)


def test_wire_format(api: ApiServer) -> None:
    api.create(cm("w"))
    resp, events = raw_watch(
        api, "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1"
    )
    assert resp.status == 200
    assert resp.getheader("Connection") == "close"
    assert resp.getheader("Transfer-Encoding") == "chunked"
    assert resp.getheader("Content-Type") == "application/json"
    assert events[0]["type"] == "ADDED"
    assert events[0]["object"]["kind"] == "ConfigMap"  # watch objects carry kind/apiVersion
    assert events[0]["object"]["apiVersion"] == "v1"


def test_legacy_watch_paths(api: ApiServer) -> None:
    api.create(cm("one"))
    api.create(cm("two"))
    _, events = raw_watch(api, "/api/v1/watch/namespaces/default/configmaps/two?timeoutSeconds=1")
    assert [e["object"]["metadata"]["name"] for e in events] == ["two"]
    _, events = raw_watch(api, "/api/v1/watch/configmaps?timeoutSeconds=1")
    assert [e["object"]["metadata"]["name"] for e in events] == ["one", "two"]


def test_selector_watch_turns_relabels_into_added_and_deleted(api: ApiServer) -> None:
    rv = api.resource_version
    api.create(cm("m", app="web"))
    api.patch("configmaps", "m", {"metadata": {"labels": {"app": "db"}}})
    api.patch("configmaps", "m", {"data": {"k": "changed-while-filtered-out"}})
    api.patch("configmaps", "m", {"metadata": {"labels": {"app": "web"}}})
    api.patch("configmaps", "m", {"data": {"k": "v3"}})
    api.delete("configmaps", "m")
    _, events = raw_watch(api, "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1&"
                               f"labelSelector=app%3Dweb&resourceVersion={rv}")  # fmt: skip
    assert [e["type"] for e in events] == ["ADDED", "DELETED", "ADDED", "MODIFIED", "DELETED"]
    relabel_delete = events[1]["object"]
    assert relabel_delete["metadata"]["labels"] == {"app": "web"}  # the last state it matched
    assert int(relabel_delete["metadata"]["resourceVersion"]) > int(
        events[0]["object"]["metadata"]["resourceVersion"]
    )


def test_field_selector_watch(api: ApiServer) -> None:
    rv = api.resource_version
    api.create(cm("a"))
    api.create(cm("b"))
    _, events = raw_watch(api, "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1&"
                               f"fieldSelector=metadata.name%3Db&resourceVersion={rv}")  # fmt: skip
    assert [e["object"]["metadata"]["name"] for e in events] == ["b"]


def test_status_writes_are_modified_events(api: ApiServer) -> None:
    api.create(service("s", type="LoadBalancer"))
    rv = api.resource_version
    api.patch("services", "s", {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}},
              subresource="status")  # fmt: skip
    _, events = raw_watch(
        api, f"/api/v1/namespaces/default/services?watch=1&timeoutSeconds=1&resourceVersion={rv}"
    )
    assert [e["type"] for e in events] == ["MODIFIED"]
    assert events[0]["object"]["status"]["loadBalancer"]["ingress"] == [
        {"ip": "192.0.2.1", "ipMode": "VIP"}
    ]


def test_expired_version_is_an_error_event_with_410(api: ApiServer) -> None:
    old = api.resource_version
    api.create(cm("a"))
    api.expire_history()
    resp, events = raw_watch(
        api, f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={old}"
    )
    assert resp.status == 200
    assert [e["type"] for e in events] == ["ERROR"]
    status = events[0]["object"]
    assert status["kind"] == "Status" and status["code"] == 410
    assert status["reason"] == "Expired" and status["status"] == "Failure"
    assert "too old resource version" in status["message"]
    # The current version is still fine: nothing after it was forgotten.
    resp, events = raw_watch(api, "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1&"
                                  f"resourceVersion={api.resource_version}")  # fmt: skip
    assert resp.status == 200 and events == []


def test_client_watch_retries_once_on_410_then_raises(core: Any, api: ApiServer) -> None:
    old = core.list_namespaced_config_map("default").metadata.resource_version
    api.create(cm("a"))
    api.expire_history()
    watches_before = sum(1 for r in api.requests() if "watch=" in r.path)
    with pytest.raises(client.ApiException) as info:
        list(watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=old))
    assert info.value.status == 410

    def watches() -> int:
        return sum(1 for r in api.requests() if "watch=" in r.path) - watches_before

    # A request is logged when its handler finishes, which can trail the client's exception.
    wait_for(lambda: watches() >= 2, 5, what="both watch requests logged")
    assert watches() == 2  # the first 410 is retried once, the second raises


def test_history_window_is_bounded() -> None:
    with ApiServer(history_size=5) as api:
        start = api.resource_version
        versions = [int(api.create(cm(f"c{i}"))["metadata"]["resourceVersion"]) for i in range(10)]
        storage = api.store.storages["configmaps"]
        assert len(storage.history) == 5
        _, events = raw_watch(
            api, f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={start}"
        )
        assert events[0]["type"] == "ERROR" and events[0]["object"]["code"] == 410
        _, events = raw_watch(api, "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1&"
                                   f"resourceVersion={versions[5]}")  # fmt: skip
        assert [e["object"]["metadata"]["name"] for e in events] == ["c6", "c7", "c8", "c9"]


def test_send_initial_events_ends_with_marked_bookmark(api: ApiServer) -> None:
    api.create(cm("a"))
    _, events = raw_watch(api, "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1&"
                               "sendInitialEvents=true&allowWatchBookmarks=true&"
                               "resourceVersionMatch=NotOlderThan")  # fmt: skip
    assert events[0]["type"] == "ADDED"
    marker = events[1]
    assert marker["type"] == "BOOKMARK"
    assert marker["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_future_version_times_out_with_504(api: ApiServer) -> None:
    conn = http.client.HTTPConnection(api.host, api.port, timeout=30)
    conn.request("GET", f"/api/v1/configmaps?watch=1&resourceVersion={api.resource_version + 100}")
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    assert resp.status == 504 and body["reason"] == "Timeout"

"""The informer and writers against the test API server, through the real `kubernetes` client."""

from __future__ import annotations

import threading

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from metallb_lab.apiserver import ApiServer
from metallb_lab.netns import wait_for
from metallb_py.k8s.informer import Informer
from metallb_py.k8s.writes import EventRecorder, StatusConflictError, write_service_status


def svc(name: str, ns: str = "default", **spec) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}], **spec},
    }


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, bool, bool]] = []
        self.lock = threading.Lock()

    def __call__(self, key, old, new) -> None:
        with self.lock:
            self.events.append((key, old is not None, new is not None))

    def keys(self) -> set[str]:
        with self.lock:
            return {k for k, _, _ in self.events}


@pytest.fixture
def api():
    with ApiServer(bookmark_interval=0.2, namespaces=("other", "metallb-system")) as server:
        yield server


@pytest.fixture
def core(api):
    c = api.client()
    yield client.CoreV1Api(c)
    c.close()


def start(core, rec, **kw) -> Informer:
    inf = Informer(
        "services",
        core.list_service_for_all_namespaces,
        rec,
        backoff_initial=0.05,
        backoff_cap=0.5,
        **kw,
    )
    inf.start()
    assert inf.wait_synced(10)
    return inf


def test_list_then_watch_delivers_adds_updates_deletes(api, core):
    api.create(svc("a"))
    rec = Recorder()
    inf = start(core, rec)
    try:
        assert (inf.get("default/a") or {})["kind"] == "Service"
        api.create(svc("b", "other"))
        wait_for(lambda: inf.get("other/b"), 5, what="watch ADDED")
        obj = api.get("services", "a")
        obj["metadata"]["labels"] = {"x": "y"}
        api.update(obj)
        wait_for(lambda: (inf.get("default/a") or {})["metadata"].get("labels") == {"x": "y"}, 5)
        api.delete("services", "b", "other")
        wait_for(lambda: inf.get("other/b") is None, 5, what="watch DELETED")
        assert ("other/b", True, False) in rec.events
        assert inf.lists == 1
    finally:
        inf.stop()


def test_bookmarks_advance_resource_version(api, core):
    inf = start(core, Recorder())
    try:
        api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
        rv = api.resource_version
        wait_for(lambda: int(inf.resource_version or 0) >= rv, 5, what="bookmark")
    finally:
        inf.stop()


def test_dropped_watch_resumes_without_relist(api, core):
    rec = Recorder()
    inf = start(core, rec)
    try:
        wait_for(lambda: api.watch_count() >= 1, 5)
        api.drop_watches(abrupt=True)
        api.create(svc("after-drop"))
        wait_for(lambda: inf.get("default/after-drop"), 10, what="event after reconnect")
        assert inf.lists == 1
    finally:
        inf.stop()


def test_expired_version_forces_relist_and_reports_what_changed(api, core):
    api.create(svc("keep"))
    api.create(svc("gone"))
    rec = Recorder()
    inf = start(core, rec)
    try:
        wait_for(lambda: api.watch_count() >= 1, 5)
        api.outage(1.5)  # the watch is gone; change things while it is away
        api.delete("services", "gone")
        api.create(svc("new"))
        api.expire_history()
        wait_for(lambda: inf.get("default/new") and not inf.get("default/gone"), 10)
        assert inf.lists >= 2
        assert ("default/gone", True, False) in rec.events
        assert inf.get("default/keep") is not None
    finally:
        inf.stop()


def test_outage_keeps_cache_and_recovers(api, core):
    api.create(svc("a"))
    inf = start(core, Recorder())
    try:
        api.outage(1.5)
        assert inf.get("default/a") is not None  # nothing reported deleted during the outage
        wait_for(lambda: not api.outage_active(), 5)
        api.create(svc("b"))
        wait_for(lambda: inf.get("default/b"), 15, what="recovery after outage")
        assert inf.get("default/a") is not None
    finally:
        inf.stop()


def test_field_selector_kwargs(api, core):
    api.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "config", "namespace": "metallb-system"},
            "data": {"config": ""},
        },
        "metallb-system",
    )
    api.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "other", "namespace": "metallb-system"},
        },
        "metallb-system",
    )
    rec = Recorder()
    inf = Informer(
        "configmap",
        core.list_namespaced_config_map,
        rec,
        kwargs={"namespace": "metallb-system", "field_selector": "metadata.name=config"},
    ).start()
    try:
        assert inf.wait_synced(10)
        assert inf.list_keys() == ["metallb-system/config"]
    finally:
        inf.stop()


def test_status_write_retries_409_storm_on_fresh_object(api, core):
    stored = api.create(svc("s", clusterIPs=["10.96.0.10"]))
    api.conflict_storm(3, resource="services", subresource="status")
    out = write_service_status(core, stored, {"ingress": [{"ip": "192.0.2.1"}]})
    assert out is not None
    assert out["status"]["loadBalancer"] == {"ingress": [{"ip": "192.0.2.1", "ipMode": "VIP"}]}
    assert api.get("services", "s")["status"]["loadBalancer"]["ingress"][0]["ip"] == "192.0.2.1"


def test_status_write_refuses_when_spec_changed_meanwhile(api, core):
    stale = api.create(svc("s"))
    fresh = api.get("services", "s")
    fresh["metadata"]["annotations"] = {"metallb.universe.tf/address-pool": "other"}
    api.update(fresh)
    with pytest.raises(StatusConflictError):
        write_service_status(core, stale, {"ingress": [{"ip": "192.0.2.1"}]})
    assert not api.get("services", "s").get("status", {}).get("loadBalancer")


def test_status_write_of_deleted_service_is_a_no_op(api, core):
    stale = api.create(svc("s"))
    api.delete("services", "s")
    assert write_service_status(core, stale, {"ingress": [{"ip": "192.0.2.1"}]}) is None


def test_status_write_other_errors_raise(api, core):
    stale = api.create(svc("s"))
    api.fail_next(1, 500)
    with pytest.raises(ApiException):
        write_service_status(core, stale, {"ingress": [{"ip": "192.0.2.1"}]})


def test_events_are_created_and_repeats_folded(api, core):
    obj = api.create(svc("s"))
    rec = EventRecorder(core, "metallb-controller")
    try:
        rec.event(obj, "Normal", "IPAllocated", 'Assigned IP ["192.0.2.1"]')
        rec.event(obj, "Normal", "IPAllocated", 'Assigned IP ["192.0.2.1"]')
        rec.event(obj, "Warning", "AllocationFailed", "no available IPs")
        rec.flush()
        events = api.list("events", "default")
        by_reason = {e["reason"]: e for e in events}
        assert len(events) == 2
        assert by_reason["IPAllocated"]["count"] == 2
        assert by_reason["IPAllocated"]["source"]["component"] == "metallb-controller"
        assert by_reason["IPAllocated"]["involvedObject"]["name"] == "s"
        assert by_reason["AllocationFailed"]["type"] == "Warning"
    finally:
        rec.stop()

"""The PATCH formats: the pure functions, then each content type through the real client."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from metallb_lab.apiserver import ApiServer
from metallb_lab.apiserver.errors import ApiError
from metallb_lab.apiserver.patch import (
    JsonPatchError,
    json_merge_patch,
    json_patch,
    parse_json_patch,
    strategic_merge_patch,
)
from tests.apiserver.conftest import WITH_MONITORING, raw, service, status_of

POD: dict[str, Any] = {
    "metadata": {"name": "p", "finalizers": ["a"], "labels": {"x": "1", "y": "2"}},
    "spec": {
        "containers": [
            {"name": "one", "image": "i1", "env": [{"name": "A", "value": "1"}]},
            {"name": "two", "image": "i2"},
        ],
        "tolerations": [{"key": "k1"}],
    },
}


def test_json_merge_patch() -> None:
    out = json_merge_patch(POD, {"metadata": {"labels": {"x": None, "z": "3"}},
                                 "spec": {"tolerations": [{"key": "k2"}]}})  # fmt: skip
    assert out["metadata"]["labels"] == {"y": "2", "z": "3"}
    assert out["spec"]["tolerations"] == [{"key": "k2"}]
    assert out["spec"]["containers"] == POD["spec"]["containers"]  # lists replace, maps merge
    assert POD["metadata"]["labels"] == {"x": "1", "y": "2"}  # input untouched


def test_strategic_merges_lists_by_key() -> None:
    out = strategic_merge_patch(POD, {"spec": {"containers": [
        {"name": "two", "image": "i2b"},
        {"name": "three", "image": "i3"},
    ]}})  # fmt: skip
    assert [(c["name"], c["image"]) for c in out["spec"]["containers"]] == [
        ("one", "i1"), ("two", "i2b"), ("three", "i3")
    ]  # fmt: skip
    assert out["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]


def test_strategic_directives() -> None:
    deleted = strategic_merge_patch(
        POD, {"spec": {"containers": [{"name": "one", "$patch": "delete"}]}}
    )
    assert [c["name"] for c in deleted["spec"]["containers"]] == ["two"]
    replaced = strategic_merge_patch(POD, {"spec": {"containers": [
        {"name": "only", "image": "x"}, {"$patch": "replace"}]}})  # fmt: skip
    assert replaced["spec"]["containers"] == [{"name": "only", "image": "x"}]
    map_replace = strategic_merge_patch(
        POD, {"metadata": {"labels": {"$patch": "replace", "n": "1"}}}
    )
    assert map_replace["metadata"]["labels"] == {"n": "1"}
    map_delete = strategic_merge_patch(POD, {"spec": {"$patch": "delete"}})
    assert "spec" not in map_delete
    finalizers = strategic_merge_patch(POD, {"metadata": {"finalizers": ["b", "a"]}})
    assert finalizers["metadata"]["finalizers"] == ["a", "b"]
    removed = strategic_merge_patch(
        POD, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}
    )
    assert removed["metadata"]["finalizers"] == []
    ordered = strategic_merge_patch(POD, {"spec": {"$setElementOrder/containers": [
        {"name": "two"}, {"name": "one"}]}})  # fmt: skip
    assert [c["name"] for c in ordered["spec"]["containers"]] == ["two", "one"]
    retained = strategic_merge_patch(
        POD, {"metadata": {"labels": {"$retainKeys": ["x"], "x": "9"}}}
    )
    assert retained["metadata"]["labels"] == {"x": "9"}
    tolerations = strategic_merge_patch(POD, {"spec": {"tolerations": [{"key": "k2"}]}})
    assert tolerations["spec"]["tolerations"] == [{"key": "k2"}]  # no merge key: replaced


def test_strategic_service_ports_merge_by_port() -> None:
    svc = {"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}}
    out = strategic_merge_patch(svc, {"spec": {"ports": [{"port": 443, "nodePort": 30443}]}})
    assert out["spec"]["ports"][1] == {"port": 443, "name": "https", "nodePort": 30443}
    with pytest.raises(ApiError) as info:
        strategic_merge_patch(svc, {"spec": {"ports": [{"name": "no-port"}]}})
    assert info.value.code == 422


def test_json_patch_operations() -> None:
    doc = {"a": {"b": [1, 2]}, "c": "x"}
    out = json_patch(doc, parse_json_patch([
        {"op": "add", "path": "/a/b/-", "value": 3},
        {"op": "add", "path": "/a/b/0", "value": 0},
        {"op": "replace", "path": "/c", "value": "y"},
        {"op": "copy", "from": "/c", "path": "/d"},
        {"op": "move", "from": "/d", "path": "/e~1f"},
        {"op": "remove", "path": "/a/b/1"},
        {"op": "test", "path": "/e~1f", "value": "y"},
    ]))  # fmt: skip
    assert out == {"a": {"b": [0, 2, 3]}, "c": "y", "e/f": "y"}
    assert doc == {"a": {"b": [1, 2]}, "c": "x"}
    with pytest.raises(JsonPatchError):
        json_patch(doc, parse_json_patch([{"op": "test", "path": "/c", "value": "nope"}]))
    with pytest.raises(JsonPatchError):
        json_patch(doc, parse_json_patch([{"op": "remove", "path": "/missing"}]))
    with pytest.raises(ApiError):
        parse_json_patch([{"op": "frobnicate", "path": "/c"}])


def test_patch_types_through_the_client(core: Any, api: ApiServer) -> None:
    core.create_namespaced_config_map("default", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="cfg", labels={"a": "1"}), data={"k": "v"}))  # fmt: skip
    # A dict body goes out as a strategic merge patch.
    out = core.patch_namespaced_config_map("cfg", "default", {"metadata": {"labels": {"b": "2"}}})
    assert out.metadata.labels == {"a": "1", "b": "2"}
    # A list body goes out as a JSON patch.
    out = core.patch_namespaced_config_map(
        "cfg", "default", [{"op": "replace", "path": "/data/k", "value": "v2"}]
    )
    assert out.data == {"k": "v2"}
    # Merge patch by explicit content type.
    out = core.patch_namespaced_config_map(
        "cfg", "default", {"metadata": {"labels": {"a": None}}},
        _content_type="application/merge-patch+json",
    )  # fmt: skip
    assert out.metadata.labels == {"b": "2"}
    # A failing JSON patch test is 422 and changes nothing.
    with pytest.raises(client.ApiException) as info:
        core.patch_namespaced_config_map(
            "cfg", "default", [{"op": "test", "path": "/data/k", "value": "other"}]
        )
    assert info.value.status == 422
    assert core.read_namespaced_config_map("cfg", "default").data == {"k": "v2"}


def test_patch_with_stale_resource_version_conflicts(core: Any) -> None:
    created = core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cfg"), data={"k": "v"})
    )
    core.patch_namespaced_config_map("cfg", "default", {"data": {"k": "v1"}})
    with pytest.raises(client.ApiException) as info:
        core.patch_namespaced_config_map("cfg", "default", {
            "metadata": {"resourceVersion": created.metadata.resource_version}, "data": {"k": "v2"}})  # fmt: skip
    assert status_of(info.value)["reason"] == "Conflict"


def test_patch_missing_object_is_404(core: Any) -> None:
    with pytest.raises(client.ApiException) as info:
        core.patch_namespaced_config_map("absent", "default", {"data": {"k": "v"}})
    assert info.value.status == 404


def test_status_patch_changes_only_status(api: ApiServer, core: Any) -> None:
    api.create(service("s", type="LoadBalancer"))
    out = core.patch_namespaced_service_status("s", "default", {
        "metadata": {"labels": {"sneaky": "yes"}},
        "spec": {"type": "ClusterIP"},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}},
    })  # fmt: skip
    assert out.spec.type == "LoadBalancer"
    assert out.metadata.labels is None
    assert out.status.load_balancer.ingress[0].ip == "192.0.2.7"


@pytest.mark.parametrize("api_options", [WITH_MONITORING], ids=["monitoring"])
def test_custom_resources_refuse_strategic_merge(api: ApiServer) -> None:
    api.create({"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
                "metadata": {"name": "pm"}, "spec": {"a": 1}})  # fmt: skip
    path = "/apis/monitoring.coreos.com/v1/namespaces/default/podmonitors/pm"
    code, _, _ = raw(
        api, "PATCH", path, '{"spec":{"b":2}}', "application/strategic-merge-patch+json"
    )
    assert code == 415
    code, body, _ = raw(api, "PATCH", path, '{"spec":{"b":2}}', "application/merge-patch+json")
    assert code == 200 and body["spec"] == {"a": 1, "b": 2}


def test_server_side_apply_creates_then_merges(api: ApiServer) -> None:
    path = "/api/v1/namespaces/default/configmaps/applied?fieldManager=test"
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  a: '1'\n"
    code, body, _ = raw(api, "PATCH", path, manifest, "application/apply-patch+yaml")
    assert code == 201 and body["data"] == {"a": "1"}
    code, body, _ = raw(api, "PATCH", path, manifest.replace("a: '1'", "b: '2'"),
                        "application/apply-patch+yaml")  # fmt: skip
    assert code == 200 and body["data"] == {"a": "1", "b": "2"}
    code, _, _ = raw(
        api, "PATCH", path.split("?", maxsplit=1)[0], manifest, "application/apply-patch+yaml"
    )
    assert code == 422  # fieldManager is required

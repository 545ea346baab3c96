"""Discovery documents, content negotiation (Table, PartialObjectMetadata) and the dynamic client,
which drives everything from discovery."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client, dynamic

from metallb_lab.apiserver import DEFAULT_RESOURCES, LEGACY_RESOURCES, ApiServer
from tests.apiserver.conftest import WITH_MONITORING, raw, service


def test_version(api: ApiServer, api_client: Any) -> None:
    info: Any = client.VersionApi(api_client).get_code()
    assert (info.major, info.minor) == ("1", "32")


def test_core_and_group_discovery(api: ApiServer) -> None:
    code, body, _ = raw(api, "GET", "/api")
    assert code == 200 and body["kind"] == "APIVersions" and body["versions"] == ["v1"]
    code, body, _ = raw(api, "GET", "/api/v1")
    services = next(r for r in body["resources"] if r["name"] == "services")
    assert services["namespaced"] and services["kind"] == "Service"
    assert "svc" in services["shortNames"] and "watch" in services["verbs"]
    status = next(r for r in body["resources"] if r["name"] == "services/status")
    assert status["verbs"] == ["get", "patch", "update"]
    nodes = next(r for r in body["resources"] if r["name"] == "nodes")
    assert nodes["namespaced"] is False
    code, body, _ = raw(api, "GET", "/apis")
    groups = {g["name"]: g for g in body["groups"]}
    # Exactly the built-in groups a stock 1.32 cluster serves (the part the project uses).
    assert set(groups) == {"apps", "discovery.k8s.io", "events.k8s.io", "coordination.k8s.io",
                           "rbac.authorization.k8s.io", "authentication.k8s.io",
                           "authorization.k8s.io"}  # fmt: skip
    assert all(len(g["versions"]) == 1 for g in groups.values())
    assert groups["discovery.k8s.io"]["preferredVersion"]["version"] == "v1"
    code, body, _ = raw(api, "GET", "/apis/apps")
    assert body["kind"] == "APIGroup" and body["name"] == "apps"
    code, body, _ = raw(api, "GET", "/apis/apps/v1")
    assert {r["name"] for r in body["resources"]} >= {"deployments", "daemonsets"}
    assert raw(api, "GET", "/apis/apps/v2")[0] == 404


def test_openapi_v3_declares_field_validation(api: ApiServer) -> None:
    code, root, _ = raw(api, "GET", "/openapi/v3")
    assert code == 200 and "api/v1" in root["paths"]
    code, doc, _ = raw(api, "GET", root["paths"]["api/v1"]["serverRelativeURL"])
    patch = doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"]["kind"] == "ConfigMap"
    assert {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}} in patch[
        "parameters"
    ]


def test_openapi_v2_has_no_definitions(api: ApiServer) -> None:
    """kubectl reads it only for kinds the v3 root lacks; finding no schema, it goes on to fail
    with "no matches for kind" like against a real cluster (tests/ops/test_apply.py)."""
    code, doc, headers = raw(api, "GET", "/openapi/v2")
    assert code == 200 and headers["content-type"] == "application/json"
    assert doc["swagger"] == "2.0" and doc["paths"] == {} and doc["definitions"] == {}
    accept = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
    code, body, headers = raw(api, "GET", "/openapi/v2", headers={"Accept": accept})
    assert code == 200
    assert headers["content-type"] == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    assert body == "\n\x032.0"  # openapi_v2.Document{swagger: "2.0"}


def test_table_and_partial_metadata(api: ApiServer) -> None:
    api.create(service("web", type="LoadBalancer"))
    api.patch("services", "web", {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.9"}]}}},
              subresource="status")  # fmt: skip
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    code, table, _ = raw(
        api, "GET", "/api/v1/namespaces/default/services", headers={"Accept": accept}
    )
    assert code == 200
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns[:6] == ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"]
    rows = {r["cells"][0]: r for r in table["rows"]}
    assert rows["web"]["cells"][1] == "LoadBalancer"
    assert rows["web"]["cells"][3] == "192.0.2.9"
    assert rows["kubernetes"]["cells"][3] == "<none>"
    assert rows["web"]["object"]["kind"] == "PartialObjectMetadata"
    accept = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"
    _, partial, _ = raw(
        api, "GET", "/api/v1/namespaces/default/services", headers={"Accept": accept}
    )
    assert partial["kind"] == "PartialObjectMetadataList"
    assert {i["metadata"]["name"] for i in partial["items"]} == {"kubernetes", "web"}
    assert "spec" not in partial["items"][0]


def test_yaml_responses(api: ApiServer) -> None:
    code, body, headers = raw(
        api, "GET", "/api/v1/namespaces/default", headers={"Accept": "application/yaml"}
    )
    assert code == 200 and headers["content-type"] == "application/yaml"
    assert "kind: Namespace" in body


def test_protobuf_only_is_not_acceptable(api: ApiServer) -> None:
    code, body, _ = raw(api, "GET", "/api/v1/namespaces",
                        headers={"Accept": "application/vnd.kubernetes.protobuf"})  # fmt: skip
    assert code == 406 and body["reason"] == "NotAcceptable"


@pytest.mark.parametrize("api_options", [WITH_MONITORING], ids=["monitoring"])
def test_dynamic_client(api_client: Any) -> None:
    dyn: Any = dynamic.DynamicClient(api_client)
    services = dyn.resources.get(api_version="v1", kind="Service")
    created = services.create(body=service("dyn"), namespace="default")
    assert created.spec.clusterIP
    listed = services.get(namespace="default")
    assert {i.metadata.name for i in listed.items} == {"kubernetes", "dyn"}
    monitors = dyn.resources.get(api_version="monitoring.coreos.com/v1", kind="PodMonitor")
    monitors.create(body={"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
                          "metadata": {"name": "pm"}, "spec": {}}, namespace="default")  # fmt: skip
    assert monitors.get(name="pm", namespace="default").metadata.name == "pm"


def test_legacy_endpoint_slices_convert() -> None:
    with ApiServer(with_legacy_apis=True) as api:
        api.create({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
                    "addressType": "IPv4",
                    "endpoints": [{"addresses": ["192.0.2.10"], "nodeName": "node-a",
                                   "zone": "z1", "conditions": {"ready": True}}]})  # fmt: skip
        old = api.get("endpointslices", "web-abc", api_version="discovery.k8s.io/v1beta1")
        assert old["apiVersion"] == "discovery.k8s.io/v1beta1"
        assert old["endpoints"][0]["topology"] == {
            "kubernetes.io/hostname": "node-a", "topology.kubernetes.io/zone": "z1"
        }  # fmt: skip
        assert "nodeName" not in old["endpoints"][0]
        # Written through v1beta1, read through v1.
        old["endpoints"][0]["topology"]["kubernetes.io/hostname"] = "node-b"
        api.update(old)
        new = api.get("endpointslices", "web-abc", api_version="discovery.k8s.io/v1")
        assert new["endpoints"][0]["nodeName"] == "node-b" and "topology" not in new["endpoints"][0]
        # The default table does not serve v1beta1, as Kubernetes 1.25+ does not.
    with ApiServer() as api:
        assert raw(api, "GET", "/apis/discovery.k8s.io/v1beta1")[0] == 404
        with pytest.raises(ValueError):
            api.resource("endpointslices", "discovery.k8s.io/v1beta1")


def test_extras_are_switched_on_explicitly() -> None:
    """Built-in groups only by default; the Prometheus operator's CRDs and the APIs Kubernetes
    1.25 removed each behind their own switch, with discovery and openapi following."""
    with ApiServer() as api:
        for path in ("/apis/monitoring.coreos.com", "/apis/monitoring.coreos.com/v1",
                     "/apis/policy", "/apis/policy/v1beta1",
                     "/apis/monitoring.coreos.com/v1/namespaces/default/podmonitors"):  # fmt: skip
            assert raw(api, "GET", path)[0] == 404, path
        _, root, _ = raw(api, "GET", "/openapi/v3")
        assert not any("monitoring" in p or "policy" in p for p in root["paths"])
    with ApiServer(with_monitoring_crds=True) as api:
        _, body, _ = raw(api, "GET", "/apis")
        groups = {g["name"]: g for g in body["groups"]}
        assert groups["monitoring.coreos.com"]["preferredVersion"]["version"] == "v1"
        assert "policy" not in groups
        _, body, _ = raw(api, "GET", "/apis/monitoring.coreos.com/v1")
        assert {r["name"] for r in body["resources"]} == {
            "podmonitors", "servicemonitors", "prometheusrules"
        }  # fmt: skip
        _, root, _ = raw(api, "GET", "/openapi/v3")
        assert "apis/monitoring.coreos.com/v1" in root["paths"]
    with ApiServer(with_legacy_apis=True) as api:
        _, body, _ = raw(api, "GET", "/apis/policy/v1beta1")
        assert [r["name"] for r in body["resources"]] == ["podsecuritypolicies"]
        _, body, _ = raw(api, "GET", "/apis/discovery.k8s.io")
        assert [v["version"] for v in body["versions"]] == ["v1", "v1beta1"]
        assert body["preferredVersion"]["version"] == "v1"
    # Listing a switched-on extra in `resources` too does not serve it twice.
    both = ApiServer(resources=DEFAULT_RESOURCES + LEGACY_RESOURCES, with_legacy_apis=True)
    assert len(both.table.resources) == len(DEFAULT_RESOURCES + LEGACY_RESOURCES)

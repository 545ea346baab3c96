"""Create/get/list/update/delete through the real `kubernetes` client, with the metadata and error
shapes a real API server produces."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client

from metallb_lab.apiserver import ApiServer
from metallb_lab.apiserver.errors import ApiError
from tests.apiserver.conftest import WITH_MONITORING, raw, service, status_of


def cm(name: str, data: dict[str, str] | None = None, **meta: Any) -> Any:
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, **meta), data=data or {"k": "v"}
    )


def test_create_sets_server_metadata(core: Any, api: ApiServer) -> None:
    before = api.resource_version
    created = core.create_namespaced_config_map("default", cm("one"))
    meta = created.metadata
    assert meta.namespace == "default"
    assert re.fullmatch(r"[0-9a-f-]{36}", meta.uid)
    assert meta.creation_timestamp is not None
    assert int(meta.resource_version) > before
    again = core.read_namespaced_config_map("one", "default")
    assert again.metadata.uid == meta.uid
    assert again.metadata.resource_version == meta.resource_version
    assert again.data == {"k": "v"}


def test_resource_versions_increase_across_kinds(core: Any) -> None:
    a = core.create_namespaced_config_map("default", cm("a"))
    b = core.create_namespaced_secret(
        "default", client.V1Secret(metadata=client.V1ObjectMeta(name="b"), string_data={"x": "y"})
    )
    c = core.create_namespaced_config_map("default", cm("c"))
    versions = [int(o.metadata.resource_version) for o in (a, b, c)]
    assert versions == sorted(versions) and len(set(versions)) == 3


def test_already_exists_is_409(core: Any) -> None:
    core.create_namespaced_config_map("default", cm("dup"))
    with pytest.raises(client.ApiException) as info:
        core.create_namespaced_config_map("default", cm("dup"))
    body = status_of(info.value)
    assert info.value.status == 409
    assert body["reason"] == "AlreadyExists"
    assert body["message"] == 'configmaps "dup" already exists'
    assert body["details"] == {"name": "dup", "kind": "configmaps"}


def test_not_found_is_404_with_status(core: Any, api_client: Any) -> None:
    with pytest.raises(client.ApiException) as info:
        core.read_namespaced_service("nope", "default")
    body = status_of(info.value)
    assert body["reason"] == "NotFound"
    assert body["message"] == 'services "nope" not found'
    apps: Any = client.AppsV1Api(api_client)
    with pytest.raises(client.ApiException) as info:
        apps.read_namespaced_deployment("nope", "default")
    assert status_of(info.value)["message"] == 'deployments.apps "nope" not found'
    assert status_of(info.value)["details"]["group"] == "apps"


def test_create_in_missing_namespace_is_404(core: Any) -> None:
    with pytest.raises(client.ApiException) as info:
        core.create_namespaced_config_map("metallb-system", cm("config"))
    assert status_of(info.value)["message"] == 'namespaces "metallb-system" not found'
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="metallb-system")))
    core.create_namespaced_config_map("metallb-system", cm("config"))


def test_namespace_in_body_must_match_url(core: Any) -> None:
    with pytest.raises(client.ApiException) as info:
        core.create_namespaced_config_map("default", cm("x", namespace="kube-system"))
    assert info.value.status == 400


def test_generate_name(core: Any) -> None:
    created = core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(generate_name="gen-"))
    )
    assert re.fullmatch(r"gen-[a-z0-9]{5}", created.metadata.name)


def test_invalid_name_is_422_with_causes(core: Any) -> None:
    with pytest.raises(client.ApiException) as info:
        core.create_namespaced_config_map("default", cm("Not_Valid"))
    body = status_of(info.value)
    assert info.value.status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    with pytest.raises(client.ApiException) as info:
        core.create_namespaced_service(
            "default", client.V1Service(metadata=client.V1ObjectMeta(name="1abc"))
        )
    assert info.value.status == 422  # Service names are DNS-1035 labels


def test_list_namespaced_and_all_namespaces(core: Any) -> None:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="other")))
    core.create_namespaced_config_map("default", cm("a"))
    core.create_namespaced_config_map("other", cm("b"))
    only = core.list_namespaced_config_map("other")
    assert [i.metadata.name for i in only.items] == ["b"]
    everything = core.list_config_map_for_all_namespaces()
    names = {(i.metadata.namespace, i.metadata.name) for i in everything.items}
    assert names == {("default", "a"), ("other", "b")}
    assert int(everything.metadata.resource_version) >= int(only.metadata.resource_version)


def test_update_with_current_version_then_stale_is_409(core: Any) -> None:
    first = core.create_namespaced_config_map("default", cm("cfg"))
    first.data = {"k": "v2"}
    second = core.replace_namespaced_config_map("cfg", "default", first)
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    first.data = {"k": "v3"}  # still carries the old resourceVersion
    with pytest.raises(client.ApiException) as info:
        core.replace_namespaced_config_map("cfg", "default", first)
    body = status_of(info.value)
    assert info.value.status == 409 and body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]
    assert core.read_namespaced_config_map("cfg", "default").data == {"k": "v2"}


def test_update_without_version_is_unconditional(core: Any) -> None:
    core.create_namespaced_config_map("default", cm("cfg"))
    updated = core.replace_namespaced_config_map("cfg", "default", cm("cfg", {"k": "new"}))
    assert updated.data == {"k": "new"}


def test_noop_update_keeps_resource_version(core: Any, api: ApiServer) -> None:
    created = core.create_namespaced_config_map("default", cm("same"))
    rv = api.resource_version
    again = core.replace_namespaced_config_map("same", "default", created)
    assert again.metadata.resource_version == created.metadata.resource_version
    assert api.resource_version == rv


def test_update_cannot_change_uid_or_creation(core: Any) -> None:
    created = core.create_namespaced_config_map("default", cm("keep"))
    body = cm("keep", {"k": "2"})
    body.metadata.uid = "00000000-0000-0000-0000-000000000000"
    updated = core.replace_namespaced_config_map("keep", "default", body)
    assert updated.metadata.uid == created.metadata.uid
    assert updated.metadata.creation_timestamp == created.metadata.creation_timestamp


def test_update_of_missing_object(core: Any) -> None:
    with pytest.raises(client.ApiException) as info:
        core.replace_namespaced_config_map("absent", "default", cm("absent"))
    assert info.value.status == 404
    # Services allow create-on-update, as upstream.
    created = core.replace_namespaced_service(
        "made", "default", client.V1Service(
            metadata=client.V1ObjectMeta(name="made"),
            spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)]),
        )
    )  # fmt: skip
    assert created.spec.cluster_ip


def test_delete_and_preconditions(core: Any, api: ApiServer) -> None:
    created = core.create_namespaced_config_map("default", cm("gone"))
    with pytest.raises(client.ApiException) as info:
        core.delete_namespaced_config_map(
            "gone", "default",
            body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="wrong")),
        )  # fmt: skip
    assert info.value.status == 409
    core.delete_namespaced_config_map(
        "gone", "default",
        body=client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid=created.metadata.uid)
        ),
    )  # fmt: skip
    with pytest.raises(client.ApiException) as info:
        core.read_namespaced_config_map("gone", "default")
    assert info.value.status == 404
    with pytest.raises(client.ApiException) as info:
        core.delete_namespaced_config_map("gone", "default")
    assert info.value.status == 404


def test_finalizers_delay_deletion(core: Any) -> None:
    core.create_namespaced_config_map("default", cm("held", finalizers=["example.com/hold"]))
    core.delete_namespaced_config_map("held", "default")
    held = core.read_namespaced_config_map("held", "default")
    assert held.metadata.deletion_timestamp is not None
    held.metadata.finalizers = ["example.com/hold", "example.com/more"]
    with pytest.raises(client.ApiException) as info:
        core.replace_namespaced_config_map("held", "default", held)
    assert info.value.status == 422
    held.metadata.finalizers = []
    core.replace_namespaced_config_map("held", "default", held)
    with pytest.raises(client.ApiException) as info:
        core.read_namespaced_config_map("held", "default")
    assert info.value.status == 404


def test_delete_collection_with_selector(core: Any) -> None:
    core.create_namespaced_config_map("default", cm("a", labels={"app": "x"}))
    core.create_namespaced_config_map("default", cm("b", labels={"app": "y"}))
    core.delete_collection_namespaced_config_map("default", label_selector="app=x")
    assert [i.metadata.name for i in core.list_namespaced_config_map("default").items] == ["b"]


def test_deleting_a_namespace_deletes_its_objects(core: Any, api: ApiServer) -> None:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="tmp")))
    core.create_namespaced_config_map("tmp", cm("inside"))
    api.create(service("svc"), namespace="tmp")
    core.delete_namespace("tmp")
    assert (
        core.list_config_map_for_all_namespaces(field_selector="metadata.namespace=tmp").items == []
    )
    assert api.list("services", namespace="tmp") == []
    # The Service's cluster IP went back to the pool.
    clusterip = api.create(service("again"))["spec"]["clusterIP"]
    assert clusterip


def test_namespace_gets_name_label_and_phase(core: Any) -> None:
    ns = core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="lbl")))
    assert ns.metadata.labels == {"kubernetes.io/metadata.name": "lbl"}
    assert ns.status.phase == "Active"


def test_seeded_cluster_objects(core: Any, api: ApiServer) -> None:
    names = {n.metadata.name for n in core.list_namespace().items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
    kubernetes = core.read_namespaced_service("kubernetes", "default")
    assert kubernetes.spec.cluster_ip == "10.96.0.1"
    endpoints = core.read_namespaced_endpoints("kubernetes", "default")
    assert endpoints.subsets[0].ports[0].port == api.port


def test_secret_string_data_is_folded_into_data(core: Any) -> None:
    secret = core.create_namespaced_secret(
        "default",
        client.V1Secret(metadata=client.V1ObjectMeta(name="memberlist"), string_data={"k": "v"}),
    )
    assert secret.data == {"k": base64.b64encode(b"v").decode()}
    assert secret.string_data is None
    assert secret.type == "Opaque"


def test_secret_with_bad_base64_is_400(api: ApiServer, core: Any) -> None:
    with pytest.raises(client.ApiException) as info:
        core.create_namespaced_secret(
            "default", client.V1Secret(metadata=client.V1ObjectMeta(name="s"), data={"k": "%%%"})
        )
    assert info.value.status == 400


def test_dry_run_stores_nothing(core: Any, api: ApiServer) -> None:
    rv = api.resource_version
    result = core.create_namespaced_config_map("default", cm("dry"), dry_run="All")
    assert result.metadata.name == "dry"
    assert api.resource_version == rv
    with pytest.raises(client.ApiException):
        core.read_namespaced_config_map("dry", "default")


def test_nodes_keep_status_on_create_and_pods_do_not(core: Any) -> None:
    node = core.create_node(client.V1Node(
        metadata=client.V1ObjectMeta(name="node-a"),
        status=client.V1NodeStatus(addresses=[client.V1NodeAddress(type="InternalIP", address="192.0.2.1")]),
    ))  # fmt: skip
    assert node.status.addresses[0].address == "192.0.2.1"
    pod = core.create_namespaced_pod("default", client.V1Pod(
        metadata=client.V1ObjectMeta(name="p"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="i")]),
        status=client.V1PodStatus(pod_ip="192.0.2.9"),
    ))  # fmt: skip
    assert pod.status.pod_ip is None and pod.status.phase == "Pending"
    pod.status.pod_ip = "192.0.2.9"
    assert core.replace_namespaced_pod_status("p", "default", pod).status.pod_ip == "192.0.2.9"


def test_pod_without_containers_is_invalid(core: Any) -> None:
    with pytest.raises(client.ApiException) as info:
        core.create_namespaced_pod(
            "default",
            client.V1Pod(
                metadata=client.V1ObjectMeta(name="p"), spec=client.V1PodSpec(containers=[])
            ),
        )
    assert info.value.status == 422


def test_other_groups(api_client: Any) -> None:
    apps: Any = client.AppsV1Api(api_client)
    deployment = apps.create_namespaced_deployment("default", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "controller"},
        "spec": {"selector": {"matchLabels": {"app": "x"}},
                 "template": {"metadata": {"labels": {"app": "x"}},
                              "spec": {"containers": [{"name": "c", "image": "i"}]}}},
    })  # fmt: skip
    assert deployment.metadata.generation == 1
    assert deployment.spec.replicas == 1
    deployment.spec.replicas = 2
    updated = apps.replace_namespaced_deployment("controller", "default", deployment)
    assert updated.metadata.generation == 2
    updated.metadata.labels = {"a": "b"}
    assert (
        apps.replace_namespaced_deployment("controller", "default", updated).metadata.generation
        == 2
    )
    leases: Any = client.CoordinationV1Api(api_client)
    lease = leases.create_namespaced_lease("default", {
        "metadata": {"name": "leader"}, "spec": {"holderIdentity": "me"}})  # fmt: skip
    assert lease.spec.holder_identity == "me"
    rbac: Any = client.RbacAuthorizationV1Api(api_client)
    role = rbac.create_cluster_role(
        {"metadata": {"name": "metallb-system:controller"}, "rules": []}
    )
    assert role.metadata.name == "metallb-system:controller"
    disc: Any = client.DiscoveryV1Api(api_client)
    slices = disc.list_namespaced_endpoint_slice(
        "default", label_selector="kubernetes.io/service-name=kubernetes"
    )
    assert [s.metadata.name for s in slices.items] == ["kubernetes"]


@pytest.mark.parametrize("api_options", [WITH_MONITORING], ids=["monitoring"])
def test_custom_objects_are_stored_generically(api_client: Any) -> None:
    custom: Any = client.CustomObjectsApi(api_client)
    body = {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
        "metadata": {"name": "metallb-controller"},
        "spec": {"podMetricsEndpoints": [{"port": "monitoring", "path": "/metrics"}]},
    }  # fmt: skip
    created = custom.create_namespaced_custom_object(
        "monitoring.coreos.com", "v1", "default", "podmonitors", body
    )
    assert created["metadata"]["generation"] == 1
    listed = custom.list_namespaced_custom_object(
        "monitoring.coreos.com", "v1", "default", "podmonitors"
    )
    assert listed["items"][0]["kind"] == "PodMonitor"


def test_events_in_both_api_groups(api: ApiServer, api_client: Any, core: Any) -> None:
    event = core.create_namespaced_event("default", client.CoreV1Event(
        metadata=client.V1ObjectMeta(name="svc.1"),
        involved_object=client.V1ObjectReference(kind="Service", name="svc", namespace="default"),
        reason="IPAllocated", message='Assigned IP ["192.0.2.1"]', type="Normal",
        source=client.V1EventSource(component="metallb-controller"),
        # The python client's EventsV1Event model refuses a null eventTime.
        event_time=datetime.now(UTC),
    ))  # fmt: skip
    events_v1: Any = client.EventsV1Api(api_client)
    seen = events_v1.read_namespaced_event("svc.1", "default")
    assert seen.regarding.name == "svc" and seen.note == 'Assigned IP ["192.0.2.1"]'
    assert seen.deprecated_source.component == "metallb-controller"
    by_field = core.list_namespaced_event(
        "default",
        field_selector="involvedObject.name=svc,reason=IPAllocated,source=metallb-controller",
    )
    assert [e.metadata.name for e in by_field.items] == [event.metadata.name]
    # events.k8s.io requires its fields (the generated client refuses to send this at all).
    code, body, _ = raw(api, "POST", "/apis/events.k8s.io/v1/namespaces/default/events",
                        json.dumps({"metadata": {"name": "bad"}, "type": "Normal"}))  # fmt: skip
    assert code == 422
    fields = {c["field"] for c in body["details"]["causes"]}
    assert {"eventTime", "reportingController", "reportingInstance", "action", "reason"} <= fields


def _slice(family: str, *addresses: str) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "namespace": "default"},
        "addressType": family,
        "endpoints": [{"addresses": list(addresses)}],
    }


@pytest.mark.parametrize(
    ("family", "address"),
    [("IPv4", "not-an-ip"), ("IPv4", "2001:db8::1"), ("IPv6", "192.0.2.1")],
)
def test_endpoint_slice_addresses_are_of_the_slice_family(
    api: ApiServer, family: str, address: str
) -> None:
    with pytest.raises(ApiError) as info:
        api.create(_slice(family, "192.0.2.9" if family == "IPv4" else "2001:db8::9", address))
    assert info.value.code == 422
    assert info.value.status()["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": f'Invalid value: "{address}": must be a valid {family} address',
            "field": "endpoints[0].addresses[1]",
        }
    ]


def test_endpoint_slice_address_type_is_immutable(api: ApiServer) -> None:
    created = api.create(_slice("IPv4", "192.0.2.01"))  # leading zeros pass, as upstream
    created["addressType"] = "IPv6"
    created["endpoints"] = [{"addresses": ["2001:db8::1"]}]
    with pytest.raises(ApiError) as info:
        api.update(created)
    assert info.value.status()["details"]["causes"][0]["field"] == "addressType"

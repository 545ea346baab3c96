"""Service semantics the MetalLB controller depends on: cluster IPs (the controller reads the IP
family from `spec.clusterIPs`), node ports, the status subresource, and type changes."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from kubernetes import client

from metallb_lab.apiserver import ApiServer, ClusterConfig
from metallb_lab.apiserver.errors import ApiError
from tests.apiserver.conftest import service, status_of


def lb_status(*ips: str) -> dict[str, object]:
    return {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}


def test_cluster_ip_defaults(api: ApiServer) -> None:
    svc = api.create(service("web"))
    spec = svc["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["clusterIPs"] == [spec["clusterIP"]]
    assert ipaddress.ip_address(spec["clusterIP"]) in ipaddress.ip_network("10.96.0.0/16")
    assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert spec["sessionAffinity"] == "None" and spec["internalTrafficPolicy"] == "Cluster"
    assert "externalTrafficPolicy" not in spec
    assert svc["status"] == {"loadBalancer": {}}


def test_cluster_ips_are_unique(api: ApiServer) -> None:
    ips = {api.create(service(f"s{i}"))["spec"]["clusterIP"] for i in range(50)}
    assert len(ips) == 50 and "10.96.0.1" not in ips  # .1 is the `kubernetes` Service


def test_load_balancer_defaults_and_node_ports(api: ApiServer) -> None:
    svc = api.create(service("lb", type="LoadBalancer", externalTrafficPolicy="Local"))
    spec = svc["spec"]
    assert spec["allocateLoadBalancerNodePorts"] is True
    assert 30000 <= spec["ports"][0]["nodePort"] <= 32767
    assert 30000 <= spec["healthCheckNodePort"] <= 32767
    assert spec["healthCheckNodePort"] != spec["ports"][0]["nodePort"]
    no_ports = api.create(service("lb2", type="LoadBalancer", allocateLoadBalancerNodePorts=False))
    assert "nodePort" not in no_ports["spec"]["ports"][0]


def test_requested_cluster_ip_and_conflicts(api: ApiServer) -> None:
    api.create(service("a", clusterIP="10.96.1.1"))
    with pytest.raises(Exception) as info:
        api.create(service("b", clusterIP="10.96.1.1"))
    assert "already allocated" in str(info.value)
    with pytest.raises(Exception) as info:
        api.create(service("c", clusterIP="192.0.2.1"))
    assert "not in the valid range" in str(info.value)


def test_dual_stack(api: ApiServer) -> None:
    dual = api.create(service("dual", ipFamilyPolicy="RequireDualStack"))["spec"]
    assert dual["ipFamilies"] == ["IPv4", "IPv6"]
    assert [ipaddress.ip_address(ip).version for ip in dual["clusterIPs"]] == [4, 6]
    v6 = api.create(service("v6", ipFamilies=["IPv6"]))["spec"]
    assert ipaddress.ip_address(v6["clusterIP"]).version == 6
    assert v6["ipFamilyPolicy"] == "SingleStack"


def test_single_stack_cluster_refuses_dual_stack() -> None:
    with ApiServer(cluster=ClusterConfig(service_cidrs=("10.96.0.0/16",))) as api:
        with pytest.raises(Exception) as info:
            api.create(service("dual", ipFamilyPolicy="RequireDualStack"))
        assert "not configured for dual-stack" in str(info.value)
        prefer = api.create(service("prefer", ipFamilyPolicy="PreferDualStack"))["spec"]
        assert prefer["ipFamilies"] == ["IPv4"]


def test_invalid_ports_are_422(core: Any) -> None:
    with pytest.raises(client.ApiException) as info:
        core.create_namespaced_service("default", client.V1Service(
            metadata=client.V1ObjectMeta(name="bad"),
            spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80), client.V1ServicePort(port=81)]),
        ))  # fmt: skip
    body = status_of(info.value)
    assert body["reason"] == "Invalid"
    assert {c["field"] for c in body["details"]["causes"]} == {
        "spec.ports[0].name",
        "spec.ports[1].name",
    }


def test_create_ignores_status(core: Any) -> None:
    created = core.create_namespaced_service("default", client.V1Service(
        metadata=client.V1ObjectMeta(name="s"),
        spec=client.V1ServiceSpec(type="LoadBalancer", ports=[client.V1ServicePort(port=80)]),
        status=client.V1ServiceStatus(load_balancer=client.V1LoadBalancerStatus(
            ingress=[client.V1LoadBalancerIngress(ip="192.0.2.1")])),
    ))  # fmt: skip
    assert not created.status.load_balancer.ingress


def test_main_put_ignores_status_and_status_put_changes_only_status(core: Any) -> None:
    svc = core.create_namespaced_service("default", client.V1Service(
        metadata=client.V1ObjectMeta(name="s"),
        spec=client.V1ServiceSpec(type="LoadBalancer", ports=[client.V1ServicePort(port=80)]),
    ))  # fmt: skip
    # The main resource: a status change is dropped, the label change is kept.
    svc.metadata.labels = {"changed": "yes"}
    svc.status.load_balancer.ingress = [client.V1LoadBalancerIngress(ip="192.0.2.1")]
    svc = core.replace_namespaced_service("s", "default", svc)
    assert svc.metadata.labels == {"changed": "yes"}
    assert not svc.status.load_balancer.ingress
    # The status subresource: the status change is kept, spec and label changes are dropped.
    svc.status.load_balancer.ingress = [client.V1LoadBalancerIngress(ip="192.0.2.1")]
    svc.metadata.labels = {"changed": "again"}
    svc.spec.session_affinity = "ClientIP"
    svc = core.replace_namespaced_service_status("s", "default", svc)
    assert [i.ip for i in svc.status.load_balancer.ingress] == ["192.0.2.1"]
    assert svc.metadata.labels == {"changed": "yes"}
    assert svc.spec.session_affinity == "None"
    # And a stale status write is a conflict like any other.
    stale = core.read_namespaced_service("s", "default")
    core.patch_namespaced_service_status("s", "default", {"status": lb_status("192.0.2.2")})
    stale.status.load_balancer.ingress = [client.V1LoadBalancerIngress(ip="192.0.2.3")]
    with pytest.raises(client.ApiException) as info:
        core.replace_namespaced_service_status("s", "default", stale)
    assert info.value.status == 409


def test_status_ip_must_be_an_ip(core: Any, api: ApiServer) -> None:
    api.create(service("s", type="LoadBalancer"))
    with pytest.raises(client.ApiException) as info:
        core.patch_namespaced_service_status("s", "default", {"status": lb_status("not-an-ip")})
    assert info.value.status == 422


def test_status_ingress_rules_as_kube_apiserver(api: ApiServer) -> None:
    """Leading zeros pass (Go's legacy parser); ingress on a non-LoadBalancer Service does not."""
    api.create(service("lb", type="LoadBalancer"))
    stored = api.patch("services", "lb", {"status": lb_status("192.0.2.01")}, subresource="status")
    assert stored["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.01", "ipMode": "VIP"}]
    api.create(service("cip"))
    with pytest.raises(ApiError) as info:
        api.patch("services", "cip", {"status": lb_status("192.0.2.1")}, subresource="status")
    assert info.value.code == 422
    assert info.value.status()["details"]["causes"][0] == {
        "reason": "FieldValueForbidden",
        "message": "Forbidden: may only be used when `spec.type` is 'LoadBalancer'",
        "field": "status.loadBalancer.ingress",
    }


@pytest.mark.parametrize(
    ("kind", "ranges", "field"),
    [
        ("LoadBalancer", ["10.0.0.0/33"], "spec.LoadBalancerSourceRanges[0]"),
        ("LoadBalancer", ["10.0.0.0/8", "not-a-cidr"], "spec.LoadBalancerSourceRanges[1]"),
        ("LoadBalancer", ["2001:db8::/129"], "spec.LoadBalancerSourceRanges[0]"),
        ("ClusterIP", ["10.0.0.0/8"], "spec.LoadBalancerSourceRanges"),
        ("LoadBalancer", [" 10.0.0.1/8", "2001:db8::1/64", "010.0.0.0/8"], None),
    ],
)
def test_load_balancer_source_ranges(
    api: ApiServer, kind: str, ranges: list[str], field: str | None
) -> None:
    body = service("s", type=kind, loadBalancerSourceRanges=ranges)
    if field is None:
        assert api.create(body)["spec"]["loadBalancerSourceRanges"] == ranges
        return
    with pytest.raises(ApiError) as info:
        api.create(body)
    assert info.value.code == 422
    assert info.value.status()["details"]["causes"][0]["field"] == field


def test_type_change_away_from_load_balancer_clears_status(api: ApiServer) -> None:
    api.create(service("s", type="LoadBalancer", externalTrafficPolicy="Local"))
    api.patch("services", "s", {"status": lb_status("192.0.2.5")}, subresource="status")
    changed = api.patch("services", "s", {"spec": {"type": "ClusterIP"}})
    assert changed["status"] == {"loadBalancer": {}}
    spec = changed["spec"]
    assert "nodePort" not in spec["ports"][0]
    assert "healthCheckNodePort" not in spec
    assert "externalTrafficPolicy" not in spec
    assert "allocateLoadBalancerNodePorts" not in spec
    # The node ports went back to the pool: a port can be asked for again.
    back = api.patch("services", "s", {"spec": {"type": "LoadBalancer"}})
    assert back["spec"]["ports"][0]["nodePort"]


def test_update_keeps_allocated_values_when_omitted(api: ApiServer, core: Any) -> None:
    svc = api.create(service("s", type="NodePort"))
    body = service("s", type="NodePort")  # no clusterIP, no nodePort: kept, as upstream does
    body["metadata"]["labels"] = {"x": "y"}
    updated = core.replace_namespaced_service("s", "default", body)
    assert updated.spec.cluster_ip == svc["spec"]["clusterIP"]
    assert updated.spec.ports[0].node_port == svc["spec"]["ports"][0]["nodePort"]
    body["spec"]["clusterIP"] = "10.96.9.9"
    with pytest.raises(client.ApiException) as info:
        core.replace_namespaced_service("s", "default", body)
    assert info.value.status == 422


def test_service_field_selectors(core: Any, api: ApiServer) -> None:
    api.create(service("lb", type="LoadBalancer"))
    api.create(service("plain"))
    lbs = core.list_service_for_all_namespaces(field_selector="spec.type=LoadBalancer")
    assert [s.metadata.name for s in lbs.items] == ["lb"]


def test_node_port_exhaustion_is_reported() -> None:
    with ApiServer(cluster=ClusterConfig(node_port_range=(30000, 30001))) as api:
        api.create(service("a", type="NodePort"))
        api.create(service("b", type="NodePort"))
        with pytest.raises(Exception) as info:
            api.create(service("c", type="NodePort"))
        assert "range is full" in str(info.value)
        api.delete("services", "a")
        api.create(service("c", type="NodePort"))


def test_tiny_service_cidr_fills_up_and_frees() -> None:
    with ApiServer(cluster=ClusterConfig(service_cidrs=("10.97.0.0/29",))) as api:
        # /29: offsets 1..6 usable, .1 is the `kubernetes` Service.
        ips = [api.create(service(f"s{i}"))["spec"]["clusterIP"] for i in range(5)]
        assert sorted(ips) == [f"10.97.0.{i}" for i in range(2, 7)]
        with pytest.raises(Exception) as info:
            api.create(service("full"))
        assert "range is full" in str(info.value)
        api.delete("services", "s2")
        assert api.create(service("full"))["spec"]["clusterIP"] == ips[2]
    with pytest.raises(ValueError):
        ApiServer(cluster=ClusterConfig(service_cidrs=("10.0.0.0/8",)))


def test_load_balancer_class_is_fixed_once_set_and_only_on_a_load_balancer(api: ApiServer) -> None:
    created = api.create(service("s", type="LoadBalancer", loadBalancerClass="a.example/x"))
    created["spec"]["loadBalancerClass"] = "b.example/y"
    with pytest.raises(ApiError) as info:
        api.update(created)
    assert info.value.status()["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "b.example/y": may not change once set',
            "field": "spec.loadBalancerClass",
        }
    ]
    # Leaving LoadBalancer drops the class (upstream's dropTypeDependentFields).
    changed = api.patch("services", "s", {"spec": {"type": "ClusterIP"}})
    assert "loadBalancerClass" not in changed["spec"]
    with pytest.raises(ApiError) as info:
        api.create(service("c", loadBalancerClass="a.example/x"))
    assert info.value.status()["details"]["causes"][0]["field"] == "spec.loadBalancerClass"

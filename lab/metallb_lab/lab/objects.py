"""Kubernetes objects of the lab (and of the end-to-end tests), built as plain dicts.

Builders are pure. `register` is the one piece of glue: an API server ignores `status` on
create, as a real one does, so Nodes and Pods are created and then get their status written.
It works with anything that has `create`/`update_status` (the in-process `ApiServer` of the
tests, or `lab.kube.RestClient` over HTTP).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from metallb_lab import Obj
from metallb_lab.lab.layout import (
    APPS_NAMESPACE,
    METALLB_NAMESPACE,
    SPEAKER_LABELS,
    ServicePlan,
    endpoint_address,
)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class ObjectWriter(Protocol):
    def create(self, obj: Obj) -> Obj: ...

    def update_status(self, obj: Obj) -> Obj: ...


def node(name: str, address: str, ready: bool = True) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": name},
            ],
        },
    }


def speaker_pod(
    node_name: str,
    pod_ip: str,
    namespace: str = METALLB_NAMESPACE,
    service_account: str | None = None,
) -> Obj:
    """A running speaker Pod (hostNetwork: its IP is the node's), as membership discovers them.

    kube-apiserver admits a Pod only when its ServiceAccount exists (no controller-manager
    creates `default` in the lab): the lab names the manifests' `speaker`."""
    pod: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"speaker-{node_name}",
            "namespace": namespace,
            "labels": dict(SPEAKER_LABELS),
        },
        "spec": {
            "nodeName": node_name,
            "hostNetwork": True,
            "containers": [{"name": "speaker", "image": "metallb-py"}],
        },
        "status": {
            "phase": "Running",
            "podIP": pod_ip,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    if service_account is not None:
        pod["spec"]["serviceAccountName"] = service_account
    return pod


def config_map(text: str, name: str = "config", namespace: str = METALLB_NAMESPACE) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"config": text},
    }


def service(plan: ServicePlan, namespace: str = APPS_NAMESPACE, port: int = 80) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": plan.name, "namespace": namespace},
        "spec": {
            "type": "LoadBalancer",
            "ipFamilies": [plan.family],
            "ipFamilyPolicy": "SingleStack",
            "allocateLoadBalancerNodePorts": False,
            "externalTrafficPolicy": plan.traffic_policy,
            "selector": {"app": plan.name},
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        },
    }


def endpoint_slice(
    service_name: str,
    family: str,
    nodes: Sequence[str],
    *,
    all_nodes: Sequence[str] = (),
    ready: bool | Mapping[str, bool] = True,
    namespace: str = APPS_NAMESPACE,
    port: int = 80,
) -> Obj:
    """One endpoint per node in `nodes`; `ready` for all, or per node name.

    `all_nodes` fixes each node's endpoint address (its index there) so the addresses stay the
    same when the node list changes.
    """
    order = list(all_nodes) or list(nodes)

    def is_ready(node_name: str) -> bool:
        return ready if isinstance(ready, bool) else bool(ready.get(node_name, True))

    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service_name}-lab",
            "namespace": namespace,
            "labels": {SERVICE_NAME_LABEL: service_name},
        },
        "addressType": family,
        "endpoints": [
            {
                "addresses": [endpoint_address(family, order.index(n) + 1)],
                "nodeName": n,
                "conditions": {"ready": is_ready(n)},
                "targetRef": {"kind": "Pod", "name": f"{service_name}-{n}"},
            }
            for n in nodes
        ],
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
    }


def register(writer: ObjectWriter, obj: Obj) -> Obj:
    """Create `obj`, then write its `status` (which a create ignores)."""
    created = writer.create(obj)
    if "status" not in obj:
        return created
    created["status"] = obj["status"]
    return writer.update_status(created)


def ingress_ips(svc: Obj) -> list[str]:
    """The IPs in `status.loadBalancer.ingress` of a Service."""
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [str(i["ip"]) for i in ingress if i.get("ip")]

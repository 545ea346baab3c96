"""Reading the cluster for doctor (the adapter): every object `diagnose` needs, through the
`kubernetes` client as raw JSON. Missing objects are None; forbidden ones are noted."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from metallb_py.doctor.view import (
    CONTROLLER_SELECTOR,
    SPEAKER_SELECTOR,
    ClusterView,
    env_of,
    flag_of,
)
from metallb_py.k8s.objects import Obj, value_at


def _names_from_workloads(view: ClusterView) -> None:
    """Use the ConfigMap and Secret names the installed components were given."""
    for workload in (view.speaker_daemonset, view.controller_deployment):
        name = flag_of(workload, "--config")
        if name:
            view.config_name = name
            break
    env = env_of(view.speaker_daemonset, "METALLB_ML_SECRET_KEY")
    ref = value_at(env, "valueFrom", "secretKeyRef", "name")
    if ref:
        view.secret_name = str(ref)


def _match_labels(workload: Obj | None, default: str) -> str:
    labels = value_at(workload, "spec", "selector", "matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or default


def gather(api_client: Any, namespace: str = "metallb-system") -> ClusterView:
    """Read what `diagnose` needs. Missing objects are None; forbidden ones are noted."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    core = k8s.CoreV1Api(api_client)
    apps = k8s.AppsV1Api(api_client)
    networking = k8s.NetworkingV1Api(api_client)
    view = ClusterView(namespace=namespace)

    def read(what: str, call: Callable[..., Any], optional: bool = False) -> Any:
        # Raw JSON, not the client's models: those refuse objects whose optional-in-practice
        # fields are absent, and doctor must read whatever the cluster holds.
        try:
            response = call(_preload_content=False)
            return json.loads(response.data or b"null")
        except ApiException as exc:
            if exc.status == 404 or (optional and exc.status in (403, 405)):
                return None
            view.unreadable.append(f"{what}: HTTP {exc.status} {exc.reason}")
            return None

    view.speaker_daemonset = read(
        f"DaemonSet {namespace}/speaker",
        lambda **kw: apps.read_namespaced_daemon_set("speaker", namespace, **kw),
    )
    view.controller_deployment = read(
        f"Deployment {namespace}/controller",
        lambda **kw: apps.read_namespaced_deployment("controller", namespace, **kw),
    )
    if view.controller_deployment is not None:
        selector = _match_labels(view.controller_deployment, CONTROLLER_SELECTOR)
        pods = read(
            f"Pods in {namespace} (controller)",
            lambda **kw: core.list_namespaced_pod(namespace, label_selector=selector, **kw),
        )
        view.controller_pods = list((pods or {}).get("items") or [])
    _names_from_workloads(view)
    view.configmap = read(
        f"ConfigMap {namespace}/{view.config_name}",
        lambda **kw: core.read_namespaced_config_map(view.config_name, namespace, **kw),
    )
    view.accepted_configmap = read(
        f"ConfigMap {namespace}/{view.accepted_name}",
        lambda **kw: core.read_namespaced_config_map(view.accepted_name, namespace, **kw),
    )
    try:
        events: Any = core.list_namespaced_event(
            namespace,
            field_selector=f"involvedObject.name={view.config_name},involvedObject.kind=ConfigMap",
            _preload_content=False,
        )
        view.config_events = list((json.loads(events.data or b"null") or {}).get("items") or [])
    except ApiException as exc:
        view.events_unreadable = f"HTTP {exc.status} {exc.reason}"
    view.secret = read(
        f"Secret {namespace}/{view.secret_name}",
        lambda **kw: core.read_namespaced_secret(view.secret_name, namespace, **kw),
    )
    pods = read(
        f"Pods in {namespace}",
        lambda **kw: core.list_namespaced_pod(namespace, label_selector=SPEAKER_SELECTOR, **kw),
    )
    view.speaker_pods = list((pods or {}).get("items") or [])
    nodes = read("Nodes", core.list_node)
    view.nodes = list((nodes or {}).get("items") or [])
    services = read("Services", core.list_service_for_all_namespaces)
    view.services = list((services or {}).get("items") or [])
    view.kube_proxy_configmap = read(
        "ConfigMap kube-system/kube-proxy",
        lambda **kw: core.read_namespaced_config_map("kube-proxy", "kube-system", **kw),
        optional=True,
    )
    view.kube_proxy_daemonset = read(
        "DaemonSet kube-system/kube-proxy",
        lambda **kw: apps.read_namespaced_daemon_set("kube-proxy", "kube-system", **kw),
        optional=True,
    )
    view.kubeadm_configmap = read(
        "ConfigMap kube-system/kubeadm-config",
        lambda **kw: core.read_namespaced_config_map("kubeadm-config", "kube-system", **kw),
        optional=True,
    )
    cidrs = read("ServiceCIDRs", networking.list_service_cidr, optional=True)
    view.service_cidrs = list((cidrs or {}).get("items") or [])
    return view

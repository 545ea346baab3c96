"""Services in their Kubernetes JSON shape, and a tiny fake API that applies status writes."""

from __future__ import annotations

import copy
from typing import Any

from metallb_py.config.model import Config
from metallb_py.controller.reconcile import Controller, Decision
from tests.allocator.helpers import pool

__all__ = ["apply", "config", "pool", "svc"]


def svc(
    name: str,
    *,
    namespace: str = "default",
    type: str = "LoadBalancer",
    cluster_ips: tuple[str, ...] = ("10.96.0.10",),
    ports: tuple[tuple[str, int], ...] = (("TCP", 80),),
    annotations: dict[str, str] | None = None,
    lb_ip: str | None = None,
    status_ips: tuple[str, ...] = (),
    policy: str = "Cluster",
    selector: dict[str, str] | None = None,
    created: str | None = None,
    share: str | None = None,
    pool_name: str | None = None,
    lb_ips: str | None = None,
) -> dict[str, Any]:
    notes = dict(annotations or {})
    if share is not None:
        notes["metallb.universe.tf/allow-shared-ip"] = share
    if pool_name is not None:
        notes["metallb.universe.tf/address-pool"] = pool_name
    if lb_ips is not None:
        notes["metallb.universe.tf/loadBalancerIPs"] = lb_ips
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if notes:
        metadata["annotations"] = notes
    if created is not None:
        metadata["creationTimestamp"] = created
    spec: dict[str, Any] = {
        "type": type,
        "clusterIPs": list(cluster_ips),
        "ports": [{"protocol": p, "port": n, "targetPort": n} for p, n in ports],
        "externalTrafficPolicy": policy,
        "selector": selector if selector is not None else {"app": name},
    }
    if lb_ip is not None:
        spec["loadBalancerIP"] = lb_ip
    status: dict[str, Any] = {"loadBalancer": {}}
    if status_ips:
        status["loadBalancer"]["ingress"] = [{"ip": ip} for ip in status_ips]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": spec,
        "status": status,
    }


def config(*pools: Any) -> Config:
    return Config(pools=tuple(pools))


def apply(obj: dict[str, Any], decision: Decision) -> dict[str, Any]:
    """What the API server holds after the controller carried out `decision`."""
    if decision.load_balancer is None:
        return obj
    out = copy.deepcopy(obj)
    out.setdefault("status", {})["loadBalancer"] = copy.deepcopy(decision.load_balancer)
    return out


def status_ips(obj: dict[str, Any]) -> list[str]:
    ingress = obj.get("status", {}).get("loadBalancer", {}).get("ingress", [])
    return [e["ip"] for e in ingress if e.get("ip")]


def ready(cfg: Config, services: list[dict[str, Any]] | None = None) -> Controller:
    """A controller past start-up: config loaded, status IPs registered, synced."""
    c = Controller()
    c.bootstrap(cfg, services or [])
    return c


def key(obj: dict[str, Any]) -> str:
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"


def run(c: Controller, obj: dict[str, Any]) -> tuple[Decision, dict[str, Any]]:
    d = c.reconcile(key(obj), obj)
    return d, apply(obj, d)

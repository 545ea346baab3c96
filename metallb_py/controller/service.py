"""Reading the controller's inputs out of a Service in its Kubernetes JSON shape.

Services are plain dicts (`metadata`, `spec`, `status`) as the API and `kubectl get -o yaml`
give them, so the live controller, `plan` files and tests share one representation. Nothing
here raises on garbage: a field of the wrong type becomes a problem string and a safe default
(the readers of `k8s/objects.py`).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, NamedTuple

from metallb_py.allocator.allocation import Port, Usage
from metallb_py.allocator.ips import Family, FamilyError, family_of, go_quote, parse_ip_or_none
from metallb_py.config.model import IPAddress
from metallb_py.k8s.objects import mapping, sequence, string, string_map

ANNOTATION_ADDRESS_POOL = "metallb.universe.tf/address-pool"
ANNOTATION_LOADBALANCER_IPS = "metallb.universe.tf/loadBalancerIPs"
ANNOTATION_ALLOW_SHARED_IP = "metallb.universe.tf/allow-shared-ip"


class RequestError(ValueError):
    """The requested IPs are malformed; the message is user-facing."""


class ServiceView(NamedTuple):
    """What the controller reads from one Service, already type-checked. (A NamedTuple: it
    is built on every reconcile, 50,000 times per reprocess-all in the benchmark.)"""

    namespace: str
    name: str
    type: str
    cluster_ips: tuple[str, ...]
    usage: Usage
    pool_annotation: str
    lb_ips_annotation: str
    load_balancer_ip: str
    status_ips: tuple[str, ...]
    """Every `status.loadBalancer.ingress[].ip` that is non-empty, in order."""
    ingress_entries: tuple[Mapping[str, Any], ...]
    """The ingress entries as found (for deciding whether a status write is needed)."""
    problems: tuple[str, ...]
    """Fields of the wrong type; the API server never sends these, hand-written files may."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def parse_timestamp(value: Any) -> float | None:
    """`metadata.creationTimestamp` (RFC 3339, or a datetime when YAML parsed it) in seconds."""
    if isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def selectorstring(selector: Mapping[str, str]) -> str:
    """Kubernetes `labels.Set.String()`: sorted `k=v` pairs joined by commas."""
    return ",".join(f"{k}={selector[k]}" for k in sorted(selector))


def read_service(obj: Mapping[str, Any]) -> ServiceView:
    problems: list[str] = []
    metadata = mapping(obj.get("metadata"), "metadata", problems)
    annotations = string_map(metadata.get("annotations"), "metadata.annotations", problems)
    spec = mapping(obj.get("spec"), "spec", problems)
    status = mapping(obj.get("status"), "status", problems)
    load_balancer = mapping(status.get("loadBalancer"), "status.loadBalancer", problems)

    # Element paths are only formatted when something is wrong: this runs for every Service
    # on every reprocess-all.
    cluster_ips: list[str] = []
    for i, ip in enumerate(sequence(spec.get("clusterIPs"), "spec.clusterIPs", problems)):
        if type(ip) is not str:
            string(ip, f"spec.clusterIPs[{i}]", problems)
        elif ip:
            cluster_ips.append(ip)

    ports: list[Port] = []
    for i, entry in enumerate(sequence(spec.get("ports"), "spec.ports", problems)):
        port_map = entry if type(entry) is dict else mapping(entry, f"spec.ports[{i}]", problems)
        protocol = port_map.get("protocol")
        if type(protocol) is not str:
            protocol = string(protocol, f"spec.ports[{i}].protocol", problems)
        number = port_map.get("port")
        if type(number) is not int:
            problems.append(f"spec.ports[{i}].port: expected an integer, got {number!r}")
            continue
        ports.append(Port(protocol or "TCP", number))

    policy = string(spec.get("externalTrafficPolicy"), "spec.externalTrafficPolicy", problems)
    selector = string_map(spec.get("selector"), "spec.selector", problems)
    backend_key = selectorstring(selector) if policy == "Local" else ""

    ingress: list[Mapping[str, Any]] = []
    status_ips: list[str] = []
    for i, entry in enumerate(
        sequence(load_balancer.get("ingress"), "status.loadBalancer.ingress", problems)
    ):
        entry_map = (
            entry
            if type(entry) is dict
            else mapping(entry, f"status.loadBalancer.ingress[{i}]", problems)
        )
        ingress.append(entry_map)
        ip = entry_map.get("ip")
        if type(ip) is not str:
            ip = string(ip, f"status.loadBalancer.ingress[{i}].ip", problems)
        if ip:
            status_ips.append(ip)

    return ServiceView(
        namespace=string(metadata.get("namespace"), "metadata.namespace", problems) or "default",
        name=string(metadata.get("name"), "metadata.name", problems),
        type=string(spec.get("type"), "spec.type", problems) or "ClusterIP",
        cluster_ips=tuple(cluster_ips),
        usage=Usage(
            ports=tuple(ports),
            sharing_key=annotations.get(ANNOTATION_ALLOW_SHARED_IP, ""),
            backend_key=backend_key,
        ),
        pool_annotation=annotations.get(ANNOTATION_ADDRESS_POOL, ""),
        lb_ips_annotation=annotations.get(ANNOTATION_LOADBALANCER_IPS, ""),
        load_balancer_ip=string(spec.get("loadBalancerIP"), "spec.loadBalancerIP", problems),
        status_ips=tuple(status_ips),
        ingress_entries=tuple(ingress),
        problems=tuple(problems),
    )


def requested_ips(view: ServiceView) -> tuple[tuple[IPAddress, ...], Family | None]:
    """The IPs the user asked for and their family; ((), None) when none.

    They come from the `metallb.universe.tf/loadBalancerIPs` annotation (comma-separated, one
    address or one of each family) or from `spec.loadBalancerIP`, never both. Raises
    `RequestError` for malformed requests.
    """
    annotation, field = view.lb_ips_annotation, view.load_balancer_ip
    if not annotation and not field:
        return (), None
    if annotation and field:
        raise RequestError(
            f"service can not have both {ANNOTATION_LOADBALANCER_IPS} and svc.Spec.LoadBalancerIP"
        )
    if annotation:
        ips: list[IPAddress] = []
        for item in annotation.split(","):
            ip = parse_ip_or_none(item.strip())
            if ip is None:
                raise RequestError(f"invalid {ANNOTATION_LOADBALANCER_IPS}: {go_quote(annotation)}")
            ips.append(ip)
        try:
            return tuple(ips), family_of(ips)
        except FamilyError as exc:
            raise RequestError(f"IPFamilyForAddresses: {exc}") from None
    ip = parse_ip_or_none(field)
    if ip is None:
        raise RequestError(f"invalid spec.loadBalancerIP {go_quote(field)}")
    return (ip,), family_of([ip])

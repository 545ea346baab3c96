"""Server-side printing: `meta.k8s.io/v1` Table responses, as `kubectl get` asks for them.

kubectl prints whatever columns the server sends, so these decide what `kubectl get svc` shows
(TYPE, CLUSTER-IP, EXTERNAL-IP, PORT(S), AGE, as upstream prints them).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from metallb_lab import Obj

Column = tuple[str, str, int]  # (name, type, priority)
Row = Callable[[Obj, datetime], list[Any]]


def human_duration(seconds: float) -> str:
    """kubectl's AGE format (e.g. 45s, 3m20s, 5h, 12d)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest_m = minutes % 60
        return f"{hours}h{rest_m}m" if rest_m else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        rest_h = hours % 24
        return f"{days}d{rest_h}h" if rest_h else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    if years < 8:
        rest_d = days % 365
        return f"{years}y{rest_d}d" if rest_d else f"{years}y"
    return f"{years}y"


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def _age(obj: Obj, now: datetime) -> str:
    created = _parse_time((obj.get("metadata") or {}).get("creationTimestamp"))
    return "<unknown>" if created is None else human_duration((now - created).total_seconds())


def _join(items: list[str], none: str = "<none>") -> str:
    return ",".join(items) if items else none


def _service_row(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    kind = spec.get("type", "ClusterIP")
    external = list(spec.get("externalIPs") or [])
    if kind == "LoadBalancer":
        ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        lb = [i.get("ip") or i.get("hostname") or "" for i in ingress if isinstance(i, dict)]
        external_ip = _join([x for x in lb + external if x], "<pending>")
    elif kind == "ExternalName":
        external_ip = spec.get("externalName", "<none>")
    else:
        external_ip = _join(external)
    ports = []
    for p in spec.get("ports") or []:
        text = str(p.get("port"))
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        ports.append(f"{text}/{p.get('protocol', 'TCP')}")
    selector = _join([f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items())])
    cluster_ip = spec.get("clusterIP") or "<none>"
    return [
        obj["metadata"]["name"],
        kind,
        cluster_ip,
        external_ip,
        _join(ports),
        _age(obj, now),
        selector,
    ]


def _node_row(obj: Obj, now: datetime) -> list[Any]:
    status = obj.get("status") or {}
    ready = "Unknown"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            ready = "Ready" if cond.get("status") == "True" else "NotReady"
    if (obj.get("spec") or {}).get("unschedulable"):
        ready += ",SchedulingDisabled"
    labels = (obj.get("metadata") or {}).get("labels") or {}
    roles = sorted(k.partition("/")[2] for k in labels if k.startswith("node-role.kubernetes.io/"))
    internal = [
        a.get("address", "") for a in status.get("addresses") or [] if a.get("type") == "InternalIP"
    ]
    version = (status.get("nodeInfo") or {}).get("kubeletVersion", "")
    return [obj["metadata"]["name"], ready, _join(roles), _age(obj, now), version, _join(internal)]


def _pod_row(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    containers = spec.get("containers") or []
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    phase = status.get("phase", "Unknown")
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        phase = "Terminating"
    return [
        obj["metadata"]["name"],
        f"{ready}/{len(containers)}",
        phase,
        restarts,
        _age(obj, now),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
    ]


def _endpoints_row(obj: Obj, now: datetime) -> list[Any]:
    addresses = []
    for subset in obj.get("subsets") or []:
        ports = [p.get("port") for p in subset.get("ports") or []] or [None]
        for address in subset.get("addresses") or []:
            for port in ports:
                ip = address.get("ip", "")
                addresses.append(f"{ip}:{port}" if port is not None else ip)
    text = ",".join(addresses[:3])
    if len(addresses) > 3:
        text += f" + {len(addresses) - 3} more..."
    return [obj["metadata"]["name"], text or "<none>", _age(obj, now)]


def _slice_row(obj: Obj, now: datetime) -> list[Any]:
    ports = _join([str(p.get("port")) for p in obj.get("ports") or [] if p.get("port")], "<unset>")
    addresses = [a for ep in obj.get("endpoints") or [] for a in ep.get("addresses") or []]
    text = ",".join(addresses[:3])
    if len(addresses) > 3:
        text += f" + {len(addresses) - 3} more..."
    return [
        obj["metadata"]["name"],
        obj.get("addressType", ""),
        ports,
        text or "<unset>",
        _age(obj, now),
    ]


def _event_row(obj: Obj, now: datetime) -> list[Any]:
    regarding = obj.get("involvedObject") or obj.get("regarding") or {}
    last = (
        obj.get("lastTimestamp")
        or obj.get("deprecatedLastTimestamp")
        or obj.get("eventTime")
        or (obj.get("metadata") or {}).get("creationTimestamp")
    )
    when = _parse_time(last)
    seen = "<unknown>" if when is None else human_duration((now - when).total_seconds())
    target = f"{str(regarding.get('kind', '')).lower()}/{regarding.get('name', '')}"
    message = obj.get("message") if "message" in obj else obj.get("note", "")
    return [seen, obj.get("type", ""), obj.get("reason", ""), target, message or ""]


def _deployment_row(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    return [
        obj["metadata"]["name"],
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        _age(obj, now),
    ]


def _daemonset_row(obj: Obj, now: datetime) -> list[Any]:
    status = obj.get("status") or {}
    selector = ((obj.get("spec") or {}).get("template") or {}).get("spec", {}).get("nodeSelector")
    return [
        obj["metadata"]["name"],
        status.get("desiredNumberScheduled", 0),
        status.get("currentNumberScheduled", 0),
        status.get("numberReady", 0),
        status.get("updatedNumberScheduled", 0),
        status.get("numberAvailable", 0),
        _join([f"{k}={v}" for k, v in sorted((selector or {}).items())]),
        _age(obj, now),
    ]


def _simple(*cells: Callable[[Obj], Any]) -> Row:
    def row(obj: Obj, now: datetime) -> list[Any]:
        return [obj["metadata"]["name"], *(c(obj) for c in cells), _age(obj, now)]

    return row


def _count(*fields: str) -> Callable[[Obj], Any]:
    return lambda obj: sum(len(obj.get(f) or {}) for f in fields)


S, INT = "string", "integer"
PRINTERS: dict[str, tuple[list[Column], Row]] = {
    "Service": (
        [
            ("Name", S, 0),
            ("Type", S, 0),
            ("Cluster-IP", S, 0),
            ("External-IP", S, 0),
            ("Port(s)", S, 0),
            ("Age", S, 0),
            ("Selector", S, 1),
        ],
        _service_row,
    ),
    "ConfigMap": (
        [("Name", S, 0), ("Data", INT, 0), ("Age", S, 0)],
        _simple(_count("data", "binaryData")),
    ),
    "Secret": (
        [("Name", S, 0), ("Type", S, 0), ("Data", INT, 0), ("Age", S, 0)],
        _simple(lambda o: o.get("type", ""), _count("data")),
    ),
    "Namespace": (
        [("Name", S, 0), ("Status", S, 0), ("Age", S, 0)],
        _simple(lambda o: (o.get("status") or {}).get("phase", "")),
    ),
    "Node": (
        [
            ("Name", S, 0),
            ("Status", S, 0),
            ("Roles", S, 0),
            ("Age", S, 0),
            ("Version", S, 0),
            ("Internal-IP", S, 1),
        ],
        _node_row,
    ),
    "Pod": (
        [
            ("Name", S, 0),
            ("Ready", S, 0),
            ("Status", S, 0),
            ("Restarts", INT, 0),
            ("Age", S, 0),
            ("IP", S, 1),
            ("Node", S, 1),
        ],
        _pod_row,
    ),
    "Endpoints": ([("Name", S, 0), ("Endpoints", S, 0), ("Age", S, 0)], _endpoints_row),
    "EndpointSlice": (
        [
            ("Name", S, 0),
            ("AddressType", S, 0),
            ("Ports", S, 0),
            ("Endpoints", S, 0),
            ("Age", S, 0),
        ],
        _slice_row,
    ),
    "Event": (
        [
            ("Last Seen", S, 0),
            ("Type", S, 0),
            ("Reason", S, 0),
            ("Object", S, 0),
            ("Message", S, 0),
        ],
        _event_row,
    ),
    "Deployment": (
        [
            ("Name", S, 0),
            ("Ready", S, 0),
            ("Up-to-date", INT, 0),
            ("Available", INT, 0),
            ("Age", S, 0),
        ],
        _deployment_row,
    ),
    "DaemonSet": (
        [
            ("Name", S, 0),
            ("Desired", INT, 0),
            ("Current", INT, 0),
            ("Ready", INT, 0),
            ("Up-to-date", INT, 0),
            ("Available", INT, 0),
            ("Node Selector", S, 0),
            ("Age", S, 0),
        ],
        _daemonset_row,
    ),
    "Lease": (
        [("Name", S, 0), ("Holder", S, 0), ("Age", S, 0)],
        _simple(lambda o: (o.get("spec") or {}).get("holderIdentity", "")),
    ),
    "ServiceAccount": (
        [("Name", S, 0), ("Secrets", INT, 0), ("Age", S, 0)],
        _simple(lambda o: len(o.get("secrets") or [])),
    ),
}


def _default_row(obj: Obj, now: datetime) -> list[Any]:
    return [obj["metadata"]["name"], (obj.get("metadata") or {}).get("creationTimestamp")]


_DEFAULT: tuple[list[Column], Row] = ([("Name", S, 0), ("Created At", "date", 0)], _default_row)


def partial_metadata(obj: Obj) -> Obj:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata") or {},
    }


def table(
    kind: str,
    objects: list[Obj],
    include_object: str = "Metadata",
    list_meta: Obj | None = None,
) -> Obj:
    """A Table of `objects` (all of one kind), with the row objects kubectl needs for -A."""
    columns, row = PRINTERS.get(kind, _DEFAULT)
    now = datetime.now(UTC)
    rows = []
    for obj in objects:
        entry: Obj = {"cells": row(obj, now)}
        if include_object == "Object":
            entry["object"] = obj
        elif include_object != "None":
            entry["object"] = partial_metadata(obj)
        rows.append(entry)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta or {},
        "columnDefinitions": [
            {
                "name": name,
                "type": kind_,
                "format": "name" if name == "Name" else "",
                "description": "",
                "priority": priority,
            }
            for name, kind_, priority in columns
        ],
        "rows": rows,
    }

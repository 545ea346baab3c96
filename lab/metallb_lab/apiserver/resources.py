"""The resource table: which kinds the test API server serves, and how.

Adding a resource is one `ResourceType(...)` line. Several versions of one resource share a
storage (`storage`) and convert on the way in and out, as a real API server does for
`events` (core v1 and `events.k8s.io/v1`) and EndpointSlices (`discovery.k8s.io` v1 and v1beta1).
"""

from __future__ import annotations

import base64
import copy
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from metallb_lab import Obj

Converter = Callable[[Obj], Obj]

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUBRESOURCE_VERBS = ("get", "patch", "update")
REVIEW_VERBS = ("create",)


@dataclass(frozen=True)
class ResourceType:
    """One served (group, version, resource)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    subresources: tuple[str, ...] = ()
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    # Extra field-selector labels beyond metadata.name / metadata.namespace.
    field_labels: tuple[str, ...] = ()
    # Strategic merge patch needs Go struct tags; custom resources refuse it (415), as upstream.
    strategic: bool = True
    # PUT on a missing object creates it (Services, Endpoints, Events, Leases do).
    create_on_update: bool = False
    # metadata.generation is kept and bumped on spec changes (workloads, custom resources).
    generation: bool = False
    # Shared storage key for versions of one resource; default "<plural>.<group>".
    storage: str = ""
    # Convert this version's object to the storage version and back (None: same shape).
    to_storage: Converter | None = field(default=None, compare=False)
    from_storage: Converter | None = field(default=None, compare=False)
    # What discovery lists and the server allows (the reviews of who the caller is and what it
    # may do are create-only: answered, never stored).
    verbs: tuple[str, ...] = ALL_VERBS

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def storage_key(self) -> str:
        return self.storage or (f"{self.plural}.{self.group}" if self.group else self.plural)

    def selectable_fields(self) -> tuple[str, ...]:
        base: tuple[str, ...] = ("metadata.name",)
        if self.namespaced:
            base += ("metadata.namespace",)
        return base + self.field_labels

    def storage_version_hash(self) -> str:
        digest = hashlib.sha256(f"{self.group}/{self.version}/{self.kind}".encode()).digest()
        return base64.b64encode(digest[:8]).decode()

    def view(self, stored: Obj) -> Obj:
        """The stored object as this version shows it (a fresh copy when converted)."""
        if self.from_storage is None:
            if stored.get("apiVersion") == self.api_version and stored.get("kind") == self.kind:
                return stored
            out = dict(stored)
        else:
            out = self.from_storage(copy.deepcopy(stored))
        out["apiVersion"] = self.api_version
        out["kind"] = self.kind
        return out

    def store_form(self, obj: Obj, storage_type: ResourceType) -> Obj:
        """This version's object converted to the storage version (the input is not modified)."""
        out = self.to_storage(copy.deepcopy(obj)) if self.to_storage is not None else obj
        if out is obj:
            out = dict(obj)
        out["apiVersion"] = storage_type.api_version
        out["kind"] = storage_type.kind
        return out


# --- conversions -------------------------------------------------------------------------------

_EVENT_RENAMES = (
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
)


def _event_to_events_v1(obj: Obj) -> Obj:
    for core, new in _EVENT_RENAMES:
        if core in obj:
            obj[new] = obj.pop(core)
    return obj


def _event_from_events_v1(obj: Obj) -> Obj:
    for core, new in _EVENT_RENAMES:
        if new in obj:
            obj[core] = obj.pop(new)
    return obj


_HOSTNAME = "kubernetes.io/hostname"
_ZONE = "topology.kubernetes.io/zone"


def _slice_v1_to_v1beta1(obj: Obj) -> Obj:
    for ep in obj.get("endpoints") or []:
        topology = dict(ep.pop("deprecatedTopology", None) or {})
        node = ep.pop("nodeName", None)
        zone = ep.pop("zone", None)
        if node:
            topology[_HOSTNAME] = node
        if zone:
            topology[_ZONE] = zone
        if topology:
            ep["topology"] = topology
    return obj


def _slice_v1beta1_to_v1(obj: Obj) -> Obj:
    for ep in obj.get("endpoints") or []:
        topology = dict(ep.pop("topology", None) or {})
        if _HOSTNAME in topology:
            ep["nodeName"] = topology.pop(_HOSTNAME)
        if _ZONE in topology:
            ep["zone"] = topology.pop(_ZONE)
        if topology:
            ep["deprecatedTopology"] = topology
    return obj


# --- the table ---------------------------------------------------------------------------------

_EVENT_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)
_EVENTS_V1_FIELDS = (
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "regarding.resourceVersion",
    "regarding.fieldPath",
    "reason",
    "reportingController",
    "type",
)
_POD_FIELDS = (
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
)

R = ResourceType
DEFAULT_RESOURCES: tuple[ResourceType, ...] = (
    # core v1
    R("", "v1", "namespaces", "Namespace", False, ("status",), ("ns",),
      field_labels=("status.phase",)),
    R("", "v1", "services", "Service", True, ("status",), ("svc",), ("all",),
      field_labels=("spec.clusterIP", "spec.type"), create_on_update=True),
    R("", "v1", "endpoints", "Endpoints", True, (), ("ep",), create_on_update=True),
    R("", "v1", "configmaps", "ConfigMap", True, (), ("cm",)),
    R("", "v1", "secrets", "Secret", True, field_labels=("type",)),
    R("", "v1", "events", "Event", True, (), ("ev",), field_labels=_EVENT_FIELDS,
      create_on_update=True),
    R("", "v1", "nodes", "Node", False, ("status",), ("no",), field_labels=("spec.unschedulable",)),
    R("", "v1", "pods", "Pod", True, ("status",), ("po",), ("all",), field_labels=_POD_FIELDS),
    R("", "v1", "serviceaccounts", "ServiceAccount", True, (), ("sa",)),
    # other built-in groups
    R("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    R("events.k8s.io", "v1", "events", "Event", True, (), ("ev",), field_labels=_EVENTS_V1_FIELDS,
      create_on_update=True, storage="events",
      to_storage=_event_from_events_v1, from_storage=_event_to_events_v1),
    R("apps", "v1", "deployments", "Deployment", True, ("status",), ("deploy",), ("all",),
      generation=True),
    R("apps", "v1", "daemonsets", "DaemonSet", True, ("status",), ("ds",), ("all",),
      generation=True),
    R("coordination.k8s.io", "v1", "leases", "Lease", True, create_on_update=True),
    R("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    R("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    R("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    R("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    # `kubectl auth whoami` and `kubectl auth can-i` (reviews.py answers them)
    R("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", False,
      verbs=REVIEW_VERBS),
    R("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False,
      verbs=REVIEW_VERBS),
    R("authorization.k8s.io", "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview", False,
      verbs=REVIEW_VERBS),
)  # fmt: skip
"""What a stock Kubernetes 1.25-1.33 cluster serves (the part of it the project uses): built-in
groups only, so a manifest that needs anything else fails here as it would on a real cluster."""

# Custom resources of the Prometheus operator, served only with `ApiServer(with_monitoring_crds=
# True)` / `metallb-py lab apiserver --with-monitoring-crds` (a cluster with the operator's CRDs).
MONITORING_RESOURCES: tuple[ResourceType, ...] = (
    R("monitoring.coreos.com", "v1", "podmonitors", "PodMonitor", True, strategic=False,
      generation=True),
    R("monitoring.coreos.com", "v1", "servicemonitors", "ServiceMonitor", True, strategic=False,
      generation=True),
    R("monitoring.coreos.com", "v1", "prometheusrules", "PrometheusRule", True, strategic=False,
      generation=True),
)  # fmt: skip

# Versions Kubernetes 1.25+ no longer serves, served only with `ApiServer(with_legacy_apis=True)`
# / `--with-legacy-apis`, to test code written for older clusters (MetalLB v0.12 reads v1beta1
# EndpointSlices; its manifests create PodSecurityPolicies).
LEGACY_RESOURCES: tuple[ResourceType, ...] = (
    R("discovery.k8s.io", "v1beta1", "endpointslices", "EndpointSlice", True,
      storage="endpointslices.discovery.k8s.io",
      to_storage=_slice_v1beta1_to_v1, from_storage=_slice_v1_to_v1beta1),
    R("policy", "v1beta1", "podsecuritypolicies", "PodSecurityPolicy", False, (), ("psp",)),
)  # fmt: skip


def served_resources(
    resources: tuple[ResourceType, ...] = (),
    *,
    with_monitoring_crds: bool = False,
    with_legacy_apis: bool = False,
) -> tuple[ResourceType, ...]:
    """`resources` (default: `DEFAULT_RESOURCES`) plus the switched-on extras, each once."""
    out = resources or DEFAULT_RESOURCES
    extras = (MONITORING_RESOURCES if with_monitoring_crds else ()) + (
        LEGACY_RESOURCES if with_legacy_apis else ()
    )
    return out + tuple(rt for rt in extras if rt not in out)


class ResourceTable:
    """Lookup by URL parts, by kind, and the storage type of each shared storage."""

    def __init__(self, resources: tuple[ResourceType, ...]) -> None:
        self.resources = resources
        self._by_gvr: dict[tuple[str, str, str], ResourceType] = {}
        self._by_gvk: dict[tuple[str, str, str], ResourceType] = {}
        self.storage_types: dict[str, ResourceType] = {}
        for rt in resources:
            key = (rt.group, rt.version, rt.plural)
            if key in self._by_gvr:
                raise ValueError(f"resource {rt.api_version} {rt.plural} listed twice")
            self._by_gvr[key] = rt
            self._by_gvk.setdefault((rt.group, rt.version, rt.kind), rt)
            # The first listed version of a storage is the storage version.
            self.storage_types.setdefault(rt.storage_key, rt)

    def by_path(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_gvr.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        return self._by_gvk.get((group, version, kind))

    def find(self, what: str, api_version: str | None = None) -> ResourceType:
        """A resource by plural, kind, singular or short name (optionally within one version)."""
        low = what.lower()
        for rt in self.resources:
            if api_version is not None and rt.api_version != api_version:
                continue
            if low in (rt.plural, rt.singular, *rt.short_names) or what == rt.kind:
                return rt
        raise KeyError(f"no resource {what!r}" + (f" in {api_version}" if api_version else ""))

    def storage_type(self, rt: ResourceType) -> ResourceType:
        return self.storage_types[rt.storage_key]

    def group_versions(self) -> dict[str, list[str]]:
        """group -> versions, in table order (the first is the preferred version)."""
        out: dict[str, list[str]] = {}
        for rt in self.resources:
            versions = out.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self.resources if rt.group == group and rt.version == version]

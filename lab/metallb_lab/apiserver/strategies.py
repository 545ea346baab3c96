"""Per-kind create/update rules of the API server: defaulting, validation, status handling.

Only what clients of this project can observe is modelled, but that part follows upstream:
Nodes keep their status on create, Namespaces get their name label, Secrets fold `stringData`
into `data`, objects get their metadata checked (names, labels, annotations). Services, the kind
MetalLB reads most, have their own module (services.py); `Strategies` dispatches per kind.
"""

from __future__ import annotations

import base64
import binascii
import re

from metallb_lab import Obj
from metallb_lab.apiserver.errors import Cause, bad_request, invalid
from metallb_lab.apiserver.resources import ResourceType
from metallb_lab.apiserver.services import (
    ClusterConfig,
    ServiceAllocator,
    ServiceRules,
    default_service_status,
    drop_type_dependent_fields,
    parse_ip_sloppy,
    validate_service_status,
)

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")

# Which names a resource accepts (storage key -> rule); default: RFC 1123 subdomain.
_NAME_RULES = {
    "services": "dns1035",
    "namespaces": "dns1123label",
    "roles.rbac.authorization.k8s.io": "path",
    "rolebindings.rbac.authorization.k8s.io": "path",
    "clusterroles.rbac.authorization.k8s.io": "path",
    "clusterrolebindings.rbac.authorization.k8s.io": "path",
}


def _name_problem(rule: str, name: str) -> str | None:
    if rule == "path":
        if name in (".", "..") or "/" in name or "%" in name:
            return "may not be '.' or '..' and may not contain '/' or '%'"
        return None
    if rule == "dns1035":
        if len(name) > 63 or not _LABEL_1035.match(name):
            return (
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                "start with an alphabetic character, and end with an alphanumeric character"
            )
        return None
    if rule == "dns1123label":
        if len(name) > 63 or not _LABEL_1123.match(name):
            return (
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                "or '-', and must start and end with an alphanumeric character"
            )
        return None
    if len(name) > 253 or not _SUBDOMAIN.match(name):
        return (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character"
        )
    return None


def _qualified_name_problem(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _SUBDOMAIN.match(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain"
    if not name or len(name) > 63 or not _QUALIFIED.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
            "and end with an alphanumeric character"
        )
    return None


def validate_metadata(rt: ResourceType, obj: Obj) -> list[Cause]:
    meta = obj.get("metadata") or {}
    causes: list[Cause] = []
    name = meta.get("name")
    if not name:
        causes.append(
            (
                "metadata.name",
                "FieldValueRequired",
                "Required value: name or generateName is required",
            )
        )
    else:
        problem = _name_problem(_NAME_RULES.get(rt.storage_key, "subdomain"), name)
        if problem:
            causes.append(
                ("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": {problem}')
            )
    for what in ("labels", "annotations"):
        values = meta.get(what)
        if values is None:
            continue
        if not isinstance(values, dict):
            causes.append((f"metadata.{what}", "FieldValueInvalid", "Invalid value: must be a map"))
            continue
        for key, value in values.items():
            problem = _qualified_name_problem(str(key))
            if problem:
                causes.append(
                    (f"metadata.{what}", "FieldValueInvalid", f'Invalid value: "{key}": {problem}')
                )
            if not isinstance(value, str):
                causes.append(
                    (
                        f"metadata.{what}.{key}",
                        "FieldValueInvalid",
                        "Invalid value: must be a string",
                    )
                )
            elif what == "labels" and (len(value) > 63 or not _LABEL_VALUE.match(value)):
                causes.append(
                    (
                        "metadata.labels",
                        "FieldValueInvalid",
                        f'Invalid value: "{value}": a valid label must be an empty string or '
                        "consist of alphanumeric characters, '-', '_' or '.', and must start and "
                        "end with an alphanumeric character",
                    )
                )
    finalizers = meta.get("finalizers")
    if finalizers is not None and (
        not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers)
    ):
        causes.append(
            ("metadata.finalizers", "FieldValueInvalid", "Invalid value: must be a list of strings")
        )
    return causes


# --- the per-kind dispatcher ---------------------------------------------------------------------


class Strategies:
    """Everything kind-specific the store calls on create/update/delete."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.services = ServiceAllocator(config)

    # Each hook receives the object in storage form; `key` is "namespace/name".

    def prepare_create(self, rt: ResourceType, storage: ResourceType, obj: Obj) -> None:
        meta = obj["metadata"]
        sk = storage.storage_key
        if sk == "namespaces":
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Active"}
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name", "")
        elif sk == "services":
            obj["status"] = {"loadBalancer": {}}
        elif sk == "pods":
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
            spec = obj.setdefault("spec", {})
            spec.setdefault("restartPolicy", "Always")
            spec.setdefault("schedulerName", "default-scheduler")
            spec.setdefault("serviceAccountName", "default")
        elif sk in ("deployments.apps", "daemonsets.apps"):
            obj["status"] = {}
            if sk == "deployments.apps":
                obj.setdefault("spec", {}).setdefault("replicas", 1)
        elif sk == "secrets":
            obj.setdefault("type", "Opaque")
            self._fold_string_data(obj)
        if storage.generation:
            meta["generation"] = 1

    def prepare_update(
        self, rt: ResourceType, storage: ResourceType, new: Obj, old: Obj, subresource: str
    ) -> None:
        sk = storage.storage_key
        if sk == "namespaces":
            labels = new["metadata"].setdefault("labels", {})
            labels["kubernetes.io/metadata.name"] = new["metadata"].get("name", "")
        if sk == "secrets":
            new.setdefault("type", old.get("type", "Opaque"))
            self._fold_string_data(new)
        if sk == "services" and subresource == "":
            drop_type_dependent_fields(new, old)
        if sk == "services" and subresource == "status":
            default_service_status(new)
        if storage.generation:
            generation = old.get("metadata", {}).get("generation", 1)
            if _spec_part(new) != _spec_part(old):
                generation += 1
            new["metadata"]["generation"] = generation

    def validate(
        self, rt: ResourceType, storage: ResourceType, obj: Obj, old: Obj | None, subresource: str
    ) -> None:
        """Default what depends on cluster state and refuse invalid objects (422)."""
        causes = [] if subresource else validate_metadata(storage, obj)
        sk = storage.storage_key
        key = _key(obj)
        if sk == "services":
            if subresource == "status":
                causes += validate_service_status(obj)
            else:
                spec = obj.setdefault("spec", {})
                if not isinstance(spec, dict):
                    causes.append(("spec", "FieldValueInvalid", "Invalid value: must be an object"))
                else:
                    old_spec = (old or {}).get("spec") if old is not None else None
                    causes += ServiceRules(self.services, key, spec, old_spec).run()
        elif sk == "configmaps":
            for what in ("data", "binaryData"):
                values = obj.get(what) or {}
                if not isinstance(values, dict):
                    causes.append((what, "FieldValueInvalid", "Invalid value: must be a map"))
                    continue
                for k, v in values.items():
                    if not _CONFIG_KEY.match(k) or len(k) > 253:
                        causes.append(
                            (
                                f"{what}[{k}]",
                                "FieldValueInvalid",
                                f'Invalid value: "{k}": a valid config key must consist of '
                                "alphanumeric characters, '-', '_' or '.'",
                            )
                        )
                    if not isinstance(v, str):
                        raise bad_request(
                            f'ConfigMap in version "v1" cannot be handled as a ConfigMap: '
                            f"json: cannot unmarshal {type(v).__name__} into Go struct field "
                            f"ConfigMap.{what} of type string"
                        )
        elif sk == "pods" and not subresource:
            containers = (obj.get("spec") or {}).get("containers")
            if not containers:
                causes.append(("spec.containers", "FieldValueRequired", "Required value"))
            else:
                for i, c in enumerate(containers):
                    if not isinstance(c, dict) or not c.get("name"):
                        causes.append(
                            (f"spec.containers[{i}].name", "FieldValueRequired", "Required value")
                        )
                    if not isinstance(c, dict) or not c.get("image"):
                        causes.append(
                            (f"spec.containers[{i}].image", "FieldValueRequired", "Required value")
                        )
        elif sk == "endpointslices.discovery.k8s.io":
            causes += _endpoint_addresses(obj)
            if old is not None and old.get("addressType") != obj.get("addressType"):
                causes.append(
                    (
                        "addressType",
                        "FieldValueInvalid",
                        f'Invalid value: "{obj.get("addressType")}": field is immutable',
                    )
                )
            if obj.get("addressType") not in ("IPv4", "IPv6", "FQDN"):
                causes.append(
                    (
                        "addressType",
                        "FieldValueNotSupported",
                        f'Unsupported value: "{obj.get("addressType")}": supported values: '
                        '"FQDN", "IPv4", "IPv6"',
                    )
                )
        elif sk == "events" and rt.group == "events.k8s.io" and old is None:
            for name, view in (
                ("eventTime", "eventTime"),
                ("reportingComponent", "reportingController"),
                ("reportingInstance", "reportingInstance"),
                ("action", "action"),
                ("reason", "reason"),
            ):
                if not obj.get(name):
                    causes.append((view, "FieldValueRequired", "Required value"))
            if obj.get("type") not in ("Normal", "Warning"):
                causes.append(
                    (
                        "type",
                        "FieldValueInvalid",
                        f'Invalid value: "{obj.get("type")}": has invalid value',
                    )
                )
        if causes:
            name = (obj.get("metadata") or {}).get("name") or ""
            raise invalid(storage.kind, storage.group, name, causes)

    def commit(self, storage: ResourceType, key: str, old: Obj | None, new: Obj | None) -> None:
        """Book-keeping once a write is stored (never called for dry runs)."""
        if storage.storage_key == "services":
            self.services.commit(key, old, new)

    @staticmethod
    def _fold_string_data(obj: Obj) -> None:
        data = obj.get("data")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise bad_request("Secret.data must be a map")
        for k, v in data.items():
            if not isinstance(v, str):
                raise bad_request(f"Secret.data[{k}]: must be a base64 string")
            try:
                base64.b64decode(v, validate=True)
            except (binascii.Error, ValueError):
                raise bad_request(
                    f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data '
                    f"at input byte 0 (data[{k}])"
                ) from None
        string_data = obj.pop("stringData", None) or {}
        if not isinstance(string_data, dict):
            raise bad_request("Secret.stringData must be a map")
        for k, v in string_data.items():
            data[k] = base64.b64encode(str(v).encode()).decode()
        if data:
            obj["data"] = data


def _endpoint_addresses(obj: Obj) -> list[Cause]:
    """Each endpoint address of an IPv4/IPv6 slice must be an address of that family."""
    family = obj.get("addressType")
    if family not in ("IPv4", "IPv6"):
        return []
    causes: list[Cause] = []
    endpoints = obj.get("endpoints")
    for i, endpoint in enumerate(endpoints if isinstance(endpoints, list) else []):
        addresses = endpoint.get("addresses") if isinstance(endpoint, dict) else None
        for j, address in enumerate(addresses if isinstance(addresses, list) else []):
            ip = parse_ip_sloppy(address)
            if ip is None or ip.version != (4 if family == "IPv4" else 6):
                causes.append(
                    (
                        f"endpoints[{i}].addresses[{j}]",
                        "FieldValueInvalid",
                        f'Invalid value: "{address}": must be a valid {family} address',
                    )
                )
    return causes


def _spec_part(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


__all__ = ["Strategies", "validate_metadata"]

"""The documents a client reads before it talks to resources, pure: /version, the health
endpoints, API discovery (/api, /apis, each group and version) and just enough OpenAPI for
kubectl (docs/apiserver.md, "Semantics", **Discovery and kubectl**).
"""

from __future__ import annotations

import json

from metallb_lab import Obj
from metallb_lab.apiserver.resources import SUBRESOURCE_VERBS, ResourceTable

KUBE_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0+metallb-py"}
# The type kube-apiserver answers with (clients ask for `...spec.v2@v1.0+protobuf`, not a valid
# media type, which Go's mime parser would refuse).
OPENAPI_V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def discovery_document(
    table: ResourceTable, parts: list[str], host: str, port: int
) -> Obj | str | None:
    """The document at the path `parts` (split on "/"), None when it is not one of these."""
    if parts == ["version"]:
        return {
            **KUBE_VERSION,
            "gitCommit": "",
            "gitTreeState": "clean",
            "buildDate": "2024-12-11T00:00:00Z",
            "goVersion": "python",
            "compiler": "metallb-py",
            "platform": "linux/amd64",
        }
    if parts in (["healthz"], ["readyz"], ["livez"]):
        return "ok"
    if parts == ["api"]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{host}:{port}"}
            ],
        }
    if parts == ["apis"]:
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [_group(table, g) for g in table.group_versions() if g],
        }
    if len(parts) == 2 and parts[0] == "apis" and parts[1] in table.group_versions():
        return {"kind": "APIGroup", "apiVersion": "v1", **_group(table, parts[1])}
    if len(parts) == 2 and parts[0] == "api":
        return _resource_list(table, "", parts[1])
    if len(parts) == 3 and parts[0] == "apis":
        return _resource_list(table, parts[1], parts[2])
    if parts[:2] == ["openapi", "v3"]:
        return _openapi_v3(table, parts[2:])
    return None


def _group(table: ResourceTable, group: str) -> Obj:
    versions = table.group_versions()[group]
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def _resource_list(table: ResourceTable, group: str, version: str) -> Obj | None:
    served = table.in_group_version(group, version)
    if not served:
        return None
    resources: list[Obj] = []
    for rt in served:
        entry: Obj = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(rt.verbs),
            "storageVersionHash": rt.storage_version_hash(),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        for sub in rt.subresources:
            resources.append(
                {
                    "name": f"{rt.plural}/{sub}",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": list(SUBRESOURCE_VERBS),
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def openapi_v2(protobuf: bool) -> tuple[bytes, str]:
    """An OpenAPI v2 document without definitions (body, content type). kubectl falls back to it
    for kinds the v3 root does not list; finding no schema there, it skips client-side
    validation and then fails on the unknown kind as against a real cluster ("no matches for
    kind")."""
    if protobuf:
        # gnostic openapi_v2.Document{swagger: "2.0"}: field 1, length-delimited.
        return b"\x0a\x032.0", OPENAPI_V2_PROTOBUF
    info = {"title": "Kubernetes", "version": KUBE_VERSION["gitVersion"]}
    doc = {"swagger": "2.0", "info": info, "paths": {}, "definitions": {}}
    return json.dumps(doc).encode(), "application/json"


def _openapi_v3(table: ResourceTable, rest: list[str]) -> Obj | None:
    """Just enough OpenAPI v3 for kubectl: every PATCH accepts `fieldValidation`, so kubectl
    leaves validation to the server instead of downloading schemas we do not have."""
    if not rest:
        roots: Obj = {}
        for group, versions in table.group_versions().items():
            for version in versions:
                prefix = f"apis/{group}/{version}" if group else f"api/{version}"
                roots[prefix] = {"serverRelativeURL": f"/openapi/v3/{prefix}?hash=0"}
        return {"paths": roots}
    if rest[0] == "api" and len(rest) == 2:
        group, version = "", rest[1]
    elif rest[0] == "apis" and len(rest) == 3:
        group, version = rest[1], rest[2]
    else:
        return None
    served = table.in_group_version(group, version)
    if not served:
        return None
    paths: Obj = {}
    for rt in served:
        base = f"/apis/{group}/{version}" if group else f"/api/{version}"
        scope = f"{base}/namespaces/{{namespace}}" if rt.namespaced else base
        gvk = {"group": group, "version": version, "kind": rt.kind}
        param = {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}
        paths[f"{scope}/{rt.plural}/{{name}}"] = {
            "patch": {
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [param],
                "responses": {"200": {"description": "OK"}},
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBE_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }

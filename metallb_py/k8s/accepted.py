"""The last accepted config, kept in the cluster: a ConfigMap the controller owns.

A refused config must stay refused across restarts. The ConfigMap holds only what the user
wants; what is in force lived in the controller's memory, so a restarted controller (or speaker)
used to accept whatever the ConfigMap said and orphan the IPs the refusal protected. The
controller therefore writes every config it accepts into `<config>-accepted` (its RBAC may update
only that name), and both components start from it: the live config must prove itself against
what Services hold before it replaces the stored one (docs/behaviour-differences.md).

The stored text carries its SHA-256 in an annotation, so a store edited by hand or garbled is
recognised and treated as "nothing stored" (the controller rewrites it). Reading is pure; the
one write goes through the `kubernetes` client with optimistic concurrency.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from metallb_py.config import BgpType
from metallb_py.k8s.configmap import CONFIG_KEY, ConfigLoad, load_configmap
from metallb_py.k8s.objects import Obj

SUFFIX = "-accepted"
CHECKSUM_ANNOTATION = "metallb-py.io/config-sha256"
SOURCE_ANNOTATION = "metallb-py.io/source-resource-version"
ACCEPTED_AT_ANNOTATION = "metallb-py.io/accepted-at"


def store_name(config_name: str) -> str:
    """The store's name for the config ConfigMap `config_name` (`config` → `config-accepted`)."""
    return config_name + SUFFIX


def checksum(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class StoredConfig:
    """What the store holds: a usable config with its text, or why there is none."""

    text: str | None = None
    load: ConfigLoad | None = None
    problem: str = ""
    """Why the store is not usable ("" when it is, or when it does not exist)."""

    @property
    def usable(self) -> bool:
        return self.load is not None and self.load.config is not None


def read_stored(configmap: Obj | None, bgp_type: BgpType) -> StoredConfig:
    """Judge the store object: absent, usable, or garbage (with the reason)."""
    if configmap is None:
        return StoredConfig()
    load = load_configmap(configmap, bgp_type)
    if load.config is None:
        return StoredConfig(problem=f"does not hold a valid config: {load.summary(3)}")
    meta = configmap.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    want = annotations.get(CHECKSUM_ANNOTATION) if isinstance(annotations, dict) else None
    if want != checksum(load.text):
        return StoredConfig(problem=f"its {CHECKSUM_ANNOTATION} does not match (edited by hand?)")
    return StoredConfig(load.text, load)


def holds(configmap: Obj | None, text: str) -> bool:
    """Whether the store object holds exactly `text`, with a matching checksum."""
    if configmap is None:
        return False
    data = configmap.get("data")
    meta = configmap.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    return (
        isinstance(data, dict)
        and data.get(CONFIG_KEY) == text
        and isinstance(annotations, dict)
        and annotations.get(CHECKSUM_ANNOTATION) == checksum(text)
    )


def stored_configmap(name: str, namespace: str, text: str, source_version: str) -> Obj:
    """The store object for `text`, accepted from the config ConfigMap at `source_version`."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app": "metallb", "app.kubernetes.io/managed-by": "metallb-py-controller"},
            "annotations": {
                CHECKSUM_ANNOTATION: checksum(text),
                SOURCE_ANNOTATION: source_version,
                ACCEPTED_AT_ANNOTATION: dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "kubernetes.io/description": (
                    "The last MetalLB config the controller accepted (written by the "
                    "controller; do not edit). A refused config in the config ConfigMap "
                    "stays refused across restarts because of it."
                ),
            },
        },
        "data": {CONFIG_KEY: text},
    }


def write_stored(core: Any, body: Obj, current: Obj | None, timeout: float = 10) -> Obj:
    """Create the store, or replace `current` (the cached object: its resourceVersion makes a
    concurrent edit fail with 409, and the caller retries on the fresh cache). Returns the
    stored object."""
    meta = body["metadata"]
    if current is None:
        try:
            resp = core.create_namespaced_config_map(
                meta["namespace"], body, _preload_content=False, _request_timeout=timeout
            )
            created: Obj = json.loads(resp.data)
            return created
        except ApiException as e:
            if e.status != 409:
                raise
            # Created meanwhile (another controller replica, a hand-made object): replace it.
            resp = core.read_namespaced_config_map(
                meta["name"], meta["namespace"], _preload_content=False, _request_timeout=timeout
            )
            current = json.loads(resp.data)
    assert current is not None
    version = (current.get("metadata") or {}).get("resourceVersion")
    replacement = {**body, "metadata": {**meta, "resourceVersion": version}}
    resp = core.replace_namespaced_config_map(
        meta["name"],
        meta["namespace"],
        replacement,
        _preload_content=False,
        _request_timeout=timeout,
    )
    replaced: Obj = json.loads(resp.data)
    return replaced

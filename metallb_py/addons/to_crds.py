"""The v0.12 config -> MetalLB v0.13 custom resources (`config convert --to crds`): everything
a v0.12 config says has a CRD form, so this direction loses nothing but pool names that are not
Kubernetes object names.

Round trip: the ConfigMap written from CRDs carries the original objects in an annotation. When
the config still says the same thing, converting back returns those objects unchanged (names,
labels, selectors); when it was edited, canonical objects are generated, reusing the pool and
peer metadata that still applies.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from metallb_py.addons.crds import (
    ADV_KEYS,
    BFD_KEYS,
    DEFAULT_NAMESPACE,
    GROUP,
    PEER_KEYS,
    VERSIONS,
    CrdObject,
    selector,
)
from metallb_py.addons.from_crds import Conversion, crds_to_config
from metallb_py.config.errors import ConfigError, Problem
from metallb_py.config.yamlnodes import format_path
from metallb_py.k8s.objects import Obj

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def valid_name(name: str) -> bool:
    return len(name) <= 253 and bool(_DNS_SUBDOMAIN.fullmatch(name))


def _obj(
    kind: str, name: str, namespace: str, spec: Obj, meta: Mapping[str, Any] | None = None
) -> Obj:
    metadata: Obj = {"name": name, "namespace": namespace}
    if meta:
        for key in ("labels", "annotations"):
            if meta.get(key):
                metadata[key] = dict(meta[key])
    return {
        "apiVersion": f"{GROUP}/{VERSIONS[kind][0]}",
        "kind": kind,
        "metadata": metadata,
        "spec": spec,
    }


class _Names:
    """Object names of one kind, made unique with a number (`peer-x`, `peer-x-2`, ...)."""

    def __init__(self) -> None:
        self.taken: set[str] = set()
        self.next: dict[str, int] = {}

    def unique(self, name: str) -> str:
        candidate = name
        if candidate in self.taken:
            n = self.next.get(name, 2)
            while f"{name}-{n}" in self.taken:
                n += 1
            candidate = f"{name}-{n}"
            self.next[name] = n + 1
        self.taken.add(candidate)
        return candidate


def _peer_value(key: str, value: Any) -> Any:
    """CRD field types: ASNs and the port are integers, multihop a boolean, the rest strings
    (a YAML `hold-time: 0` or `password: 1234` reads as an integer)."""
    if key in ("myASN", "peerASN", "peerPort", "ebgpMultiHop"):
        return value
    return str(value)


def _peer_name(address: str) -> str:
    try:
        text = str(ipaddress.ip_address(address))
    except ValueError:
        text = address
    return "peer-" + re.sub(r"[^a-z0-9.-]", "-", text.lower()).strip("-.")


@dataclass
class CrdsResult:
    objects: list[Obj]
    losses: list[Problem]
    reused_originals: bool = False


def _peer_key(peer: Mapping[str, Any]) -> str:
    return json.dumps(peer, sort_keys=True, default=str)


def config_to_crds(
    config: Mapping[str, Any],
    namespace: str = DEFAULT_NAMESPACE,
    originals: list[CrdObject] | None = None,
) -> CrdsResult:
    """CRDs saying what a (valid) v0.12 config says; `originals` from the ConfigMap annotation
    are reused when they still convert to exactly this config."""
    if originals:
        try:
            again: Conversion | None = crds_to_config(originals)
        except ConfigError:
            again = None
        if again is not None and not again.losses and again.config == dict(config):
            return CrdsResult([o.manifest() for o in originals], [], True)
    old_meta: dict[tuple[str, str], Obj] = {}
    old_peers: dict[str, Obj] = {}
    for o in originals or []:
        old_meta[(o.kind, o.name)] = o.meta
        if o.kind == "BGPPeer":
            converted = crds_to_config([o])
            old_peers.setdefault(_peer_key(converted.config["peers"][0]), o.meta)

    losses: list[Problem] = []
    objects: list[Obj] = []
    names = {k: _Names() for k in VERSIONS}

    for prof in config.get("bfd-profiles") or []:
        spec = {k: prof[v] for k, v in BFD_KEYS.items() if v in prof}
        name = str(prof["name"])
        names["BFDProfile"].taken.add(name)
        objects.append(
            _obj("BFDProfile", name, namespace, spec, old_meta.get(("BFDProfile", name)))
        )

    for i, given in enumerate(config.get("peers") or []):
        peer = given or {}
        spec = {k: _peer_value(k, peer[v]) for k, v in PEER_KEYS.items() if v in peer}
        if peer.get("node-selectors"):
            spec["nodeSelectors"] = [
                selector(s or {}, to_config=False) for s in peer["node-selectors"]
            ]
        meta = old_peers.get(_peer_key(peer))
        name = names["BGPPeer"].unique(
            meta["name"] if meta else _peer_name(str(peer.get("peer-address", i)))
        )
        objects.append(_obj("BGPPeer", name, namespace, spec, meta))

    communities = config.get("bgp-communities") or {}
    if communities:
        old = next((m for (k, _n), m in old_meta.items() if k == "Community"), None)
        name = old["name"] if old else "communities"
        objects.append(
            _obj(
                "Community",
                name,
                namespace,
                {"communities": [{"name": k, "value": str(v)} for k, v in communities.items()]},
                old,
            )
        )

    for i, entry in enumerate(config.get("address-pools") or []):
        pool = entry or {}
        name = str(pool.get("name", ""))
        if not valid_name(name):
            losses.append(
                Problem(
                    format_path(("address-pools", i, "name")),
                    "not a valid Kubernetes object name (lower-case letters, digits, '-' and "
                    "'.'); the IPAddressPool needs a new name",
                    name,
                )
            )
            continue
        pool_spec: Obj = {"addresses": [str(a) for a in pool.get("addresses") or []]}
        if "auto-assign" in pool:
            pool_spec["autoAssign"] = pool["auto-assign"]
        if "avoid-buggy-ips" in pool:
            pool_spec["avoidBuggyIPs"] = pool["avoid-buggy-ips"]
        objects.append(
            _obj("IPAddressPool", name, namespace, pool_spec, old_meta.get(("IPAddressPool", name)))
        )
        if pool.get("protocol") == "layer2":
            adv_name = names["L2Advertisement"].unique(name)
            objects.append(_obj("L2Advertisement", adv_name, namespace, {"ipAddressPools": [name]}))
            continue
        advs = pool.get("bgp-advertisements") or [{}]
        for j, item in enumerate(advs):
            adv = item or {}
            adv_spec = {k: adv[v] for k, v in ADV_KEYS.items() if v in adv}
            if "communities" in adv_spec:
                adv_spec["communities"] = [str(c) for c in adv_spec["communities"]]
            adv_spec["ipAddressPools"] = [name]
            adv_name = names["BGPAdvertisement"].unique(
                name if len(advs) == 1 else f"{name}-{j + 1}"
            )
            objects.append(_obj("BGPAdvertisement", adv_name, namespace, adv_spec))
    return CrdsResult(objects, losses)

"""MetalLB v0.13 custom resources <-> the v0.12 ConfigMap config (the migration path).

v0.13 split the config into IPAddressPool, L2Advertisement, BGPAdvertisement, Community
(metallb.io/v1beta1), BGPPeer (v1beta2) and BFDProfile. Everything a v0.12 config says has a
CRD form, so config -> CRDs is lossless. The other way, v0.13 features without a v0.12 form
(advertisement node selectors, interfaces, peers; service allocation; VRFs; password Secrets;
large communities; a pool announced with both or with no protocol) are reported as *losses*,
each with the field path, instead of being dropped silently.

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
from dataclasses import dataclass, field
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from metallb_py.addons.schema import ANY, BOOL, INT, STR, Fields, ListOf, Reader, StrMap
from metallb_py.addons.yamlio import Path, is_null, mapping_pairs
from metallb_py.config.decode import format_path
from metallb_py.config.errors import ConfigError, Problem
from metallb_py.config.yamltree import describe

GROUP = "metallb.io"
VERSIONS: dict[str, tuple[str, ...]] = {
    "IPAddressPool": ("v1beta1",),
    "L2Advertisement": ("v1beta1",),
    "BGPAdvertisement": ("v1beta1",),
    "Community": ("v1beta1",),
    "BFDProfile": ("v1beta1",),
    "BGPPeer": ("v1beta2", "v1beta1"),
    "AddressPool": ("v1beta1",),
}
"""Kind -> accepted versions; the first one is written."""
DEFAULT_NAMESPACE = "metallb-system"
ORIGINALS_ANNOTATION = "convert.metallb-py.io/crds"
"""ConfigMap annotation holding the CRDs a config was converted from (JSON)."""

JsonObj = dict[str, Any]

_SELECTOR = Fields(
    "label selector",
    {
        "matchLabels": StrMap(),
        "matchExpressions": ListOf(
            Fields(
                "match expression",
                {"key": STR, "operator": STR, "values": ListOf(STR)},
                ("key", "operator"),
            )
        ),
    },
)
_SELECTORS = ListOf(_SELECTOR)
_NAMES = ListOf(STR)
_METADATA = Fields(
    "metadata",
    {
        "name": STR,
        "namespace": STR,
        "labels": StrMap(),
        "annotations": StrMap(),
        # Server-populated fields of `kubectl get -o yaml` output; read and dropped.
        "uid": STR,
        "resourceVersion": STR,
        "generation": INT,
        "creationTimestamp": ANY,
        "managedFields": ANY,
        "finalizers": ANY,
        "ownerReferences": ANY,
        "selfLink": STR,
    },
    ("name",),
)
_LEGACY_ADV = Fields(
    "bgpAdvertisement",
    {
        "aggregationLength": INT,
        "aggregationLengthV6": INT,
        "localPref": INT,
        "communities": _NAMES,
    },
)
SPECS: dict[str, Fields] = {
    "IPAddressPool": Fields(
        "IPAddressPool spec",
        {
            "addresses": _NAMES,
            "autoAssign": BOOL,
            "avoidBuggyIPs": BOOL,
            "serviceAllocation": ANY,
        },
        ("addresses",),
    ),
    "L2Advertisement": Fields(
        "L2Advertisement spec",
        {
            "ipAddressPools": _NAMES,
            "ipAddressPoolSelectors": _SELECTORS,
            "nodeSelectors": _SELECTORS,
            "interfaces": _NAMES,
        },
    ),
    "BGPAdvertisement": Fields(
        "BGPAdvertisement spec",
        {
            "aggregationLength": INT,
            "aggregationLengthV6": INT,
            "localPref": INT,
            "communities": _NAMES,
            "ipAddressPools": _NAMES,
            "ipAddressPoolSelectors": _SELECTORS,
            "nodeSelectors": _SELECTORS,
            "peers": _NAMES,
        },
    ),
    "Community": Fields(
        "Community spec",
        {
            "communities": ListOf(
                Fields("community alias", {"name": STR, "value": STR}, ("name", "value"))
            )
        },
    ),
    "BFDProfile": Fields(
        "BFDProfile spec",
        {
            "receiveInterval": INT,
            "transmitInterval": INT,
            "detectMultiplier": INT,
            "echoInterval": INT,
            "echoMode": BOOL,
            "passiveMode": BOOL,
            "minimumTtl": INT,
        },
    ),
    "BGPPeer": Fields(
        "BGPPeer spec",
        {
            "myASN": INT,
            "peerASN": INT,
            "peerAddress": STR,
            "sourceAddress": STR,
            "peerPort": INT,
            "holdTime": STR,
            "keepaliveTime": STR,
            "routerID": STR,
            "nodeSelectors": _SELECTORS,
            "password": STR,
            "passwordSecret": ANY,
            "bfdProfile": STR,
            "ebgpMultiHop": BOOL,
            "vrf": STR,
        },
        ("myASN", "peerASN", "peerAddress"),
    ),
    "AddressPool": Fields(
        "AddressPool spec",
        {
            "protocol": STR,
            "addresses": _NAMES,
            "autoAssign": BOOL,
            "avoidBuggyIPs": BOOL,
            "bgpAdvertisements": ListOf(_LEGACY_ADV),
        },
        ("protocol", "addresses"),
    ),
}
_KEEP_META = ("name", "namespace", "labels", "annotations")
_BFD_KEYS = {
    "receiveInterval": "receive-interval",
    "transmitInterval": "transmit-interval",
    "detectMultiplier": "detect-multiplier",
    "echoInterval": "echo-interval",
    "echoMode": "echo-mode",
    "passiveMode": "passive-mode",
    "minimumTtl": "minimum-ttl",
}
_PEER_KEYS = {
    "myASN": "my-asn",
    "peerASN": "peer-asn",
    "peerAddress": "peer-address",
    "peerPort": "peer-port",
    "holdTime": "hold-time",
    "keepaliveTime": "keepalive-time",
    "routerID": "router-id",
    "sourceAddress": "source-address",
    "password": "password",
    "bfdProfile": "bfd-profile",
    "ebgpMultiHop": "ebgp-multihop",
}
_ADV_KEYS = {
    "aggregationLength": "aggregation-length",
    "aggregationLengthV6": "aggregation-length-v6",
    "localPref": "localpref",
    "communities": "communities",
}


@dataclass(frozen=True)
class CrdObject:
    kind: str
    api_version: str
    meta: JsonObj
    """name, namespace, labels, annotations only."""
    spec: JsonObj
    path: Path
    """Where it is in the input (document index, or list index for a List)."""
    has_spec: bool = True
    """False when the input had no `spec` (v0.13 allows that for advertisements)."""

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    def manifest(self) -> JsonObj:
        obj: JsonObj = {"apiVersion": self.api_version, "kind": self.kind, "metadata": self.meta}
        if self.has_spec:
            obj["spec"] = self.spec
        return obj


@dataclass
class Conversion:
    """A v0.12 config made from CRDs, and what it could not say."""

    config: JsonObj
    namespace: str
    losses: list[Problem] = field(default_factory=list)
    objects: list[JsonObj] = field(default_factory=list)
    """The input objects, cleaned of server-populated fields (kept for the round trip)."""


# --- reading ------------------------------------------------------------------------------


def _objects(node: Node | None, path: Path, r: Reader, out: list[CrdObject]) -> None:
    if node is None:
        return
    if not isinstance(node, MappingNode):
        r.error(path, f"expected a Kubernetes object (a mapping), got {describe(node)}", node)
        return
    kind = _text(node, "kind")
    api = _text(node, "apiVersion") or ""
    if kind == "List" and api == "v1":
        items = _child(node, "items")
        if not isinstance(items, SequenceNode):
            r.error((*path, "items"), "a List needs items (a list of objects)", items or node)
            return
        for i, item in enumerate(items.value):
            _objects(item, (*path, "items", i), r, out)
        return
    if kind not in VERSIONS:
        known = ", ".join(VERSIONS)
        r.error(
            (*path, "kind"),
            f"expected a MetalLB custom resource ({known}), got {api or '?'} {kind or '?'}"
            + ("; a ConfigMap is converted with --from configmap" if kind == "ConfigMap" else ""),
            node,
            kind,
        )
        return
    group, _, version = api.partition("/")
    if group != GROUP or version not in VERSIONS[kind]:
        wanted = " or ".join(f"{GROUP}/{v}" for v in VERSIONS[kind])
        r.error((*path, "apiVersion"), f"{kind} needs apiVersion {wanted}, got {api!r}", node, api)
        return
    required = ("metadata", "spec") if SPECS[kind].required else ("metadata",)
    fields = Fields(
        kind,
        {"apiVersion": STR, "kind": STR, "metadata": _METADATA, "spec": SPECS[kind], "status": ANY},
        required,
    )
    obj = r.read(node, fields, path)
    if obj is None or "metadata" not in obj:
        return
    meta = {k: obj["metadata"][k] for k in _KEEP_META if k in obj["metadata"]}
    annotations = {
        k: v
        for k, v in meta.get("annotations", {}).items()
        if k != "kubectl.kubernetes.io/last-applied-configuration"
    }
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    out.append(CrdObject(kind, api, meta, obj.get("spec") or {}, path, "spec" in obj))


def _child(node: MappingNode, key: str) -> Node | None:
    return next(
        (v for k, v in mapping_pairs(node) if isinstance(k, ScalarNode) and k.value == key), None
    )


def _text(node: MappingNode, key: str) -> str | None:
    child = _child(node, key)
    return str(child.value) if isinstance(child, ScalarNode) and not is_null(child) else None


def read_objects(docs: list[Node | None]) -> list[CrdObject]:
    r = Reader()
    out: list[CrdObject] = []
    for i, doc in enumerate(docs):
        _objects(doc, (i,) if len(docs) > 1 else (), r, out)
    r.check()
    if not out:
        raise ConfigError([Problem("", "no MetalLB custom resources found")])
    return out


# --- CRDs -> config -------------------------------------------------------------------------


def _where(obj: CrdObject, *rest: str | int) -> str:
    return f"{obj.kind}/{obj.name}" + ("." + format_path(tuple(rest)) if rest else "")


def _selector_to_config(sel: Mapping[str, Any]) -> JsonObj:
    out: JsonObj = {}
    if sel.get("matchLabels"):
        out["match-labels"] = dict(sel["matchLabels"])
    if sel.get("matchExpressions"):
        out["match-expressions"] = [
            {k: v for k, v in e.items() if k in ("key", "operator", "values")}
            for e in sel["matchExpressions"]
        ]
    return out


def _selector_matches(sel: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in sel.get("matchLabels", {}).items()):
        return False
    for e in sel.get("matchExpressions", []):
        key, op, values = e["key"], e["operator"], e.get("values", [])
        present = key in labels
        ok = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }.get(op, False)
        if not ok:
            return False
    return True


def _selected_pools(obj: CrdObject, pools: list[CrdObject], losses: list[Problem]) -> list[str]:
    """Pool names an advertisement applies to (none listed and no selector: every pool)."""
    names = list(obj.spec.get("ipAddressPools", []))
    selectors = obj.spec.get("ipAddressPoolSelectors", [])
    if not names and not selectors:
        return [p.name for p in pools]
    known = {p.name for p in pools}
    for i, name in enumerate(names):
        if name not in known:
            losses.append(
                Problem(
                    _where(obj, "spec", "ipAddressPools", i),
                    f"names no IPAddressPool {name!r} (MetalLB ignores it)",
                    name,
                )
            )
    for sel in selectors:
        for p in pools:
            if _selector_matches(sel, p.meta.get("labels", {})) and p.name not in names:
                names.append(p.name)
    return [n for n in names if n in known]


def _advertisement(spec: Mapping[str, Any]) -> JsonObj:
    return {_ADV_KEYS[k]: spec[k] for k in _ADV_KEYS if k in spec}


def _norm_adv(adv: Mapping[str, Any] | None) -> tuple[Any, ...]:
    adv = adv or {}
    return (
        adv.get("aggregation-length", 32),
        adv.get("aggregation-length-v6", 128),
        adv.get("localpref", 0),
        tuple(adv.get("communities") or ()),
    )


def crds_to_config(objects: list[CrdObject]) -> Conversion:
    """The v0.12 config equivalent to a set of MetalLB v0.13 objects."""
    losses: list[Problem] = []
    namespaces = {o.meta.get("namespace", DEFAULT_NAMESPACE) for o in objects}
    namespace = sorted(namespaces)[0]
    if len(namespaces) > 1:
        losses.append(
            Problem(
                "metadata.namespace",
                f"objects are in several namespaces ({', '.join(sorted(namespaces))}); MetalLB "
                f"reads only its own: converting all of them as if in {namespace!r}",
            )
        )
    by_kind: dict[str, list[CrdObject]] = {k: [] for k in VERSIONS}
    for o in objects:
        by_kind[o.kind].append(o)
        for other in by_kind[o.kind][:-1]:
            if other.name == o.name and other.meta.get("namespace") == o.meta.get("namespace"):
                raise ConfigError(
                    [Problem(format_path(o.path), f"{o.kind} {o.name!r} is defined twice", o.name)]
                )
    config: JsonObj = {}

    # peers
    peers = []
    for o in by_kind["BGPPeer"]:
        s = o.spec
        peer = {_PEER_KEYS[k]: s[k] for k in _PEER_KEYS if k in s and s[k] not in ("", None)}
        if peer.get("ebgp-multihop") is False:
            del peer["ebgp-multihop"]
        if s.get("nodeSelectors"):
            peer["node-selectors"] = [_selector_to_config(x) for x in s["nodeSelectors"]]
        for key, why in (
            ("passwordSecret", "a password Secret (write the password itself in the config)"),
            ("vrf", "VRFs"),
        ):
            if s.get(key):
                losses.append(
                    Problem(_where(o, "spec", key), f"v0.12 has no {why}; dropped", s[key])
                )
        peers.append(peer)
    if peers:
        config["peers"] = peers

    # communities
    aliases: dict[str, str] = {}
    alias_from: dict[str, str] = {}
    for o in by_kind["Community"]:
        for i, c in enumerate(o.spec.get("communities", [])):
            name, value = c["name"], c["value"]
            if value.startswith("large:"):
                losses.append(
                    Problem(
                        _where(o, "spec", "communities", i, "value"),
                        "large communities do not exist in v0.12; alias dropped",
                        value,
                    )
                )
                continue
            if name in aliases and aliases[name] != value:
                raise ConfigError(
                    [
                        Problem(
                            _where(o, "spec", "communities", i, "name"),
                            f"alias {name!r} is also defined as {aliases[name]!r} in "
                            f"{alias_from[name]}",
                            value,
                        )
                    ]
                )
            aliases[name] = value
            alias_from[name] = _where(o)
    if aliases:
        config["bgp-communities"] = aliases

    # pools
    pools = by_kind["IPAddressPool"]
    l2_of: dict[str, list[CrdObject]] = {p.name: [] for p in pools}
    bgp_of: dict[str, list[CrdObject]] = {p.name: [] for p in pools}
    for o in by_kind["L2Advertisement"]:
        for key, why in (
            ("nodeSelectors", "v0.12 announces layer2 addresses from any node"),
            ("interfaces", "v0.12 answers on every interface"),
        ):
            if o.spec.get(key):
                losses.append(Problem(_where(o, "spec", key), f"{why}; dropped", o.spec[key]))
        for name in _selected_pools(o, pools, losses):
            l2_of[name].append(o)
    for o in by_kind["BGPAdvertisement"]:
        for key, why in (
            ("nodeSelectors", "v0.12 announces from every node with an endpoint"),
            ("peers", "v0.12 announces to every peer"),
        ):
            if o.spec.get(key):
                losses.append(Problem(_where(o, "spec", key), f"{why}; dropped", o.spec[key]))
        for i, c in enumerate(o.spec.get("communities", [])):
            if c.startswith("large:"):
                losses.append(
                    Problem(
                        _where(o, "spec", "communities", i),
                        "large communities do not exist in v0.12; dropped",
                        c,
                    )
                )
        for name in _selected_pools(o, pools, losses):
            bgp_of[name].append(o)
    out_pools: list[JsonObj] = []
    for p in pools:
        pool: JsonObj = {"name": p.name}
        if p.spec.get("serviceAllocation"):
            losses.append(
                Problem(
                    _where(p, "spec", "serviceAllocation"),
                    "v0.12 pools cannot be limited to namespaces or services; dropped",
                    p.spec["serviceAllocation"],
                )
            )
        l2, bgp = l2_of[p.name], bgp_of[p.name]
        if l2 and bgp:
            losses.append(
                Problem(
                    _where(p),
                    "announced by L2Advertisement "
                    + ", ".join(o.name for o in l2)
                    + " and BGPAdvertisement "
                    + ", ".join(o.name for o in bgp)
                    + ": a v0.12 pool has one protocol; kept as bgp",
                )
            )
        if not l2 and not bgp:
            losses.append(
                Problem(
                    _where(p),
                    "no L2Advertisement or BGPAdvertisement selects this pool, so v0.13 hands "
                    "out its addresses without announcing them; v0.12 cannot say that: pool "
                    "dropped",
                )
            )
            continue
        pool["protocol"] = "bgp" if bgp else "layer2"
        pool["addresses"] = list(p.spec["addresses"])
        if "avoidBuggyIPs" in p.spec:
            pool["avoid-buggy-ips"] = p.spec["avoidBuggyIPs"]
        if "autoAssign" in p.spec:
            pool["auto-assign"] = p.spec["autoAssign"]
        if bgp:
            advs: list[JsonObj] = []
            seen: set[tuple[Any, ...]] = set()
            for o in bgp:
                adv = _advertisement(o.spec)
                adv["communities"] = [
                    c for c in adv.get("communities", []) if not c.startswith("large:")
                ]
                if not adv["communities"]:
                    del adv["communities"]
                norm = _norm_adv(adv)
                if norm in seen:
                    continue  # identical advertisements announce the same routes
                seen.add(norm)
                advs.append(adv)
            if advs != [{}]:
                pool["bgp-advertisements"] = advs
        out_pools.append(pool)
    for p in by_kind["AddressPool"]:
        pool = {
            "name": p.name,
            "protocol": p.spec["protocol"],
            "addresses": list(p.spec["addresses"]),
        }
        if "avoidBuggyIPs" in p.spec:
            pool["avoid-buggy-ips"] = p.spec["avoidBuggyIPs"]
        if "autoAssign" in p.spec:
            pool["auto-assign"] = p.spec["autoAssign"]
        if p.spec.get("bgpAdvertisements"):
            pool["bgp-advertisements"] = [_advertisement(a) for a in p.spec["bgpAdvertisements"]]
        out_pools.append(pool)
    if out_pools:
        config["address-pools"] = out_pools

    # BFD profiles
    profiles = []
    for o in by_kind["BFDProfile"]:
        prof: JsonObj = {"name": o.name}
        prof.update({_BFD_KEYS[k]: o.spec[k] for k in _BFD_KEYS if k in o.spec})
        profiles.append(prof)
    if profiles:
        config["bfd-profiles"] = profiles
    return Conversion(config, namespace, losses, [o.manifest() for o in objects])


# --- config -> CRDs -------------------------------------------------------------------------

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def valid_name(name: str) -> bool:
    return len(name) <= 253 and bool(_DNS_SUBDOMAIN.fullmatch(name))


def _selector_from_config(sel: Mapping[str, Any] | None) -> JsonObj:
    sel = sel or {}
    out: JsonObj = {}
    if sel.get("match-labels"):
        out["matchLabels"] = dict(sel["match-labels"])
    if sel.get("match-expressions"):
        out["matchExpressions"] = [
            {k: v for k, v in e.items() if k in ("key", "operator", "values")}
            for e in sel["match-expressions"]
        ]
    return out


def _obj(
    kind: str, name: str, namespace: str, spec: JsonObj, meta: Mapping[str, Any] | None = None
) -> JsonObj:
    metadata: JsonObj = {"name": name, "namespace": namespace}
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


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate = f"{name}-{n}"
        n += 1
    taken.add(candidate)
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
    objects: list[JsonObj]
    losses: list[Problem]
    reused_originals: bool = False


def config_to_crds(
    config: Mapping[str, Any],
    namespace: str = DEFAULT_NAMESPACE,
    originals: list[JsonObj] | None = None,
) -> CrdsResult:
    """CRDs saying what a (valid) v0.12 config says; `originals` from the ConfigMap annotation
    are reused when they still convert to exactly this config."""
    if originals:
        try:
            again = crds_to_config(
                [
                    CrdObject(
                        o["kind"],
                        o["apiVersion"],
                        o["metadata"],
                        o.get("spec") or {},
                        (i,),
                        "spec" in o,
                    )
                    for i, o in enumerate(originals)
                ]
            )
        except (ConfigError, KeyError, TypeError):
            again = None
        if again is not None and not again.losses and again.config == dict(config):
            return CrdsResult([dict(o) for o in originals], [], True)
    old_meta: dict[tuple[str, str], JsonObj] = {}
    old_peers: list[tuple[JsonObj, JsonObj]] = []
    for o in originals or []:
        if not isinstance(o, dict) or "metadata" not in o:
            continue
        old_meta[(o.get("kind", ""), o["metadata"].get("name", ""))] = o["metadata"]
        if o.get("kind") == "BGPPeer":
            converted = crds_to_config(
                [CrdObject("BGPPeer", o["apiVersion"], o["metadata"], o.get("spec") or {}, ())]
            )
            old_peers.append((converted.config.get("peers", [{}])[0], o["metadata"]))

    losses: list[Problem] = []
    objects: list[JsonObj] = []
    taken: dict[str, set[str]] = {k: set() for k in VERSIONS}

    for prof in config.get("bfd-profiles") or []:
        spec = {k: prof[v] for k, v in _BFD_KEYS.items() if v in prof}
        name = str(prof["name"])
        taken["BFDProfile"].add(name)
        objects.append(
            _obj("BFDProfile", name, namespace, spec, old_meta.get(("BFDProfile", name)))
        )

    for i, given in enumerate(config.get("peers") or []):
        peer = given or {}
        spec = {k: _peer_value(k, peer[v]) for k, v in _PEER_KEYS.items() if v in peer}
        if peer.get("node-selectors"):
            spec["nodeSelectors"] = [_selector_from_config(s) for s in peer["node-selectors"]]
        meta = next((m for p, m in old_peers if p == peer), None)
        name = _unique(
            meta["name"] if meta else _peer_name(str(peer.get("peer-address", i))), taken["BGPPeer"]
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
        pool_spec: JsonObj = {"addresses": [str(a) for a in pool.get("addresses") or []]}
        if "auto-assign" in pool:
            pool_spec["autoAssign"] = pool["auto-assign"]
        if "avoid-buggy-ips" in pool:
            pool_spec["avoidBuggyIPs"] = pool["avoid-buggy-ips"]
        objects.append(
            _obj("IPAddressPool", name, namespace, pool_spec, old_meta.get(("IPAddressPool", name)))
        )
        if pool.get("protocol") == "layer2":
            adv_name = _unique(name, taken["L2Advertisement"])
            objects.append(_obj("L2Advertisement", adv_name, namespace, {"ipAddressPools": [name]}))
            continue
        advs = pool.get("bgp-advertisements") or [{}]
        for j, item in enumerate(advs):
            adv = item or {}
            adv_spec = {k: adv[v] for k, v in _ADV_KEYS.items() if v in adv}
            if "communities" in adv_spec:
                adv_spec["communities"] = [str(c) for c in adv_spec["communities"]]
            adv_spec["ipAddressPools"] = [name]
            adv_name = _unique(
                name if len(advs) == 1 else f"{name}-{j + 1}", taken["BGPAdvertisement"]
            )
            objects.append(_obj("BGPAdvertisement", adv_name, namespace, adv_spec))
    return CrdsResult(objects, losses)


def originals_annotation(objects: list[JsonObj]) -> str:
    return json.dumps(objects, separators=(",", ":"), sort_keys=True)


def parse_originals(text: str | None) -> list[JsonObj] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, dict) for v in value) else None

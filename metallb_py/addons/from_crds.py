"""MetalLB v0.13 custom resources -> the v0.12 config (`config convert --from crds`).

v0.13 features without a v0.12 form (advertisement node selectors, interfaces, peers; service
allocation; VRFs; password Secrets; large communities; a pool announced with both or with no
protocol) are reported as *losses*, each with the field path, instead of being dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from metallb_py.addons.crds import (
    ADV_KEYS,
    BFD_KEYS,
    DEFAULT_NAMESPACE,
    PEER_KEYS,
    VERSIONS,
    CrdObject,
    selector,
)
from metallb_py.config.errors import ConfigError, Problem
from metallb_py.config.yamlnodes import format_path
from metallb_py.k8s.objects import Obj
from metallb_py.k8s.selectors import selector_from_object


@dataclass
class Conversion:
    """A v0.12 config made from CRDs, and what it could not say."""

    config: Obj
    namespace: str
    losses: list[Problem] = field(default_factory=list)


def _where(obj: CrdObject, *rest: str | int) -> str:
    return f"{obj.kind}/{obj.name}" + ("." + format_path(tuple(rest)) if rest else "")


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
    chosen = set(names)
    for sel in selectors:
        selector = selector_from_object(sel)
        for p in pools:
            if selector is not None and p.name not in chosen and selector.matches_labels(p.labels):
                chosen.add(p.name)
                names.append(p.name)
    return [n for n in names if n in known]


_L2_ONLY = (
    ("nodeSelectors", "v0.12 announces layer2 addresses from any node"),
    ("interfaces", "v0.12 answers on every interface"),
)
_BGP_ONLY = (
    ("nodeSelectors", "v0.12 announces from every node with an endpoint"),
    ("peers", "v0.12 announces to every peer"),
)
"""Advertisement fields of v0.13 without a v0.12 form, and what v0.12 does instead."""


def _dropped(obj: CrdObject, fields: tuple[tuple[str, str], ...], losses: list[Problem]) -> None:
    for key, why in fields:
        if obj.spec.get(key):
            losses.append(Problem(_where(obj, "spec", key), f"{why}; dropped", obj.spec[key]))


def _advertisement(spec: Mapping[str, Any]) -> Obj:
    return {ADV_KEYS[k]: spec[k] for k in ADV_KEYS if k in spec}


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
    defined: set[tuple[str, str, Any]] = set()
    for o in objects:
        identity = (o.kind, o.name, o.meta.get("namespace"))
        if identity in defined:
            raise ConfigError(
                [Problem(format_path(o.path), f"{o.kind} {o.name!r} is defined twice", o.name)]
            )
        defined.add(identity)
        by_kind[o.kind].append(o)
    config: Obj = {}

    # peers
    peers = []
    for o in by_kind["BGPPeer"]:
        s = o.spec
        peer = {PEER_KEYS[k]: s[k] for k in PEER_KEYS if k in s and s[k] not in ("", None)}
        if peer.get("ebgp-multihop") is False:
            del peer["ebgp-multihop"]
        if s.get("nodeSelectors"):
            peer["node-selectors"] = [selector(x, to_config=True) for x in s["nodeSelectors"]]
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
        _dropped(o, _L2_ONLY, losses)
        for name in _selected_pools(o, pools, losses):
            l2_of[name].append(o)
    for o in by_kind["BGPAdvertisement"]:
        _dropped(o, _BGP_ONLY, losses)
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
    out_pools: list[Obj] = []
    for p in pools:
        pool: Obj = {"name": p.name}
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
            advs: list[Obj] = []
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
        prof: Obj = {"name": o.name}
        prof.update({BFD_KEYS[k]: o.spec[k] for k in BFD_KEYS if k in o.spec})
        profiles.append(prof)
    if profiles:
        config["bfd-profiles"] = profiles
    return Conversion(config, namespace, losses)

"""Konvoy `cluster.yaml`: the `metallb` addon of a ClusterConfiguration, whose `values` string
holds Helm chart values (read by `helm.read_helm`, lines mapped back into the file).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from metallb_py.addons.addon import AddonValues, refuse_disabled
from metallb_py.addons.helm import read_helm
from metallb_py.config.addresses import AddressError, parse_address_entry
from metallb_py.config.decode import BOOL, TYPED_STR, Struct, read
from metallb_py.config.errors import ConfigError, Problem
from metallb_py.config.yamlnodes import (
    Path,
    ProblemLog,
    child,
    is_null,
    load_documents,
    node_at,
    scalar_text,
)
from metallb_py.config.yamltree import line_of, mark_line

KONVOY_API_VERSIONS = ("konvoy.mesosphere.io/v1beta1", "konvoy.mesosphere.io/v1beta2")
_ADDON = Struct(
    "Konvoy addon", {"name": TYPED_STR, "enabled": BOOL, "values": TYPED_STR}, ("name",)
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _subnets(spec: Node | None, problems: ProblemLog) -> dict[str, Network]:
    """`spec.kubernetes.networking.{podSubnet,serviceSubnet}`, when given."""
    networking = child(child(spec, "kubernetes"), "networking")
    out: dict[str, Network] = {}
    for key in ("podSubnet", "serviceSubnet"):
        node = child(networking, key)
        text = scalar_text(node)
        if text is None:
            continue
        try:
            out[f"spec.kubernetes.networking.{key}"] = ipaddress.ip_network(text, strict=False)
        except ValueError:
            problems.add(
                ("spec", "kubernetes", "networking", key), f"not a CIDR: {text!r}", text, node
            )
    return out


def _addon_lists(spec: Node | None) -> list[tuple[Path, Node]]:
    """Every `addonsList`: under `spec.addons` (v1beta1) or each of its repositories."""
    addons = child(spec, "addons")
    if isinstance(addons, MappingNode):
        found = child(addons, "addonsList")
        return [] if found is None else [(("spec", "addons", "addonsList"), found)]
    lists: list[tuple[Path, Node]] = []
    if isinstance(addons, SequenceNode):
        for i, repo in enumerate(addons.value):
            found = child(repo, "addonsList")
            if found is not None:
                lists.append((("spec", "addons", i, "addonsList"), found))
    return lists


def _cluster_configuration(docs: list[Node | None]) -> Node:
    """The one ClusterConfiguration document (a cluster.yaml also holds a ClusterProvisioner)."""
    candidates = [
        d for d in docs if d is not None and scalar_text(child(d, "kind")) == "ClusterConfiguration"
    ]
    if not candidates:
        kinds = [(scalar_text(child(d, "kind")) or "?") for d in docs if d is not None]
        raise ConfigError(
            [
                Problem(
                    "kind",
                    "no Konvoy document of kind ClusterConfiguration found"
                    + (f" (found: {', '.join(kinds)})" if kinds else ""),
                )
            ]
        )
    if len(candidates) > 1:
        raise ConfigError(
            [
                Problem(
                    "kind",
                    "more than one ClusterConfiguration document",
                    None,
                    line_of(candidates[1]),
                )
            ]
        )
    return candidates[0]


def read_konvoy(docs: list[Node | None]) -> AddonValues:
    """The `metallb` addon of a Konvoy ClusterConfiguration (other documents are skipped)."""
    problems = ProblemLog()
    doc = _cluster_configuration(docs)
    api = scalar_text(child(doc, "apiVersion"))
    if api not in KONVOY_API_VERSIONS:
        problems.add(
            ("apiVersion",),
            f"expected one of {', '.join(KONVOY_API_VERSIONS)} for a Konvoy ClusterConfiguration,"
            f" got {api!r}",
            api,
            child(doc, "apiVersion") or doc,
        )
        problems.check()
    spec = child(doc, "spec")
    found: list[str] = []
    match: tuple[Path, Node] | None = None
    for base, lst in _addon_lists(spec):
        entries = lst.value if isinstance(lst, SequenceNode) else []
        for j, addon in enumerate(entries):
            name = scalar_text(child(addon, "name"))
            found.append(name or "?")
            if name == "metallb":
                match = ((*base, j), addon)
    if match is None:
        problems.add(
            ("spec", "addons"),
            "no addon named 'metallb' in spec.addons[].addonsList"
            + (f" (found: {', '.join(found)})" if found else ""),
            None,
            child(spec, "addons") or spec or doc,
        )
        problems.check()
    assert match is not None
    addon_path, addon = match
    addon_fields = read(addon, _ADDON, addon_path, problems) or {}
    refuse_disabled(addon_fields, addon, addon_path, problems, "the metallb addon")
    values_node = child(addon, "values")
    values_path = (*addon_path, "values")
    inner: Node | None = None
    offset = 0
    if isinstance(values_node, ScalarNode) and not is_null(values_node):
        # A block scalar's text starts on the line after the `values: |` indicator.
        offset = mark_line(values_node.start_mark) - (0 if values_node.style in ("|", ">") else 1)
        docs_inner = load_documents(str(values_node.value), values_path, offset)
        if len(docs_inner) > 1:
            problems.add(
                values_path,
                "the values string holds more than one YAML document",
                None,
                values_node,
            )
            problems.check()
        inner = docs_inner[0] if docs_inner else None
    result = read_helm(inner, values_path, offset, kind="konvoy")
    subnets = _subnets(spec, problems)
    problems.check()
    if result.config is not None and subnets:
        _check_overlap(result, subnets)
    return result


def _check_overlap(result: AddonValues, subnets: Mapping[str, Network]) -> None:
    """Konvoy's own rule: the MetalLB range must not overlap podSubnet or serviceSubnet."""
    assert result.config is not None and result.source is not None
    problems = ProblemLog(result.source.line_offset)
    for i, pool in enumerate(result.config.get("address-pools") or []):
        if not isinstance(pool, dict):
            continue
        for j, entry in enumerate(pool.get("addresses") or []):
            try:
                cidrs = parse_address_entry(str(entry)).cidrs
            except AddressError:
                continue  # reported by the config check
            for where, subnet in subnets.items():
                if any(c.version == subnet.version and c.overlaps(subnet) for c in cidrs):
                    problems.add(
                        (*result.source.path, "address-pools", i, "addresses", j),
                        f"{entry} overlaps {where} {subnet}: MetalLB would hand out "
                        "addresses the cluster already routes internally",
                        entry,
                        node_at(result.source.node, ("address-pools", i, "addresses", j)),
                    )
    problems.check()

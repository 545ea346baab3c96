"""Checks of the network around MetalLB: kube-proxy's strictARP, pools overlapping the Service
or Pod networks, pools holding a node's own address."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from metallb_py.config import Config, Protocol
from metallb_py.config.addresses import AddressError, parse_address_entry
from metallb_py.config.model import AddressPool, IPAddress
from metallb_py.doctor.view import (
    ClusterView,
    Finding,
    Network,
    Severity,
    first_few,
    flag_of,
    networks_in,
    yaml_data,
)
from metallb_py.k8s.objects import name_of, value_at


def kube_proxy_config(view: ClusterView) -> tuple[str, Mapping[str, Any]] | None:
    """(key, parsed) of the kube-proxy ConfigMap entry kube-proxy reads as its config file.

    The key the DaemonSet's `--config` flag names (its basename: the ConfigMap is mounted as a
    directory), else `config.conf` (kubeadm), else the only entry that is a
    KubeProxyConfiguration. Never `kubeconfig.conf`, kubeadm's kubeconfig for kube-proxy.
    """
    data = value_at(view.kube_proxy_configmap, "data") or {}
    wanted: list[str] = []
    flag = flag_of(view.kube_proxy_daemonset, "--config")
    if flag:
        wanted.append(PurePosixPath(flag).name)
    wanted.append("config.conf")
    for key in wanted:
        if key in data and key != "kubeconfig.conf":
            parsed = yaml_data(data[key])
            if isinstance(parsed, Mapping):
                return key, parsed
    typed = []
    for key, value in data.items():
        parsed = yaml_data(value)
        if (
            key != "kubeconfig.conf"
            and isinstance(parsed, Mapping)
            and parsed.get("kind") == "KubeProxyConfiguration"
        ):
            typed.append((str(key), parsed))
    return typed[0] if len(typed) == 1 else None


def _kube_proxy(view: ClusterView) -> tuple[str, bool | None, str] | None:
    """(mode, strictARP, where it was read) or None when kube-proxy's setup is unknown."""
    found = kube_proxy_config(view)
    if found is not None:
        key, conf = found
        mode = str(conf.get("mode") or "")
        strict = value_at(conf, "ipvs", "strictARP")
        return (
            mode,
            None if strict is None else bool(strict),
            f"ConfigMap kube-system/kube-proxy {key}",
        )
    ds = view.kube_proxy_daemonset
    if ds is not None:
        flag_mode = flag_of(ds, "--proxy-mode")
        if flag_mode is not None:
            strict_flag = flag_of(ds, "--ipvs-strict-arp")
            flag_strict = None if strict_flag is None else strict_flag.lower() in ("true", "1")
            return flag_mode, flag_strict, "DaemonSet kube-system/kube-proxy flags"
    return None


def check_strict_arp(view: ClusterView, config: Config | None) -> list[Finding]:
    proxy = _kube_proxy(view)
    if proxy is None:
        return []
    mode, strict, where = proxy
    if mode != "ipvs" or strict is True:
        return []
    if config is not None and not any(p.protocol is Protocol.LAYER2 for p in config.pools):
        return []  # BGP only: no ARP involved
    return [
        Finding(
            "kube-proxy",
            f"kube-proxy runs in IPVS mode without strictARP ({where}): every node answers ARP "
            "for LoadBalancer IPs bound to kube-ipvs0, so layer2 traffic lands on random nodes",
            "set ipvs.strictARP: true in ConfigMap kube-system/kube-proxy (kubectl -n kube-system"
            " edit configmap kube-proxy) and restart kube-proxy (kubectl -n kube-system rollout"
            " restart daemonset kube-proxy)",
        )
    ]


def cluster_networks(view: ClusterView) -> tuple[dict[str, Network], dict[str, Network]]:
    """Service and Pod networks, each keyed by where it was found."""
    services: dict[str, Network] = {}
    pods: dict[str, Network] = {}
    kubeadm = yaml_data(value_at(view.kubeadm_configmap, "data", "ClusterConfiguration"))
    for net in networks_in(value_at(kubeadm, "networking", "serviceSubnet")):
        services[f"kubeadm serviceSubnet {net}"] = net
    for net in networks_in(value_at(kubeadm, "networking", "podSubnet")):
        pods[f"kubeadm podSubnet {net}"] = net
    for sc in view.service_cidrs:
        for net in networks_in(",".join(value_at(sc, "spec", "cidrs") or [])):
            services[f"ServiceCIDR {value_at(sc, 'metadata', 'name')} {net}"] = net
    for node in view.nodes:
        cidrs = value_at(node, "spec", "podCIDRs") or [value_at(node, "spec", "podCIDR")]
        for net in networks_in(",".join(c for c in cidrs if c)):
            pods[f"node {value_at(node, 'metadata', 'name')} podCIDR {net}"] = net
    proxy = kube_proxy_config(view)
    for net in networks_in(value_at(proxy[1] if proxy else None, "clusterCIDR")):
        pods[f"kube-proxy clusterCIDR {net}"] = net
    return services, pods


def check_overlaps(view: ClusterView, config: Config | None) -> list[Finding]:
    if config is None:
        return []
    services, pods = cluster_networks(view)
    findings: list[Finding] = []
    for pool in config.pools:
        reported: set[str] = set()
        for cidr in pool.cidrs:
            for kind, networks in (("Service", services), ("Pod", pods)):
                for where, net in networks.items():
                    if net.version == cidr.version and cidr.overlaps(net) and where not in reported:
                        reported.add(where)
                        findings.append(
                            Finding(
                                "address-pools",
                                f"pool {pool.name!r} ({cidr}) overlaps the {kind} network "
                                f"({where}): MetalLB would hand out addresses the cluster already "
                                "routes internally",
                                f"give pool {pool.name!r} addresses outside {net}",
                            )
                        )
        for svc in view.services:
            for ip in value_at(svc, "spec", "clusterIPs") or [value_at(svc, "spec", "clusterIP")]:
                try:
                    addr = ipaddress.ip_address(ip)
                except (TypeError, ValueError):
                    continue
                if pool.contains(addr) and not any(addr in n for n in services.values()):
                    namespace = value_at(svc, "metadata", "namespace")
                    key = f"{namespace}/{name_of(svc)}"
                    findings.append(
                        Finding(
                            "address-pools",
                            f"pool {pool.name!r} contains {addr}, the cluster IP of Service {key}: "
                            "it overlaps the Service network",
                            f"give pool {pool.name!r} addresses outside the Service network",
                        )
                    )
    return findings


def _node_addresses(view: ClusterView, *types: str) -> list[tuple[IPAddress, str, str]]:
    """(address, type, node) for the nodes' addresses of these types, in node order."""
    out: list[tuple[IPAddress, str, str]] = []
    for node in sorted(view.nodes, key=name_of):
        for entry in value_at(node, "status", "addresses") or []:
            if entry.get("type") not in types:
                continue
            try:
                ip = ipaddress.ip_address(str(entry.get("address") or ""))
            except ValueError:
                continue
            out.append((ip, str(entry["type"]), name_of(node)))
    return out


def _entries(pool: AddressPool) -> list[tuple[str, IPAddress, IPAddress]]:
    """(entry as written, first address, last address) for each of the pool's entries."""
    out: list[tuple[str, IPAddress, IPAddress]] = []
    for text in pool.addresses:
        try:
            entry = parse_address_entry(text)
        except AddressError:
            continue
        out.append((text, entry.cidrs[0].network_address, entry.cidrs[-1].broadcast_address))
    return out


def _range_text(first: IPAddress, last: IPAddress) -> str:
    return f"{first}/{first.max_prefixlen}" if first == last else f"{first}-{last}"


def _without(first: IPAddress, last: IPAddress, holes: list[IPAddress]) -> list[str]:
    """The range first..last minus the sorted addresses `holes` (all inside it)."""
    pieces: list[str] = []
    start = int(first)
    for hole in holes:
        if int(hole) > start:
            pieces.append(
                _range_text(ipaddress.ip_address(start), ipaddress.ip_address(int(hole) - 1))
            )
        start = int(hole) + 1
    if start <= int(last):
        pieces.append(_range_text(ipaddress.ip_address(start), last))
    return pieces


def _split_fix(pool: AddressPool, holes: set[IPAddress]) -> str:
    edits: list[str] = []
    for text, first, last in _entries(pool):
        inside = sorted(
            (ip for ip in holes if ip.version == first.version and first <= ip <= last),  # type: ignore[operator]
            key=int,
        )
        if not inside:
            continue
        pieces = _without(first, last, inside)
        if len(pieces) > 6:
            return f"write pool {pool.name!r} as ranges that skip these addresses"
        edits.append(f"replace {text} with {', '.join(pieces)}" if pieces else f"remove {text}")
    return f"take them out of pool {pool.name!r}: " + "; ".join(edits)


def check_node_addresses(view: ClusterView, config: Config | None) -> list[Finding]:
    """Pools must not hold a node's own address; layer2 pools should be on the nodes' links."""
    if config is None:
        return []
    from metallb_py.allocator.ips import is_buggy

    node_ips = _node_addresses(view, "InternalIP", "ExternalIP")
    internal = [ip for ip, kind, _ in node_ips if kind == "InternalIP"]
    findings: list[Finding] = []
    for pool in config.pools:
        hits = [
            (ip, kind, node)
            for ip, kind, node in node_ips
            if pool.contains(ip) and not (pool.avoid_buggy_ips and is_buggy(ip))
        ]
        if hits:
            listed = ", ".join(f"{ip} ({kind} of node {node})" for ip, kind, node in hits)
            findings.append(
                Finding(
                    "address-pools",
                    f"pool {pool.name!r} contains node addresses: {listed}: the allocator can "
                    "hand a node's own address to a Service, which then takes the node's "
                    "traffic (and in layer2 two machines answer ARP/NDP for it)",
                    _split_fix(pool, {ip for ip, _, _ in hits}),
                )
            )
        if pool.protocol is not Protocol.LAYER2:
            continue
        for version in sorted({c.version for c in pool.cidrs}):
            prefix = 24 if version == 4 else 64
            subnets = sorted(
                {
                    ipaddress.ip_network((ip, prefix), strict=False)
                    for ip in internal
                    if ip.version == version
                },
                key=lambda n: int(n.network_address),
            )
            if not subnets:
                continue  # no node address of this family to compare with
            cidrs = [c for c in pool.cidrs if c.version == version]
            if any(c.overlaps(n) for c in cidrs for n in subnets):
                continue
            written = [t for t, first, _ in _entries(pool) if first.version == version]
            findings.append(
                Finding(
                    "address-pools",
                    f"layer2 pool {pool.name!r} ({first_few(written)}) shares no /{prefix} with"
                    f" any node InternalIP (nodes in {first_few([str(n) for n in subnets])}):"
                    " layer2 answers ARP/NDP on the nodes' own links, so these addresses are"
                    " reachable only if they are in the nodes' subnet; doctor sees node"
                    " addresses, not prefix lengths, so this is fine if that subnet is wider"
                    f" than /{prefix} and holds them",
                    "if the pool is not on the nodes' subnet, take its addresses from that subnet "
                    "or announce it with protocol: bgp; if it is, nothing to do",
                    Severity.WARNING,
                )
            )
    return findings

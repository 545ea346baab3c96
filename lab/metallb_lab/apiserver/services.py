"""The Service rules of the API server: cluster IPs and node ports from pools, defaulting and
validation of a Service write, what a change of type releases, status validation.

They follow kube-apiserver 1.32 where a client of this project can observe them: the controller
decides the IP family from `spec.clusterIPs`, a Service that stops being a LoadBalancer loses
`status.loadBalancer`, allocations are released when a Service no longer needs them
(docs/apiserver.md, "Semantics", **Services**).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from metallb_lab import Obj
from metallb_lab.apiserver.errors import Cause


@dataclass
class ClusterConfig:
    """What a real cluster configures with apiserver flags."""

    # --service-cluster-ip-range: the first is the primary family; two make the cluster dual-stack.
    service_cidrs: tuple[str, ...] = ("10.96.0.0/16", "fd00:10:96::/112")
    # --service-node-port-range (inclusive).
    node_port_range: tuple[int, int] = (30000, 32767)


def _family(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    return "IPv4" if ip.version == 4 else "IPv6"


@dataclass
class ServiceAllocator:
    """Cluster IPs and node ports in use, owned by `namespace/name` keys."""

    config: ClusterConfig
    networks: dict[str, ipaddress.IPv4Network | ipaddress.IPv6Network] = field(init=False)
    ip_owner: dict[str, str] = field(default_factory=dict)
    port_owner: dict[int, str] = field(default_factory=dict)
    _ip_cursor: dict[str, int] = field(default_factory=dict)
    _port_cursor: int = 0

    def __post_init__(self) -> None:
        self.networks = {}
        for cidr in self.config.service_cidrs:
            net = ipaddress.ip_network(cidr)
            # The limits kube-apiserver puts on --service-cluster-ip-range.
            if (net.version == 4 and net.prefixlen < 12) or (
                net.version == 6 and net.prefixlen < 108
            ):
                raise ValueError(f"service CIDR {cidr} is too large (IPv4 /12, IPv6 /108 at most)")
            self.networks.setdefault("IPv4" if net.version == 4 else "IPv6", net)
        self._port_cursor = self.config.node_port_range[0]

    @property
    def families(self) -> list[str]:
        return list(self.networks)

    def free_ip(self, family: str, key: str, taken: set[str]) -> str | None:
        net = self.networks[family]
        size = net.num_addresses
        # Usable offsets: 1 .. last (the network address, and the IPv4 broadcast, are never used).
        last = size - 2 if net.version == 4 else size - 1
        if last < 1:
            return None
        start = self._ip_cursor.get(family, 1)
        for step in range(last):
            offset = 1 + (start - 1 + step) % last
            ip = str(net.network_address + offset)
            if ip in taken or self.ip_owner.get(ip, key) != key:
                continue
            self._ip_cursor[family] = offset + 1
            return ip
        return None

    def free_port(self, key: str, taken: set[int]) -> int | None:
        low, high = self.config.node_port_range
        count = high - low + 1
        for step in range(count):
            port = low + (self._port_cursor - low + step) % count
            if port in taken or self.port_owner.get(port, key) != key:
                continue
            self._port_cursor = port + 1
            return port
        return None

    @staticmethod
    def owned(obj: Obj | None) -> tuple[set[str], set[int]]:
        if obj is None:
            return set(), set()
        spec = obj.get("spec") or {}
        ips = {ip for ip in spec.get("clusterIPs") or [] if ip and ip != "None"}
        ports = {p["nodePort"] for p in spec.get("ports") or [] if p.get("nodePort")}
        if spec.get("healthCheckNodePort"):
            ports.add(spec["healthCheckNodePort"])
        return ips, ports

    def commit(self, key: str, old: Obj | None, new: Obj | None) -> None:
        old_ips, old_ports = self.owned(old)
        new_ips, new_ports = self.owned(new)
        for ip in old_ips - new_ips:
            if self.ip_owner.get(ip) == key:
                del self.ip_owner[ip]
        for port in old_ports - new_ports:
            if self.port_owner.get(port) == key:
                del self.port_owner[port]
        for ip in new_ips:
            self.ip_owner[ip] = key
        for port in new_ports:
            self.port_owner[port] = key


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class ServiceRules:
    """Defaulting, allocation and validation of one Service write (create or update)."""

    def __init__(self, alloc: ServiceAllocator, key: str, spec: Obj, old_spec: Obj | None) -> None:
        self.alloc = alloc
        self.key = key
        self.spec = spec
        self.old = old_spec
        self.causes: list[Cause] = []

    def bad(self, path: str, reason: str, message: str) -> None:
        self.causes.append((path, reason, message))

    def run(self) -> list[Cause]:
        spec = self.spec
        kind = spec.setdefault("type", "ClusterIP")
        if kind not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
            self.bad(
                "spec.type",
                "FieldValueNotSupported",
                f'Unsupported value: "{kind}": supported values: "ClusterIP", '
                '"ExternalName", "LoadBalancer", "NodePort"',
            )
            return self.causes
        spec.setdefault("sessionAffinity", "None")
        self.ports()
        if kind == "ExternalName":
            if not spec.get("externalName"):
                self.bad("spec.externalName", "FieldValueRequired", "Required value")
            for name in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                spec.pop(name, None)
            self.node_ports(False)
            return self.causes
        spec.setdefault("internalTrafficPolicy", "Cluster")
        external = kind in ("NodePort", "LoadBalancer")
        if external:
            spec.setdefault("externalTrafficPolicy", "Cluster")
            if spec["externalTrafficPolicy"] not in ("Cluster", "Local"):
                self.bad(
                    "spec.externalTrafficPolicy",
                    "FieldValueNotSupported",
                    f'Unsupported value: "{spec["externalTrafficPolicy"]}": supported '
                    'values: "Cluster", "Local"',
                )
        elif spec.get("externalTrafficPolicy"):
            self.bad(
                "spec.externalTrafficPolicy",
                "FieldValueInvalid",
                "Invalid value: may only be set for externally-accessible services",
            )
        if kind == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        elif "allocateLoadBalancerNodePorts" in spec:
            self.bad(
                "spec.allocateLoadBalancerNodePorts",
                "FieldValueForbidden",
                "Forbidden: may only be used when `type` is 'LoadBalancer'",
            )
        self.source_ranges(kind)
        self.load_balancer_class(kind)
        self.cluster_ips()
        needs_ports = kind == "NodePort" or (
            kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is not False
        )
        self.node_ports(needs_ports)
        return self.causes

    def ports(self) -> None:
        ports = self.spec.get("ports")
        if ports is None:
            ports = []
        if not isinstance(ports, list):
            self.bad("spec.ports", "FieldValueInvalid", "Invalid value: must be a list")
            return
        headless = self.spec.get("clusterIP") == "None"
        if not ports and self.spec.get("type") != "ExternalName" and not headless:
            self.bad("spec.ports", "FieldValueRequired", "Required value")
        seen: set[tuple[Any, Any]] = set()
        names: set[str] = set()
        for i, port in enumerate(ports):
            path = f"spec.ports[{i}]"
            if not isinstance(port, dict):
                self.bad(path, "FieldValueInvalid", "Invalid value: must be an object")
                continue
            number = port.get("port")
            if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 65535:
                self.bad(
                    f"{path}.port",
                    "FieldValueInvalid",
                    f"Invalid value: {number}: must be between 1 and 65535, inclusive",
                )
            protocol = port.setdefault("protocol", "TCP")
            if protocol not in ("TCP", "UDP", "SCTP"):
                self.bad(
                    f"{path}.protocol",
                    "FieldValueNotSupported",
                    f'Unsupported value: "{protocol}": supported values: "SCTP", "TCP", "UDP"',
                )
            port.setdefault("targetPort", number)
            name = port.get("name")
            if len(ports) > 1 and not name:
                self.bad(f"{path}.name", "FieldValueRequired", "Required value")
            elif name:
                if name in names:
                    self.bad(f"{path}.name", "FieldValueDuplicate", f'Duplicate value: "{name}"')
                names.add(name)
            if (number, protocol) in seen:
                self.bad(
                    path,
                    "FieldValueDuplicate",
                    f'Duplicate value: {{"port": {number}, "protocol": "{protocol}"}}',
                )
            seen.add((number, protocol))

    def load_balancer_class(self, kind: str) -> None:
        """`loadBalancerClass` only on a LoadBalancer, and fixed once the Service is one."""
        value = self.spec.get("loadBalancerClass")
        path = "spec.loadBalancerClass"
        old = self.old
        if (
            old is not None
            and old.get("type") == "LoadBalancer"
            and kind == "LoadBalancer"
            and old.get("loadBalancerClass") != value
        ):
            shown = "null" if value is None else value
            self.bad(
                path, "FieldValueInvalid", f'Invalid value: "{shown}": may not change once set'
            )
        if kind != "LoadBalancer" and value is not None:
            self.bad(path, "FieldValueForbidden", _ONLY_LOAD_BALANCER)

    def source_ranges(self, kind: str) -> None:
        """`loadBalancerSourceRanges`: CIDRs (space-padding allowed, host bits too, as Go's
        parser), and only on a LoadBalancer. The field path is spelled as upstream spells it."""
        ranges = self.spec.get("loadBalancerSourceRanges")
        if not ranges:
            return
        path = "spec.LoadBalancerSourceRanges"
        if kind != "LoadBalancer":
            self.bad(path, "FieldValueForbidden", _ONLY_LOAD_BALANCER)
            return
        for i, value in enumerate(ranges if isinstance(ranges, list) else [ranges]):
            if not isinstance(value, str) or parse_cidr_sloppy(value.strip()) is None:
                self.bad(
                    f"{path}[{i}]",
                    "FieldValueInvalid",
                    f'Invalid value: "{value}": must be a valid CIDR value, '
                    "(e.g. 10.9.8.0/24 or 2001:db8::/64)",
                )

    def cluster_ips(self) -> None:
        spec = self.spec
        old = self.old
        ips: list[str] = list(spec.get("clusterIPs") or [])
        single = spec.get("clusterIP") or ""
        if single and not ips:
            ips = [single]
        elif single and ips and ips[0] != single:
            self.bad(
                "spec.clusterIPs[0]",
                "FieldValueInvalid",
                f'Invalid value: "{ips[0]}": must be same as clusterIP',
            )
            return
        if old is not None and old.get("clusterIPs") and old.get("clusterIPs") != ["None"]:
            if not ips:
                ips = list(old["clusterIPs"])  # the client sent no IPs: keep the allocated ones
            elif ips[0] != old["clusterIPs"][0]:
                self.bad(
                    "spec.clusterIPs[0]",
                    "FieldValueInvalid",
                    f'Invalid value: "{ips[0]}": may not change once set',
                )
                return
        headless = ips == ["None"]
        families: list[str] = list(spec.get("ipFamilies") or [])
        if old is not None and not spec.get("ipFamilies") and old.get("ipFamilies"):
            families = (
                list(old["ipFamilies"])[: max(1, len(ips))] if ips else list(old["ipFamilies"])
            )
        parsed: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
        if not headless:
            for i, ip in enumerate(ips):
                try:
                    parsed.append(ipaddress.ip_address(ip))
                except ValueError:
                    self.bad(
                        f"spec.clusterIPs[{i}]",
                        "FieldValueInvalid",
                        f'Invalid value: "{ip}": must be a valid IP address, (e.g. 10.9.8.7 '
                        "or 2001:db8::ffff)",
                    )
                    return
            for i, ip_obj in enumerate(parsed):
                if i < len(families):
                    if families[i] != _family(ip_obj):
                        self.bad(
                            f"spec.ipFamilies[{i}]",
                            "FieldValueInvalid",
                            f'Invalid value: "{families[i]}": must match the family of '
                            f"clusterIPs[{i}]",
                        )
                        return
                else:
                    families.append(_family(ip_obj))
        for i, fam in enumerate(families):
            if fam not in ("IPv4", "IPv6"):
                self.bad(
                    f"spec.ipFamilies[{i}]",
                    "FieldValueNotSupported",
                    f'Unsupported value: "{fam}": supported values: "IPv4", "IPv6"',
                )
                return
        if len(set(families)) != len(families) or len(families) > 2:
            self.bad(
                "spec.ipFamilies",
                "FieldValueInvalid",
                "Invalid value: must be one or two different IP families",
            )
            return
        policy = spec.get("ipFamilyPolicy")
        if policy is None and old is not None and old.get("ipFamilyPolicy") and len(families) < 2:
            policy = old["ipFamilyPolicy"]
        if policy is None:
            policy = "RequireDualStack" if len(families) == 2 else "SingleStack"
        if policy not in ("SingleStack", "PreferDualStack", "RequireDualStack"):
            self.bad(
                "spec.ipFamilyPolicy",
                "FieldValueNotSupported",
                f'Unsupported value: "{policy}": supported values: "PreferDualStack", '
                '"RequireDualStack", "SingleStack"',
            )
            return
        cluster = self.alloc.families
        if policy == "SingleStack" and len(families) > 1:
            self.bad(
                "spec.ipFamilyPolicy",
                "FieldValueInvalid",
                'Invalid value: "SingleStack": must be RequireDualStack or PreferDualStack '
                "when multiple IP families are specified",
            )
            return
        if policy == "RequireDualStack" and len(cluster) < 2:
            self.bad(
                "spec.ipFamilyPolicy",
                "FieldValueInvalid",
                'Invalid value: "RequireDualStack": this cluster is not configured for '
                "dual-stack services",
            )
            return
        if not families:
            families = [cluster[0]]
        if policy != "SingleStack" and len(families) == 1 and len(cluster) == 2:
            families.append(next(f for f in cluster if f != families[0]))
        if policy == "SingleStack":
            families = families[:1]
            ips = ips[:1]
        for i, fam in enumerate(families):
            if fam not in cluster:
                self.bad(
                    f"spec.ipFamilies[{i}]",
                    "FieldValueInvalid",
                    f'Invalid value: "{fam}": not configured on this cluster',
                )
                return
        if headless:
            spec["clusterIP"] = "None"
            spec["clusterIPs"] = ["None"]
        else:
            taken: set[str] = set()
            out: list[str] = []
            for i, fam in enumerate(families):
                if i < len(ips):
                    ip = ips[i]
                    net = self.alloc.networks[fam]
                    if ipaddress.ip_address(ip) not in net:
                        self.bad(
                            f"spec.clusterIPs[{i}]",
                            "FieldValueInvalid",
                            f'Invalid value: "{ip}": failed to allocate IP {ip}: the provided '
                            f"IP ({ip}) is not in the valid range. The range of valid IPs is "
                            f"{net}",
                        )
                        return
                    if self.alloc.ip_owner.get(ip, self.key) != self.key:
                        self.bad(
                            f"spec.clusterIPs[{i}]",
                            "FieldValueInvalid",
                            f'Invalid value: "{ip}": failed to allocate IP {ip}: provided IP '
                            "is already allocated",
                        )
                        return
                else:
                    allocated = self.alloc.free_ip(fam, self.key, taken)
                    if allocated is None:
                        self.bad(
                            f"spec.clusterIPs[{i}]",
                            "FieldValueInvalid",
                            "Invalid value: failed to allocate a serviceIP: range is full",
                        )
                        return
                    ip = allocated
                taken.add(ip)
                out.append(ip)
            spec["clusterIP"] = out[0]
            spec["clusterIPs"] = out
        spec["ipFamilies"] = families
        spec["ipFamilyPolicy"] = policy

    def node_ports(self, needed: bool) -> None:
        spec = self.spec
        ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
        old_ports = [p for p in (self.old or {}).get("ports") or [] if isinstance(p, dict)]
        taken: set[int] = set()
        low, high = self.alloc.config.node_port_range
        kind = spec.get("type")
        for i, port in enumerate(ports):
            node_port = port.get("nodePort")
            if not node_port and needed:
                # An update that omits the node port keeps the one allocated for that port.
                for old in old_ports:
                    if (old.get("port"), old.get("protocol", "TCP")) == (
                        port.get("port"),
                        port.get("protocol"),
                    ) and old.get("nodePort"):
                        node_port = old["nodePort"]
                        break
            if not node_port:
                if needed:
                    node_port = self.alloc.free_port(self.key, taken)
                    if node_port is None:
                        self.bad(
                            f"spec.ports[{i}].nodePort",
                            "FieldValueInvalid",
                            "Invalid value: failed to allocate a nodePort: range is full",
                        )
                        continue
                else:
                    port.pop("nodePort", None)
                    continue
            elif kind in ("ClusterIP", "ExternalName"):
                self.bad(
                    f"spec.ports[{i}].nodePort",
                    "FieldValueForbidden",
                    f"Forbidden: may not be used when `type` is '{kind}'",
                )
                continue
            if not _is_int(node_port) or not low <= node_port <= high:
                self.bad(
                    f"spec.ports[{i}].nodePort",
                    "FieldValueInvalid",
                    f"Invalid value: {node_port}: provided port is not in the valid range. "
                    f"The range of valid ports is {low}-{high}",
                )
                continue
            if node_port in taken or self.alloc.port_owner.get(node_port, self.key) != self.key:
                self.bad(
                    f"spec.ports[{i}].nodePort",
                    "FieldValueInvalid",
                    f"Invalid value: {node_port}: provided port is already allocated",
                )
                continue
            taken.add(node_port)
            port["nodePort"] = node_port
        wants_hc = kind == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"
        hc = spec.get("healthCheckNodePort")
        if wants_hc:
            if not hc and self.old is not None:
                hc = self.old.get("healthCheckNodePort")
            if not hc:
                hc = self.alloc.free_port(self.key, taken)
                if hc is None:
                    self.bad(
                        "spec.healthCheckNodePort",
                        "FieldValueInvalid",
                        "Invalid value: failed to allocate a nodePort: range is full",
                    )
                    return
            elif hc in taken or self.alloc.port_owner.get(hc, self.key) != self.key:
                self.bad(
                    "spec.healthCheckNodePort",
                    "FieldValueInvalid",
                    f"Invalid value: {hc}: provided port is already allocated",
                )
                return
            spec["healthCheckNodePort"] = hc
        elif hc:
            self.bad(
                "spec.healthCheckNodePort",
                "FieldValueInvalid",
                "Invalid value: may only be set when `type` is 'LoadBalancer' and "
                "`externalTrafficPolicy` is 'Local'",
            )


def drop_type_dependent_fields(new: Obj, old: Obj) -> None:
    """What upstream clears when a Service changes type, so allocations are released."""
    new_spec = new.setdefault("spec", {})
    old_spec = old.get("spec") or {}
    old_type = old_spec.get("type", "ClusterIP")
    new_type = new_spec.get("type", "ClusterIP")
    if old_type != "ExternalName" and new_type == "ExternalName":
        if new_spec.get("clusterIP") == old_spec.get("clusterIP") and new_spec.get(
            "clusterIPs"
        ) == old_spec.get("clusterIPs"):
            new_spec.pop("clusterIP", None)
            new_spec.pop("clusterIPs", None)
        if new_spec.get("ipFamilies") == old_spec.get("ipFamilies"):
            new_spec.pop("ipFamilies", None)
        if new_spec.get("ipFamilyPolicy") == old_spec.get("ipFamilyPolicy"):
            new_spec.pop("ipFamilyPolicy", None)
    node_port_types = ("NodePort", "LoadBalancer")
    if old_type in node_port_types and new_type not in node_port_types:
        old_node_ports = {
            p.get("nodePort") for p in old_spec.get("ports") or [] if isinstance(p, dict)
        }
        new_node_ports = {
            p.get("nodePort") for p in new_spec.get("ports") or [] if isinstance(p, dict)
        }
        if (new_node_ports - {None, 0}) <= old_node_ports:
            for port in new_spec.get("ports") or []:
                if isinstance(port, dict):
                    port.pop("nodePort", None)
    old_hc = old_type == "LoadBalancer" and old_spec.get("externalTrafficPolicy") == "Local"
    new_hc = new_type == "LoadBalancer" and new_spec.get("externalTrafficPolicy") == "Local"
    if (
        old_hc
        and not new_hc
        and new_spec.get("healthCheckNodePort") == old_spec.get("healthCheckNodePort")
    ):
        new_spec.pop("healthCheckNodePort", None)
    if old_type == "LoadBalancer" and new_type != "LoadBalancer":
        for name in ("allocateLoadBalancerNodePorts", "loadBalancerClass"):
            if new_spec.get(name) == old_spec.get(name):
                new_spec.pop(name, None)
    if (
        old_type in node_port_types
        and new_type not in node_port_types
        and new_spec.get("externalTrafficPolicy") == old_spec.get("externalTrafficPolicy")
    ):
        new_spec.pop("externalTrafficPolicy", None)
    if new_type != "LoadBalancer":
        new.setdefault("status", {})["loadBalancer"] = {}


def default_service_status(obj: Obj) -> None:
    """kube-apiserver (1.30+, LoadBalancerIPMode) sets `ipMode: VIP` on every ingress entry of a
    LoadBalancer Service that has an `ip` and no `ipMode`; clients see it in what they read back."""
    if (obj.get("spec") or {}).get("type") != "LoadBalancer":
        return
    status = obj.get("status")
    lb = status.get("loadBalancer") if isinstance(status, dict) else None
    ingress = lb.get("ingress") if isinstance(lb, dict) else None
    for entry in ingress if isinstance(ingress, list) else ():
        if isinstance(entry, dict) and entry.get("ip") and not entry.get("ipMode"):
            entry["ipMode"] = "VIP"


def validate_service_status(obj: Obj) -> list[Cause]:
    causes: list[Cause] = []
    lb = (obj.get("status") or {}).get("loadBalancer") or {}
    if lb.get("ingress") and (obj.get("spec") or {}).get("type", "ClusterIP") != "LoadBalancer":
        return [
            (
                "status.loadBalancer.ingress",
                "FieldValueForbidden",
                "Forbidden: may only be used when `spec.type` is 'LoadBalancer'",
            )
        ]
    for i, ingress in enumerate(lb.get("ingress") or []):
        path = f"status.loadBalancer.ingress[{i}]"
        if not isinstance(ingress, dict):
            causes.append((path, "FieldValueInvalid", "Invalid value: must be an object"))
            continue
        ip = ingress.get("ip")
        if ip and parse_ip_sloppy(ip) is None:
            causes.append(
                (
                    f"{path}.ip",
                    "FieldValueInvalid",
                    f'Invalid value: "{ip}": must be a valid IP address',
                )
            )
        hostname = ingress.get("hostname")
        if hostname and _is_ip(hostname):
            causes.append(
                (
                    f"{path}.hostname",
                    "FieldValueInvalid",
                    f'Invalid value: "{hostname}": must be a DNS name, not an IP address',
                )
            )
        if ingress.get("ipMode") and not ip:
            causes.append(
                (
                    f"{path}.ipMode",
                    "FieldValueForbidden",
                    "Forbidden: may not be specified when `ip` is not set",
                )
            )
        elif ingress.get("ipMode") not in (None, "VIP", "Proxy"):
            causes.append(
                (
                    f"{path}.ipMode",
                    "FieldValueNotSupported",
                    f'Unsupported value: "{ingress["ipMode"]}": supported values: "Proxy", "VIP"',
                )
            )
    return causes


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


_ONLY_LOAD_BALANCER = "Forbidden: may only be used when `type` is 'LoadBalancer'"


def _without_leading_zeros(text: str) -> str:
    """A dotted IPv4 address with leading zeros read as decimal ("192.0.2.01" -> "192.0.2.1"),
    as Go's legacy parser (netutils.ParseIPSloppy) reads it; anything else unchanged."""
    parts = text.split(".")
    if len(parts) == 4 and all(p.isdigit() and p.isascii() and len(p) <= 3 for p in parts):
        return ".".join(str(int(p)) for p in parts)
    return text


def parse_ip_sloppy(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP address as kube-apiserver reads fields validated before 1.33's strict parsing."""
    if not isinstance(text, str):
        return None
    try:
        return ipaddress.ip_address(_without_leading_zeros(text))
    except ValueError:
        return None


def parse_cidr_sloppy(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """A CIDR as Go's legacy ParseCIDR reads it: host bits may be set, leading zeros allowed."""
    address, slash, prefix = text.partition("/")
    if not slash or not prefix.isdigit() or not prefix.isascii():
        return None
    try:
        return ipaddress.ip_network(f"{_without_leading_zeros(address)}/{prefix}", strict=False)
    except ValueError:
        return None

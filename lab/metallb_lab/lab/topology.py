"""The lab's network: a client namespace with a bridge and node namespaces plugged into it.

Used by `lab up`, the failover benchmark and the layer2 end-to-end test (which names its
namespaces the test way, `mlbt-<pid>-...`, through its own `Topology`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from metallb_lab.lab.layout import (
    BRIDGE,
    CLIENT_IPV4,
    CLIENT_IPV6,
    LAN_V4_PREFIXLEN,
    LAN_V6_PREFIXLEN,
    NODE_IFACE,
    LabLayout,
)
from metallb_lab.netns import Netns, NetnsError, Topology, check_documentation_address

# Only the speaker answers ARP for Service IPs: the kernel keeps quiet about addresses that are
# not on the receiving interface (the IPs sit on `lo`) and sources its own ARP requests from
# the interface's address, never from a Service IP.
NODE_SYSCTLS = (
    "net.ipv4.conf.all.arp_ignore=1",
    "net.ipv4.conf.all.arp_announce=2",
    "net.ipv4.conf.default.arp_ignore=1",
    "net.ipv4.conf.default.arp_announce=2",
)


class LabTopology(Topology):
    """Namespaces named `<prefix>-<suffix>`: one lab per prefix, found again by name."""

    def name(self, suffix: str) -> str:
        name = f"{self.prefix}-{suffix}"
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise NetnsError(f"bad namespace name {name!r}")
        return name


@dataclass
class Lan:
    client: Netns
    nodes: dict[str, Netns]


def build_lan(topo: Topology, layout: LabLayout, client_suffix: str = "client") -> Lan:
    """Client namespace with `br0` (192.0.2.1/24, 2001:db8::1/64) and one namespace per node
    with `eth0` on the bridge. Node namespaces are named after the node (suffix `n1`...)."""
    client = topo.add_ns(client_suffix)
    topo.bridge(client, BRIDGE)
    topo.addr(client, BRIDGE, f"{CLIENT_IPV4}/{LAN_V4_PREFIXLEN}")
    topo.addr(client, BRIDGE, f"{CLIENT_IPV6}/{LAN_V6_PREFIXLEN}")
    nodes = {}
    for plan in layout.nodes:
        ns = topo.add_ns(plan.name)
        for setting in NODE_SYSCTLS:
            ns.run(["sysctl", "-qw", setting])
        topo.veth(ns, NODE_IFACE, client, plan.bridge_port)
        client.ip("link", "set", plan.bridge_port, "master", BRIDGE)
        ns.run(["sysctl", "-qw", f"net.ipv4.conf.{NODE_IFACE}.arp_ignore=1"])
        ns.run(["sysctl", "-qw", f"net.ipv4.conf.{NODE_IFACE}.arp_announce=2"])
        topo.addr(ns, NODE_IFACE, plan.ipv4_cidr)
        topo.addr(ns, NODE_IFACE, plan.ipv6_cidr)
        nodes[plan.name] = ns
    return Lan(client, nodes)


def readdress(ns: Netns, cidrs: Sequence[str], ifname: str = NODE_IFACE) -> None:
    """Put a node's addresses back after its link was down: the kernel drops IPv6 addresses on
    link down (`keep_addr_on_down` 0), as a rebooted node would re-apply them."""
    for cidr in cidrs:
        check_documentation_address(cidr)
        nodad = ["nodad"] if ipaddress.ip_interface(cidr).version == 6 else []
        ns.ip("addr", "replace", cidr, "dev", ifname, *nodad)


def add_service_ip(ns: Netns, ip: str) -> None:
    """Put a Service IP on the node's `lo` so its backend can bind it (idempotent)."""
    prefix = 128 if ":" in ip else 32
    check_documentation_address(ip)
    existing = ns.ip("-o", "addr", "show", "dev", "lo").stdout
    if f" {ip}/{prefix} " in existing:
        return
    args = ["addr", "add", f"{ip}/{prefix}", "dev", "lo"]
    if prefix == 128:
        args.append("nodad")
    ns.ip(*args)


def mac_of(ns: Netns, ifname: str = NODE_IFACE) -> str:
    return ns.run(["cat", f"/sys/class/net/{ifname}/address"]).stdout.strip().lower()


def link_up(ns: Netns, up: bool, ifname: str = NODE_IFACE) -> None:
    ns.ip("link", "set", ifname, "up" if up else "down")


def link_is_up(ns: Netns, ifname: str = NODE_IFACE) -> bool:
    """Administratively up (the UP flag), whatever the carrier."""
    out = ns.ip("-o", "link", "show", "dev", ifname, check=False).stdout
    flags = out.partition("<")[2].partition(">")[0].split(",")
    return "UP" in flags

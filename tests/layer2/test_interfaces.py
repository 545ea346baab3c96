"""Interface selection and the subnet restriction (docs/layer2.md, "Interfaces"), pure and on
real links."""

from __future__ import annotations

import ipaddress
import json
import sys

import pytest

from metallb_lab import netns
from metallb_py.layer2.interfaces import (
    IFF_BROADCAST,
    IFF_NOARP,
    IFF_UP,
    Interface,
    answering_interfaces,
)

MAC = bytes.fromhex("020000000011")
UP = IFF_UP | IFF_BROADCAST


def iface(name: str, *addrs: str, flags: int = UP, enslaved: bool = False) -> Interface:
    return Interface(
        name=name,
        index=hash(name) & 0xFFFF,
        mac=MAC,
        flags=flags,
        enslaved=enslaved,
        addresses=tuple(ipaddress.ip_interface(a) for a in addrs),
    )


def test_qualification_rules() -> None:
    eth0 = iface("eth0", "192.0.2.11/24", "fe80::11/64")
    assert eth0.wants_arp and eth0.wants_ndp
    assert not iface("down", "fe80::1/64", flags=IFF_BROADCAST).wants_arp
    assert not iface("down", "fe80::1/64", flags=IFF_BROADCAST).wants_ndp
    assert not iface("port", "fe80::1/64", enslaved=True).wants_arp
    assert not iface("port", "fe80::1/64", enslaved=True).wants_ndp
    assert not iface("noarp", "fe80::1/64", flags=UP | IFF_NOARP).wants_arp
    assert not iface("noarp", "fe80::1/64", flags=UP | IFF_NOARP).wants_ndp
    # Point-to-point style: no BROADCAST -> no ARP, NDP only with a link-local address.
    assert not iface("tun", "fe80::1/64", flags=IFF_UP).wants_arp
    assert iface("tun", "fe80::1/64", flags=IFF_UP).wants_ndp
    assert not iface("v4only", "192.0.2.11/24").wants_ndp


def test_subnet_restriction_prefers_containing_interfaces() -> None:
    eth0 = iface("eth0", "192.0.2.11/24", "2001:db8:1::11/64", "fe80::11/64")
    eth1 = iface("eth1", "198.51.100.11/24", "2001:db8:2::11/64", "fe80::12/64")
    cni = iface("cni0", "fe80::13/64")
    candidates = [eth0, eth1, cni]
    ip = ipaddress.ip_address
    assert answering_interfaces(ip("192.0.2.100"), candidates) == {"eth0"}
    assert answering_interfaces(ip("198.51.100.100"), candidates) == {"eth1"}
    assert answering_interfaces(ip("203.0.113.100"), candidates) == {"eth0", "eth1", "cni0"}
    assert answering_interfaces(ip("2001:db8:2::100"), candidates) == {"eth1"}
    # Link-local prefixes never count as "the IP's subnet".
    assert answering_interfaces(ip("fe80::99"), candidates) == {"eth0", "eth1", "cni0"}


def test_restriction_can_be_turned_off() -> None:
    eth0 = iface("eth0", "192.0.2.11/24", "fe80::11/64")
    eth1 = iface("eth1", "198.51.100.11/24")
    ip = ipaddress.ip_address("192.0.2.100")
    assert answering_interfaces(ip, [eth0, eth1]) == {"eth0"}
    assert answering_interfaces(ip, [eth0, eth1], restrict_to_subnet=False) == {"eth0", "eth1"}
    assert answering_interfaces(ip, []) == frozenset()


LIST = """
import json
from metallb_py.layer2.interfaces import list_interfaces
print(json.dumps([
    {"name": i.name, "arp": i.wants_arp, "ndp": i.wants_ndp, "enslaved": i.enslaved,
     "mac": i.mac.hex(), "addrs": [str(a) for a in i.addresses]}
    for i in list_interfaces()
]))
"""


@pytest.mark.netns
def test_list_interfaces_on_real_links(topo: netns.Topology) -> None:
    node = topo.add_ns("n")
    peer = topo.add_ns("p")
    topo.veth(node, "eth0", peer, "p0")
    topo.veth(node, "eth1", peer, "p1")
    topo.veth(node, "eth2", peer, "p2")
    topo.veth(node, "eth3", peer, "p3")
    topo.addr(node, "eth0", "192.0.2.11/24")
    topo.addr(node, "eth0", "2001:db8::11/64")
    node.ip("link", "set", "eth1", "arp", "off")  # NOARP
    topo.bridge(node, "br0", ["eth2"])  # eth2 enslaved, br0 qualifies
    node.ip("link", "set", "eth3", "down")
    found = {i["name"]: i for i in json.loads(node.run([sys.executable, "-c", LIST]).stdout)}
    assert found["eth0"]["arp"] and found["eth0"]["ndp"]
    assert "192.0.2.11/24" in found["eth0"]["addrs"]
    assert "2001:db8::11/64" in found["eth0"]["addrs"]
    assert len(found["eth0"]["mac"]) == 12
    assert not found["eth1"]["arp"] and not found["eth1"]["ndp"]
    assert found["eth2"]["enslaved"] and not found["eth2"]["arp"]
    assert found["br0"]["arp"]
    assert not found["eth3"]["arp"] and not found["eth3"]["ndp"]
    assert not found["lo"]["arp"] and not found["lo"]["ndp"]

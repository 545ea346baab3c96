"""Speakers in node namespaces on kube-apiserver, with the token of the manifests' `speaker`
ServiceAccount (through the lab's portal, TLS end to end with the cluster's CA): layer2 (a
client namespace's arping and ndisc6 get the elected node's MAC for the IPv4 and the IPv6
Service IP) and BGP (FRR in the client namespace receives the Service's route from every node).
The controller runs with its own ServiceAccount's token. The lab's LAN (`metallb_lab.lab.topology.build_lan`): a client namespace
with a bridge (192.0.2.1) and node namespaces n1, n2 (192.0.2.11, 192.0.2.12).

Expectations: the elected node from the lab's statement of the election
(`metallb_lab.lab.layout.election_ranking`, checked against fixed vectors in
tests/lab/test_election.py), the MAC from /sys, the route from FRR's RIB."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from bench.realapi_common import start_portal
from metallb_lab import netns
from metallb_lab.control_plane import ControlPlane
from metallb_lab.lab import objects
from metallb_lab.lab.commands import node_kubeconfig, speaker_args, speaker_env
from metallb_lab.lab.kube import RestClient
from metallb_lab.lab.layout import (
    CLIENT_IPV4,
    NODE_ASN,
    ROUTER_ASN,
    LabLayout,
    election_ranking,
    plan_lab,
)
from metallb_lab.lab.topology import Lan, build_lan, mac_of
from metallb_lab.netns import wait_for
from metallb_lab.routers import FRR_BGPD, FrrRouter, Neighbor
from tests.e2e.conftest import Component

from .conftest import NS, admin, ensure_namespace, install, service, set_config

pytestmark = [pytest.mark.netns, pytest.mark.slow]

APPS = "apps"
LAYER2 = """
address-pools:
- name: lan
  protocol: layer2
  addresses: [192.0.2.100-192.0.2.109, 2001:db8::100-2001:db8::10f]
"""
BGP = f"""
peers:
- my-asn: {NODE_ASN}
  peer-asn: {ROUTER_ASN}
  peer-address: {CLIENT_IPV4}
address-pools:
- name: routed
  protocol: bgp
  addresses: [203.0.113.100-203.0.113.109]
"""


@pytest.fixture(scope="module")
def cluster(module_control_plane: ControlPlane) -> ControlPlane:
    """The manifests, the `apps` namespace, Nodes n1 and n2 and their speaker Pods."""
    cp = module_control_plane
    install(cp)
    ensure_namespace(cp, APPS)
    writer = RestClient.from_kubeconfig(cp.kubeconfig_path)  # the lab's own writer
    for plan in plan_lab(2).nodes:
        objects.register(writer, objects.node(plan.name, plan.ipv4))
        objects.register(writer, objects.speaker_pod(plan.name, plan.ipv4, NS, "speaker"))
    return cp


@dataclass
class RealLan:
    layout: LabLayout
    lan: Lan
    speakers: dict[str, Component]

    def arping(self, ip: str) -> str | None:
        """The MAC that answers ARP for `ip` on the LAN, or None."""
        out = self.lan.client.run(
            ["arping", "-c", "1", "-w", "1", "-I", "br0", ip], check=False, timeout=10
        ).stdout
        for line in out.splitlines():
            if "reply from" in line.lower() and "[" in line:
                return line.split("[")[1].split("]")[0].lower()
        return None

    def ndisc(self, ip: str) -> set[str]:
        """The MACs that answer neighbour solicitation for `ip` on the LAN."""
        out = self.lan.client.run(
            ["ndisc6", "-m", "-n", "-r", "3", "-w", "1000", ip, "br0"], check=False, timeout=15
        ).stdout
        return {m.lower() for m in re.findall(r"Target link-layer address: ([0-9A-Fa-f:]+)", out)}

    def forbidden(self) -> list[dict[str, Any]]:
        """Speaker log lines about a call the RBAC refused."""
        refused = re.compile(r"\b403\b|Forbidden")
        return [
            e
            for c in self.speakers.values()
            for e in c.logs()
            if refused.search(f"{e.get('msg', '')} {e.get('error', '')} {e.get('raw', '')}")
        ]


@pytest.fixture
def real_lan(cluster: ControlPlane, topo: netns.Topology, tmp_path: Path) -> Iterator[RealLan]:
    """The LAN, the portal into each node namespace, a speaker per node with the `speaker`
    ServiceAccount's token."""
    layout = plan_lab(2)
    lan = build_lan(topo, layout, client_suffix="c")
    start_portal(
        topo,
        cluster,
        [ns.name for ns in lan.nodes.values()],
        tmp_path / "portal.log",
        dict(os.environ),
    )
    kubeconfig = node_kubeconfig(
        tmp_path / "node-kubeconfig",
        NS,
        ca_data=cluster.ca_data,
        token=cluster.token(NS, "speaker"),
    )
    speakers = {}
    for plan in layout.nodes:
        ns = lan.nodes[plan.name]
        env = speaker_env(plan.name, plan.ipv4, "realapi-secret-key-0123456789")
        c = Component(speaker_args(kubeconfig), env, wrap=ns.argv([])).start()
        assert c.proc is not None
        topo.processes.append(c.proc)  # type: ignore[arg-type]
        speakers[plan.name] = c
    yield RealLan(layout, lan, speakers)
    for c in speakers.values():
        c.kill()  # here: the topology's group kill would wait for them in vain
    core: Any = client.CoreV1Api(admin(cluster))
    for svc in core.list_namespaced_service(APPS).items:
        core.delete_namespaced_service(svc.metadata.name, APPS)
    discovery: Any = client.DiscoveryV1Api(core.api_client)
    discovery.delete_collection_namespaced_endpoint_slice(APPS)


def web_service(
    cp: ControlPlane, nodes: tuple[str, ...], name: str = "web", family: str = "IPv4"
) -> str:
    """Service `apps/<name>` of one IP family with a ready endpoint on each of `nodes`; its IP
    once allocated."""
    core: Any = client.CoreV1Api(admin(cp))
    core.create_namespaced_service(
        APPS, service(name, ipFamilies=[family], ipFamilyPolicy="SingleStack")
    )
    discovery: Any = client.DiscoveryV1Api(core.api_client)
    discovery.create_namespaced_endpoint_slice(
        APPS, objects.endpoint_slice(name, family, nodes, namespace=APPS)
    )

    def ip() -> str | None:
        ingress = core.read_namespaced_service(name, APPS).status.load_balancer.ingress
        return ingress[0].ip if ingress else None

    found = wait_for(ip, 60, 0.5, f"{name}'s IP")
    assert found is not None
    return found


def test_layer2_speaker_answers_arp_and_ndp_with_its_service_account(
    cluster: ControlPlane,
    real_lan: RealLan,
    controller_of: Callable[[ControlPlane], Component],
) -> None:
    set_config(client.CoreV1Api(admin(cluster)), LAYER2)
    controller_of(cluster)
    ip = web_service(cluster, real_lan.layout.node_names)
    assert ip == "192.0.2.100"
    owner = election_ranking(real_lan.layout.node_names, ip)[0]
    mac = mac_of(real_lan.lan.nodes[owner])
    wait_for(lambda: real_lan.arping(ip) == mac, 60, 0.5, f"{owner} answering ARP for {ip}")
    assert [real_lan.arping(ip) for _ in range(3)] == [mac] * 3
    assert real_lan.arping("192.0.2.109") is None  # in the pool, not allocated
    ip6 = web_service(cluster, real_lan.layout.node_names, "web6", "IPv6")
    assert ip6 == "2001:db8::100"
    owner6 = election_ranking(real_lan.layout.node_names, ip6)[0]
    mac6 = mac_of(real_lan.lan.nodes[owner6])
    wait_for(lambda: real_lan.ndisc(ip6) == {mac6}, 60, 0.5, f"{owner6} answering NDP for {ip6}")
    assert real_lan.ndisc("2001:db8::10f") == set()
    assert real_lan.forbidden() == []


@pytest.mark.skipif(not os.path.exists(FRR_BGPD), reason="FRR is not installed")
def test_bgp_speaker_route_reaches_frr_with_its_service_account(
    cluster: ControlPlane,
    real_lan: RealLan,
    topo: netns.Topology,
    tmp_path: Path,
    controller_of: Callable[[ControlPlane], Component],
) -> None:
    neighbors = [Neighbor(plan.ipv4, NODE_ASN, ipv6=False) for plan in real_lan.layout.nodes]
    frr = FrrRouter(topo, real_lan.lan.client, tmp_path / "frr", ROUTER_ASN, CLIENT_IPV4, neighbors)
    frr.start()
    set_config(client.CoreV1Api(admin(cluster)), BGP)
    controller_of(cluster)
    ip = web_service(cluster, ("n2",))
    assert ip == "203.0.113.100"

    def next_hops() -> set[str]:
        paths = frr.route_detail(f"{ip}/32")
        return {p["nexthops"][0]["ip"] for p in paths}

    # Cluster policy: every speaker announces, each with itself as next hop.
    want = {plan.ipv4 for plan in real_lan.layout.nodes}
    try:
        wait_for(lambda: next_hops() == want, 60, 0.5, f"FRR's route to {ip}")
    except TimeoutError:
        print(frr.log_tail(30))
        for name, c in real_lan.speakers.items():
            print(name, c.logs()[-20:])
        raise
    assert real_lan.forbidden() == []

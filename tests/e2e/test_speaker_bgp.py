"""The speaker's BGP mode end to end (issue 7, item 3): test API server on the host's loopback
(reached from node namespaces through a portal), controller and speakers as subprocesses, real
FRR (and BIRD) in a router namespace on one LAN with the nodes.

    router ns "r": bridge br0 = 192.0.2.1, 192.0.2.2, 2001:db8::1; FRR AS 64500 (passive)
    node n<i>:     eth0 = 192.0.2.1<i>, 2001:db8::1<i> (n1 also 192.0.2.21, its iBGP source)
    ns "b":        192.0.2.3, BIRD AS 64501 (second test only)

Every assertion about routes reads a daemon's own RIB; every assertion about sessions reads the
daemon's neighbor state and the speaker's /metrics (curl inside the node namespace).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from metallb_lab import netns
from metallb_lab.apiserver import ApiServer
from metallb_lab.netns import wait_for
from metallb_lab.routers import BirdRouter, FrrRouter, Neighbor, daemons_available
from metallb_py.metrics import parse_exposition

from .conftest import NS, Component, put_endpoints
from .test_controller import ips, service, set_config

pytestmark = pytest.mark.netns

FRR_ASN = 64500
BIRD_ASN = 64501
NODE_ASN = 64512
ROUTER_V4, ROUTER_V4_IBGP, ROUTER_V6, BIRD_V4 = "192.0.2.1", "192.0.2.2", "2001:db8::1", "192.0.2.3"
N1_IBGP_SOURCE = "192.0.2.21"
POOL_ANNOTATION = "metallb.universe.tf/address-pool"
SPEAKER_ARGS = ("speaker", "--namespace", NS, "--port", "7472")


def node_v4(name: str) -> str:
    return f"192.0.2.1{name[1:]}"


def node_v6(name: str) -> str:
    return f"2001:db8::1{name[1:]}"


# --- the lab ------------------------------------------------------------------------------


class BgpLan:
    """Router namespace with a bridge, node namespaces plugged into it, FRR (and optionally
    BIRD), Node objects in the API, a portal so speakers reach the API, speakers on demand."""

    def __init__(
        self,
        topo: netns.Topology,
        api: ApiServer,
        tmp: Path,
        nodes: dict[str, dict[str, str]],
        frr_neighbors: list[Neighbor],
        bird_neighbors: list[Neighbor] | None = None,
    ) -> None:
        self.topo, self.api, self.tmp = topo, api, tmp
        self.router = topo.add_ns("r")
        topo.bridge(self.router, "br0")
        for cidr in (f"{ROUTER_V4}/24", f"{ROUTER_V4_IBGP}/24", f"{ROUTER_V6}/64"):
            topo.addr(self.router, "br0", cidr)
        self.nodes: dict[str, netns.Netns] = {}
        for i, (name, labels) in enumerate(nodes.items(), start=1):
            ns = topo.add_ns(name)
            topo.veth(ns, "eth0", self.router, f"p{i}")
            self.router.ip("link", "set", f"p{i}", "master", "br0")
            topo.addr(ns, "eth0", f"{node_v4(name)}/24")
            topo.addr(ns, "eth0", f"{node_v6(name)}/64")
            if name == "n1":
                topo.addr(ns, "eth0", f"{N1_IBGP_SOURCE}/24")
            self.nodes[name] = ns
            self.api_node(name, labels)
        self.frr = FrrRouter(topo, self.router, tmp / "frr", FRR_ASN, ROUTER_V4, frr_neighbors)
        self.frr.start()
        self.bird: BirdRouter | None = None
        if bird_neighbors is not None:
            b = topo.add_ns("b")
            topo.veth(b, "eth0", self.router, "pb")
            self.router.ip("link", "set", "pb", "master", "br0")
            topo.addr(b, "eth0", f"{BIRD_V4}/24")
            self.bird = QuickBird(topo, b, tmp / "bird", BIRD_ASN, BIRD_V4, bird_neighbors)
            self.bird.start()
        topo.spawn(
            None,
            [sys.executable, "-m", "metallb_lab.portal", "--target", f"127.0.0.1:{api.port}"]
            + [f"--listen={ns.name}=127.0.0.1:6443" for ns in self.nodes.values()],
        )
        kc = api.kubeconfig(NS)
        kc["clusters"][0]["cluster"]["server"] = "http://127.0.0.1:6443"
        self.kubeconfig = tmp / "node-kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump(kc))
        self.speakers: dict[str, Component] = {}

    def api_node(self, name: str, labels: dict[str, str]) -> None:
        created = self.api.create(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}},
            }
        )
        created["status"] = {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": node_v4(name)}],
        }
        self.api.update_status(created)

    def set_labels(self, name: str, labels: dict[str, str]) -> None:
        node = self.api.get("nodes", name)
        node["metadata"]["labels"] = {"kubernetes.io/hostname": name, **labels}
        self.api.update(node)

    def start_speakers(self) -> None:
        for name, ns in self.nodes.items():
            c = Component(
                [*SPEAKER_ARGS, "--kubeconfig", str(self.kubeconfig)],
                {"METALLB_NODE_NAME": name},
                wrap=ns.argv([]),
            ).start()
            assert c.proc is not None
            self.topo.processes.append(c.proc)  # type: ignore[arg-type]
            self.speakers[name] = c

    # --- speaker side --------------------------------------------------------------------

    def metrics(self, name: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        out = self.nodes[name].run(
            ["curl", "-sf", "--max-time", "5", "http://127.0.0.1:7472/metrics"], check=False
        )
        return parse_exposition(out.stdout) if out.returncode == 0 else {}

    def series(self, name: str, metric: str) -> dict[frozenset[tuple[str, str]], float]:
        return {labels: v for (m, labels), v in self.metrics(name).items() if m == metric}

    def peer_metric(self, name: str, metric: str) -> dict[str, float]:
        """`peer` label -> value of one BGP family on one node."""
        return {dict(k)["peer"]: v for k, v in self.series(name, metric).items()}

    def announced(self, name: str) -> set[tuple[str, str, str]]:
        """(service, protocol, ip) of `metallb_speaker_announced` == 1 on one node."""
        out = set()
        for labels, value in self.series(name, "metallb_speaker_announced").items():
            lab = dict(labels)
            assert lab["node"] == name
            if value == 1:
                out.add((lab["service"], lab["protocol"], lab["ip"]))
        return out

    def logs(self, name: str) -> list[dict[str, Any]]:
        return self.speakers[name].logs()

    def dump(self) -> str:
        parts = [f"FRR log:\n{self.frr.log_tail(30)}"]
        try:
            parts.append(f"FRR RIB: {self.frr_rib()}")
        except Exception as exc:
            parts.append(f"FRR RIB unreadable: {exc}")
        for name, c in self.speakers.items():
            parts.append(f"speaker {name}:\n" + "\n".join(map(str, c.logs()[-25:])))
        return "\n\n".join(parts)

    # --- router side ---------------------------------------------------------------------

    def frr_state(self, address: str) -> str:
        return self.frr.neighbor_state(address)

    def frr_connections(self, address: str) -> int:
        return int(self.frr.neighbor(address).get("connectionsEstablished", 0))

    def frr_rib(self) -> dict[str, dict[str, RibPath]]:
        """prefix -> {peer address: path} over both families."""
        out: dict[str, dict[str, RibPath]] = {}
        for afi in ("ipv4", "ipv6"):
            for prefix in self.frr.routes(afi):
                detail = self.frr.json(f"show bgp {afi} unicast {prefix} json")
                paths = {}
                for p in detail.get("paths", []):
                    peer = p["peer"]["peerId"]
                    paths[peer] = RibPath(
                        next_hop=p["nexthops"][0]["ip"],
                        as_path=tuple(
                            a
                            for seg in p.get("aspath", {}).get("segments", [])
                            for a in seg["list"]
                        ),
                        local_pref=p.get("locPrf"),
                        communities=tuple(p.get("community", {}).get("list", [])),
                    )
                if paths:
                    out[prefix] = paths
        return out

    def frr_notifications_from(self, address: str) -> list[str]:
        """FRR's log lines for NOTIFICATIONs it received from `address`."""
        pattern = re.compile(r"%NOTIFICATION: received from neighbor " + re.escape(address) + " ")
        text = self.frr.log_path.read_text(errors="replace")
        return [line for line in text.splitlines() if pattern.search(line)]


class QuickBird(BirdRouter):
    """BIRD that accepts a speaker again 1-2 s after a session error: its default error wait
    (60-300 s) would otherwise hold off the corrected peer for a minute."""

    def config_text(self) -> str:
        return (
            super().config_text().replace("  passive on;", "  passive on;\n  error wait time 1, 2;")
        )


@dataclass(frozen=True)
class RibPath:
    """One path of a prefix as FRR shows it."""

    next_hop: str
    as_path: tuple[int, ...]
    local_pref: int | None
    communities: tuple[str, ...]


def ebgp(node: str, communities: tuple[str, ...] = (), v6: bool = False) -> RibPath:
    return RibPath(node_v6(node) if v6 else node_v4(node), (NODE_ASN,), None, communities)


def ibgp(local_pref: int, communities: tuple[str, ...] = (), v6: bool = False) -> RibPath:
    return RibPath(node_v6("n1") if v6 else N1_IBGP_SOURCE, (), local_pref, communities)


def lb_service(name: str, pool: str, *, local: bool = False, **spec: Any) -> dict[str, Any]:
    if local:
        spec["externalTrafficPolicy"] = "Local"
    return service(name, meta={"annotations": {POOL_ANNOTATION: pool}}, **spec)


def node_assigned(api: ApiServer, name: str) -> set[str]:
    """Nodes that emitted `nodeAssigned` for Service apps/<name>."""
    return {
        e["source"].get("host", "")
        for e in api.list("events", "apps")
        if e.get("reason") == "nodeAssigned" and e["involvedObject"]["name"] == name
    }


def until(cond: Any, timeout: float, what: str, lan: BgpLan) -> Any:
    try:
        return wait_for(cond, timeout, interval=0.2, what=what)
    except TimeoutError:
        print(lan.dump())
        raise


@pytest.fixture
def bgp_ready() -> None:
    reason = daemons_available()
    if reason:
        pytest.skip(reason)


# --- test 1: routes, Service decisions, metrics, node selectors ------------------------------

CONFIG = """
bgp-communities:
  edge: "64512:100"
peers:
- my-asn: 64512
  peer-asn: 64500
  peer-address: 192.0.2.1
  node-selectors:
  - match-labels: {bgp: "yes"}
- my-asn: 64500
  peer-asn: 64500
  peer-address: 192.0.2.2
  source-address: 192.0.2.21
  node-selectors:
  - match-labels: {kubernetes.io/hostname: n1}
- my-asn: 64512
  peer-asn: 64500
  peer-address: 2001:db8::1
  node-selectors:
  - match-expressions:
    - {key: kubernetes.io/hostname, operator: In, values: [n1]}
address-pools:
- name: main
  protocol: bgp
  addresses: [203.0.113.0/28]
  bgp-advertisements:
  - localpref: 150
    communities: ["64512:300", edge]
- name: agg
  protocol: bgp
  auto-assign: false
  addresses: [198.51.100.0/24]
  bgp-advertisements:
  - aggregation-length: 24
    communities: ["64512:2"]
  - localpref: 200
- name: dual
  protocol: bgp
  auto-assign: false
  addresses: [203.0.113.64/28, "2001:db8:100::/120"]
- name: moving
  protocol: bgp
  auto-assign: false
  addresses: [192.0.2.200/29]
"""
MAIN_COMMS = ("64512:100", "64512:300")


def test_bgp_routes_decisions_metrics_and_node_selectors(
    bgp_ready, topo, api, tmp_path, start_controller
):
    lan = BgpLan(
        topo,
        api,
        tmp_path,
        {"n1": {"bgp": "yes"}, "n2": {"bgp": "yes"}, "n3": {}},
        [Neighbor(node_v4(n), NODE_ASN) for n in ("n1", "n2", "n3")]
        + [
            Neighbor(N1_IBGP_SOURCE, FRR_ASN),
            Neighbor(node_v6("n1"), NODE_ASN, ipv4=False),
        ],
    )
    set_config(api, CONFIG)
    api.create(lb_service("web", "main", loadBalancerIP="203.0.113.0"))
    put_endpoints(api, "web", ["n1", "n2"])
    api.create(lb_service("local", "main", local=True, loadBalancerIP="203.0.113.1"))
    put_endpoints(api, "local", ["n2"])
    for name in ("agg-a", "agg-b"):
        api.create(lb_service(name, "agg"))
        put_endpoints(api, name, ["n1"])
    api.create(lb_service("dual", "dual", ipFamilyPolicy="RequireDualStack"))
    put_endpoints(api, "dual", ["n1", "n2"])
    api.create(lb_service("moving", "moving"))
    put_endpoints(api, "moving", ["n1", "n2"])
    controller = start_controller()
    wanted_ips = {
        "web": ["203.0.113.0"],
        "local": ["203.0.113.1"],
        "agg-a": ["198.51.100.0"],
        "agg-b": ["198.51.100.1"],
        "dual": ["203.0.113.64", "2001:db8:100::"],
        "moving": ["192.0.2.200"],
    }
    try:
        wait_for(
            lambda: (
                {n: sorted(ips(api, n)) for n in wanted_ips}
                == {n: sorted(v) for n, v in wanted_ips.items()}
            ),
            30,
            what="IPs allocated",
        )
    except TimeoutError:
        print({n: ips(api, n) for n in wanted_ips}, controller.logs()[-20:])
        raise
    lan.start_speakers()

    # 1. Routes in FRR: next hop = the node, AS path on eBGP, LOCAL_PREF on iBGP only, sorted
    # communities from an alias and a literal, the /24 aggregate, two advertisements on one
    # pool, IPv6 over IPv4 transport (next hop 2001:db8::1x) and over IPv6 transport.
    # n3 has no selected peer: no session, no route from it.
    v6_paths = {
        node_v4("n1"): ebgp("n1", v6=True),
        node_v4("n2"): ebgp("n2", v6=True),
        node_v6("n1"): ebgp("n1", v6=True),
        N1_IBGP_SOURCE: ibgp(0, v6=True),
    }
    expected = {
        "203.0.113.0/32": {
            node_v4("n1"): ebgp("n1", MAIN_COMMS),
            node_v4("n2"): ebgp("n2", MAIN_COMMS),
            N1_IBGP_SOURCE: ibgp(150, MAIN_COMMS),
        },
        "203.0.113.1/32": {node_v4("n2"): ebgp("n2", MAIN_COMMS)},
        # Cluster: every node with a session advertises, wherever the endpoints are.
        "198.51.100.0/24": {
            node_v4("n1"): ebgp("n1", ("64512:2",)),
            node_v4("n2"): ebgp("n2", ("64512:2",)),
            N1_IBGP_SOURCE: ibgp(0, ("64512:2",)),
        },
        "198.51.100.0/32": {
            node_v4("n1"): ebgp("n1"),
            node_v4("n2"): ebgp("n2"),
            N1_IBGP_SOURCE: ibgp(200),
        },
        "198.51.100.1/32": {
            node_v4("n1"): ebgp("n1"),
            node_v4("n2"): ebgp("n2"),
            N1_IBGP_SOURCE: ibgp(200),
        },
        "203.0.113.64/32": {
            node_v4("n1"): ebgp("n1"),
            node_v4("n2"): ebgp("n2"),
            N1_IBGP_SOURCE: ibgp(0),
        },
        "2001:db8:100::/128": v6_paths,
        "192.0.2.200/32": {
            node_v4("n1"): ebgp("n1"),
            node_v4("n2"): ebgp("n2"),
            N1_IBGP_SOURCE: ibgp(0),
        },
    }
    until(lambda: lan.frr_rib() == expected, 60, "the expected FRR RIB", lan)
    for address in (node_v4("n1"), node_v4("n2"), N1_IBGP_SOURCE, node_v6("n1")):
        assert lan.frr_state(address) == "Established"
    assert lan.frr_state(node_v4("n3")) != "Established"

    # 4. Metrics: one series set per session, `peer` = host:port (IPv6 bracketed).
    n1_peers = {"192.0.2.1:179", "192.0.2.2:179", "[2001:db8::1]:179"}
    until(
        lambda: (
            lan.peer_metric("n1", "metallb_bgp_announced_prefixes_total")
            == {"192.0.2.1:179": 7, "192.0.2.2:179": 7, "[2001:db8::1]:179": 1}
        ),
        20,
        "n1's announced prefixes",
        lan,
    )
    m1 = lan.metrics("n1")
    for family in (
        "metallb_bgp_session_up",
        "metallb_bgp_updates_total",
        "metallb_bgp_pending_prefixes_total",
    ):
        assert set(lan.peer_metric("n1", family)) == n1_peers, family
    assert lan.peer_metric("n1", "metallb_bgp_session_up") == dict.fromkeys(n1_peers, 1)
    # 7 routes on n1 (web, agg /24 + 2 x /32, dual v4 + v6, moving); the IPv6-transport
    # session only negotiated IPv6 unicast, so it holds the IPv4 ones back.
    assert lan.peer_metric("n1", "metallb_bgp_pending_prefixes_total") == dict.fromkeys(n1_peers, 7)
    assert all(v >= 2 for v in lan.peer_metric("n1", "metallb_bgp_updates_total").values())
    assert (
        m1[
            (
                "metallb_speaker_announced",
                frozenset(
                    {
                        ("service", "apps/web"),
                        ("protocol", "bgp"),
                        ("node", "n1"),
                        ("ip", "203.0.113.0"),
                    }
                ),
            )
        ]
        == 1
    )
    assert lan.peer_metric("n2", "metallb_bgp_session_up") == {"192.0.2.1:179": 1}
    assert lan.peer_metric("n2", "metallb_bgp_announced_prefixes_total") == {"192.0.2.1:179": 8}
    assert lan.peer_metric("n3", "metallb_bgp_session_up") == {}

    # 7. nodeAssigned only where a peer is selected; the announced gauge follows.
    until(lambda: node_assigned(api, "web") == {"n1", "n2"}, 10, "nodeAssigned n1+n2", lan)
    until(lambda: node_assigned(api, "local") == {"n2"}, 10, "nodeAssigned n2 for local", lan)
    assert not any(s == "apps/web" for s, _, _ in lan.announced("n3"))
    assert ("apps/local", "bgp", "203.0.113.1") in lan.announced("n2")
    assert not any(s == "apps/local" for s, _, _ in lan.announced("n1"))

    # 2. Node labels: n3 gains the label -> exactly its session opens (the others untouched),
    # it advertises, reports the session and emits nodeAssigned; losing it reverses all that.
    before = {a: lan.frr_connections(a) for a in (node_v4("n1"), node_v4("n2"), N1_IBGP_SOURCE)}
    lan.set_labels("n3", {"bgp": "yes"})
    until(lambda: lan.frr_state(node_v4("n3")) == "Established", 20, "n3's session", lan)
    until(
        lambda: node_v4("n3") in lan.frr_rib().get("203.0.113.0/32", {}),
        20,
        "web's route from n3 (three paths)",
        lan,
    )
    assert set(lan.frr_rib()["203.0.113.0/32"]) == {
        node_v4("n1"),
        node_v4("n2"),
        node_v4("n3"),
        N1_IBGP_SOURCE,
    }
    until(
        lambda: lan.peer_metric("n3", "metallb_bgp_session_up") == {"192.0.2.1:179": 1},
        10,
        "n3's session_up series",
        lan,
    )
    until(lambda: "n3" in node_assigned(api, "web"), 10, "nodeAssigned from n3", lan)
    assert ("apps/web", "bgp", "203.0.113.0") in lan.announced("n3")
    lan.set_labels("n3", {})
    until(lambda: lan.frr_state(node_v4("n3")) != "Established", 20, "n3's session gone", lan)
    until(
        lambda: lan.peer_metric("n3", "metallb_bgp_session_up") == {},
        10,
        "n3's BGP series removed",
        lan,
    )
    assert lan.frr_notifications_from(node_v4("n3"))  # closed with a Cease
    assert node_v4("n3") not in lan.frr_rib()["203.0.113.0/32"]
    assert not any(s == "apps/web" for s, _, _ in lan.announced("n3"))
    assert {a: lan.frr_connections(a) for a in before} == before

    # Advertisement change in the config alone (no Service changes): routes follow.
    set_config(api, CONFIG.replace("localpref: 150", "localpref: 160"))
    until(
        lambda: lan.frr_rib()["203.0.113.0/32"].get(N1_IBGP_SOURCE) == ibgp(160, MAIN_COMMS),
        15,
        "new LOCAL_PREF on the iBGP path",
        lan,
    )
    assert {a: lan.frr_connections(a) for a in before} == before

    # 3. Local: the endpoint moves from n2 to n1 -> only n1 advertises (with its iBGP path).
    put_endpoints(api, "local", ["n1"])
    until(
        lambda: set(lan.frr_rib().get("203.0.113.1/32", {})) == {node_v4("n1"), N1_IBGP_SOURCE},
        15,
        "local's route from n1 only",
        lan,
    )
    # Endpoints not ready -> withdrawn everywhere; Service deleted -> withdrawn.
    put_endpoints(api, "web", ["n1", "n2"], ready=False)
    until(lambda: "203.0.113.0/32" not in lan.frr_rib(), 15, "web withdrawn", lan)
    until(
        lambda: not any(s == "apps/web" for n in ("n1", "n2") for s, _, _ in lan.announced(n)),
        10,
        "web's announced series removed",
        lan,
    )
    api.delete("services", "local", "apps")
    until(lambda: "203.0.113.1/32" not in lan.frr_rib(), 15, "local withdrawn", lan)

    # 3. The pool moves from bgp to layer2: its route leaves FRR, one node answers ARP.
    set_config(
        api,
        CONFIG.replace("localpref: 150", "localpref: 160").replace(
            "- name: moving\n  protocol: bgp", "- name: moving\n  protocol: layer2"
        ),
    )
    until(lambda: "192.0.2.200/32" not in lan.frr_rib(), 15, "moving withdrawn from FRR", lan)
    until(
        lambda: (
            sum(("apps/moving", "layer2", "192.0.2.200") in lan.announced(n) for n in lan.nodes)
            == 1
        ),
        15,
        "one layer2 announcer for moving",
        lan,
    )
    arp = lan.router.run(["arping", "-c", "2", "-w", "3", "-I", "br0", "192.0.2.200"], check=False)
    assert arp.returncode == 0, arp.stdout
    # Everything else is unchanged.
    rib = lan.frr_rib()
    assert rib["2001:db8:100::/128"] == v6_paths
    assert set(rib) == {
        "198.51.100.0/24",
        "198.51.100.0/32",
        "198.51.100.1/32",
        "203.0.113.64/32",
        "2001:db8:100::/128",
    }
    for name in lan.nodes:
        assert not [e for e in lan.logs(name) if e.get("level") == "error"], lan.dump()


# --- test 2: peer equality, removal, bad peers (FRR + BIRD) --------------------------------

PEERS_CONFIG = """
peers:
- my-asn: 64512
  peer-asn: 64500
  peer-address: 192.0.2.1
- my-asn: 64500
  peer-asn: 64500
  peer-address: 192.0.2.2
  source-address: 192.0.2.21
  node-selectors:
  - match-labels: {kubernetes.io/hostname: n1}
- my-asn: 64512
  peer-asn: BIRD_ASN
  peer-address: 192.0.2.3
  node-selectors:
  - match-labels: {kubernetes.io/hostname: n1}
- my-asn: 64512
  peer-asn: 64500
  peer-address: 192.0.2.99
  node-selectors:
  - match-labels: {kubernetes.io/hostname: n2}
address-pools:
- name: main
  protocol: bgp
  addresses: [203.0.113.0/28]
  bgp-advertisements:
  - localpref: 150
"""


def peers_config(bird_asn: int, *, ibgp_hold: str = "", ibgp: bool = True) -> str:
    text = PEERS_CONFIG.replace("BIRD_ASN", str(bird_asn))
    if ibgp_hold:
        text = text.replace(
            "  source-address: 192.0.2.21\n",
            f"  source-address: 192.0.2.21\n  hold-time: {ibgp_hold}\n",
        )
    if not ibgp:
        start = text.index("- my-asn: 64500\n  peer-asn: 64500\n  peer-address: 192.0.2.2")
        end = text.index("- my-asn: 64512\n  peer-asn:", start)
        text = text[:start] + text[end:]
    return text


def test_bgp_peer_changes_and_bad_peers(bgp_ready, topo, api, tmp_path, start_controller):
    lan = BgpLan(
        topo,
        api,
        tmp_path,
        {"n1": {}, "n2": {}},
        [
            Neighbor(node_v4("n1"), NODE_ASN),
            Neighbor(node_v4("n2"), NODE_ASN),
            Neighbor(N1_IBGP_SOURCE, FRR_ASN),
        ],
        bird_neighbors=[Neighbor(node_v4("n1"), NODE_ASN, ipv6=False)],
    )
    assert lan.bird is not None
    set_config(api, peers_config(BIRD_ASN + 1))  # wrong peer ASN for BIRD
    api.create(lb_service("web", "main"))
    put_endpoints(api, "web", ["n1", "n2"])
    start_controller()
    wait_for(lambda: ips(api, "web") == ["203.0.113.0"], 30, what="IP allocated")
    lan.start_speakers()
    good = {node_v4("n1"), node_v4("n2"), N1_IBGP_SOURCE}
    until(
        lambda: set(lan.frr_rib().get("203.0.113.0/32", {})) == good,
        60,
        "web from both nodes and the iBGP session",
        lan,
    )

    # 5. Wrong ASN (BIRD is 64501, the config says 64502) and an unreachable peer: session_up
    # 0, the failure logged with the RFC name, retried; the other sessions are unaffected.
    def failures(node: str, peer: str, text: str) -> list[str]:
        return [
            e["msg"]
            for e in lan.logs(node)
            if peer in str(e.get("msg", "")) and text in str(e.get("msg", ""))
        ]

    # BIRD answers our 2/2 with a pause of its own (it refuses connections for a while), so
    # only the first attempt reaches the OPEN; the retries follow the 0, 1, 2 s backoff.
    until(
        lambda: (
            failures("n1", "192.0.2.3:179", "Bad Peer AS")
            and len(failures("n1", "192.0.2.3:179", "connect failed")) >= 3
        ),
        20,
        "Bad Peer AS logged and retried",
        lan,
    )
    assert "2/2 OPEN Message Error / Bad Peer AS" in failures("n1", "192.0.2.3:179", "AS")[0]
    assert failures("n1", "192.0.2.3:179", "retrying in")[:3] == [
        f"BGP peer 192.0.2.3:179: retrying in {d}s" for d in (0, 1, 2)
    ]
    assert lan.peer_metric("n1", "metallb_bgp_session_up") == {
        "192.0.2.1:179": 1,
        "192.0.2.2:179": 1,
        "192.0.2.3:179": 0,
    }
    assert lan.bird.protocol_state(lan.bird.neighbors[0]) != "Established"
    until(
        lambda: len(failures("n2", "192.0.2.99:179", "connect failed")) >= 2,
        40,
        "the unreachable peer's failures logged and retried",
        lan,
    )
    assert lan.peer_metric("n2", "metallb_bgp_session_up") == {
        "192.0.2.1:179": 1,
        "192.0.2.99:179": 0,
    }
    assert {a: lan.frr_connections(a) for a in good} == dict.fromkeys(good, 1)

    # 2. Fix the ASN: only that peer's session is replaced, BIRD gets the route.
    set_config(api, peers_config(BIRD_ASN))
    until(
        lambda: (
            lan.bird is not None and lan.bird.protocol_state(lan.bird.neighbors[0]) == "Established"
        ),
        20,
        "BIRD session",
        lan,
    )
    until(lambda: "203.0.113.0/32" in lan.bird.routes(), 15, "route in BIRD", lan)
    bird_route = lan.bird.routes()["203.0.113.0/32"]
    assert bird_route["as_path"] == str(NODE_ASN)
    assert bird_route["next_hop"].split()[0] == node_v4("n1")
    until(
        lambda: lan.peer_metric("n1", "metallb_bgp_session_up").get("192.0.2.3:179") == 1,
        10,
        "BIRD session_up",
        lan,
    )
    assert {a: lan.frr_connections(a) for a in good} == dict.fromkeys(good, 1)
    assert lan.frr_notifications_from(N1_IBGP_SOURCE) == []

    # One field of one peer changes (hold time): that session is closed with a Cease and
    # reopened with the new value; the others stay up.
    set_config(api, peers_config(BIRD_ASN, ibgp_hold="30s"))
    until(
        lambda: (
            lan.frr_connections(N1_IBGP_SOURCE) == 2
            and lan.frr_state(N1_IBGP_SOURCE) == "Established"
        ),
        20,
        "the iBGP session re-established",
        lan,
    )
    assert lan.frr.neighbor(N1_IBGP_SOURCE)["bgpTimerHoldTimeMsecs"] == 30000
    assert [" 6/3 " in line for line in lan.frr_notifications_from(N1_IBGP_SOURCE)] == [True]
    assert lan.frr_connections(node_v4("n1")) == 1
    assert lan.frr_connections(node_v4("n2")) == 1
    until(
        lambda: lan.frr_rib().get("203.0.113.0/32", {}).get(N1_IBGP_SOURCE) == ibgp(150),
        15,
        "the iBGP path back",
        lan,
    )

    # A peer removed from the config: Cease (6/3) in FRR's log, its series gone.
    set_config(api, peers_config(BIRD_ASN, ibgp_hold="30s", ibgp=False))
    until(
        lambda: len(lan.frr_notifications_from(N1_IBGP_SOURCE)) == 2,
        15,
        "second Cease from the iBGP source",
        lan,
    )
    assert "Cease/Peer De-configured" in lan.frr_notifications_from(N1_IBGP_SOURCE)[-1]
    until(
        lambda: "192.0.2.2:179" not in lan.peer_metric("n1", "metallb_bgp_session_up"),
        10,
        "the removed peer's series gone",
        lan,
    )
    assert lan.frr_state(N1_IBGP_SOURCE) != "Established"
    assert set(lan.frr_rib()["203.0.113.0/32"]) == {node_v4("n1"), node_v4("n2")}
    assert lan.frr_connections(node_v4("n1")) == 1
    assert lan.bird.protocol_state(lan.bird.neighbors[0]) == "Established"

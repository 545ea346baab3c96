"""The speaker process end to end in layer2 mode: test API server on the host's loopback (reached
from node namespaces through a portal), controller and speakers as subprocesses, real arping."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from metallb_lab import netns
from metallb_lab.apiserver import ApiServer
from metallb_lab.lab import objects
from metallb_lab.lab.commands import node_kubeconfig, portal_command, speaker_args, speaker_env
from metallb_lab.lab.layout import election_ranking, plan_lab
from metallb_lab.lab.topology import build_lan, mac_of
from metallb_lab.netns import wait_for

from .conftest import NS, Component, put_endpoints
from .test_controller import ips, service, set_config

pytestmark = pytest.mark.netns

NODES = ("n1", "n2", "n3")
CONFIG = """
address-pools:
- name: lan
  protocol: layer2
  addresses: [192.0.2.100-192.0.2.120]
- name: routed
  protocol: bgp
  addresses: [203.0.113.0/28]
"""


class Lan:
    """The lab's LAN (metallb_lab.lab) under the test's `mlbt-` topology, with the test's
    in-process API server: Nodes and speaker Pods registered, a portal into every node."""

    def __init__(self, topo: netns.Topology, api: ApiServer, tmp: Path) -> None:
        self.topo, self.api, self.tmp = topo, api, tmp
        self.layout = plan_lab(len(NODES))
        assert self.layout.node_names == NODES
        lan = build_lan(topo, self.layout, client_suffix="c")
        self.client, self.nodes = lan.client, lan.nodes
        for plan in self.layout.nodes:
            objects.register(api, objects.node(plan.name, plan.ipv4))
            objects.register(api, objects.speaker_pod(plan.name, plan.ipv4, NS))
        self.portal = topo.spawn(
            None, portal_command(api.port, [ns.name for ns in lan.nodes.values()])
        )
        self.kubeconfig = node_kubeconfig(tmp / "node-kubeconfig", NS)
        self.speakers: dict[str, Component] = {}

    def start_speaker(self, name: str) -> Component:
        ns = self.nodes[name]
        env = speaker_env(name, self.layout.node(name).ipv4, "lab-secret-key-0123456789")
        c = Component(speaker_args(self.kubeconfig), env, wrap=ns.argv([])).start()
        assert c.proc is not None
        self.topo.processes.append(c.proc)  # type: ignore[arg-type]
        self.speakers[name] = c
        return c

    def arping(self, ip: str) -> str | None:
        """The MAC that answers ARP for `ip` on the LAN, or None."""
        out = self.client.run(["arping", "-c", "1", "-w", "1", "-I", "br0", ip], check=False).stdout
        for line in out.splitlines():
            if "reply from" in line.lower() or "bytes from" in line.lower():
                return line.split("[")[1].split("]")[0].lower() if "[" in line else line
        return None

    def mac(self, name: str) -> str:
        return mac_of(self.nodes[name])

    def answering(self, ip: str, tries: int = 3) -> str | None:
        for _ in range(tries):
            mac = self.arping(ip)
            if mac:
                return next((n for n in NODES if self.mac(n) == mac), mac)
        return None


@pytest.fixture
def lan(topo, tmp_path, api) -> Iterator[tuple[Lan, ApiServer]]:
    yield Lan(topo, api, tmp_path), api


def announcers(net: Lan, ip: str) -> set[str]:
    """Nodes whose speaker reports `metallb_speaker_announced` for `ip`."""
    out = set()
    for name, speaker in net.speakers.items():
        if speaker.proc is None or speaker.proc.poll() is not None:
            continue
        metrics = (
            net.nodes[name].run(["curl", "-s", "http://127.0.0.1:7472/metrics"], check=False).stdout
        )
        if f'ip="{ip}"' in metrics and "metallb_speaker_announced{" in metrics:
            out.add(name)
    return out


def test_layer2_announce_elect_failover_and_protocol_change(lan, start_controller):
    net, api = lan
    set_config(api, CONFIG)
    api.create(service("web"))
    put_endpoints(api, "web", ["n1", "n2"])
    start_controller()
    wait_for(lambda: ips(api, "web"), 20, what="IP allocated")
    ip = ips(api, "web")[0]
    assert ip == "192.0.2.100"
    for name in NODES:
        net.start_speaker(name)
    # The lab's own statement of the election (checked against fixed vectors in
    # tests/lab/test_election.py), not the speaker's code.
    expected = election_ranking(NODES, ip)[0]
    # While speakers start one by one the early ones may briefly elect among themselves.
    wait_for(lambda: net.answering(ip) == expected, 30, interval=0.2, what="the elected node")
    # Exactly one speaker announces, and keeps answering.
    try:
        wait_for(lambda: announcers(net, ip) == {expected}, 10, what="a single announcer")
    except TimeoutError:
        for name in NODES:
            print(
                name,
                net.nodes[name].run(["curl", "-s", "http://127.0.0.1:7472/metrics"], check=False),
            )
            print([e for e in net.speakers[name].logs() if "service" not in e][-12:])
        raise
    assert [net.answering(ip) for _ in range(3)] == [expected] * 3
    # Events are posted by a background thread, so the event can trail the first ARP answer.
    wait_for(
        lambda: any(
            e["reason"] == "nodeAssigned" and e["source"]["host"] == expected
            for e in api.list("events", "apps")
        ),
        10,
        what="nodeAssigned from the elected node",
    )
    unannounced = "192.0.2.119"
    assert net.arping(unannounced) is None

    # Kill the owner's speaker and cut its link: another node takes over quickly.
    net.speakers[expected].kill()
    net.nodes[expected].ip("link", "set", "eth0", "down")
    new_owner = wait_for(
        lambda: (o := net.answering(ip, 1)) and o != expected and o, 10, interval=0.1
    )
    assert new_owner == election_ranking([n for n in NODES if n != expected], ip)[0]

    # Local traffic policy with endpoints on one node: that node announces.
    svc = api.get("services", "web", "apps")
    svc["spec"]["externalTrafficPolicy"] = "Local"
    api.update(svc)
    survivor = election_ranking([n for n in ("n1", "n2") if n != expected], ip)[0]
    wait_for(lambda: net.answering(ip, 1) == survivor, 15, interval=0.2)

    # Move the Service to the bgp pool: layer2 answers stop.
    svc = api.get("services", "web", "apps")
    svc["metadata"].setdefault("annotations", {})["metallb.universe.tf/address-pool"] = "routed"
    api.update(svc)
    wait_for(lambda: ips(api, "web") == ["203.0.113.0"], 20, what="re-allocation from the bgp pool")
    wait_for(lambda: net.arping(ip) is None, 15, what="layer2 withdrawn")

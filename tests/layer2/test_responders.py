"""Real clients (`arping`, `ndisc6`) against the layer2 engine running in a node namespace."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from metallb_lab import netns

from .conftest import Lan, wait_link_local

pytestmark = pytest.mark.netns


def maddrs(ns: netns.Netns, dev: str) -> str:
    return ns.ip("-6", "maddr", "show", "dev", dev).stdout


def test_arp_answers_announced_ips_only_and_stops_after_withdraw(lan: Lan) -> None:
    node = lan.nodes[0]
    mac = lan.mac(node)
    speaker = lan.speaker(node)
    speaker.cmd("announce default/web 192.0.2.100")

    assert lan.arping("192.0.2.100", count=3) == [mac] * 3
    stats = speaker.stats()["stats"]
    assert stats["requests_received"]["192.0.2.100"] == 3
    assert stats["responses_sent"]["192.0.2.100"] == 3
    # The client's own kernel resolver learns the node's MAC too (the ping itself gets no
    # answer: the IP is not configured on the node, docs/layer2.md "Not done").
    lan.client.run(["ping", "-c", "1", "-W", "1", "192.0.2.100"], check=False)
    neigh = lan.client.ip("neigh", "show", "192.0.2.100", "dev", "br0").stdout.lower()
    assert mac in neigh
    assert lan.arping("192.0.2.101", count=1, wait=1) == []  # not announced: nobody answers
    assert "192.0.2.101" not in speaker.stats()["stats"]["requests_received"]

    speaker.cmd("withdraw default/web")
    assert lan.arping("192.0.2.100", count=1, wait=1) == []
    stats = speaker.stats()["stats"]
    # Withdrawn IPs leave no series behind.
    assert all("192.0.2.100" not in series for series in stats.values())
    assert speaker.stop() == 0


def test_ndp_answers_announced_ips_and_manages_the_solicited_node_group(lan: Lan) -> None:
    node = lan.nodes[0]
    mac = lan.mac(node)
    speaker = lan.speaker(node)
    assert "ff02::1:ff00:100" not in maddrs(node, "eth0")
    speaker.cmd("announce default/web 2001:db8::100")
    assert "ff02::1:ff00:100" in maddrs(node, "eth0")

    assert set(lan.ndisc("2001:db8::100")) == {mac}
    assert lan.ndisc("2001:db8::101", tries=1) == []
    stats = speaker.stats()["stats"]
    assert stats["requests_received"]["2001:db8::100"] >= 1
    assert stats["responses_sent"]["2001:db8::100"] == stats["requests_received"]["2001:db8::100"]

    # A second Service sharing the IP: still one group; it is left with the last user only.
    speaker.cmd("announce other/web 2001:db8::100")
    speaker.cmd("announce default/web 2001:db8::100")  # a reconcile: set semantics, no growth
    speaker.cmd("withdraw default/web")
    assert "ff02::1:ff00:100" in maddrs(node, "eth0")
    assert set(lan.ndisc("2001:db8::100")) == {mac}
    speaker.cmd("withdraw other/web")
    assert "ff02::1:ff00:100" not in maddrs(node, "eth0")
    assert lan.ndisc("2001:db8::100", tries=1) == []


def test_two_nodes_with_disjoint_ips_each_answer_only_their_own(lan2: Lan) -> None:
    n1, n2 = lan2.nodes
    mac1, mac2 = lan2.mac(n1), lan2.mac(n2)
    s1, s2 = lan2.speaker(n1), lan2.speaker(n2)
    s1.cmd("announce default/a 192.0.2.100 2001:db8::100")
    s2.cmd("announce default/b 192.0.2.101 2001:db8::101")
    # -b keeps broadcasting, so every node that would answer is heard.
    assert lan2.arping("192.0.2.100", count=3, broadcast=True) == [mac1] * 3
    assert lan2.arping("192.0.2.101", count=3, broadcast=True) == [mac2] * 3
    assert set(lan2.ndisc("2001:db8::100")) == {mac1}
    assert set(lan2.ndisc("2001:db8::101")) == {mac2}
    assert "192.0.2.101" not in s1.stats()["stats"]["requests_received"]
    assert "192.0.2.100" not in s2.stats()["stats"]["requests_received"]


def test_subnet_restriction_with_two_interfaces(topo: netns.Topology, tmp_path: Path) -> None:
    """eth0 on 192.0.2.0/24 + 2001:db8:1::/64, eth1 on 198.51.100.0/24 + 2001:db8:2::/64, each
    facing its own client namespace (so a client hears only its own segment)."""
    c0 = topo.add_ns("c0")
    c1 = topo.add_ns("c1")
    node = topo.add_ns("n")
    topo.veth(node, "eth0", c0, "br0")
    topo.veth(node, "eth1", c1, "br1")
    for ns, dev, cidrs in (
        (node, "eth0", ("192.0.2.11/24", "2001:db8:1::11/64")),
        (node, "eth1", ("198.51.100.11/24", "2001:db8:2::11/64")),
        (c0, "br0", ("192.0.2.1/24", "2001:db8:1::1/64")),
        (c1, "br1", ("198.51.100.1/24", "2001:db8:2::1/64")),
    ):
        for cidr in cidrs:
            topo.addr(ns, dev, cidr)
    for dev in ("eth0", "eth1"):
        wait_link_local(node, dev)
    lan0 = Lan(topo, tmp_path, c0, [node])
    lan1 = Lan(topo, tmp_path, c1, [node])
    mac0, mac1 = lan0.mac(node, "eth0"), lan0.mac(node, "eth1")
    ips = "192.0.2.100 198.51.100.100 203.0.113.100 2001:db8:1::100 2001:db8:2::100 2001:db8:3::100"
    speaker = lan0.speaker(node)
    speaker.cmd(f"announce default/multi {ips}")

    assert lan0.arping("192.0.2.100") == [mac0] * 2
    assert lan1.arping("192.0.2.100", count=1, wait=1, dev="br1") == []
    assert lan1.arping("198.51.100.100", dev="br1") == [mac1] * 2
    assert lan0.arping("198.51.100.100", count=1, wait=1) == []
    # No interface holds 203.0.113.0/24: answered everywhere, as upstream does for every IP.
    assert lan0.arping("203.0.113.100") == [mac0] * 2
    assert lan1.arping("203.0.113.100", dev="br1") == [mac1] * 2
    assert set(lan0.ndisc("2001:db8:1::100")) == {mac0}
    assert lan1.ndisc("2001:db8:1::100", dev="br1", tries=1) == []
    assert set(lan1.ndisc("2001:db8:2::100", dev="br1")) == {mac1}
    assert lan0.ndisc("2001:db8:2::100", tries=1) == []
    assert set(lan0.ndisc("2001:db8:3::100")) == {mac0}
    assert set(lan1.ndisc("2001:db8:3::100", dev="br1")) == {mac1}
    # Solicited-node groups follow the placement (all three share ff02::1:ff00:100).
    assert "ff02::1:ff00:100" in maddrs(node, "eth0")
    assert "ff02::1:ff00:100" in maddrs(node, "eth1")
    placement = speaker.state()["placement"]
    assert placement["192.0.2.100"] == ["eth0"]
    assert placement["2001:db8:2::100"] == ["eth1"]
    assert placement["203.0.113.100"] == ["eth0", "eth1"]
    speaker.cmd("announce default/multi 2001:db8:1::100")
    assert "ff02::1:ff00:100" in maddrs(node, "eth0")
    assert "ff02::1:ff00:100" not in maddrs(node, "eth1")
    speaker.stop()

    # The upstream behaviour stays available.
    everywhere = lan0.speaker(node, "--all-interfaces")
    everywhere.cmd(f"announce default/multi {ips}")
    assert lan1.arping("192.0.2.100", dev="br1") == [mac1] * 2
    assert set(lan1.ndisc("2001:db8:1::100", dev="br1")) == {mac1}


def test_interfaces_coming_and_going(lan: Lan) -> None:
    """A responder created after an IP is announced joins its group (upstream's quirk fixed);
    responders of links that go down, lose NOARP eligibility or vanish are closed."""
    node = lan.nodes[0]
    speaker = lan.speaker(node)
    # 2001:db8:ffff::/64 is on no interface, so every NDP interface answers for it.
    speaker.cmd("announce default/web 2001:db8:ffff::100 203.0.113.100")
    other = lan.topo.add_ns("c1")  # a second segment, seen only through eth1
    lan.topo.veth(node, "eth1", other, "br1")
    lan.topo.veth(node, "eth2", other, "q2")
    node.ip("link", "set", "eth2", "arp", "off")
    lan.topo.addr(other, "br1", "198.51.100.1/24")
    wait_link_local(node, "eth1")
    speaker.cmd("scan")
    state = speaker.state()
    assert set(state["arp"]) == {"eth0", "eth1"}  # eth2 is NOARP
    assert set(state["ndp"]) == {"eth0", "eth1"}
    assert state["ndp"]["eth1"] == ["2001:db8:ffff::100"]
    assert "ff02::1:ff00:100" in maddrs(node, "eth1")
    mac1 = lan.mac(node, "eth1")
    seg = Lan(lan.topo, lan.tmp, other, [node])
    assert set(seg.ndisc("2001:db8:ffff::100", dev="br1")) == {mac1}
    assert seg.arping("203.0.113.100", dev="br1") == [mac1] * 2

    node.ip("link", "set", "eth1", "down")
    speaker.cmd("scan")
    state = speaker.state()
    assert set(state["arp"]) == {"eth0"} and set(state["ndp"]) == {"eth0"}
    node.ip("link", "del", "eth1")
    speaker.cmd("scan")
    assert set(speaker.state()["arp"]) == {"eth0"}
    assert set(lan.ndisc("2001:db8:ffff::100")) == {lan.mac(node)}


SCAN_WITH_A_BROKEN_INTERFACE = r"""
import asyncio, json
from metallb_py.layer2.announcer import Announcer
from metallb_py.layer2.interfaces import Interface, list_interfaces

def with_ghost():
    # "a0" sorts before eth0 and qualifies, but does not exist: opening it fails.
    ghost = Interface("a0ghost", 9999, b"\x02" * 6, 0x1003, False, ())
    return [ghost, *list_interfaces()]

async def main():
    async with Announcer(list_interfaces=with_ghost) as announcer:
        announcer.announce("default/web", ["192.0.2.100"])
        print(json.dumps({"arp": sorted(announcer.arp), "placement": sorted(
            n for names in announcer.placement().values() for n in names)}))

asyncio.run(main())
"""


def test_one_failing_interface_does_not_stop_the_scan(lan: Lan) -> None:
    node = lan.nodes[0]
    out = node.run([sys.executable, "-c", SCAN_WITH_A_BROKEN_INTERFACE], timeout=30)
    result = json.loads(out.stdout)
    assert result == {"arp": ["eth0"], "placement": ["eth0"]}
    assert "no ARP responder on a0ghost" in out.stderr


def test_clear_errors_for_missing_interface_and_missing_privileges(lan: Lan) -> None:
    node = lan.nodes[0]
    env_argv = ["env", f"PYTHONPATH={sys.path[0]}"]
    missing = node.run(
        [*env_argv, sys.executable, "-m", "metallb_lab.harness.layer2", "-i", "nosuch0"],
        check=False,
    )
    assert missing.returncode == 1
    assert "interface 'nosuch0' does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr

    unprivileged = node.run(
        [
            *env_argv,
            # Still root, but without CAP_NET_RAW (the bounding set caps what exec grants).
            "setpriv",
            "--bounding-set=-net_raw",
            "--inh-caps=-net_raw",
            sys.executable,
            "-m",
            "metallb_lab.harness.layer2",
        ],
        check=False,
    )
    assert unprivileged.returncode == 1, unprivileged.stderr
    assert "CAP_NET_RAW" in unprivileged.stderr
    assert "Traceback" not in unprivileged.stderr


def test_thousands_of_ipv6_groups(lan: Lan) -> None:
    """One socket holds ~2,300 memberships (option memory); the responder adds sockets."""
    node = lan.nodes[0]
    speaker = lan.speaker(node)
    before = set(maddrs(node, "eth0").split())
    ips = [f"2001:db8:1::{i >> 8:x}:{i & 0xFF:x}" for i in range(1, 3001)]
    speaker.cmd("announce default/many " + " ".join(ips), timeout=60)
    stats = speaker.stats()
    assert stats["membership_errors"] == 0
    assert stats["membership_sockets"]["eth0"] >= 2
    assert len(speaker.state()["groups"]["eth0"]) == 3000
    joined = maddrs(node, "eth0")
    assert joined.count("ff02::1:ff") >= 3000
    assert set(lan.ndisc(ips[-1])) == {lan.mac(node)}
    speaker.cmd("withdraw default/many", timeout=60)
    assert set(maddrs(node, "eth0").split()) == before
    assert speaker.state()["groups"]["eth0"] == []


def test_the_gate_refuses_answers_without_withdrawing(lan: Lan) -> None:
    """The speaker's layer2 lease is enforced per reply: a refused IP gets no answer (counted
    as `no lease`) and no gratuitous ARP, and answers again once allowed."""
    node = lan.nodes[0]
    mac = lan.mac(node)
    speaker = lan.speaker(node)
    speaker.cmd("announce default/web 192.0.2.100")
    assert lan.arping("192.0.2.100", count=1) == [mac]
    speaker.cmd("block 192.0.2.100")
    assert lan.arping("192.0.2.100", count=2, wait=1) == []
    stats = speaker.stats()
    assert any(reasons.get("no lease") == 2 for reasons in stats["ignored"].values()), stats
    speaker.cmd("unblock 192.0.2.100")
    assert lan.arping("192.0.2.100", count=1) == [mac]
    assert speaker.stop() == 0

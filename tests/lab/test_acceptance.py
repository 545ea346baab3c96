"""Issue 6 acceptance items on a running lab (3 nodes, controller, speakers with membership,
backends): NDP answers for the IPv6 Service from the elected node only, endpoints going
not-ready withdraw the announcement (and a `Local` Service moves to the node that has a ready
endpoint), gratuitous ARP seen by a capture in the client namespace on takeover.

One lab serves the module; each test leaves it as it found it."""

from __future__ import annotations

import itertools
import os
import queue
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from metallb_lab import netns
from metallb_lab.lab import objects
from metallb_lab.lab.layout import ServicePlan, expected_owner
from metallb_lab.lab.lifecycle import down, up
from metallb_lab.lab.running import Lab
from metallb_lab.netns import wait_for

from .conftest import TEST_PREFIX

pytestmark = pytest.mark.netns
_ids = itertools.count()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    reason = netns.available()
    if reason is not None:
        pytest.skip(reason)
    prefix = f"{TEST_PREFIX}{os.getpid()}x9{next(_ids)}"
    directory: Path = tmp_path_factory.mktemp("lab")
    try:
        yield up(3, directory=directory, prefix=prefix, tools=("curl", "arping", "ndisc6"))
    finally:
        report = down(directory, prefix)
        assert report.clean, report


def _plan(lab: Lab, name: str) -> ServicePlan:
    return next(s for s in lab.layout.services if s.name == name)


def _set_endpoints(
    lab: Lab, name: str, nodes: list[str], ready: bool | dict[str, bool] = True
) -> None:
    plan = _plan(lab, name)
    lab.rest.replace(
        objects.endpoint_slice(
            name, plan.family, nodes, all_nodes=lab.layout.node_names, ready=ready
        )
    )


def test_ndp_answers_for_the_ipv6_service_from_the_elected_node_only(lab: Lab) -> None:
    ip6 = lab.state.service_ips["web6"][0]
    assert ":" in ip6
    elected = lab.expected_owners()["web6"]
    assert elected is not None
    out = lab.client.run(["ndisc6", "-m", "-n", "-r", "3", "-w", "1000", ip6, "br0"]).stdout
    macs = {m.lower() for m in re.findall(r"Target link-layer address: ([0-9A-Fa-f:]+)", out)}
    assert macs == {lab.state.macs[elected]}, out
    assert lab.announcers()[ip6] == {elected}
    assert lab.curl(ip6) == elected
    # An address of the pool that no Service uses: nobody answers.
    unused = lab.client.run(
        ["ndisc6", "-n", "-r", "2", "-w", "300", "2001:db8::11f", "br0"], check=False
    )
    assert unused.returncode != 0
    assert "Target link-layer address" not in unused.stdout
    # IPv4 the same way: one MAC, the elected one.
    ip4 = lab.state.service_ips["web"][0]
    assert lab.layer2_answers(ip4) == [lab.expected_owners()["web"]]


def test_endpoints_not_ready_withdraw_and_ready_again_announce(lab: Lab) -> None:
    ip = lab.state.service_ips["web"][0]
    elected = lab.expected_owners()["web"]
    nodes = list(lab.layout.node_names)
    _set_endpoints(lab, "web", nodes, ready=False)
    try:
        wait_for(lambda: ip not in lab.announcers(), 15, interval=0.2, what="withdrawal")
        wait_for(lambda: lab.layer2_answers(ip) == [], 10, interval=0.1, what="ARP silence")
        arping = lab.client.run(["arping", "-c", "2", "-w", "2", "-I", "br0", ip], check=False)
        assert arping.returncode != 0 and "reply from" not in arping.stdout.lower()
    finally:
        _set_endpoints(lab, "web", nodes, ready=True)
    wait_for(lambda: lab.layer2_answers(ip) == [elected], 15, interval=0.2, what="announced again")
    wait_for(lambda: lab.curl(ip, 1) == elected, 10, interval=0.2, what="served again")


def test_local_service_moves_to_the_node_with_a_ready_endpoint(lab: Lab) -> None:
    ip = lab.state.service_ips["local"][0]
    plan = _plan(lab, "local")
    (home,) = plan.endpoint_nodes
    other = next(n for n in lab.layout.node_names if n != home)
    assert lab.announcers()[ip] == {home}
    # The endpoint on `home` goes not-ready while one on `other` is ready: `other` takes over.
    _set_endpoints(lab, "local", [other, home], ready={home: False})
    try:
        wait_for(lambda: lab.announcers().get(ip) == {other}, 15, interval=0.2, what="move")
        wait_for(lambda: lab.layer2_answers(ip) == [other], 10, interval=0.2, what="ARP move")
        wait_for(lambda: lab.curl(ip, 1) == other, 10, interval=0.2, what="served by the new node")
    finally:
        _set_endpoints(lab, "local", [home])
    wait_for(lambda: lab.layer2_answers(ip) == [home], 15, interval=0.2, what="back home")


def test_gratuitous_arp_seen_in_the_client_on_takeover(lab: Lab) -> None:
    ip = lab.state.service_ips["web"][0]
    web = _plan(lab, "web")
    owner = lab.expected_owners()["web"]
    assert owner is not None and lab.announcers()[ip] == {owner}
    survivors = [n for n in lab.layout.node_names if n != owner]
    new = expected_owner(web, ip, survivors)
    assert new is not None
    new_mac, old_mac = lab.state.macs[new], lab.state.macs[owner]
    capture = subprocess.Popen(
        lab.client.argv(["tcpdump", "-l", "-n", "-e", "-i", "br0", f"arp and host {ip}"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump(stream: Iterator[str] | None) -> None:
        for line in stream or ():
            lines.put(line)

    threading.Thread(target=pump, args=(capture.stdout,), daemon=True).start()
    threading.Thread(target=pump, args=(capture.stderr,), daemon=True).start()
    seen: list[str] = []

    def saw(pattern: str) -> bool:
        while not lines.empty():
            seen.append(lines.get_nowait())
        return any(re.search(pattern, line) for line in seen)

    try:
        wait_for(lambda: saw("listening on br0"), 10, what="tcpdump to start")
        lab.crash(owner)
        wait_for(lambda: lab.curl(ip, 1) == new, 10, interval=0.1, what="the new owner serving")
        who = re.escape(ip)
        # tcpdump shows the target MAC of a request when it is not zero.
        request = (
            rf"^\S+ {new_mac} > ff:ff:ff:ff:ff:ff, .*Request who-has {who} (\(\S+\) )?tell {who},"
        )
        reply = rf"^\S+ {new_mac} > ff:ff:ff:ff:ff:ff, .*Reply {who} is-at {new_mac},"
        try:
            wait_for(lambda: saw(request) and saw(reply), 5, what="gratuitous ARP request+reply")
        except TimeoutError:
            pytest.fail(f"no gratuitous ARP from {new} ({new_mac}) in:\n{''.join(seen)}")
        # The new owner's first word on the wire is the gratuitous request, unasked.
        first = next(line for line in seen if f" {new_mac} > " in line)
        assert re.search(request, first), first
        # Nothing claims the IP with the old owner's MAC after the crash.
        assert not saw(rf"is-at {old_mac}")
    finally:
        capture.terminate()
        capture.wait(timeout=10)
        lab.restore(owner)
    lab.wait_settled(30)
    assert lab.layer2_answers(ip) == [owner]

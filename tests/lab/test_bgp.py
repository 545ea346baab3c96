"""`metallb-py lab ... --mode bgp`: FRR (zebra + bgpd) in the client namespace routes the client
to the Services the speakers announce.

Pure parts first (the plan, the config, reading FRR's JSON and log, the views), then real labs
through the CLI: up -> status (every Service reachable through FRR's routes, with the expected
next hops, ECMP in the kernel) -> down leaves nothing; down after a crash without the state
file; the demo (a node vanishes, FRR's hold timer withdraws its next hop).

A bgp lab's directory must be reachable by user `frr` (zebra drops root), so the netns tests
use a directory under /tmp, not pytest's private tmp_path.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from metallb_lab import netns
from metallb_lab.lab import processes, render
from metallb_lab.lab.layout import (
    BGP_HOLD_TIME,
    NODE_ASN,
    ROUTER_ASN,
    Mode,
    config_text,
    expected_next_hops,
    plan_lab,
)
from metallb_lab.lab.lifecycle import down
from metallb_lab.lab.preflight import preflight_bgp
from metallb_lab.lab.router import (
    ROUTER_DIR,
    json_documents,
    lab_router,
    parse_snapshot,
    searchable,
    sessions_down,
)
from metallb_lab.lab.state import LabError
from metallb_lab.lab.status import LabStatus, NodeStatus, RouterStatus, ServiceStatus
from metallb_lab.netns import is_documentation_address, wait_for
from metallb_lab.routers import FRR_BGPD, FRR_ZEBRA
from metallb_py.config import Protocol, parse_config

from .conftest import TEST_PREFIX, LabEnv

NO_TRACEBACK = "Traceback"
LAN_V4 = ipaddress.ip_network("192.0.2.0/24")
LAN_V6 = ipaddress.ip_network("2001:db8::/64")
_ids = itertools.count()

# --- plan and config -----------------------------------------------------------------------------


def test_bgp_config_peers_with_the_router_and_pools_sit_off_the_lan() -> None:
    layout = plan_lab(3, Mode.BGP)
    config = parse_config(config_text(layout))
    (peer,) = config.peers
    assert (peer.my_asn, peer.peer_asn, str(peer.address)) == (NODE_ASN, ROUTER_ASN, "192.0.2.1")
    assert peer.hold_time == BGP_HOLD_TIME and peer.node_selectors == ()
    (pool,) = config.pools
    assert pool.protocol is Protocol.BGP
    assert {net.version for net in pool.cidrs} == {4, 6}
    for net in pool.cidrs:
        assert is_documentation_address(str(net[0])) and is_documentation_address(str(net[-1]))
        # Off the LAN: the client reaches these only through routes learned by FRR.
        assert not net.overlaps(LAN_V4 if net.version == 4 else LAN_V6)
    assert pool.contains(ipaddress.ip_address("203.0.113.100"))
    assert pool.contains(ipaddress.ip_address("2001:db8:ffff::100"))


def test_expected_next_hops_cluster_everywhere_local_only_with_an_endpoint() -> None:
    web, local, web6 = plan_lab(3, Mode.BGP).services
    assert expected_next_hops(web, ["n3", "n1", "n2"]) == ("n1", "n2", "n3")
    assert expected_next_hops(web6, ["n2"]) == ("n2",)
    assert expected_next_hops(local, ["n1", "n2", "n3"]) == ("n3",)
    assert expected_next_hops(local, ["n1", "n2"]) == ()


def test_router_config_is_passive_ebgp_per_node_with_multipath(tmp_path: Path) -> None:
    layout = plan_lab(3, Mode.BGP, prefix="mlblabx")
    frr = lab_router(layout, tmp_path)
    text = frr.config_text()
    assert f"router bgp {ROUTER_ASN}" in text and " bgp router-id 192.0.2.1" in text
    for node in layout.nodes:
        assert f" neighbor {node.ipv4} remote-as {NODE_ASN}" in text
        assert f" neighbor {node.ipv4} passive" in text
        assert f" neighbor {node.ipv4} timers 1 {BGP_HOLD_TIME}" in text
    assert text.count("  maximum-paths 3") == 2  # IPv4 and IPv6 unicast
    assert frr.workdir == tmp_path / ROUTER_DIR
    # bgpd talks to the lab's zebra (no -Z) over one zserv socket; zebra runs as user frr.
    bgpd, zebra = frr.argv(), frr.zebra_argv()
    assert bgpd[0] == FRR_BGPD and "-Z" not in bgpd
    assert zebra[0] == FRR_ZEBRA and zebra[zebra.index("-u") + 1] == "frr"
    zserv = str(tmp_path / ROUTER_DIR / "zserv.api")
    assert bgpd[bgpd.index("-z") + 1] == zserv == zebra[zebra.index("-z") + 1]
    assert bgpd[bgpd.index("--vty_socket") + 1] == zebra[zebra.index("--vty_socket") + 1]


def test_searchable_by_owner_group_or_others() -> None:
    def st(uid: int, gid: int, mode: int) -> os.stat_result:
        return os.stat_result((0o040000 | mode, 0, 0, 0, uid, gid, 0, 0, 0, 0))

    assert searchable(st(0, 0, 0o711), 106, {110})
    assert not searchable(st(0, 0, 0o700), 106, {110})
    assert searchable(st(106, 0, 0o700), 106, {110})
    assert searchable(st(0, 110, 0o750), 106, {110})
    assert not searchable(st(0, 110, 0o705), 106, {110})  # group bits decide for the group


# --- reading FRR (output captured from FRR 8.4 in a lab, trimmed) --------------------------------

SNAPSHOT = """{
"ipv4Unicast":{"routerId":"192.0.2.1","as":64500,"peers":{
 "192.0.2.11":{"remoteAs":64512,"peerUptime":"00:00:00","pfxRcd":1,"state":"Established"},
 "192.0.2.12":{"remoteAs":64512,"peerUptime":"00:00:01","pfxRcd":2,"state":"Established"},
 "192.0.2.13":{"remoteAs":64512,"peerUptime":"00:00:09","pfxRcd":0,"state":"Active"}}},
"ipv6Unicast":{"routerId":"192.0.2.1","as":64500,"peers":{
 "192.0.2.11":{"remoteAs":64512,"peerUptime":"00:00:00","pfxRcd":1,"state":"Established"},
 "192.0.2.12":{"remoteAs":64512,"peerUptime":"00:00:01","pfxRcd":1,"state":"Established"}}}
}
{"203.0.113.100/32":[{"prefix":"203.0.113.100/32","protocol":"bgp","selected":true,
  "installed":true,"nexthops":[{"fib":true,"ip":"192.0.2.12","afi":"ipv4","active":true}]}],
 "203.0.113.101/32":[{"prefix":"203.0.113.101/32","protocol":"bgp","selected":true,
  "installed":true,"nexthops":[
   {"fib":true,"ip":"192.0.2.11","afi":"ipv4","interfaceName":"br0","active":true},
   {"fib":true,"ip":"192.0.2.12","afi":"ipv4","interfaceName":"br0","active":true},
   {"ip":"192.0.2.13","afi":"ipv4","interfaceName":"br0"}]}],
 "203.0.113.102/32":[{"prefix":"203.0.113.102/32","protocol":"bgp",
  "nexthops":[{"ip":"192.0.2.13","afi":"ipv4"}]}]}
{"2001:db8:ffff::100/128":[{"prefix":"2001:db8:ffff::100/128","protocol":"bgp",
  "selected":true,"installed":true,"nexthops":[
   {"fib":true,"ip":"2001:db8::12","afi":"ipv6","active":true},
   {"fib":true,"ip":"2001:db8::11","afi":"ipv6","active":true}]}]}
"""


def test_snapshot_reads_sessions_and_installed_next_hops() -> None:
    assert len(json_documents(SNAPSHOT)) == 3
    view = parse_snapshot(SNAPSHOT)
    assert view.peers["192.0.2.12"].state == "Established"
    assert view.peers["192.0.2.12"].prefixes == {"ipv4": 2, "ipv6": 1}
    assert view.peers["192.0.2.13"].state == "Active"
    assert view.peers["192.0.2.13"].prefixes == {"ipv4": 0}
    # Only next hops in the FIB count; a route that is not installed has none.
    assert view.hops_of("203.0.113.101") == ("192.0.2.11", "192.0.2.12")
    assert view.hops_of("203.0.113.100") == ("192.0.2.12",)
    assert view.hops_of("203.0.113.102") == ()
    assert view.hops_of("2001:db8:ffff::100") == ("2001:db8::11", "2001:db8::12")
    with pytest.raises(RuntimeError, match="2 JSON documents"):
        parse_snapshot("{}\n{}")


BGPD_LOG = """\
2026/11/25 16:34:17.992939 BGP: [N9HHH-F8H1M] %ADJCHANGE: neighbor 192.0.2.11(Unknown) in vrf default Up
2026/11/25 16:34:18.939870 BGP: [MJ4D6-VBJKV][EC 33554454] 192.0.2.11 [Error] bgp_read_packet error: Connection reset by peer
2026/11/25 16:34:18.940037 BGP: [PXVXG-TFNNT] %ADJCHANGE: neighbor 192.0.2.11(Unknown) in vrf default Down Peer closed the session
2026/11/25 16:30:48.012391 BGP: [HZN6M-XRM1G] %NOTIFICATION: sent to neighbor 192.0.2.12 4/0 (Hold Timer Expired) 0 bytes
2026/11/25 16:30:48.012439 BGP: [PXVXG-TFNNT] %ADJCHANGE: neighbor 192.0.2.12(Unknown) in vrf default Down BGP Notification send
"""


def test_sessions_down_from_the_bgpd_log() -> None:
    events = sessions_down(BGPD_LOG)
    assert [(e.neighbor, e.reason) for e in events] == [
        ("192.0.2.11", "Peer closed the session"),
        ("192.0.2.12", "BGP Notification send: 4/0 Hold Timer Expired"),
    ]
    assert events[0].at - events[0].at // 1 == pytest.approx(0.940037, abs=1e-6)
    assert [e.neighbor for e in sessions_down(BGPD_LOG, since=events[0].at + 0.001)] == []


# --- views ---------------------------------------------------------------------------------------


def _bgp_status() -> LabStatus:
    layout = plan_lab(3, Mode.BGP)
    nodes = tuple(
        NodeStatus(
            n.name,
            n.netns,
            n.ipv4,
            n.ipv6,
            speaker=n.name != "n1",
            link=n.name != "n1",
            bgp="Established" if n.name != "n1" else "Active",
            bgp_up=None if n.name == "n1" else True,
            prefixes={"ipv4": 1, "ipv6": 1} if n.name != "n1" else {},
        )
        for n in layout.nodes
    )
    web = ServiceStatus(
        "web",
        "Cluster",
        ("203.0.113.101",),
        ("n2", "n3"),
        (),
        "n3",
        mode="bgp",
        next_hops=("n2", "n3"),
    )
    local = ServiceStatus(
        "local", "Local", ("203.0.113.100",), ("n3",), (), "n3", mode="bgp", next_hops=("n3",)
    )
    # Announced by n2 and n3, but FRR routes only to n2: not ok.
    web6 = ServiceStatus(
        "web6",
        "Cluster",
        ("2001:db8:ffff::100",),
        ("n2", "n3"),
        (),
        "n2",
        mode="bgp",
        next_hops=("n2",),
    )
    return LabStatus(
        layout,
        "http://127.0.0.1:40000",
        "/run/metallb-py-lab/kubeconfig",
        9,
        11,
        nodes,
        (web, local, web6),
        RouterStatus(ROUTER_ASN, "192.0.2.1", bgpd=True, zebra=True),
    )


def test_bgp_picture_and_tables() -> None:
    status = _bgp_status()
    picture = render.picture(status)
    assert "router  FRR AS 64500 (bgpd up, zebra up)" in picture
    assert "bgp Active" in picture and picture.count("bgp Established") == 2
    assert picture.count(f"AS {NODE_ASN}") == 3
    lines = render.tables(status).splitlines()
    assert "FRR ROUTE VIA" in lines[0] and "ARP/NDP" not in lines[0]
    assert lines[2].split() == [
        "default/web",
        "Cluster",
        "203.0.113.101",
        "n2,n3",
        "n2,n3",
        "(ECMP)",
        "yes",
        "n3",
    ]
    assert lines[3].split() == ["default/local", "Local", "203.0.113.100", "n3", "n3", "yes", "n3"]
    sessions = lines[lines.index("") + 1 :]
    assert sessions[0].split()[:3] == ["NODE", "PEER", "ADDRESS"]
    assert sessions[2].split() == ["n1", "192.0.2.11", "Active", "0/0", "-"]
    assert sessions[3].split() == ["n2", "192.0.2.12", "Established", "1/1", "yes"]


def test_bgp_service_ok_needs_the_route_to_match_the_announcers() -> None:
    web, local, web6 = _bgp_status().services
    assert web.ok and local.ok
    assert not web6.ok
    unrouted = ServiceStatus("web", "Cluster", ("203.0.113.101",), ("n2",), (), "n2", mode="bgp")
    assert not unrouted.ok
    wrong_answer = ServiceStatus(
        "web", "Cluster", ("203.0.113.101",), ("n2",), (), "n1", mode="bgp", next_hops=("n2",)
    )
    assert not wrong_answer.ok


# --- real labs -----------------------------------------------------------------------------------


def _frr_missing() -> str | None:
    missing = [p for p in (FRR_BGPD, FRR_ZEBRA) if not os.path.exists(p)]
    if shutil.which("vtysh") is None:
        missing.append("vtysh")
    return f"FRR missing: {', '.join(missing)}" if missing else None


@pytest.fixture
def bgp_env() -> Iterator[LabEnv]:
    reason = netns.available() or _frr_missing()
    if reason is not None:
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix="mlblabt-bgp-"))
    os.chmod(base, 0o711)  # zebra (user frr) must reach <base>/lab/frr
    env = LabEnv(f"{TEST_PREFIX}{os.getpid()}x8{next(_ids)}", base / "lab")
    try:
        yield env
    finally:
        down(env.directory, env.prefix)
        shutil.rmtree(base, ignore_errors=True)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _lab_processes(env: LabEnv) -> list[str]:
    """Every process of this lab, by the marker and by its command line naming the lab's
    directory (bgpd and zebra do: their config, pid and socket paths)."""
    found = [f"{pid} {_cmdline(pid)}" for pid in processes.marked_pids(env.prefix)]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and processes.running(int(entry.name)):
            cmd = _cmdline(int(entry.name))
            if str(env.directory) in cmd:
                found.append(f"{entry.name} {cmd}")
    return found


def _frr_daemons(env: LabEnv) -> dict[str, int]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            cmd = _cmdline(int(entry.name))
            for daemon in ("bgpd", "zebra"):
                if cmd.startswith(f"/usr/lib/frr/{daemon} ") and str(env.directory) in cmd:
                    out[daemon] = int(entry.name)
    return out


@pytest.mark.netns
def test_bgp_up_status_down(bgp_env: LabEnv) -> None:
    up = bgp_env.cli("up", "--mode", "bgp", "--nodes", "3")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "router  FRR AS 64500" in up.stdout and "FRR ROUTE VIA" in up.stdout
    assert "vtysh --vty_socket" in up.stdout
    state = json.loads((bgp_env.directory / "state.json").read_text())
    roles = {p["role"] for p in state["processes"]}
    assert roles == {
        "apiserver",
        "portal",
        "controller",
        "backend",
        "speaker",
        "bgpd",
        "bfdd",
        "zebra",
    }
    daemons = _frr_daemons(bgp_env)
    assert set(daemons) == {"bgpd", "zebra"}
    # zebra runs as user frr (the notes' recipe), bgpd as root.
    assert Path(f"/proc/{daemons['zebra']}").stat().st_uid != 0
    client = f"{bgp_env.prefix}-client"
    assert set(netns.run(["ip", "netns", "pids", client]).stdout.split()) >= {
        str(daemons["bgpd"]),
        str(daemons["zebra"]),
    }

    status = bgp_env.cli("status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    report = json.loads(status.stdout)
    assert report["mode"] == "bgp"
    assert report["router"] == {
        "asn": ROUTER_ASN,
        "router_id": "192.0.2.1",
        "bgpd": True,
        "zebra": True,
        "error": "",
    }
    for node in report["nodes"]:
        assert node["bgp"] == "Established" and node["bgp_up"] is True, node
        assert node["prefixes"]["ipv4"] >= 1 and node["prefixes"]["ipv6"] == 1, node
    services = {s["name"]: s for s in report["services"]}
    expected = {"web": ["n1", "n2", "n3"], "local": ["n3"], "web6": ["n1", "n2", "n3"]}
    for name, hops in expected.items():
        s = services[name]
        assert s["ok"], s
        assert s["next_hops"] == s["announcers"] == s["kernel_next_hops"] == hops, s
        assert s["http"] in hops and s["layer2"] == []
        v6 = name == "web6"
        assert s["next_hop_addresses"] == [
            f"2001:db8::1{n[1:]}" if v6 else f"192.0.2.1{n[1:]}" for n in hops
        ]
        (ip,) = s["ips"]
        pool = ipaddress.ip_network("2001:db8:ffff::/48" if v6 else "203.0.113.0/24")
        assert ipaddress.ip_address(ip) in pool

    # FRR itself (not the lab's parser): three eBGP paths from AS 64512, all multipath.
    frr_dir = bgp_env.directory / ROUTER_DIR
    web_ip = services["web"]["ips"][0]
    detail = json.loads(
        netns.run(
            [
                "ip",
                "netns",
                "exec",
                client,
                "vtysh",
                "--vty_socket",
                str(frr_dir),
                "-c",
                f"show bgp ipv4 unicast {web_ip}/32 json",
            ]
        ).stdout
    )
    paths = detail["paths"]
    assert sorted(p["peer"]["peerId"] for p in paths) == ["192.0.2.11", "192.0.2.12", "192.0.2.13"]
    assert all(p.get("multipath") for p in paths) and all(
        p["aspath"]["string"] == str(NODE_ASN) for p in paths
    )

    # The data path is ECMP: flows from 32 client addresses spread over all three nodes (the
    # kernel hashes source and destination), each answered by a node the route leads to.
    sources = [f"192.0.2.{i}" for i in range(160, 192)]
    for src in sources:
        netns.run(["ip", "-n", client, "addr", "add", f"{src}/32", "dev", "br0"])
    answers = set()
    for src in sources:
        out = netns.run(
            [
                "ip",
                "netns",
                "exec",
                client,
                "curl",
                "-sS",
                "--interface",
                src,
                "-m",
                "2",
                f"http://{web_ip}/",
            ]
        )
        answers.add(out.stdout.strip())
    assert answers == {"n1", "n2", "n3"}

    text = bgp_env.cli("status")
    assert text.returncode == 0, text.stdout + text.stderr
    assert "n1,n2,n3 (ECMP)" in text.stdout and "SPEAKER SESSION UP" in text.stdout

    down = bgp_env.cli("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "removed 4 namespaces" in down.stdout
    assert bgp_env.namespaces() == []
    assert _lab_processes(bgp_env) == []
    assert not bgp_env.directory.exists()


@pytest.mark.netns
def test_bgp_down_after_a_crash_without_state(bgp_env: LabEnv) -> None:
    up = bgp_env.cli("up", "--mode", "bgp", "--nodes", "2")
    assert up.returncode == 0, up.stdout + up.stderr
    state = json.loads((bgp_env.directory / "state.json").read_text())
    # The API server, the portal and one speaker die; the state is lost; FRR keeps running.
    for p in state["processes"]:
        if p["role"] in ("apiserver", "portal") or (p["role"], p["node"]) == ("speaker", "n1"):
            os.kill(p["pid"], signal.SIGKILL)
    (bgp_env.directory / "state.json").unlink()
    recorded = [(p["pid"], p["start_time"]) for p in state["processes"]]
    wait_for(
        lambda: sum(processes.running(pid, st) for pid, st in recorded) == len(recorded) - 3,
        5,
        what="the killed processes to be gone",
    )
    assert set(_frr_daemons(bgp_env)) == {"bgpd", "zebra"}
    refused = bgp_env.cli("up", "--mode", "bgp")
    assert refused.returncode == 1 and "leftovers" in refused.stderr

    down = bgp_env.cli("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert bgp_env.namespaces() == []
    assert _frr_daemons(bgp_env) == {}
    assert _lab_processes(bgp_env) == []
    assert not (bgp_env.directory / ROUTER_DIR).exists()


@pytest.mark.netns
def test_bgp_demo(bgp_env: LabEnv) -> None:
    demo = bgp_env.cli("demo", "--mode", "bgp", "--nodes", "2", timeout=300)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    out = demo.stdout
    moved = re.search(r"last answer from (n\d), first answer from (n\d)", out)
    assert moved is not None and moved.group(1) != moved.group(2), out
    gap = re.search(r"gap seen by the client: (\d+) ms", out)
    assert gap is not None and int(gap.group(1)) > 0, out
    # The node vanished without a word: FRR's BFD found out (issue 14: no longer the hold
    # timer), then withdrew it.
    assert re.search(r"FRR: session with n\d \(192\.0\.2\.1\d\) down [\d.]+ s after", out), out
    assert "6/10 Cease/BFD Down" in out
    assert "FRR's route for web (203.0.113." in out and f"now via {moved.group(2)}" in out
    assert "demo OK" in out
    assert bgp_env.namespaces() == []
    assert _lab_processes(bgp_env) == []


@pytest.mark.netns
def test_bgp_lab_dir_closed_to_frr_is_a_clear_error(tmp_path: Path) -> None:
    """zebra cannot reach a directory under a 0700 parent: `up` says so and removes what it
    built (API server, namespaces)."""
    reason = netns.available() or _frr_missing()
    if reason is not None:
        pytest.skip(reason)
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    env = LabEnv(f"{TEST_PREFIX}{os.getpid()}x8{next(_ids)}", closed / "lab")
    try:
        result = env.cli("up", "--mode", "bgp", "--nodes", "1")
        assert result.returncode == 1
        assert "cannot reach" in result.stderr and "not searchable" in result.stderr
        assert NO_TRACEBACK not in result.stderr
        assert env.namespaces() == []
        assert processes.marked_pids(env.prefix) == []
    finally:
        down(env.directory, env.prefix)


def test_missing_frr_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("preflight starts with the root check")
    empty = tmp_path / "bin"
    empty.mkdir()
    for tool in ("ip", "curl", "arping", "ndisc6"):
        found = shutil.which(tool)
        if found is None:
            pytest.skip(f"{tool} not installed")
        (empty / tool).symlink_to(found)
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(LabError, match=r"missing vtysh: .*apt-get install frr"):
        preflight_bgp()

"""SIGTERM ends the controller and the speaker within a second (issue 11).

The manifests give the controller `terminationGracePeriodSeconds: 0` and the speaker 2: a process
that takes longer ends in a SIGKILL on every restart. The speaker still says goodbye on the way
out: a Cease NOTIFICATION (6/2, Administrative Shutdown) to each BGP peer and a leaving heartbeat
to the other speakers.

Each test starts the real process against the test API server, waits for `/readyz` 200 (which
needs a loaded config, so the ConfigMap is created first), sends SIGTERM and requires exit code 0
within EXIT_BUDGET seconds, measured from the signal to the process's exit. A hard behaviour
bound (the kubelet's), not a benchmark.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from metallb_lab import netns
from metallb_lab.apiserver import ApiServer
from metallb_lab.lab import objects
from metallb_lab.lab.commands import node_kubeconfig, portal_command, speaker_args, speaker_env
from metallb_lab.lab.layout import CLIENT_IPV4, NODE_API_PORT, plan_lab
from metallb_lab.lab.topology import build_lan
from metallb_lab.netns import wait_for
from metallb_py.bgp.host import LocalHost
from metallb_py.metrics import parse_exposition
from metallb_py.speaker import heartbeat
from tests.bgp import peer_wire as wire

from .conftest import NS, Component, put_endpoints
from .test_controller import ips, service, set_config

EXIT_BUDGET = 1.0
"""Seconds from SIGTERM to exit."""

POOL_ANNOTATION = "metallb.universe.tf/address-pool"
SECRET = "shutdown-test-secret-0123456789"
PEER_ASN, NODE_ASN = 64500, 64512
LAYER2_IP, BGP_IP = "192.0.2.100", "203.0.113.100"
POOLS = """
address-pools:
- name: lan
  protocol: layer2
  addresses: [192.0.2.100-192.0.2.119]
- name: routed
  protocol: bgp
  addresses: [203.0.113.100-203.0.113.119]
"""
PEERS = f"""
peers:
- peer-address: {CLIENT_IPV4}
  peer-asn: {PEER_ASN}
  my-asn: {NODE_ASN}
"""


def sigterm_exit(c: Component) -> tuple[int, float]:
    """Send SIGTERM; (exit code, seconds from the signal to the exit)."""
    assert c.proc is not None and c.proc.poll() is None, "the process is not running"
    sent = time.monotonic()
    c.proc.send_signal(signal.SIGTERM)
    try:
        code = c.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        c.proc.kill()
        pytest.fail("still running 20 s after SIGTERM")
    return code, time.monotonic() - sent


def assert_quick_clean_exit(c: Component, what: str) -> None:
    code, took = sigterm_exit(c)
    assert code == 0, f"{what} exited with {code}; last log lines: {c.logs()[-10:]}"
    assert took < EXIT_BUDGET, f"{what} took {took:.2f} s from SIGTERM to exit"


def http_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def wait_ready(c: Component) -> None:
    port = c.port
    try:
        wait_for(lambda: http_ready(port), 20, what="/readyz 200")
    except TimeoutError:
        print(*c.logs()[-20:], sep="\n")
        raise


# --- controller ----------------------------------------------------------------------------


def test_controller_exits_within_a_second_of_sigterm(api, start_controller):
    set_config(api, POOLS)
    api.create(service("web"))
    c = start_controller()
    wait_ready(c)
    wait_for(lambda: ips(api, "web"), 20, what="IP allocated")
    assert_quick_clean_exit(c, "the controller")


def test_controller_exits_within_a_second_with_a_status_write_in_flight(api, start_controller):
    """The API server hangs (every answer 20 s late) while a status write is in flight: exiting
    must not wait for it. The write is one PUT, so it lands whole or not at all."""
    set_config(api, POOLS)
    c = start_controller()
    wait_ready(c)
    api.delay(20)
    api.create(service("late"))
    wait_for(lambda: c.log_has(service="apps/late", event="ipAllocated"), 10, what="the allocation")
    time.sleep(0.2)  # the PUT leaves right after the decision; let it reach the server
    assert ips(api, "late") == []  # still in flight
    assert_quick_clean_exit(c, "the controller")


# --- speaker ---------------------------------------------------------------------------------


class StubPeer:
    """A passive BGP peer in the client namespace: accepts one session, answers OPEN and records
    every message until the speaker closes the connection."""

    def __init__(self, ns: netns.Netns, address: str, asn: int) -> None:
        self.address, self.asn = address, asn
        self.sock = LocalHost(ns.name).run(lambda: socket.socket(socket.AF_INET))
        self.sock.setblocking(True)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, 179))
        self.sock.listen(4)
        self.sock.settimeout(30)
        self.messages: list[wire.Seen] = []
        self.error: BaseException | None = None
        self.closed = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._serve, name="stub-peer", daemon=True).start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
            conn.settimeout(60)
            with conn:
                buf = b""
                while data := conn.recv(65536):
                    buf += data
                    while len(buf) >= 19 and len(buf) >= (size := int.from_bytes(buf[16:18])):
                        # Read with scapy, answered with scapy-built bytes: not our codec.
                        msg, buf = wire.read_message(buf[:size]), buf[size:]
                        with self._lock:
                            self.messages.append(msg)
                        if isinstance(msg, wire.SeenOpen):
                            conn.sendall(wire.open_message(self.asn, 90, self.address))
                            conn.sendall(wire.KEEPALIVE)
        except BaseException as exc:
            self.error = exc
        finally:
            self.sock.close()
            self.closed.set()

    def received(self) -> list[wire.Seen]:
        with self._lock:
            return list(self.messages)

    def announced(self, prefix: str) -> bool:
        net = str(ipaddress.ip_network(prefix))
        return any(isinstance(x, wire.SeenUpdate) and net in x.announced for x in self.received())


class StubSpeaker:
    """The membership port of another speaker in the client namespace: records heartbeats."""

    def __init__(self, ns: netns.Netns, address: str) -> None:
        self.sock = LocalHost(ns.name).run(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        self.sock.bind((address, 7946))
        self.sock.settimeout(0.1)
        self.key = heartbeat.derive_key(SECRET)
        self.heartbeats: list[heartbeat.Heartbeat] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="stub-speaker", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(2048)
            except TimeoutError:
                continue
            with self._lock:
                self.heartbeats.append(heartbeat.decode(data, self.key))

    def received(self) -> list[heartbeat.Heartbeat]:
        with self._lock:
            return list(self.heartbeats)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


class OneNode:
    """Client namespace (the LAN's bridge, 192.0.2.1) and node n1 (192.0.2.11) on it; the test
    API server reached from n1 through a portal; n1's Node and speaker Pod registered, plus a
    speaker Pod "n2" whose address is the client's, so n1 sends its heartbeats there."""

    def __init__(self, topo: netns.Topology, api: ApiServer, tmp: Path) -> None:
        self.topo, self.api = topo, api
        self.layout = plan_lab(1)
        lan = build_lan(topo, self.layout, client_suffix="c")
        self.client, self.node = lan.client, lan.nodes["n1"]
        self.node_ip = self.layout.node("n1").ipv4
        objects.register(api, objects.node("n1", self.node_ip))
        objects.register(api, objects.speaker_pod("n1", self.node_ip, NS))
        objects.register(api, objects.speaker_pod("n2", CLIENT_IPV4, NS))
        topo.spawn(None, portal_command(api.port, [self.node.name]))
        self.kubeconfig = node_kubeconfig(tmp / "node-kubeconfig", NS)
        wait_for(self._portal_up, 10, what="the API portal in the node namespace")

    def _portal_up(self) -> bool:
        def connect() -> bool:
            try:
                socket.create_connection(("127.0.0.1", NODE_API_PORT), timeout=1).close()
            except OSError:
                return False
            return True

        return LocalHost(self.node.name).run(connect)

    def add_service(self, name: str, pool: str, ip: str) -> None:
        created = self.api.create(service(name, meta={"annotations": {POOL_ANNOTATION: pool}}))
        created["status"] = {"loadBalancer": {"ingress": [{"ip": ip}]}}
        self.api.update_status(created)
        put_endpoints(self.api, name, ["n1"])

    def start_speaker(self) -> Component:
        env = speaker_env("n1", self.node_ip, SECRET)
        c = Component(speaker_args(self.kubeconfig), env, wrap=self.node.argv([])).start()
        assert c.proc is not None
        self.topo.processes.append(c.proc)  # type: ignore[arg-type]
        return c

    def curl(self, path: str) -> str | None:
        out = self.node.run(
            ["curl", "-sf", "--max-time", "2", f"http://127.0.0.1:7472{path}"], check=False
        )
        return out.stdout if out.returncode == 0 else None

    def announces(self, service_key: str, protocol: str, ip: str) -> bool:
        labels = frozenset(
            {"service": service_key, "protocol": protocol, "node": "n1", "ip": ip}.items()
        )
        metrics = parse_exposition(self.curl("/metrics") or "")
        return metrics.get(("metallb_speaker_announced", labels)) == 1


@pytest.fixture
def one_node(topo, api, tmp_path) -> Iterator[OneNode]:
    yield OneNode(topo, api, tmp_path)


@pytest.mark.netns
@pytest.mark.parametrize("bgp", [False, True], ids=["layer2", "layer2+bgp"])
def test_speaker_exits_within_a_second_of_sigterm_after_saying_goodbye(one_node, bgp):
    net = one_node
    set_config(net.api, (PEERS if bgp else "") + POOLS)
    net.add_service("web", "lan", LAYER2_IP)
    net.add_service("routed", "routed", BGP_IP)
    peer = StubPeer(net.client, CLIENT_IPV4, PEER_ASN) if bgp else None
    other = StubSpeaker(net.client, CLIENT_IPV4)
    try:
        c = net.start_speaker()
        wait_for(lambda: net.curl("/readyz") is not None, 30, what="speaker /readyz 200")
        wait_for(
            lambda: net.announces("apps/web", "layer2", LAYER2_IP), 10, what="layer2 announced"
        )
        if peer is not None:
            wait_for(lambda: peer.announced(f"{BGP_IP}/32"), 10, what="the route at the peer")
        wait_for(other.received, 5, what="a heartbeat")

        assert_quick_clean_exit(c, "the speaker")

        assert any(h.node == "n1" and h.leaving for h in other.received()), (
            "no leaving heartbeat before the exit"
        )
        if peer is not None:
            assert peer.closed.wait(5), "the BGP connection is still open"
            notifications = [x for x in peer.received() if isinstance(x, wire.SeenNotification)]
            cease = (6, 2)  # Cease / Administrative Shutdown (RFC 4486)
            assert [(n.code, n.subcode) for n in notifications] == [cease], (
                f"peer got {notifications}, error {peer.error!r}"
            )
    finally:
        other.close()

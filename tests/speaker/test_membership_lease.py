"""The layer2 lease, the heal handover, the jitter-aware timeout, probes and link state of the
membership core, on a simulated network with a fake clock (docs/membership.md, "Layer2 lease").

The simulation is the test's own: each node sends a round every `interval` from its own phase,
datagrams arrive after a fixed delay unless the test's drop rule says otherwise. The properties
are checked on what the nodes report (`View`), against times the simulation itself measured.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType

import pytest

from metallb_py.config.model import Protocol
from metallb_py.config.parser import parse_config
from metallb_py.speaker import decision as d
from metallb_py.speaker.endpoints import ServiceEndpoints
from metallb_py.speaker.heartbeat import (
    Heartbeat,
    Liveness,
    MessageError,
    Timing,
    decode,
    derive_key,
    encode,
    node_tag,
)

KEY = derive_key("s3cret")
WALL = 1_700_000_000_000
TIMING = Timing()  # the defaults: 25 ms rounds, dead after 150 ms, lease 100 ms
IP = ipaddress.ip_address("192.0.2.100")
IP6 = ipaddress.ip_address("2001:db8::100")


# --- wire format of the extension ----------------------------------------------------------


def test_extension_roundtrip_and_size():
    message = Heartbeat(
        "node-b",
        7,
        42,
        WALL,
        ack_boot=5,
        ack_seq=9,
        reports=((0xDEADBEEF, 12), (1, 0)),
        claims=frozenset({IP, IP6}),
        probe=True,
    )
    data = encode(message, KEY)
    assert decode(data, KEY) == message
    # header 32 + name 6 + extension 22 + 2 reports x 6 + 4 + 16 + MAC 32
    assert len(data) == 32 + 6 + 22 + 12 + 4 + 16 + 32
    assert data[5] & 0x04 and data[5] & 0x08  # extended, probe
    # Without extension contents the datagram is the plain 70-byte heartbeat.
    assert len(encode(Heartbeat("node-b", 7, 42, WALL), KEY)) == 70


@pytest.mark.parametrize("cut", [1, 6, 20])
def test_truncated_or_padded_extension_is_malformed(cut):
    data = encode(Heartbeat("b", 1, 1, WALL, ack_seq=3, claims=frozenset({IP})), KEY)
    body = data[:-32]
    for broken in (body[:-cut], body + b"\0" * cut):
        with pytest.raises(MessageError):
            decode(broken + data[-32:], KEY)


def test_report_ages_are_capped():
    data = encode(Heartbeat("b", 1, 1, WALL, reports=((1, 10**6),)), KEY)
    assert decode(data, KEY).reports == ((1, 65534),)


# --- a simulated network ------------------------------------------------------------------


@dataclass
class Net:
    """Nodes exchanging heartbeats in 1 ms steps; `drop(src, dst, t)` loses a datagram."""

    names: list[str]
    delay: float = 0.0005
    phases: dict[str, float] = field(default_factory=dict)
    drop: Callable[[str, str, float], bool] = lambda src, dst, t: False
    claims: dict[str, frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address]] = field(
        default_factory=dict
    )
    timing: Timing = TIMING

    def __post_init__(self) -> None:
        self.now = 0.0
        self.nodes = {
            n: Liveness(n, self.timing, boot_id=100 + i) for i, n in enumerate(self.names)
        }
        addresses = {n: f"192.0.2.{10 + i}" for i, n in enumerate(self.names)}
        for node in self.nodes.values():
            node.set_peers(addresses, 0.0)
        self.next_send = {n: self.phases.get(n, 0.0) for n in self.names}
        self.in_flight: list[tuple[float, str, Heartbeat]] = []
        self.down: set[str] = set()

    def send(self, src: str, only: str | None = None) -> None:
        node = self.nodes[src]
        for dst, _, hb in node.outgoing(self.now, WALL, self.claims.get(src, ()), only=only):
            if not self.drop(src, dst, self.now):
                self.in_flight.append((self.now + self.delay, dst, hb))

    def step(self, dt: float = 0.001) -> None:
        self.now = round(self.now + dt, 6)
        for name in self.names:
            if name in self.down:
                continue
            while self.next_send[name] <= self.now:
                self.send(name)
                self.next_send[name] += self.timing.interval
        arrived = [m for m in self.in_flight if m[0] <= self.now]
        self.in_flight = [m for m in self.in_flight if m[0] > self.now]
        for _, dst, hb in arrived:
            if dst in self.down:
                continue
            assert self.nodes[dst].accept(hb, self.now, WALL) is None
            if hb.probe and self.nodes[dst].reply_due(hb.node, self.now):
                self.send(dst, only=hb.node)

    def run(self, seconds: float, each: Callable[[], None] | None = None) -> None:
        for _ in range(round(seconds * 1000)):
            self.step()
            if each is not None:
                each()

    def view(self, name: str) -> d.NodeView:
        v = self.nodes[name].view(self.now)
        return d.NodeView(name, v.live_nodes, not v.may_answer, claimed=v.claimed)


def first_time(net: Net, seconds: float, condition: Callable[[], bool]) -> float | None:
    found: list[float] = []

    def check() -> None:
        if not found and condition():
            found.append(net.now)

    net.run(seconds, check)
    return found[0] if found else None


# --- the lease ----------------------------------------------------------------------------


@pytest.mark.parametrize("phase_ms", [0, 3, 7, 11, 13, 17, 19, 23])
@pytest.mark.parametrize("cut_ms", [1000, 1005, 1012, 1024])
def test_isolated_owner_stops_before_anyone_may_take_over(phase_ms, cut_ms):
    """Heartbeats to and from `o` dropped from `cut` on (the nft rule of the issue): `o`
    may no longer answer strictly before `b` or `c` sees it dead, by at least 40 ms."""
    cut = cut_ms / 1000
    net = Net(
        ["o", "b", "c"],
        phases={"o": phase_ms / 1000, "b": 0.004, "c": 0.016},
        drop=lambda src, dst, t: t >= cut and "o" in (src, dst),
    )
    net.run(cut)
    assert net.nodes["o"].view(net.now).may_answer
    assert all("o" in net.nodes[n].view(net.now).live_nodes for n in ("b", "c"))
    stopped: float | None = None
    taken: float | None = None
    for _ in range(1000):
        net.step()
        if stopped is None and not net.nodes["o"].view(net.now).may_answer:
            stopped = net.now
        if taken is None and any("o" not in net.nodes[n].view(net.now).live_nodes for n in "bc"):
            taken = net.now
    assert stopped is not None and taken is not None
    assert taken - stopped >= 0.04, (stopped, taken)
    # And takeover stays fast: within dead_after (+ one round) of the cut.
    assert taken - cut <= TIMING.dead_after + TIMING.interval + 0.002


def test_one_way_loss_from_the_owner_neither_splits_nor_fails_over():
    """`o` -> `b` lost, everything else fine: `b` no longer hears `o` directly, but `c` says
    it does (the indirect probe), so nobody takes over; `o` keeps `c`'s lease and answers."""
    net = Net(["o", "b", "c"], drop=lambda src, dst, t: t >= 1.0 and (src, dst) == ("o", "b"))
    net.run(3.0)
    b = net.nodes["b"]
    assert not b.heard_directly("o", net.now)
    assert "o" in b.view(net.now).live_nodes
    o = net.nodes["o"].view(net.now)
    assert o.may_answer and o.leased == 2


def test_owner_keeps_answering_when_another_node_crashes():
    net = Net(["o", "b", "c"])
    net.run(1.0)
    net.down.add("c")
    net.run(1.0)
    o = net.nodes["o"].view(net.now)
    assert o.live_nodes == {"o", "b"} and o.may_answer


def test_two_node_cluster_survivor_keeps_answering():
    """No quorum in a 2-node cluster: the survivor (or either side of a split) serves."""
    net = Net(["o", "b"])
    net.run(1.0)
    net.down.add("b")
    net.run(1.0)
    assert net.nodes["o"].view(net.now).may_answer
    single = Liveness("solo", TIMING)
    single.set_peers({}, 0.0)
    assert single.view(0.0).may_answer


def test_lease_needs_acknowledgements_not_just_hearing():
    """`o` hears `b` and `c`, but they hear nothing from it: no acknowledgement, no lease."""
    net = Net(["o", "b", "c"], drop=lambda src, dst, t: t >= 1.0 and src == "o")
    net.run(1.0 + TIMING.lease_time + 0.03)
    o = net.nodes["o"].view(net.now)
    assert o.live_nodes == {"o", "b", "c"}
    assert o.leased == 1 and not o.may_answer


# --- heal: the handover -------------------------------------------------------------------


ALWAYS_READY = ServiceEndpoints(MappingProxyType({"10.0.0.1": "x"}))
"""One ready endpoint: a `Cluster` Service may be announced."""


@pytest.mark.parametrize("lag_ms", [-30, -10, 0, 10, 30, 60])
def test_returning_node_waits_until_the_interim_owner_handed_over(lag_ms):
    """Heal: the node first in the election for IP comes back while the interim owner answers
    for IP. It starts only after a heartbeat of the interim owner, sent after that one
    stopped, says so. `lag_ms`: the path to the interim owner heals that much after the path to
    the third node (negative: before), so the returning node may first learn that the interim
    owner is alive from the third node's reports (then what it answers for is unknown)."""
    names = ["o", "b", "c"]
    first = d.election_order(names, IP)[0]
    interim = d.election_order([n for n in names if n != first], IP)[0]
    heal_third, heal_interim = 1.0 + max(0, -lag_ms) / 1000, 1.0 + max(0, lag_ms) / 1000

    def drop(src: str, dst: str, t: float) -> bool:
        if first not in (src, dst):
            return False
        other = dst if src == first else src
        return t < (heal_interim if other == interim else heal_third) or t < 0.5

    net = Net(names, drop=lambda src, dst, t: t >= 0.5 and drop(src, dst, t))
    net.claims[first] = frozenset({IP})
    net.run(0.5)
    net.claims[first] = frozenset()
    net.claims[interim] = frozenset({IP})
    net.run(0.5)
    assert d.layer2_reason(False, ALWAYS_READY, net.view(interim), [IP], True) is None
    answering = {interim: True, first: False}
    overlap: list[float] = []
    started: list[float] = []

    def each() -> None:
        # Each node acts on its view at once, as the speaker does on a change.
        for name in (first, interim):
            reason = d.layer2_reason(False, ALWAYS_READY, net.view(name), [IP], answering[name])
            answering[name] = reason is None
            net.claims[name] = frozenset({IP}) if answering[name] else frozenset()
        if answering[first] and answering[interim]:
            overlap.append(net.now)
        if answering[first] and not started:
            started.append(net.now)

    net.run(1.0, each)
    assert not overlap
    assert answering == {first: True, interim: False}
    assert started and started[0] - heal_interim <= 2 * TIMING.interval + 0.01


def test_a_peer_heard_only_through_others_has_unknown_claims():
    state = Liveness("a", TIMING)
    state.set_peers({"b": "192.0.2.11", "c": "192.0.2.12"}, 0.0)
    state.accept(Heartbeat("b", 1, 1, WALL), 1.0, WALL)
    state.accept(Heartbeat("c", 1, 1, WALL), 1.0, WALL)
    assert state.view(1.0).claimed == frozenset()
    # b silent for 0.5 s, but c heard it 10 ms ago.
    state.accept(Heartbeat("c", 1, 2, WALL, reports=((node_tag("b"), 10),)), 1.5, WALL)
    view = state.view(1.5)
    assert "b" in view.live_nodes and view.claimed is None
    me = d.election_order(["a", "b", "c"], IP)[0]
    node = d.NodeView(me, view.live_nodes, claimed=view.claimed)
    assert d.layer2_reason(False, ALWAYS_READY, node, [IP]) is d.Reason.AWAITING_HANDOVER
    assert d.layer2_reason(False, ALWAYS_READY, node, [IP], answering=True) is None
    # Heard directly again: its claims are known, and the 0.5 s it was kept alive by c's
    # reports is no silence it survived on its own (the timeout does not learn it).
    state.accept(Heartbeat("b", 1, 2, WALL, claims=frozenset({IP})), 1.51, WALL)
    assert state.view(1.51).claimed == {IP}
    assert state.timeout("b", 1.51) == pytest.approx(TIMING.dead_after)


def test_a_claim_does_not_stop_a_node_that_already_answers():
    order = d.election_order(["a", "b"], IP)
    view = d.NodeView(order[0], frozenset({"a", "b"}), claimed=frozenset({IP}))
    assert d.layer2_reason(False, ALWAYS_READY, view, [IP], answering=True) is None
    assert (
        d.layer2_reason(False, ALWAYS_READY, view, [IP], answering=False)
        is d.Reason.AWAITING_HANDOVER
    )


def test_decide_waits_for_handover_and_keeps_an_existing_announcement():
    config = parse_config(
        "address-pools:\n- name: lan\n  protocol: layer2\n  addresses: [192.0.2.100/32]\n"
    )
    service = {
        "metadata": {"namespace": "default", "name": "web"},
        "spec": {"type": "LoadBalancer"},
        "status": {"loadBalancer": {"ingress": [{"ip": str(IP)}]}},
    }
    me = d.election_order(["a", "b"], IP)[0]
    view = d.NodeView(me, frozenset({"a", "b"}), claimed=frozenset({IP}))
    result = d.decide(service, ALWAYS_READY, config, view, None)
    assert isinstance(result, d.Withdraw) and result.reason is d.Reason.AWAITING_HANDOVER
    held = d.Announcement(Protocol.LAYER2, (IP,), "lan")
    result = d.decide(service, ALWAYS_READY, config, view, held)
    assert isinstance(result, d.Announce)


# --- the jitter-aware timeout and the direct probe ----------------------------------------


def test_timeout_grows_with_observed_silences_and_decays():
    state = Liveness("a", TIMING)
    state.set_peers({"b": "192.0.2.11"}, 0.0)
    t = 1.0
    for seq in range(1, 20):
        state.accept(Heartbeat("b", 1, seq, WALL), t, WALL)
        t += 0.025
    assert state.timeout("b", t) == pytest.approx(TIMING.dead_after)
    state.accept(Heartbeat("b", 1, 30, WALL), t + 0.12, WALL)  # a 145 ms stall
    assert state.timeout("b", t + 0.12) == pytest.approx(2 * 0.145)
    # Half as much 30 s later, never below dead_after, never above max_dead_after.
    assert state.timeout("b", t + 0.12 + 30) == pytest.approx(TIMING.dead_after)
    # Silences that grow while the peer stays alive raise it up to max_dead_after.
    state.accept(Heartbeat("b", 1, 31, WALL), t + 0.40, WALL)  # 280 ms: 560 ms
    assert state.timeout("b", t + 0.40) == pytest.approx(0.56)
    state.accept(Heartbeat("b", 1, 32, WALL), t + 0.95, WALL)  # 550 ms: capped
    assert state.timeout("b", t + 0.95) == TIMING.max_dead_after
    # A silence that killed it (a restart) does not count when it comes back.
    later = t + 100
    state.accept(Heartbeat("b", 2, 1, WALL), later, WALL)
    assert state.timeout("b", later) == pytest.approx(TIMING.dead_after)


def test_probe_flag_after_suspicion_and_reply_rate_limit():
    state = Liveness("a", TIMING)
    state.set_peers({"b": "192.0.2.11"}, 0.0)
    state.accept(Heartbeat("b", 1, 1, WALL), 1.0, WALL)
    assert not state.outgoing(1.02, WALL)[0][2].probe
    assert state.outgoing(1.0 + TIMING.suspect_after, WALL)[0][2].probe
    assert state.reply_due("b", 2.0)
    assert not state.reply_due("b", 2.0 + TIMING.interval / 4)
    assert state.reply_due("b", 2.0 + TIMING.interval / 2)
    assert not state.reply_due("z", 2.0)


def test_acknowledgement_of_an_unknown_or_foreign_sequence_is_ignored():
    state = Liveness("a", TIMING, boot_id=7)
    state.set_peers({"b": "192.0.2.11", "c": "192.0.2.12"}, 0.0)
    state.outgoing(1.0, WALL)  # our seq 1 at t=1.0
    state.accept(Heartbeat("b", 1, 1, WALL, ack_boot=6, ack_seq=1), 1.01, WALL)
    state.accept(Heartbeat("c", 1, 1, WALL, ack_boot=7, ack_seq=99), 1.01, WALL)
    assert state.view(1.02).leased == 1
    state.accept(Heartbeat("b", 1, 2, WALL, ack_boot=7, ack_seq=1), 1.02, WALL)
    assert state.view(1.02).leased == 2
    # The lease runs from our send time (1.0), not from the acknowledgement's arrival.
    assert state.view(1.0 + TIMING.lease_time - 0.001).leased == 2
    assert state.view(1.0 + TIMING.lease_time).leased == 1


# --- link state ---------------------------------------------------------------------------


def test_link_down_stops_answering_at_once_and_link_up_settles_again():
    net = Net(["o", "b", "c"])
    net.run(1.0)
    o = net.nodes["o"]
    o.set_link(False, net.now)
    view = o.view(net.now)
    assert not view.may_answer and view.live_nodes == {"o"} and not view.link_up
    net.down.add("o")
    net.run(0.5)
    net.down.discard("o")
    o.set_link(True, net.now)
    assert not o.view(net.now).settled  # not before it heard the others again
    net.run(0.05)
    assert o.view(net.now).may_answer


def test_leaving_peer_is_not_kept_alive_by_older_reports():
    net = Net(["o", "b", "c"])
    net.run(1.0)
    c = net.nodes["c"]
    c.accept(Heartbeat("o", 100, 10_000, WALL, leaving=True), net.now, WALL)
    assert "o" not in c.view(net.now).live_nodes


def test_carrier_rule_and_sysfs_watch(tmp_path, monkeypatch):
    from metallb_py.speaker import membership

    assert membership.carrier_up("up\n", "1\n")
    assert membership.carrier_up("unknown\n", "1\n")  # drivers without operstate
    assert not membership.carrier_up("lowerlayerdown\n", "0\n")  # the veth peer is down
    assert not membership.carrier_up("down\n", None)  # administratively down: unreadable
    assert not membership.carrier_up("up\n", "0\n")

    monkeypatch.setattr(membership, "SYS_CLASS_NET", tmp_path)
    eth0 = tmp_path / "eth0"
    eth0.mkdir()
    (eth0 / "ifindex").write_text("7\n")
    (eth0 / "operstate").write_text("up\n")
    (eth0 / "carrier").write_text("1\n")
    watch = membership.LinkWatch("eth0", 7)
    assert watch.enabled and watch.up()
    (eth0 / "carrier").write_text("0\n")
    assert not watch.up()
    (eth0 / "operstate").unlink()  # the interface is gone
    assert not watch.up()
    # /sys showing another namespace's eth0 (other ifindex): the watch stays off.
    other = membership.LinkWatch("eth0", 8)
    assert not other.enabled and other.up()


def test_speaker_reevaluates_only_when_what_the_decision_reads_changes():
    from metallb_py.speaker.heartbeat import View
    from metallb_py.speaker.live_nodes import LiveNodes

    calls: list[int] = []
    live = LiveNodes(
        "a",
        None,
        None,  # type: ignore[arg-type]
        lambda: calls.append(1),
        namespace="ns",
        ml_labels="",
        membership_enabled=True,
    )
    base = View(frozenset({"a", "b", "c"}), False, True, 3, 3, leased=3)
    live._membership_changed(base)
    live._membership_changed(View(frozenset({"a", "b", "c"}), False, True, 3, 3, leased=2))
    assert len(calls) == 1  # one lease of a quorum that still holds: nothing to decide
    live._membership_changed(View(frozenset({"a", "b", "c"}), False, True, 3, 3, leased=1))
    assert len(calls) == 2  # lease lost
    live._membership_changed(
        View(frozenset({"a", "b", "c"}), False, True, 3, 3, leased=1, claimed=None)
    )
    assert len(calls) == 3


def test_gate_refuses_ips_a_live_peer_claims_and_needs_the_lease_for_cluster_ips():
    other = ipaddress.ip_address("192.0.2.7")
    never = lambda: pytest.fail("is_local asked although the answer was already known")  # noqa: E731
    assert d.answer_allowed(IP, frozenset(), True, never)
    assert not d.answer_allowed(IP, frozenset({IP}), True, never)  # a live peer answers it
    assert d.answer_allowed(IP, frozenset({other}), True, never)
    assert d.answer_allowed(IP, None, True, never)  # unknown claims stop new starts only
    assert not d.answer_allowed(IP, frozenset(), False, lambda: False)  # no lease: Cluster
    assert d.answer_allowed(IP, frozenset(), False, lambda: True)  # Local needs no lease


def test_two_node_split_heal_has_no_double_answer_at_the_data_plane():
    """A 2-node cluster has no quorum: during a heartbeat split both nodes answer (documented).
    At heal, every answer goes through the gate: a node never answers for an IP the other says
    it answers for, so while the node that is not elected takes its time to withdraw (here up
    to 20 ms) the overlap becomes a silence of about a round, never two answers."""
    names = ["o", "b"]
    first = d.election_order(names, IP)[0]
    second = next(n for n in names if n != first)
    cut = {"on": True}
    net = Net(names, drop=lambda src, dst, t: cut["on"] and t >= 0.5)
    answering = {first: True, second: False}
    net.claims[first] = frozenset({IP})

    lag = {first: 0, second: 7}  # ms phase of each node's 20 ms decision cycle

    def act() -> None:
        # Decisions (announce/withdraw) lag: each node acts every 20 ms; the gate does not.
        for name in names:
            if (round(net.now * 1000) + lag[name]) % 20:
                continue
            view = net.nodes[name].view(net.now)
            reason = d.layer2_reason(
                False,
                ALWAYS_READY,
                d.NodeView(name, view.live_nodes, not view.may_answer, claimed=view.claimed),
                [IP],
                answering[name],
            )
            answering[name] = reason is None
            net.claims[name] = frozenset({IP}) if answering[name] else frozenset()

    net.run(1.0, act)
    assert answering == {first: True, second: True}  # the split: both serve (no quorum)
    cut["on"] = False
    double: list[float] = []
    silent: list[float] = []

    def each() -> None:
        act()
        gates = [
            answering[n]
            and d.answer_allowed(
                IP,
                net.nodes[n].view(net.now).claimed,
                net.nodes[n].view(net.now).may_answer,
                lambda: False,
            )
            for n in names
        ]
        # Until the first heartbeats cross (both send at the heal instant) the split goes on.
        if all(gates) and net.now > 1.0 + 0.002:
            double.append(net.now)
        if not any(gates):
            silent.append(net.now)

    net.run(1.0, each)
    assert not double
    assert answering == {first: True, second: False}
    assert len(silent) <= 2 * round(TIMING.interval * 1000) + 20, len(silent)


def test_a_short_lapse_silences_without_withdrawing_and_a_long_one_withdraws():
    """Acknowledgements older than `lease` close the responders' gate at once; the decision
    gives the IPs up only when they are older than `dead_after`, when a peer may have taken
    over: a process starved for 100 ms stops answering for a moment but does not withdraw,
    re-announce and restart its gratuitous ARP."""
    state = Liveness("a", TIMING, boot_id=7)
    state.set_peers({"b": "192.0.2.11", "c": "192.0.2.12"}, 0.0)
    state.outgoing(1.0, WALL)  # our seq 1, sent at 1.0
    for peer in ("b", "c"):
        state.accept(Heartbeat(peer, 1, 1, WALL, ack_boot=7, ack_seq=1), 1.001, WALL)
    fresh = state.view(1.05)
    assert fresh.may_answer and fresh.may_keep
    lapsed = state.view(1.0 + TIMING.lease_time + 0.001)
    assert not lapsed.may_answer and lapsed.may_keep
    gone = state.view(1.0 + TIMING.dead_after)
    assert not gone.may_answer and not gone.may_keep
    assert state.next_change(1.0 + TIMING.lease_time + 0.001) == pytest.approx(
        1.0 + TIMING.dead_after
    )
    me = d.election_order(["a", "b", "c"], IP)[0]
    node = d.NodeView(me, frozenset({"a", "b", "c"}), in_minority=False, may_start=False)
    assert d.layer2_reason(False, ALWAYS_READY, node, [IP], answering=True) is None
    assert (
        d.layer2_reason(False, ALWAYS_READY, node, [IP], answering=False)
        is d.Reason.MINORITY_PARTITION
    )
    local = d.layer2_reason(True, ALWAYS_READY, node, [IP], answering=False)
    assert local is not d.Reason.MINORITY_PARTITION  # Local: no lease rule
    assert not d.answer_allowed(IP, frozenset(), lapsed.may_answer, lambda: False)

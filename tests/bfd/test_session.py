"""The session state machine, driven with explicit times. Expectations are RFC 5880's rules
written out here (states, timer arithmetic), never computed by the module."""

from __future__ import annotations

import pytest

from metallb_py.bfd.packet import ControlPacket, Diag, State
from metallb_py.bfd.session import BfdSession, Settings

FAST = Settings(desired_min_tx=100_000, required_min_rx=100_000, detect_mult=3)
MY = 0x1111
PEER = 0x2222


def peer_packet(state: State, your: int = MY, **kw: object) -> ControlPacket:
    fields: dict[str, object] = {
        "desired_min_tx": 1_000_000,
        "required_min_rx": 100_000,
        "detect_mult": 3,
    }
    fields.update(kw)
    return ControlPacket(state, PEER, your, **fields)  # type: ignore[arg-type]


def new(settings: Settings = FAST, jitter: float = 0.0) -> BfdSession:
    return BfdSession(settings, MY, 0.0, jitter=lambda: jitter)


def bring_up(session: BfdSession, now: float = 0.1) -> None:
    session.receive(peer_packet(State.DOWN, your=0), now)
    session.receive(peer_packet(State.UP), now)
    assert session.state is State.UP


def test_three_way_handshake_from_down() -> None:
    s = new()
    first = s.advance(0.0)
    assert [(p.state, p.your_discriminator, p.desired_min_tx) for p in first.send] == [
        (State.DOWN, 0, 1_000_000)  # slow start: at least 1 s while not Up
    ]
    got = s.receive(peer_packet(State.DOWN, your=0), 0.2)
    assert [(t.old, t.new) for t in got.transitions] == [(State.DOWN, State.INIT)]
    assert [(p.state, p.your_discriminator) for p in got.send] == [(State.INIT, PEER)]
    got = s.receive(peer_packet(State.UP), 0.3)
    assert [(t.old, t.new, t.diag) for t in got.transitions] == [(State.INIT, State.UP, Diag.NONE)]
    assert s.counters.up_events == 1


def test_down_to_up_directly_when_the_peer_is_in_init() -> None:
    s = new()
    got = s.receive(peer_packet(State.INIT), 0.1)
    assert [(t.old, t.new) for t in got.transitions] == [(State.DOWN, State.UP)]


def test_init_ignores_down_and_up_stays_on_init() -> None:
    s = new()
    s.receive(peer_packet(State.DOWN, your=0), 0.1)
    assert s.receive(peer_packet(State.DOWN, your=0), 0.2).transitions == []
    assert s.state is State.INIT
    bring_up(s, 0.3)
    assert s.receive(peer_packet(State.INIT), 0.4).transitions == []
    assert s.state is State.UP


def test_reaching_up_polls_in_the_fast_timers_and_final_ends_the_poll() -> None:
    s = new()
    bring_up(s)
    assert s.polling
    ups = s.advance(0.2).send  # within the 3 s detection time of the slow-starting peer
    assert [(p.poll, p.desired_min_tx) for p in ups] == [(True, 100_000)]
    s.receive(peer_packet(State.UP, final=True, desired_min_tx=100_000), 0.21)
    assert not s.polling
    assert [p.poll for p in s.advance(0.4).send] == [False]


def test_a_poll_is_answered_at_once_with_final() -> None:
    s = new()
    bring_up(s)
    got = s.receive(peer_packet(State.UP, poll=True), 0.2)
    assert [(p.final, p.poll) for p in got.send] == [(True, False)]


def test_transmit_interval_is_the_larger_of_ours_and_the_peers_rx_with_jitter() -> None:
    s = new(jitter=0.0)
    bring_up(s)
    s.receive(peer_packet(State.UP, final=True, required_min_rx=300_000), 1.0)
    assert s.transmit_interval == 300_000  # max(100 ms ours, 300 ms theirs)
    s.advance(2.0)  # sends, next one at 75 % of 300 ms
    assert s.next_wakeup() == pytest.approx(2.225)
    hi = new(jitter=0.999999)
    bring_up(hi)
    hi.receive(peer_packet(State.UP, final=True, required_min_rx=50_000), 1.0)
    assert hi.transmit_interval == 100_000
    hi.advance(2.0)
    assert hi.next_wakeup() == pytest.approx(2.1, abs=1e-6)


def test_detect_mult_one_caps_jitter_at_90_percent() -> None:
    s = new(Settings(100_000, 100_000, 1), jitter=0.999999)
    bring_up(s)
    s.receive(peer_packet(State.UP, final=True), 1.0)
    s.advance(2.0)
    assert s.next_wakeup() == pytest.approx(2.09, abs=1e-6)


def test_detection_time_expiry_takes_the_session_down() -> None:
    s = new()
    bring_up(s, 0.1)
    # the peer still slow-starts at 1 s: 3 x max(100 ms, 1 s) = 3 s
    assert s.detection_time == pytest.approx(3.0)
    s.receive(peer_packet(State.UP, desired_min_tx=200_000, detect_mult=4), 1.0)
    assert s.detection_time == pytest.approx(0.8)  # 4 x max(100 ms, 200 ms)
    assert s.advance(1.79).transitions == []
    got = s.advance(1.81)
    assert [(t.old, t.new, t.diag) for t in got.transitions] == [
        (State.UP, State.DOWN, Diag.DETECTION_TIME_EXPIRED)
    ]
    assert s.remote_discriminator == 0
    assert [(p.state, p.diag, p.your_discriminator) for p in got.send] == [
        (State.DOWN, Diag.DETECTION_TIME_EXPIRED, 0)
    ]
    assert s.desired_min_tx == 1_000_000  # slow again while not Up
    assert s.counters.down_events == 1


def test_our_required_rx_bounds_the_detection_time() -> None:
    s = new(Settings(100_000, 500_000, 3))
    bring_up(s)
    s.receive(peer_packet(State.UP, desired_min_tx=100_000), 1.0)
    assert s.detection_time == pytest.approx(1.5)


def test_peer_signalling_down_or_admin_down() -> None:
    s = new()
    bring_up(s)
    got = s.receive(peer_packet(State.DOWN), 1.0)
    assert [(t.new, t.diag) for t in got.transitions] == [(State.DOWN, Diag.NEIGHBOR_SIGNALED_DOWN)]
    t = new()
    bring_up(t)
    got = t.receive(peer_packet(State.ADMIN_DOWN), 1.0)
    assert [(x.new, x.diag) for x in got.transitions] == [(State.DOWN, Diag.NEIGHBOR_SIGNALED_DOWN)]
    assert t.receive(peer_packet(State.ADMIN_DOWN), 1.1).transitions == []  # already Down


def test_passive_sends_nothing_until_the_peer_speaks() -> None:
    s = new(Settings(100_000, 100_000, 3, passive=True))
    assert s.advance(0.0).send == []
    assert s.next_wakeup() is None
    got = s.receive(peer_packet(State.DOWN, your=0), 5.0)
    assert [p.state for p in got.send] == [State.INIT]
    assert s.next_wakeup() is not None


def test_passive_answers_a_poll() -> None:
    s = new(Settings(100_000, 100_000, 3, passive=True))
    got = s.receive(peer_packet(State.DOWN, your=0, poll=True), 1.0)
    assert any(p.final for p in got.send)


def test_packets_for_another_discriminator_are_discarded() -> None:
    s = new()
    got = s.receive(peer_packet(State.DOWN, your=0x9999), 0.1)
    assert got.discarded and got.transitions == [] and s.remote_discriminator == 0
    assert s.counters.packets_in == 0


def test_no_periodic_packets_while_the_peer_asks_for_none() -> None:
    s = new()
    bring_up(s)
    s.receive(peer_packet(State.UP, final=True, required_min_rx=0), 1.0)
    assert s.advance(2.0).send == []
    assert s.state is State.UP


def test_raising_tx_while_up_waits_for_final() -> None:
    s = new(jitter=0.0)
    bring_up(s)
    s.receive(peer_packet(State.UP, final=True, required_min_rx=10_000), 1.0)
    assert s.transmit_interval == 100_000
    s.update_settings(Settings(400_000, 100_000, 3), 2.0)
    assert s.polling and s.transmit_interval == 100_000
    sent = s.advance(3.0).send
    assert [(p.poll, p.desired_min_tx) for p in sent] == [(True, 400_000)]
    s.receive(peer_packet(State.UP, final=True, required_min_rx=10_000), 3.01)
    assert s.transmit_interval == 400_000


def test_cutting_rx_while_up_keeps_the_old_detection_time_until_final() -> None:
    s = new(Settings(100_000, 500_000, 3))
    bring_up(s)
    s.receive(peer_packet(State.UP, final=True, desired_min_tx=100_000), 1.0)
    s.update_settings(Settings(100_000, 100_000, 3), 1.1)
    assert s.detection_time == pytest.approx(1.5)
    s.receive(peer_packet(State.UP, final=True, desired_min_tx=100_000), 1.2)
    assert s.detection_time == pytest.approx(0.3)


def test_admin_down_tells_the_peer_then_stays_silent() -> None:
    s = new()
    bring_up(s)
    got = s.admin_down(1.0)
    assert [(p.state, p.diag) for p in got.send] == [(State.ADMIN_DOWN, Diag.ADMINISTRATIVELY_DOWN)]
    assert s.next_wakeup() is None
    assert s.receive(peer_packet(State.UP), 1.1).discarded


def test_a_peer_starting_over_is_answered_at_once() -> None:
    """FRR re-creates its session (new discriminator) when bgpd learns the local address:
    our Init goes to the new one at once, not after a 1 s slow-start interval."""
    s = new()
    s.receive(peer_packet(State.DOWN, your=0), 0.1)
    assert s.state is State.INIT
    again = ControlPacket(State.DOWN, PEER + 1, 0, 1_000_000, 100_000, 3)
    got = s.receive(again, 0.2)
    assert [(p.state, p.your_discriminator) for p in got.send] == [(State.INIT, PEER + 1)]
    assert s.receive(again, 0.3).send == []  # same discriminator: the periodic rate applies


def test_a_silent_peer_is_forgotten_after_the_detection_time_even_while_down() -> None:
    """RFC 5880 section 6.8.1: a Detection Time without a packet sets bfd.RemoteDiscr to 0
    and bfd.RemoteSessionState to Down, whatever our state. The peer signalled Down (so we
    are Down, not timing out a session) and then went away: our packets must stop naming its
    old discriminator, or a peer that comes back passive with a new one never answers."""
    s = new()
    bring_up(s, 0.1)
    s.receive(peer_packet(State.UP, final=True, desired_min_tx=100_000), 0.2)
    s.receive(peer_packet(State.ADMIN_DOWN, desired_min_tx=100_000), 1.0)
    assert s.state is State.DOWN and s.remote_discriminator == PEER
    # detection time: 3 x max(our 100 ms, the peer's 100 ms) = 0.3 s after its last packet
    assert s.advance(1.29).transitions == []
    assert s.remote_discriminator == PEER
    got = s.advance(1.31)
    assert got.transitions == []  # already Down: nothing to report
    assert s.remote_discriminator == 0
    assert s.remote_state is State.DOWN
    later = s.advance(3.0).send
    assert [(p.state, p.your_discriminator) for p in later] == [(State.DOWN, 0)]


def test_a_passive_session_goes_quiet_when_it_forgets_a_silent_peer() -> None:
    """Passive: no packets while bfd.RemoteDiscr is 0 (RFC 5880 section 6.8.7), including
    once the Detection Time has zeroed it."""
    s = new(Settings(100_000, 100_000, 3, passive=True))
    s.receive(peer_packet(State.ADMIN_DOWN, your=0), 1.0)
    assert s.remote_discriminator == PEER
    s.advance(5.0)  # 3 x max(100 ms, 1 s) = 3 s without a packet
    assert s.remote_discriminator == 0
    assert s.advance(10.0).send == [] and s.next_wakeup() is None


def test_no_periodic_packets_while_the_peer_is_in_demand_mode() -> None:
    """RFC 5880 section 6.8.7: no periodic packets while Demand mode is active on the remote
    system (its D bit, both sessions Up) unless we are polling; a Poll is still answered.
    (The peer keeps sending at 1 s here: a 3 s detection time, longer than the test.)"""
    s = new(jitter=0.0)
    bring_up(s)
    s.receive(peer_packet(State.UP, final=True), 0.2)
    assert s.advance(0.31).send  # periodic while the peer is not in demand mode
    s.receive(peer_packet(State.UP, demand=True), 0.35)
    assert s.advance(0.5).send == [] and s.advance(0.65).send == []
    answer = s.receive(peer_packet(State.UP, demand=True, poll=True), 0.7).send
    assert [p.final for p in answer] == [True]
    s.update_settings(Settings(150_000, 100_000, 3), 0.75)  # our own poll goes out
    assert [p.poll for p in s.advance(0.9).send] == [True]
    s.receive(peer_packet(State.UP, demand=True, final=True), 0.95)
    assert s.advance(1.2).send == []
    assert s.state is State.UP
    s.receive(peer_packet(State.UP), 1.25)  # D cleared
    assert s.advance(1.5).send


def test_a_silent_peer_s_request_for_no_packets_lapses_after_the_detection_time() -> None:
    """A peer that asked for no packets (Required Min RX 0) and then fell silent for a
    Detection Time no longer binds us: bfd.RemoteMinRxInterval goes back to 1 (RFC 5880
    section 6.8.18) and we transmit again at our own (slow, not Up) rate, so the session can
    come back without the peer speaking first."""
    s = new(jitter=0.0)
    bring_up(s)
    s.receive(peer_packet(State.UP, final=True, required_min_rx=0), 1.0)
    assert s.advance(2.0).send == []
    # detection time: 3 x max(our 100 ms, the peer's 1 s) = 3 s after its last packet
    got = s.advance(4.01)
    assert [(t.new, t.diag) for t in got.transitions] == [(State.DOWN, Diag.DETECTION_TIME_EXPIRED)]
    assert s.remote_min_rx == 1
    # periodic again: every 0.75 x max(1 s, 1 us) with this jitter
    assert [p.state for p in s.advance(4.01 + 0.76).send] == [State.DOWN]
    assert [p.state for p in s.advance(4.01 + 1.52).send] == [State.DOWN]
    # the same while we are Down (no transition to send a packet with)
    d = new(jitter=0.0)
    d.receive(peer_packet(State.ADMIN_DOWN, your=0, required_min_rx=0), 1.0)
    assert d.advance(2.0).send == [] and d.advance(4.01).send == []
    assert [p.your_discriminator for p in d.advance(4.01 + 0.76).send] == [0]


def test_leaving_passive_mode_starts_transmitting() -> None:
    """A passive session that never heard from its peer is silent; a profile change to
    active must start the periodic packets (RFC 5880 section 6.8.7: only the passive role
    with no remote discriminator keeps a session silent)."""
    s = new(Settings(100_000, 100_000, 3, passive=True))
    assert s.advance(1.0).send == [] and s.next_wakeup() is None
    got = s.update_settings(Settings(100_000, 100_000, 3), 2.0)
    sent = got.send + s.advance(2.0).send
    assert [(p.state, p.your_discriminator) for p in sent] == [(State.DOWN, 0)]
    assert s.next_wakeup() is not None


def test_down_events_count_every_entry_into_down_as_frr_does() -> None:
    """`metallb_bfd_session_down_events` is "times the session entered the down state"; FRR
    (whose counter FRR mode exposes) counts Init -> Down as well as Up -> Down, and not its
    own AdminDown."""
    s = new()
    s.receive(peer_packet(State.DOWN, your=0), 0.1)
    assert s.state is State.INIT
    s.advance(3.2)  # 3 x max(100 ms, the peer's 1 s) after its packet: Init -> Down
    assert s.state is State.DOWN
    assert (s.counters.up_events, s.counters.down_events) == (0, 1)
    bring_up(s, 4.0)
    s.admin_down(4.5)
    assert (s.counters.up_events, s.counters.down_events) == (1, 1)

"""The state machine under random inputs (hypothesis): any sequence of packets, timer runs and
settings changes keeps RFC 5880's invariants on what it sends and never raises."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_py.bfd.packet import ControlPacket, State
from metallb_py.bfd.session import SLOW_TX_INTERVAL, BfdSession, Settings

MY = 0x5EED

timers = st.sampled_from([10_000, 100_000, 300_000, 1_000_000])
session_settings = st.builds(
    Settings,
    desired_min_tx=timers,
    required_min_rx=timers,
    detect_mult=st.integers(1, 5),
    passive=st.booleans(),
)
packets = st.builds(
    ControlPacket,
    state=st.sampled_from(list(State)),
    my_discriminator=st.sampled_from([1, 2, 0xFFFFFFFF]),
    your_discriminator=st.sampled_from([0, MY, 7]),
    desired_min_tx=st.sampled_from([0, 1, 50_000, 1_000_000]),
    required_min_rx=st.sampled_from([0, 1, 50_000, 1_000_000]),
    detect_mult=st.integers(1, 255),
    poll=st.booleans(),
    final=st.booleans(),
    demand=st.booleans(),
)
events = st.lists(
    st.one_of(
        st.tuples(st.just("packet"), packets),
        st.tuples(st.just("advance"), st.floats(0, 2)),
        st.tuples(st.just("settings"), session_settings),
        st.tuples(st.just("admin_down"), st.none()),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(first=session_settings, steps=events)
def test_invariants(first: Settings, steps: list[tuple[str, object]]) -> None:
    s = BfdSession(first, MY, 0.0, jitter=lambda: 0.5)
    now = 0.0
    for kind, value in steps:
        if kind == "packet":
            assert isinstance(value, ControlPacket)
            if value.poll and value.final:
                continue  # the codec drops these before a session sees them
            actions = s.receive(value, now)
        elif kind == "advance":
            assert isinstance(value, float)
            wake = s.next_wakeup()
            now = max(now, wake if wake is not None and value > 1 else now + value)
            actions = s.advance(now)
        elif kind == "settings":
            assert isinstance(value, Settings)
            actions = s.update_settings(value, now)
        else:
            actions = s.admin_down(now)
        wake = s.next_wakeup()
        if kind == "advance":
            assert wake is None or wake > now  # everything due was done
        for p in actions.send:
            assert p.my_discriminator == MY
            assert p.your_discriminator == s.remote_discriminator
            assert p.detect_mult == s.settings.detect_mult
            assert p.required_min_echo_rx == 0 and not p.demand
            assert not (p.poll and p.final)
            if p.state is not State.UP:
                assert p.desired_min_tx >= SLOW_TX_INTERVAL  # slow start while not Up
        if s.state is State.UP:
            assert s.remote_discriminator != 0
            demand_active = s.remote_demand and s.remote_state is State.UP and not s.polling
            if kind == "advance" and demand_active:
                assert actions.send == []  # the peer's Demand mode: no periodic packets
        if s.settings.passive and s.remote_discriminator == 0 and s.state is not State.ADMIN_DOWN:
            assert not [p for p in actions.send if not p.final]  # passive: silent

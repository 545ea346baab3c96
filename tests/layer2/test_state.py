"""Announcement bookkeeping (set semantics) and the gratuitous schedule (docs/layer2.md,
"Gratuitous announcements")."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from metallb_py.layer2.state import Announcements, Change, GratuitousSchedule

A = ipaddress.ip_address("192.0.2.100")
B = ipaddress.ip_address("192.0.2.101")
C = ipaddress.ip_address("2001:db8::100")


def test_takeover_and_release_are_reported_once() -> None:
    state = Announcements()
    assert state.announce("ns/a", [A, C]) == Change(frozenset({A, C}), frozenset())
    # A reconcile announcing the same set changes nothing (upstream grew lists here).
    assert not state.announce("ns/a", [A, C])
    assert not state.announce("ns/a", ["192.0.2.100", "2001:db8::100"])
    assert state.refcount(A) == 1
    assert state.withdraw("ns/a") == Change(frozenset(), frozenset({A, C}))
    assert state.ips() == frozenset()
    assert not state.withdraw("ns/a")


def test_shared_ip_is_released_by_the_last_service() -> None:
    state = Announcements()
    state.announce("ns/a", [A])
    assert not state.announce("ns/b", [A])  # sharing: no new takeover
    assert state.refcount(A) == 2
    assert not state.withdraw("ns/a")
    assert state.is_announced(A)
    assert state.withdraw("ns/b").removed == frozenset({A})


def test_announce_replaces_the_set_of_a_key() -> None:
    state = Announcements()
    state.announce("ns/a", [A, B])
    change = state.announce("ns/a", [B, C])
    assert change == Change(frozenset({C}), frozenset({A}))
    assert state.keys() == {"ns/a": frozenset({B, C})}
    assert state.announce("ns/a", []) == Change(frozenset(), frozenset({B, C}))
    assert state.keys() == {}


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["k1", "k2", "k3"]),
            st.frozensets(st.sampled_from([A, B, C]), max_size=3),
        ),
        max_size=40,
    )
)
def test_refcounts_always_equal_the_number_of_keys_using_an_ip(
    ops: list[tuple[str, frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address]]],
) -> None:
    state = Announcements()
    announced: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for key, ips in ops:
        change = state.announce(key, ips)
        announced |= change.added
        announced -= change.removed
        assert not change.added & change.removed
        for ip in (A, B, C):
            users = sum(ip in s for s in state.keys().values())
            assert state.refcount(ip) == users
        assert announced == state.ips()


def simulate(schedule: GratuitousSchedule, triggers: dict[float, list[object]], until: float):
    """Run the ticker as the announcer does: started by the first open window, period 1.1 s."""
    sent: list[tuple[float, object]] = []
    ticker: float | None = None
    events = sorted(triggers.items())
    now = 0.0
    step = 0.01
    for _ in range(int(until / step) + 1):
        while events and events[0][0] <= now + 1e-9:
            _, ips = events.pop(0)
            for ip in ips:
                if schedule.trigger(ip, now):  # type: ignore[arg-type]
                    sent.append((now, ip))
                if ticker is None and schedule.active:
                    ticker = now + 1.1
        if ticker is not None and now >= ticker - 1e-9:
            sent.extend((now, ip) for ip in schedule.tick(now))
            ticker = now + 1.1 if schedule.active else None
        now = round(now + step, 2)
    return sent


def test_one_takeover_gives_five_announcements_over_about_five_seconds() -> None:
    sent = simulate(GratuitousSchedule(), {0.0: [A]}, until=20)
    times = [t for t, _ in sent]
    assert times == [0.0, 1.1, 2.2, 3.3, 4.4]


def test_retrigger_inside_the_window_extends_it_without_an_extra_send() -> None:
    sent = simulate(GratuitousSchedule(), {0.0: [A], 2.0: [A]}, until=20)
    times = [t for t, _ in sent]
    assert times == [0.0, 1.1, 2.2, 3.3, 4.4, 5.5, 6.6]


def test_discard_stops_the_window() -> None:
    schedule = GratuitousSchedule()
    assert schedule.trigger(A, 0.0)
    assert schedule.tick(1.1) == [A]
    schedule.discard(A)
    assert schedule.tick(2.2) == []
    assert not schedule.active

"""The membership core with a fake clock: wire format, MAC, replay, liveness, partitions."""

from __future__ import annotations

import contextlib
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metallb_py.speaker.heartbeat import (
    HEADER,
    MAC_SIZE,
    Heartbeat,
    Liveness,
    MessageError,
    Rejection,
    Timing,
    decode,
    derive_key,
    encode,
)

KEY = derive_key("s3cret")
WALL = 1_700_000_000_000  # ms


def hb(node: str = "b", seq: int = 1, boot: int = 100, ts: int = WALL, leaving: bool = False):
    return Heartbeat(node, boot, seq, ts, leaving)


# --- wire format ---------------------------------------------------------------------------


def test_roundtrip_and_layout():
    message = hb("node-b", seq=7, boot=123)
    data = encode(message, KEY)
    assert decode(data, KEY) == message
    assert len(data) == HEADER.size + len("node-b") + MAC_SIZE == 70
    assert data[:4] == b"MLBh" and data[4] == 1
    # The MAC is HMAC-SHA256 over everything before it, keyed by the derived key.
    assert data[-MAC_SIZE:] == hmac.new(KEY, data[:-MAC_SIZE], hashlib.sha256).digest()
    assert hmac.new(b"s3cret", b"metallb-py membership v1", hashlib.sha256).digest() == KEY


def test_wrong_secret_is_a_bad_mac():
    data = encode(hb(), derive_key("other"))
    with pytest.raises(MessageError) as err:
        decode(data, KEY)
    assert err.value.reason is Rejection.BAD_MAC


@pytest.mark.parametrize("position", [0 + 5, 8, 9, 16, 24, 31, 32, 33, -1, -32])
def test_any_flipped_bit_is_refused(position):
    data = bytearray(encode(hb("node-b"), KEY))
    data[position] ^= 0x10
    with pytest.raises(MessageError):
        decode(bytes(data), KEY)


def test_malformed():
    good = encode(hb(), KEY)
    for data, reason in [
        (b"", Rejection.MALFORMED),
        (good[:-1], Rejection.MALFORMED),
        (good + b"x", Rejection.MALFORMED),
        (b"XXXX" + good[4:], Rejection.MALFORMED),
        (good[:4] + b"\x02" + good[5:], Rejection.BAD_VERSION),
    ]:
        with pytest.raises(MessageError) as err:
            decode(data, KEY)
        assert err.value.reason is reason


def test_name_must_be_utf8_even_with_a_valid_mac():
    body = HEADER.pack(b"MLBh", 1, 0, 2, 1, 1, WALL) + b"\xff\xfe"
    data = body + hmac.new(KEY, body, hashlib.sha256).digest()
    with pytest.raises(MessageError) as err:
        decode(data, KEY)
    assert err.value.reason is Rejection.MALFORMED


def test_without_a_secret():
    public = derive_key(None)
    assert public == derive_key("") == derive_key(b"")
    data = encode(hb(), public, authenticated=False)
    # Another speaker without a secret accepts it...
    assert decode(data, public, authenticated=False) == hb()
    # ...one with a secret refuses it outright.
    with pytest.raises(MessageError) as err:
        decode(data, KEY)
    assert err.value.reason is Rejection.UNAUTHENTICATED
    # And a secret-holder's heartbeat does not verify without the secret.
    with pytest.raises(MessageError) as err:
        decode(encode(hb(), KEY), public, authenticated=False)
    assert err.value.reason is Rejection.BAD_MAC


def test_node_name_limits():
    with pytest.raises(ValueError):
        encode(hb(""), KEY)
    with pytest.raises(ValueError):
        encode(hb("x" * 254), KEY)
    assert decode(encode(hb("x" * 253), KEY), KEY).node == "x" * 253


@given(st.binary(max_size=400))
def test_arbitrary_bytes_only_raise_message_error(data):
    with contextlib.suppress(MessageError):
        decode(data, KEY)


@given(st.integers(0, 2**63), st.integers(0, 2**63), st.text(min_size=1, max_size=60))
def test_roundtrip_property(boot, seq, node):
    if len(node.encode()) > 253:
        return
    message = Heartbeat(node, boot, seq, WALL)
    assert decode(encode(message, KEY), KEY) == message


# --- liveness -------------------------------------------------------------------------------

T = Timing(interval=0.1, dead_after=0.35, max_clock_skew=10.0)


def cluster(*peers: str, me: str = "a", now: float = 0.0) -> Liveness:
    state = Liveness(me, T)
    state.set_peers({p: f"192.0.2.{i + 10}" for i, p in enumerate((me, *peers))}, now)
    return state


def test_dead_after_threshold_and_alive_again():
    state = cluster("b", "c")
    assert state.accept(hb("b", seq=1), now=1.0, wall_ms=WALL) is None
    assert state.view(1.0 + 0.349).live_nodes == {"a", "b"}
    assert state.alive("b", 1.349) and not state.alive("c", 1.349) and not state.alive("z", 1.0)
    assert state.next_change(1.2) == pytest.approx(1.35)
    # No valid heartbeat for 350 ms: dead.
    assert state.view(1.35).live_nodes == {"a"}
    assert not state.alive("b", 1.35)
    assert state.next_change(1.35) is None
    # The next valid heartbeat revives it.
    assert state.accept(hb("b", seq=2), now=5.0, wall_ms=WALL) is None
    assert state.view(5.0).live_nodes == {"a", "b"}


def test_heartbeats_every_interval_keep_a_peer_alive():
    state = cluster("b")
    for i in range(1, 50):
        assert state.accept(hb("b", seq=i), now=i * 0.1, wall_ms=WALL + i * 100) is None
        assert state.view(i * 0.1 + 0.34).live_nodes == {"a", "b"}


def test_leaving_peer_is_dead_at_once():
    state = cluster("b", "c")
    state.accept(hb("b", seq=1), 1.0, WALL)
    assert state.accept(hb("b", seq=2, leaving=True), 1.05, WALL) is None
    assert state.view(1.05).live_nodes == {"a"}


def test_replay_rejected():
    state = cluster("b")
    assert state.accept(hb("b", seq=5), 1.0, WALL) is None
    assert state.accept(hb("b", seq=5), 1.1, WALL) is Rejection.REPLAYED
    assert state.accept(hb("b", seq=4), 1.1, WALL) is Rejection.REPLAYED
    # A replay does not extend liveness.
    assert state.view(1.36).live_nodes == {"a"}
    assert state.accept(hb("b", seq=6), 1.4, WALL) is None


def test_restart_gets_a_new_boot_and_old_boot_is_refused():
    state = cluster("b")
    assert state.accept(hb("b", seq=900, boot=100), 1.0, WALL) is None
    # Restarted: new (larger) boot id, sequence starts again.
    assert state.accept(hb("b", seq=1, boot=200), 2.0, WALL) is None
    assert state.accept(hb("b", seq=2, boot=200), 2.1, WALL) is None
    # Replays of the old incarnation are refused...
    assert state.accept(hb("b", seq=901, boot=100), 2.2, WALL) is Rejection.OLD_BOOT
    # ...unless the new one has been silent for 2x the skew window (clock stepped back at a
    # restart); by then no message of the newer boot can pass the timestamp check.
    assert state.accept(hb("b", seq=1, boot=150), 2.1 + 20.01, WALL) is None


def test_timestamps_outside_the_skew_window():
    state = cluster("b")
    assert state.accept(hb("b", seq=1, ts=WALL - 10_001), 1.0, WALL) is Rejection.TOO_OLD
    assert state.accept(hb("b", seq=1, ts=WALL + 10_001), 1.0, WALL) is Rejection.FROM_FUTURE
    assert state.accept(hb("b", seq=1, ts=WALL - 10_000), 1.0, WALL) is None


def test_unknown_and_own_names():
    state = cluster("b")
    assert state.accept(hb("z"), 1.0, WALL) is Rejection.UNKNOWN_NODE
    assert state.accept(hb("a"), 1.0, WALL) is Rejection.OWN_NAME
    assert state.view(1.0).live_nodes == {"a"}


@pytest.mark.parametrize(
    ("size", "heard", "minority"),
    [
        (1, 0, False),
        (2, 1, False),
        (2, 0, False),  # half is not fewer than half: the survivor of a 2-node cluster serves
        (3, 2, False),
        (3, 1, False),
        (3, 0, True),
        (4, 1, False),  # 2 of 4: exactly half
        (4, 0, True),
        (5, 4, False),
        (5, 2, False),
        (5, 1, True),
        (5, 0, True),
    ],
)
def test_minority_rule(size, heard, minority):
    peers = [f"n{i}" for i in range(1, size)]
    state = cluster(*peers)
    for i, p in enumerate(peers[:heard]):
        assert state.accept(hb(p, seq=1), 1.0, WALL) is None, i
    view = state.view(1.1)
    assert (view.alive, view.known) == (1 + heard, size)
    assert view.in_minority is minority
    assert view.in_minority is (2 * (1 + heard) < size)


def test_partition_sides_of_three():
    a, b, c = cluster("b", "c", me="a"), cluster("a", "c", me="b"), cluster("a", "b", me="c")
    # c is cut off: a and b hear each other, c hears nobody.
    a.accept(hb("b", seq=1), 1.0, WALL)
    b.accept(hb("a", seq=1), 1.0, WALL)
    assert not a.view(1.1).in_minority and not b.view(1.1).in_minority
    assert c.view(1.1).in_minority
    assert a.view(1.1).live_nodes == b.view(1.1).live_nodes == {"a", "b"}
    assert c.view(1.1).live_nodes == {"c"}


def test_node_not_ready_is_not_live_even_with_heartbeats():
    state = cluster("b", "c")
    state.accept(hb("b", seq=1), 1.0, WALL)
    state.accept(hb("c", seq=1), 1.0, WALL)
    state.set_node_ready("b", False)
    view = state.view(1.1)
    assert view.live_nodes == {"a", "c"}
    # It also leaves the partition count: a NotReady node is out of the cluster's quorum.
    assert (view.alive, view.known) == (2, 2)
    state.set_node_ready("b", True)
    assert state.view(1.1).live_nodes == {"a", "b", "c"}
    # Ready without heartbeats does not make a node live.
    state.set_node_ready("c", True)
    assert state.view(2.0).live_nodes == {"a"}


def test_own_node_not_ready_leaves_the_live_set_too():
    state = cluster("b")
    state.accept(hb("b", seq=1), 1.0, WALL)
    state.set_node_ready("a", False)
    # Every speaker applies the same rule, so they all agree on the candidates.
    assert state.view(1.1).live_nodes == {"b"}
    state.set_node_ready("a", None)
    assert state.view(1.1).live_nodes == {"a", "b"}


def test_crashed_nodes_turning_not_ready_restore_the_majority():
    state = cluster("b", "c")
    assert state.view(1.0).in_minority
    state.set_node_ready("b", False)
    state.set_node_ready("c", False)
    assert not state.view(1.0).in_minority


def test_settling_and_new_peer_grace():
    state = Liveness("a", T)
    assert not state.settled(0.0)
    state.set_peers({"a": "192.0.2.10", "b": "192.0.2.11", "c": "192.0.2.12"}, now=10.0)
    assert not state.settled(10.1)
    state.accept(hb("b", seq=1), 10.1, WALL)
    state.accept(hb("c", seq=1), 10.15, WALL)
    assert state.settled(10.15)
    # Settles anyway once dead_after has passed.
    lonely = cluster("b", now=10.0)
    assert not lonely.settled(10.3) and lonely.settled(10.35)
    assert lonely.next_change(10.1) == pytest.approx(10.35)
    # A freshly added peer is not counted against the majority before it had time to speak.
    state.set_peers(
        {"b": "192.0.2.11", "c": "192.0.2.12", "d": "192.0.2.13", "e": "192.0.2.14"}, 11.0
    )
    state.accept(hb("b", seq=2), 11.1, WALL)
    state.accept(hb("c", seq=2), 11.1, WALL)
    assert state.view(11.1).known == 3
    assert state.view(11.35).known == 5
    assert not state.view(11.35).in_minority


def test_peers_that_stay_keep_their_liveness_and_removed_ones_go():
    state = cluster("b", "c")
    state.accept(hb("b", seq=1), 1.0, WALL)
    state.set_peers({"b": "192.0.2.99"}, 1.1)
    assert state.targets() == {"b": "192.0.2.99"}
    assert state.view(1.2).live_nodes == {"a", "b"}
    assert state.view(1.2).known == 2
    # The replay state survives removal and re-addition.
    state.set_peers({"b": "192.0.2.11", "c": "192.0.2.12"}, 1.2)
    assert state.accept(hb("b", seq=1), 1.3, WALL) is Rejection.REPLAYED


def test_timing_validation():
    with pytest.raises(ValueError):
        Timing(interval=0.5, dead_after=0.35)
    with pytest.raises(ValueError):
        Timing(max_clock_skew=0)

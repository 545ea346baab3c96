"""The membership protocol's pure core: the heartbeat wire format and the liveness state machine.

Replaces memberlist with authenticated all-to-all UDP heartbeats; the protocol, its
timing and its partition rule are described in docs/membership.md. Nothing here reads a clock
or touches a socket: callers pass `now` (monotonic seconds) and `wall_ms` (Unix milliseconds),
so every rule is unit tested with a fake clock. `membership.py` is the asyncio transport.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

MAGIC = b"MLBh"
VERSION = 1
HEADER = struct.Struct("!4sBBHQQQ")
"""magic, version, flags, node-name length, boot id, sequence number, timestamp (Unix ms)."""
MAC_SIZE = 32
MAX_NODE_NAME = 253
"""A Node name is a DNS subdomain: at most 253 bytes."""
MAX_MESSAGE = HEADER.size + MAX_NODE_NAME + MAC_SIZE

FLAG_UNAUTHENTICATED = 0x01
"""The sender has no secret: its MAC uses the public key derived from the empty secret."""
FLAG_LEAVING = 0x02
"""The sender is shutting down: mark it dead now instead of after `dead_after`."""

KEY_CONTEXT = b"metallb-py membership v1"


def derive_key(secret: str | bytes | None) -> bytes:
    """The HMAC-SHA256 key: HMAC-SHA256(secret, "metallb-py membership v1").

    The context string keeps this key distinct from any other use of the same secret. No
    secret (None or empty) gives a fixed, publicly known key: messages still detect
    corruption and mismatched configurations but anybody on the network can forge them.
    """
    raw = secret.encode() if isinstance(secret, str) else (secret or b"")
    return hmac.new(raw, KEY_CONTEXT, hashlib.sha256).digest()


class MessageError(ValueError):
    """A datagram that is not a valid heartbeat; `reason` is one of `Rejection`."""

    def __init__(self, reason: Rejection, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason


class Rejection(enum.StrEnum):
    MALFORMED = "malformed"
    BAD_VERSION = "badVersion"
    UNAUTHENTICATED = "unauthenticated"
    """The sender has no secret and we do."""
    BAD_MAC = "badMAC"
    TOO_OLD = "tooOld"
    FROM_FUTURE = "fromFuture"
    REPLAYED = "replayed"
    """Sequence number not above the last one accepted from that sender and boot."""
    OLD_BOOT = "oldBoot"
    UNKNOWN_NODE = "unknownNode"
    """Valid, but the sender is not one of the speakers `set_peers` named."""
    OWN_NAME = "ownName"
    """Carries this speaker's own node name: a looped message or a second speaker claiming
    the same node."""


@dataclass(frozen=True)
class Heartbeat:
    node: str
    boot_id: int
    """The sender's incarnation: its start time in Unix nanoseconds, so a restart increases it."""
    seq: int
    """Increases with every heartbeat round of one boot."""
    timestamp_ms: int
    """The sender's wall clock when sending."""
    leaving: bool = False


def encode(heartbeat: Heartbeat, key: bytes, authenticated: bool = True) -> bytes:
    name = heartbeat.node.encode()
    if not 1 <= len(name) <= MAX_NODE_NAME:
        raise ValueError(f"node name must be 1..{MAX_NODE_NAME} bytes, got {len(name)}")
    flags = (0 if authenticated else FLAG_UNAUTHENTICATED) | (
        FLAG_LEAVING if heartbeat.leaving else 0
    )
    body = (
        HEADER.pack(
            MAGIC,
            VERSION,
            flags,
            len(name),
            heartbeat.boot_id,
            heartbeat.seq,
            heartbeat.timestamp_ms,
        )
        + name
    )
    return body + hmac.new(key, body, hashlib.sha256).digest()


def decode(data: bytes, key: bytes, authenticated: bool = True) -> Heartbeat:
    """Parse and authenticate one datagram; raises `MessageError`.

    `authenticated` False (no secret here) accepts messages from speakers without a secret
    only; with a secret, unauthenticated senders are refused before the MAC is checked.
    """
    if len(data) < HEADER.size + 1 + MAC_SIZE or len(data) > MAX_MESSAGE:
        raise MessageError(Rejection.MALFORMED, f"{len(data)} bytes")
    magic, version, flags, name_len, boot_id, seq, timestamp_ms = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise MessageError(Rejection.MALFORMED, "bad magic")
    if version != VERSION:
        raise MessageError(Rejection.BAD_VERSION, f"version {version}")
    if len(data) != HEADER.size + name_len + MAC_SIZE:
        raise MessageError(Rejection.MALFORMED, "length does not match the name length")
    if authenticated and flags & FLAG_UNAUTHENTICATED:
        raise MessageError(Rejection.UNAUTHENTICATED, "sender has no secret")
    body, mac = data[:-MAC_SIZE], data[-MAC_SIZE:]
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        raise MessageError(Rejection.BAD_MAC)
    try:
        node = data[HEADER.size : HEADER.size + name_len].decode()
    except UnicodeDecodeError:
        raise MessageError(Rejection.MALFORMED, "node name is not UTF-8") from None
    return Heartbeat(node, boot_id, seq, timestamp_ms, leaving=bool(flags & FLAG_LEAVING))


@dataclass(frozen=True)
class Timing:
    interval: float = 0.1
    """Seconds between heartbeat rounds (one datagram to every peer per round)."""
    dead_after: float = 0.35
    """A peer is dead when no valid heartbeat arrived for this long (3 rounds + 50 ms)."""
    max_clock_skew: float = 10.0
    """Heartbeats whose timestamp is further than this from our wall clock are refused."""

    def __post_init__(self) -> None:
        if not 0 < self.interval < self.dead_after:
            raise ValueError("need 0 < interval < dead_after")
        if self.max_clock_skew <= 0:
            raise ValueError("max_clock_skew must be positive")


@dataclass(frozen=True)
class View:
    """What membership tells the speaker."""

    live_nodes: frozenset[str]
    in_minority: bool
    settled: bool
    alive: int
    """Speakers heard recently (itself included) among `known`."""
    known: int
    """Speakers counted for the partition rule (itself included)."""


@dataclass
class _Replay:
    boot_id: int
    seq: int
    accepted_at: float


@dataclass
class _Peer:
    address: str
    added_at: float
    last_heard: float | None = None


@dataclass
class Liveness:
    """Per-peer liveness, replay protection and the partition rule of one speaker."""

    node: str
    timing: Timing = field(default_factory=Timing)
    _peers_since: float | None = field(default=None, init=False)
    """When `set_peers` was first called: the settling window starts there."""
    _peers: dict[str, _Peer] = field(default_factory=dict, init=False)
    _replay: dict[str, _Replay] = field(default_factory=dict, init=False)
    _ready: dict[str, bool] = field(default_factory=dict, init=False)

    # --- inputs ---------------------------------------------------------------------------

    def set_peers(self, peers: Mapping[str, str], now: float) -> None:
        """The speakers to watch: node name → address (from the speaker Pods). Peers that stay
        keep their liveness; this node's own entry is ignored."""
        if self._peers_since is None:
            self._peers_since = now
        fresh: dict[str, _Peer] = {}
        for node, address in peers.items():
            if node == self.node or not node:
                continue
            held = self._peers.get(node)
            if held is None:
                fresh[node] = _Peer(address, now)
            else:
                held.address = address
                fresh[node] = held
        self._peers = fresh

    def set_node_ready(self, node: str, ready: bool | None) -> None:
        """The Node's Ready condition (None: unknown, e.g. the Node was deleted)."""
        if ready is None:
            self._ready.pop(node, None)
        else:
            self._ready[node] = ready

    def accept(self, heartbeat: Heartbeat, now: float, wall_ms: int) -> Rejection | None:
        """Apply one authenticated heartbeat; None when accepted, else why it was refused."""
        if heartbeat.node == self.node:
            return Rejection.OWN_NAME
        peer = self._peers.get(heartbeat.node)
        if peer is None:
            return Rejection.UNKNOWN_NODE
        skew_ms = self.timing.max_clock_skew * 1000
        if heartbeat.timestamp_ms < wall_ms - skew_ms:
            return Rejection.TOO_OLD
        if heartbeat.timestamp_ms > wall_ms + skew_ms:
            return Rejection.FROM_FUTURE
        replay = self._replay.get(heartbeat.node)
        if replay is not None:
            if heartbeat.boot_id == replay.boot_id:
                if heartbeat.seq <= replay.seq:
                    return Rejection.REPLAYED
            elif heartbeat.boot_id < replay.boot_id and (
                now - replay.accepted_at <= 2 * self.timing.max_clock_skew
            ):
                # An older incarnation while the newer one was heard recently: a replay. After
                # 2x the skew window of silence no message of the newer boot can still pass the
                # timestamp check, so an older id is then a restart across a clock step.
                return Rejection.OLD_BOOT
        self._replay[heartbeat.node] = _Replay(heartbeat.boot_id, heartbeat.seq, now)
        peer.last_heard = None if heartbeat.leaving else now
        return None

    # --- outputs --------------------------------------------------------------------------

    def targets(self) -> dict[str, str]:
        """Where to send heartbeats: node → address of every peer."""
        return {node: peer.address for node, peer in self._peers.items()}

    def alive(self, node: str, now: float) -> bool:
        """Whether peer `node` is alive by heartbeats (Node readiness not applied)."""
        peer = self._peers.get(node)
        return peer is not None and self._alive(peer, now)

    def _alive(self, peer: _Peer, now: float) -> bool:
        return peer.last_heard is not None and now < peer.last_heard + self.timing.dead_after

    def _counted(self, node: str, peer: _Peer, now: float) -> bool:
        """Whether a peer counts for the partition rule: not NotReady, and heard at least once
        or watched for `dead_after` already (a just-added peer gets time to speak up)."""
        if self._ready.get(node) is False:
            return False
        return peer.last_heard is not None or now >= peer.added_at + self.timing.dead_after

    def settled(self, now: float) -> bool:
        """The peers are known (`set_peers` was called) and every one has been heard, or
        `dead_after` has passed since they became known. Before that the view shows too few
        live nodes and the speaker should not act on it."""
        if self._peers_since is None:
            return False
        return now >= self._peers_since + self.timing.dead_after or all(
            p.last_heard is not None for p in self._peers.values()
        )

    def view(self, now: float) -> View:
        not_ready = {node for node, ready in self._ready.items() if ready is False}
        alive_peers = {n for n, p in self._peers.items() if self._alive(p, now)}
        counted = {n for n, p in self._peers.items() if self._counted(n, p, now)}
        alive = 1 + len(alive_peers & counted)
        known = 1 + len(counted)
        return View(
            live_nodes=frozenset(({self.node} | alive_peers) - not_ready),
            in_minority=2 * alive < known,
            settled=self.settled(now),
            alive=alive,
            known=known,
        )

    def next_change(self, now: float) -> float | None:
        """The earliest time the view can change without a new message arriving."""
        times = []
        for peer in self._peers.values():
            if peer.last_heard is not None:
                if self._alive(peer, now):
                    times.append(peer.last_heard + self.timing.dead_after)
            elif now < peer.added_at + self.timing.dead_after:
                times.append(peer.added_at + self.timing.dead_after)
        if self._peers_since is not None and now < self._peers_since + self.timing.dead_after:
            times.append(self._peers_since + self.timing.dead_after)
        return min(times) if times else None

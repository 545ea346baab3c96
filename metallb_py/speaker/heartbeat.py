"""The membership protocol's pure core: the heartbeat wire format, liveness, leases and claims.

Replaces memberlist with authenticated all-to-all UDP heartbeats; the protocol, its timing,
the layer2 lease and the partition rule are described in docs/membership.md. Nothing here
reads a clock or touches a socket: callers pass `now` (monotonic seconds) and `wall_ms` (Unix
milliseconds), so every rule is unit tested with a fake clock. `membership.py` is the asyncio
transport.
"""

from __future__ import annotations

import collections
import enum
import hashlib
import hmac
import ipaddress
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

MAGIC = b"MLBh"
VERSION = 1
HEADER = struct.Struct("!4sBBHQQQ")
"""magic, version, flags, node-name length, boot id, sequence number, timestamp (Unix ms)."""
EXTENSION = struct.Struct("!QQHHH")
"""ack boot id, ack sequence, number of peer reports, of IPv4 claims, of IPv6 claims."""
REPORT = struct.Struct("!IH")
"""peer tag (first 4 bytes of SHA-256 of its node name), milliseconds since last heard."""
MAC_SIZE = 32
MAX_NODE_NAME = 253
"""A Node name is a DNS subdomain: at most 253 bytes."""
MAX_MESSAGE = 65507
"""The largest UDP payload over IPv4."""
MIN_MESSAGE = HEADER.size + 1 + MAC_SIZE
MAX_REPORT_AGE_MS = 65534

FLAG_UNAUTHENTICATED = 0x01
"""The sender has no secret: its MAC uses the public key derived from the empty secret."""
FLAG_LEAVING = 0x02
"""The sender is shutting down: mark it dead now instead of after `dead_after`."""
FLAG_EXTENDED = 0x04
"""The extension block (ack, peer reports, claims) follows the node name."""
FLAG_PROBE = 0x08
"""The sender suspects the receiver: answer with a heartbeat at once (the direct probe)."""

KEY_CONTEXT = b"metallb-py membership v1"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def derive_key(secret: str | bytes | None) -> bytes:
    """The HMAC-SHA256 key: HMAC-SHA256(secret, "metallb-py membership v1").

    The context string keeps this key distinct from any other use of the same secret. No
    secret (None or empty) gives a fixed, publicly known key: messages still detect
    corruption and mismatched configurations but anybody on the network can forge them.
    """
    raw = secret.encode() if isinstance(secret, str) else (secret or b"")
    return hmac.new(raw, KEY_CONTEXT, hashlib.sha256).digest()


def node_tag(node: str) -> int:
    """A peer's 4-byte name in peer reports (a collision only makes a takeover wait longer)."""
    return int.from_bytes(hashlib.sha256(node.encode()).digest()[:4], "big")


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
    ack_boot: int = 0
    ack_seq: int = 0
    """The receiver's boot id and sequence number the sender accepted last (0: none): the
    receiver's layer2 lease (docs/membership.md, "Layer2 lease")."""
    reports: tuple[tuple[int, int], ...] = ()
    """(peer tag, milliseconds since the sender last heard that peer): the indirect probe."""
    claims: frozenset[IPAddress] = frozenset()
    """The layer2 IPs the sender answers for when it sends this."""
    probe: bool = False
    """Answer at once: the sender suspects us."""

    @property
    def extended(self) -> bool:
        return bool(self.ack_boot or self.ack_seq or self.reports or self.claims)


def encode(heartbeat: Heartbeat, key: bytes, authenticated: bool = True) -> bytes:
    name = heartbeat.node.encode()
    if not 1 <= len(name) <= MAX_NODE_NAME:
        raise ValueError(f"node name must be 1..{MAX_NODE_NAME} bytes, got {len(name)}")
    flags = (
        (0 if authenticated else FLAG_UNAUTHENTICATED)
        | (FLAG_LEAVING if heartbeat.leaving else 0)
        | (FLAG_EXTENDED if heartbeat.extended else 0)
        | (FLAG_PROBE if heartbeat.probe else 0)
    )
    parts = [
        HEADER.pack(
            MAGIC,
            VERSION,
            flags,
            len(name),
            heartbeat.boot_id,
            heartbeat.seq,
            heartbeat.timestamp_ms,
        ),
        name,
    ]
    if heartbeat.extended:
        v4 = sorted(ip for ip in heartbeat.claims if ip.version == 4)
        v6 = sorted(ip for ip in heartbeat.claims if ip.version == 6)
        parts.append(
            EXTENSION.pack(
                heartbeat.ack_boot, heartbeat.ack_seq, len(heartbeat.reports), len(v4), len(v6)
            )
        )
        parts += [REPORT.pack(tag, min(age, MAX_REPORT_AGE_MS)) for tag, age in heartbeat.reports]
        parts += [ip.packed for ip in v4] + [ip.packed for ip in v6]
    body = b"".join(parts)
    if len(body) + MAC_SIZE > MAX_MESSAGE:
        raise ValueError(f"heartbeat of {len(body) + MAC_SIZE} bytes exceeds {MAX_MESSAGE}")
    return body + hmac.new(key, body, hashlib.sha256).digest()


def decode(data: bytes, key: bytes, authenticated: bool = True) -> Heartbeat:
    """Parse and authenticate one datagram; raises `MessageError`.

    `authenticated` False (no secret here) accepts messages from speakers without a secret
    only; with a secret, unauthenticated senders are refused before the MAC is checked.
    """
    if len(data) < MIN_MESSAGE or len(data) > MAX_MESSAGE:
        raise MessageError(Rejection.MALFORMED, f"{len(data)} bytes")
    magic, version, flags, name_len, boot_id, seq, timestamp_ms = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise MessageError(Rejection.MALFORMED, "bad magic")
    if version != VERSION:
        raise MessageError(Rejection.BAD_VERSION, f"version {version}")
    name_end = HEADER.size + name_len
    if not 1 <= name_len <= MAX_NODE_NAME:
        raise MessageError(Rejection.MALFORMED, "bad name length")
    if flags & FLAG_EXTENDED:
        if len(data) < name_end + EXTENSION.size + MAC_SIZE:
            raise MessageError(Rejection.MALFORMED, "extension truncated")
        ack_boot, ack_seq, n_reports, n4, n6 = EXTENSION.unpack_from(data, name_end)
        expected = name_end + EXTENSION.size + REPORT.size * n_reports + 4 * n4 + 16 * n6
    else:
        ack_boot = ack_seq = n_reports = n4 = n6 = 0
        expected = name_end
    if len(data) != expected + MAC_SIZE:
        raise MessageError(Rejection.MALFORMED, "length does not match the contents")
    if authenticated and flags & FLAG_UNAUTHENTICATED:
        raise MessageError(Rejection.UNAUTHENTICATED, "sender has no secret")
    body, mac = data[:-MAC_SIZE], data[-MAC_SIZE:]
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        raise MessageError(Rejection.BAD_MAC)
    try:
        node = data[HEADER.size : name_end].decode()
    except UnicodeDecodeError:
        raise MessageError(Rejection.MALFORMED, "node name is not UTF-8") from None
    offset = name_end + EXTENSION.size
    reports = tuple(REPORT.unpack_from(data, offset + REPORT.size * i) for i in range(n_reports))
    offset += REPORT.size * n_reports
    claims: set[IPAddress] = set()
    for i in range(n4):
        claims.add(ipaddress.IPv4Address(data[offset + 4 * i : offset + 4 * i + 4]))
    offset += 4 * n4
    for i in range(n6):
        claims.add(ipaddress.IPv6Address(data[offset + 16 * i : offset + 16 * i + 16]))
    return Heartbeat(
        node,
        boot_id,
        seq,
        timestamp_ms,
        leaving=bool(flags & FLAG_LEAVING),
        ack_boot=ack_boot,
        ack_seq=ack_seq,
        reports=reports,
        claims=frozenset(claims),
        probe=bool(flags & FLAG_PROBE),
    )


@dataclass(frozen=True)
class Timing:
    """The timers of docs/membership.md, "Timing"; `lease` < `dead_after` is the margin that
    makes a node stop answering before any other node may start."""

    interval: float = 0.025
    """Seconds between heartbeat rounds (one datagram to every peer per round)."""
    dead_after: float = 0.15
    """A peer is dead (its IPs may be taken over) when no valid heartbeat arrived for this
    long; the floor of the jitter-aware timeout."""
    lease: float | None = None
    """A node stops answering when no peer quorum acknowledged a heartbeat it sent within this
    long (None: `dead_after` - 50 ms, at least 2 rounds)."""
    max_clock_skew: float = 10.0
    """Heartbeats whose timestamp is further than this from our wall clock are refused."""
    max_dead_after: float = 1.0
    """The jitter-aware timeout never waits longer than this."""

    def __post_init__(self) -> None:
        if not 0 < self.interval < self.dead_after:
            raise ValueError("need 0 < interval < dead_after")
        if not self.interval < self.lease_time < self.dead_after:
            raise ValueError("need interval < lease < dead_after")
        if self.max_clock_skew <= 0:
            raise ValueError("max_clock_skew must be positive")
        if self.max_dead_after < self.dead_after:
            raise ValueError("max_dead_after must be at least dead_after")

    @property
    def lease_time(self) -> float:
        if self.lease is not None:
            return self.lease
        return max(self.dead_after - 0.05, (self.dead_after + 2 * self.interval) / 2)

    @property
    def suspect_after(self) -> float:
        """Silence after which the peer is probed directly every round."""
        return 2.5 * self.interval


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
    leased: int = 1
    """Speakers (itself included, among `known`) that acknowledged one of our heartbeats
    within `lease`."""
    link_up: bool = True
    """This node's own link (docs/membership.md, "Link state")."""
    kept: int = 1
    """Speakers (itself included, among `known`) that acknowledged one of our heartbeats
    within `dead_after`: before that no peer can have taken anything over."""
    claimed: frozenset[IPAddress] | None = frozenset()
    """Layer2 IPs that a live peer said it answers for in its last heartbeat; None when a live
    peer is heard only through others' reports, so what it answers for now is unknown."""

    @property
    def lease_held(self) -> bool:
        """At least half of the known speakers (itself included) acknowledged us recently."""
        return 2 * self.leased >= self.known

    @property
    def may_answer(self) -> bool:
        """Whether this node may answer for layer2 `Cluster` IPs at this instant (the lease
        rule; the responders' gate) and start announcing one."""
        return self.settled and self.link_up and self.lease_held and not self.in_minority

    @property
    def may_keep(self) -> bool:
        """Whether this node may keep the `Cluster` IPs it announces: the lease ran out less
        than `dead_after` - `lease` ago, so no peer can have taken one over yet. A short lapse
        silences the node (the gate) without withdrawing anything."""
        return (
            self.settled and self.link_up and 2 * self.kept >= self.known and not self.in_minority
        )


@dataclass
class _Replay:
    boot_id: int
    seq: int
    accepted_at: float


@dataclass
class _Peer:
    address: str
    added_at: float
    tag: int
    last_heard: float | None = None
    acked_at: float | None = None
    """When we sent the latest of our heartbeats this peer acknowledged (our clock)."""
    gap_peak: float = 0.0
    """The longest recent silence between two heartbeats, decaying (the jitter-aware part)."""
    gap_peak_at: float = 0.0
    reports: dict[int, tuple[float, float]] = field(default_factory=dict)
    """Peer tag -> (seconds since this peer heard it, when we received that report)."""
    claims: frozenset[IPAddress] = frozenset()
    replied_at: float | None = None
    """When we last answered a probe of this peer (rate limit)."""
    left_at: float | None = None
    """When it said it is leaving: reports about it received until then are void."""


GAP_HALF_LIFE = 30.0
"""Seconds for a remembered long silence to count half as much."""
SEND_LOG = 512
"""Own heartbeats remembered for their send times (acks of older ones are ignored)."""


@dataclass
class Liveness:
    """Per-peer liveness, leases, claims, replay protection and the partition rule of one
    speaker, and the heartbeats it sends."""

    node: str
    timing: Timing = field(default_factory=Timing)
    boot_id: int = 1
    _seq: int = field(default=0, init=False)
    _sent: collections.OrderedDict[int, float] = field(
        default_factory=collections.OrderedDict, init=False
    )
    _peers_since: float | None = field(default=None, init=False)
    """When `set_peers` was first called (or the link came back): settling starts there."""
    _peers: dict[str, _Peer] = field(default_factory=dict, init=False)
    _by_tag: dict[int, _Peer] = field(default_factory=dict, init=False)
    _replay: dict[str, _Replay] = field(default_factory=dict, init=False)
    _ready: dict[str, bool] = field(default_factory=dict, init=False)
    _link_up: bool = field(default=True, init=False)
    changed: bool = field(default=False, init=False)
    """Set when an accepted heartbeat may have changed the view (cleared by the caller)."""

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
                fresh[node] = _Peer(address, now, node_tag(node))
            else:
                held.address = address
                fresh[node] = held
        self._peers = fresh
        self._by_tag = {peer.tag: peer for peer in fresh.values()}

    def set_node_ready(self, node: str, ready: bool | None) -> None:
        """The Node's Ready condition (None: unknown, e.g. the Node was deleted)."""
        if ready is None:
            self._ready.pop(node, None)
        else:
            self._ready[node] = ready

    def set_link(self, up: bool, now: float) -> None:
        """This node's own link lost or regained carrier. Down: every peer is unheard and every
        lease void at once. Up: settle again, as at start (docs/membership.md, "Link state")."""
        if up == self._link_up:
            return
        self._link_up = up
        for peer in self._peers.values():
            peer.last_heard = peer.acked_at = None
            peer.reports.clear()
            peer.claims = frozenset()
            if up:
                peer.added_at = now
        if up and self._peers_since is not None:
            self._peers_since = now

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
        if not self._link_up:
            return None  # counted for replay, but a node without carrier hears nobody
        was_direct = self._direct(peer, now)
        was_leased, was_kept = self._leased(peer, now), self._kept(peer, now)
        if heartbeat.leaving:
            peer.last_heard = peer.acked_at = None
            peer.left_at = now
            peer.reports.clear()
            peer.claims = frozenset()
            self.changed = True
            return None
        peer.left_at = None
        if was_direct and peer.last_heard is not None:
            # Only silences it survived directly: a peer kept alive by others' reports across a
            # partition would otherwise teach us a partition-long "jitter".
            self._note_gap(peer, now - peer.last_heard, now)
        peer.last_heard = now
        if heartbeat.ack_boot == self.boot_id:
            sent = self._sent.get(heartbeat.ack_seq)
            if sent is not None and (peer.acked_at is None or sent > peer.acked_at):
                peer.acked_at = sent
        peer.reports = {tag: (age / 1000, now) for tag, age in heartbeat.reports}
        for tag, _ in heartbeat.reports:
            reported = self._by_tag.get(tag)
            if reported is not None and reported is not peer and not self._direct(reported, now):
                self.changed = True  # indirect evidence may revive (or keep) it
        if heartbeat.claims != peer.claims:
            peer.claims = heartbeat.claims
            self.changed = True
        if (
            not was_direct
            or was_leased != self._leased(peer, now)
            or was_kept != self._kept(peer, now)
        ):
            self.changed = True
        return None

    def _note_gap(self, peer: _Peer, gap: float, now: float) -> None:
        decayed = peer.gap_peak * 0.5 ** ((now - peer.gap_peak_at) / GAP_HALF_LIFE)
        peer.gap_peak = max(gap, decayed)
        peer.gap_peak_at = now

    # --- heartbeats to send ---------------------------------------------------------------

    def outgoing(
        self,
        now: float,
        wall_ms: int,
        claims: Iterable[IPAddress] = (),
        *,
        leaving: bool = False,
        only: str | None = None,
    ) -> list[tuple[str, str, Heartbeat]]:
        """One round (or, with `only`, one reply): (node, address, heartbeat) per peer, each
        acknowledging the last heartbeat we accepted from that peer, with the ages of every
        peer we hear and the IPs we answer for."""
        self._seq += 1
        self._sent[self._seq] = now
        while len(self._sent) > SEND_LOG:
            self._sent.popitem(last=False)
        claimed = frozenset(claims) if not leaving else frozenset()
        reports = tuple(
            (p.tag, round((now - p.last_heard) * 1000))
            for p in self._peers.values()
            if p.last_heard is not None and now - p.last_heard < self.timing.max_dead_after
        )
        out = []
        for node, peer in self._peers.items():
            if only is not None and node != only:
                continue
            replay = self._replay.get(node)
            silent = peer.last_heard is None or now - peer.last_heard >= self.timing.suspect_after
            out.append(
                (
                    node,
                    peer.address,
                    Heartbeat(
                        self.node,
                        self.boot_id,
                        self._seq,
                        wall_ms,
                        leaving,
                        ack_boot=replay.boot_id if replay else 0,
                        ack_seq=replay.seq if replay else 0,
                        reports=reports,
                        claims=claimed,
                        probe=silent and not leaving and self._link_up,
                    ),
                )
            )
        return out

    def reply_due(self, node: str, now: float) -> bool:
        """A probe from `node` arrived: answer now, at most twice per interval."""
        peer = self._peers.get(node)
        if peer is None or not self._link_up:
            return False
        if peer.replied_at is not None and now - peer.replied_at < self.timing.interval / 2:
            return False
        peer.replied_at = now
        return True

    # --- outputs --------------------------------------------------------------------------

    @property
    def link_up(self) -> bool:
        return self._link_up

    def targets(self) -> dict[str, str]:
        """Where to send heartbeats: node → address of every peer."""
        return {node: peer.address for node, peer in self._peers.items()}

    def timeout(self, node: str, now: float) -> float | None:
        """The jitter-aware death timeout of a peer: `dead_after`, or twice the longest recent
        silence between two of its heartbeats, at most `max_dead_after`."""
        peer = self._peers.get(node)
        return None if peer is None else self._timeout(peer, now)

    def _timeout(self, peer: _Peer, now: float) -> float:
        decayed = peer.gap_peak * 0.5 ** (max(0.0, now - peer.gap_peak_at) / GAP_HALF_LIFE)
        return min(self.timing.max_dead_after, max(self.timing.dead_after, 2 * decayed))

    def alive(self, node: str, now: float) -> bool:
        """Whether peer `node` is alive by heartbeats, direct or reported by a peer we hear
        (Node readiness not applied)."""
        peer = self._peers.get(node)
        return peer is not None and self._alive(peer, now)

    def heard_directly(self, node: str, now: float) -> bool:
        peer = self._peers.get(node)
        return peer is not None and self._direct(peer, now)

    def _direct(self, peer: _Peer, now: float) -> bool:
        return peer.last_heard is not None and now < peer.last_heard + self._timeout(peer, now)

    def _indirect_until(self, peer: _Peer, now: float) -> float | None:
        """Until when a peer we hear says it heard `peer` (within `dead_after` of its hearing)."""
        best = None
        for other in self._peers.values():
            if other is peer or not self._direct(other, now):
                continue
            report = other.reports.get(peer.tag)
            if report is not None and (peer.left_at is None or report[1] > peer.left_at):
                age, received = report
                until = received - age + self.timing.dead_after
                best = until if best is None else max(best, until)
        return best

    def _alive(self, peer: _Peer, now: float) -> bool:
        if not self._link_up:
            return False
        if self._direct(peer, now):
            return True
        until = self._indirect_until(peer, now)
        return until is not None and now < until

    def _leased(self, peer: _Peer, now: float) -> bool:
        return peer.acked_at is not None and now < peer.acked_at + self.timing.lease_time

    def _kept(self, peer: _Peer, now: float) -> bool:
        return peer.acked_at is not None and now < peer.acked_at + self.timing.dead_after

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
        if self._peers_since is None or not self._link_up:
            return False
        return now >= self._peers_since + self.timing.dead_after or all(
            p.last_heard is not None for p in self._peers.values()
        )

    def view(self, now: float) -> View:
        not_ready = {node for node, ready in self._ready.items() if ready is False}
        alive_peers = {n for n, p in self._peers.items() if self._alive(p, now)}
        counted = {n for n, p in self._peers.items() if self._counted(n, p, now)}
        leased = {n for n, p in self._peers.items() if self._leased(p, now)}
        kept = {n for n, p in self._peers.items() if self._kept(p, now)}
        alive = 1 + len(alive_peers & counted)
        known = 1 + len(counted)
        # A peer alive only by others' reports: what it answers for now is unknown (None).
        heard = [self._peers[n] for n in alive_peers]
        claimed: frozenset[IPAddress] | None = None
        if all(self._direct(p, now) for p in heard):
            claimed = frozenset().union(*(p.claims for p in heard))
        return View(
            live_nodes=frozenset(({self.node} | alive_peers) - not_ready),
            in_minority=2 * alive < known,
            settled=self.settled(now),
            alive=alive,
            known=known,
            leased=1 + len(leased & counted),
            link_up=self._link_up,
            kept=1 + len(kept & counted),
            claimed=claimed,
        )

    def next_change(self, now: float) -> float | None:
        """The earliest time the view can change without a new message arriving."""
        times = []
        dead_after = self.timing.dead_after
        for peer in self._peers.values():
            if self._direct(peer, now):
                assert peer.last_heard is not None
                times.append(peer.last_heard + self._timeout(peer, now))
            until = self._indirect_until(peer, now)
            if until is not None and until > now:
                times.append(until)
            if peer.last_heard is None and now < peer.added_at + dead_after:
                times.append(peer.added_at + dead_after)
            if self._leased(peer, now):
                assert peer.acked_at is not None
                times.append(peer.acked_at + self.timing.lease_time)
            if self._kept(peer, now):
                assert peer.acked_at is not None
                times.append(peer.acked_at + self.timing.dead_after)
        if self._peers_since is not None and now < self._peers_since + dead_after:
            times.append(self._peers_since + dead_after)
        return min(times) if times else None

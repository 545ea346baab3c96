"""One BFD session's state machine (RFC 5880 asynchronous mode), pure: every input carries the
time (`now`, seconds of a monotonic clock), every output is a value (`Actions`: packets to send,
state changes). The transport calls `receive` for each decoded packet, `advance` when
`next_wakeup` comes, and sends what they return.

What it does (docs/bgp.md, "BFD"):
- states AdminDown, Down, Init, Up with RFC 5880 section 6.8.6's transitions;
- while not Up, the Desired Min TX Interval sent is at least 1 s (section 6.8.3); reaching Up
  (or a settings change) starts a Poll Sequence that brings the configured intervals in;
  a larger transmit interval or a smaller receive interval takes effect only once the peer
  answered it with Final;
- transmit interval max(our desired min tx, the peer's required min rx), each one jittered to
  75-100 % (75-90 % when our detect multiplier is 1); no periodic packets while the peer asks
  for none (required min rx 0);
- detection time = the peer's detect multiplier x max(our required min rx, the peer's desired
  min tx); it running out forgets the peer's discriminator, state and Required Min RX in
  any state (so our packets stop naming a session the peer may no longer have, and a silent
  peer's request for no packets lapses), and in Init or Up also takes the session Down
  (diag 1);
- a packet with Poll is answered at once with Final (even by a passive session);
- passive: nothing is sent until the peer's discriminator is known;
- no periodic packets while the peer is in Demand mode (its D bit, both sides Up) and we are
  not polling: it asked for none;
- a state change, or the peer starting over with a new discriminator, sends a packet at once
  instead of waiting for the next interval (as FRR does), so a session comes up in a round
  trip rather than in seconds of slow-start intervals.
Our own Demand mode and the echo function are not implemented: we never set D and always send a
Required Min Echo RX of 0, which tells the peer not to send echoes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from metallb_py.bfd.packet import ControlPacket, Diag, State

SLOW_TX_INTERVAL = 1_000_000
"""Microseconds: the smallest Desired Min TX Interval sent while the session is not Up."""


@dataclass(frozen=True)
class Settings:
    """A session's configured timers (microseconds) and role."""

    desired_min_tx: int
    required_min_rx: int
    detect_mult: int
    passive: bool = False


@dataclass(frozen=True)
class Transition:
    old: State
    new: State
    diag: Diag
    at: float
    peer_state: State
    """What the peer last said: AdminDown means it stopped on purpose, and its clients
    should stay up (RFC 5882 section 3.2)."""


@dataclass
class Actions:
    """What one input asks of the transport."""

    send: list[ControlPacket] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    discarded: str = ""
    """Why the received packet was ignored ("" when it was not, or there was none)."""


@dataclass
class Counters:
    """The numbers the `metallb_bfd_*` metrics show. `packets_out` is the transport's: it
    counts packets that were sent, as FRR does, not the ones the session asked for."""

    packets_in: int = 0
    packets_out: int = 0
    up_events: int = 0
    down_events: int = 0


class BfdSession:
    """The state of one session (RFC 5880 section 6.8.1's variables)."""

    def __init__(
        self,
        settings: Settings,
        my_discriminator: int,
        now: float,
        *,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if my_discriminator == 0:
            raise ValueError("my discriminator must not be 0")
        self.settings = settings
        self.my_discriminator = my_discriminator
        self.state = State.DOWN
        self.local_diag = Diag.NONE
        self.remote_discriminator = 0
        self.remote_state = State.DOWN
        self.remote_min_rx = 1
        """RFC 5880 section 6.8.1: 1 until the peer tells (so the first packets may go)."""
        self.remote_desired_tx = 0
        self.remote_detect_mult = 0
        self.remote_demand = False
        self.counters = Counters()
        self._jitter = jitter
        self._polling = False
        self._tx_in_force = self.desired_min_tx
        """The desired min tx used for our interval: a raise waits for the poll's Final."""
        self._rx_in_force = settings.required_min_rx
        """The required min rx used for our detection time: a cut waits for the poll's Final."""
        self._last_rx: float | None = None
        self._next_tx: float | None = now

    # --- what we advertise ---------------------------------------------------------------------

    @property
    def desired_min_tx(self) -> int:
        if self.state is State.UP:
            return self.settings.desired_min_tx
        return max(self.settings.desired_min_tx, SLOW_TX_INTERVAL)

    @property
    def transmit_interval(self) -> int:
        """Microseconds between our periodic packets, before jitter (0: none)."""
        if self.remote_min_rx == 0:
            return 0
        return max(self._tx_in_force, self.remote_min_rx)

    @property
    def detection_time(self) -> float:
        """Seconds without a packet from the peer after which the session goes Down (0 while
        the peer has not sent anything)."""
        if self.remote_detect_mult == 0:
            return 0.0
        return self.remote_detect_mult * max(self._rx_in_force, self.remote_desired_tx) / 1e6

    @property
    def polling(self) -> bool:
        return self._polling

    def next_wakeup(self) -> float | None:
        """When `advance` has something to do: the next periodic packet or the detection
        deadline, whichever is first."""
        times = [t for t in (self._next_tx, self._detection_deadline()) if t is not None]
        return min(times) if times else None

    def _detection_deadline(self) -> float | None:
        if self._last_rx is None or self.state is State.ADMIN_DOWN:
            return None
        return self._last_rx + self.detection_time

    # --- inputs ----------------------------------------------------------------------------------

    def receive(self, packet: ControlPacket, now: float) -> Actions:
        """A packet that passed the codec's checks (RFC 5880 section 6.8.6, from "If the Your
        Discriminator field is nonzero")."""
        actions = Actions()
        if packet.your_discriminator not in (0, self.my_discriminator):
            actions.discarded = "your discriminator names no session of ours"
            return actions
        if self.state is State.ADMIN_DOWN:
            actions.discarded = "session is AdminDown"
            return actions
        self.counters.packets_in += 1
        old_interval = self.transmit_interval
        restarted = self.remote_discriminator not in (0, packet.my_discriminator)
        self.remote_discriminator = packet.my_discriminator
        self.remote_state = packet.state
        self.remote_min_rx = packet.required_min_rx
        self.remote_desired_tx = packet.desired_min_tx
        self.remote_detect_mult = packet.detect_mult
        self.remote_demand = packet.demand
        self._last_rx = now
        if packet.final and self._polling:
            self._polling = False
            self._tx_in_force = self.desired_min_tx
            self._rx_in_force = self.settings.required_min_rx
        if packet.state is State.ADMIN_DOWN:
            if self.state is not State.DOWN:
                self._change(State.DOWN, Diag.NEIGHBOR_SIGNALED_DOWN, now, actions)
        elif self.state is State.DOWN:
            if packet.state is State.DOWN:
                self._change(State.INIT, Diag.NONE, now, actions)
            elif packet.state is State.INIT:
                self._change(State.UP, Diag.NONE, now, actions)
        elif self.state is State.INIT:
            if packet.state in (State.INIT, State.UP):
                self._change(State.UP, Diag.NONE, now, actions)
        elif packet.state is State.DOWN:  # we are Up
            self._change(State.DOWN, Diag.NEIGHBOR_SIGNALED_DOWN, now, actions)
        if packet.poll:
            actions.send.append(self._packet(final=True))
        elif restarted and not actions.send and self._may_send():
            # The peer started a new session (new discriminator): tell it ours at once rather
            # than after a slow-start interval.
            actions.send.append(self._packet())
        interval = self.transmit_interval
        if self._next_tx is None and interval and self._may_send():
            self._next_tx = now  # passive: the peer spoke, so we start
        elif interval and interval < old_interval and self._next_tx is not None:
            self._next_tx = min(self._next_tx, now + self._jittered(interval))
        return actions

    def advance(self, now: float) -> Actions:
        """Timers: the detection time running out, the periodic packet falling due."""
        actions = Actions()
        deadline = self._detection_deadline()
        if deadline is not None and now >= deadline:
            # RFC 5880 sections 6.8.1 and 6.8.18: the peer is forgotten in any state (its
            # request for fewer or no packets too); only Init and Up have a session to take
            # down.
            self.remote_discriminator = 0
            self.remote_detect_mult = 0
            self.remote_demand = False
            self.remote_min_rx = 1
            self._last_rx = None
            if self.state in (State.INIT, State.UP):
                self._change(State.DOWN, Diag.DETECTION_TIME_EXPIRED, now, actions)
            elif self._next_tx is None and self._may_send():
                self._next_tx = now + self._jittered(self.transmit_interval)
            self.remote_state = State.DOWN
        if self._next_tx is not None and now >= self._next_tx:
            self._send_periodic(now, actions)
        return actions

    def update_settings(self, settings: Settings, now: float) -> Actions:
        """New configured timers or role: advertised at once, with a Poll Sequence."""
        actions = Actions()
        if settings == self.settings:
            return actions
        self.settings = settings
        self._timers_changed(now, actions)
        if self._next_tx is None and self.transmit_interval and self._may_send():
            self._next_tx = now  # no longer passive: start sending
        return actions

    def admin_down(self, now: float) -> Actions:
        """Stop the session on purpose: one AdminDown packet tells the peer (which must not
        take its clients down for it), then silence."""
        actions = Actions()
        if self.state is not State.ADMIN_DOWN:
            self._change(State.ADMIN_DOWN, Diag.ADMINISTRATIVELY_DOWN, now, actions)
        if not actions.send and self.remote_discriminator:
            actions.send.append(self._packet())
        self._next_tx = None
        self._last_rx = None
        return actions

    # --- internals -------------------------------------------------------------------------------

    def _may_send(self) -> bool:
        if self.state is State.ADMIN_DOWN:
            return False
        return not (self.settings.passive and self.remote_discriminator == 0)

    def _remote_demand_active(self) -> bool:
        """Demand mode is active on the peer (RFC 5880 section 6.6): it asked for no periodic
        packets, and both sessions are Up."""
        return self.remote_demand and self.state is State.UP and self.remote_state is State.UP

    def _change(self, new: State, diag: Diag, now: float, actions: Actions) -> None:
        old = self.state
        if new is old:
            return
        self.state = new
        self.local_diag = diag
        actions.transitions.append(Transition(old, new, diag, now, self.remote_state))
        if new is State.UP:
            self.counters.up_events += 1
        elif new is State.DOWN:  # from Init or Up; our own AdminDown is not counted (as FRR)
            self.counters.down_events += 1
        self._timers_changed(now, actions)
        if self._may_send() or new is State.ADMIN_DOWN:
            actions.send.append(self._packet())  # a state change is told at once
            interval = self.transmit_interval
            self._next_tx = now + self._jittered(interval) if interval else None
        else:
            self._next_tx = None

    def _timers_changed(self, now: float, actions: Actions) -> None:
        """The advertised intervals may have changed (settings, or Up's slow start ending):
        decreases of tx and increases of rx take effect at once, the rest after a poll."""
        tx, rx = self.desired_min_tx, self.settings.required_min_rx
        if self.state is not State.UP:
            self._tx_in_force, self._rx_in_force = tx, rx
            self._polling = False
            return
        if tx == self._tx_in_force and rx == self._rx_in_force:
            return
        self._tx_in_force = min(self._tx_in_force, tx)
        self._rx_in_force = max(self._rx_in_force, rx)
        self._polling = True

    def _send_periodic(self, now: float, actions: Actions) -> None:
        interval = self.transmit_interval
        if not self._may_send() or not interval:
            self._next_tx = None
            return
        if self._remote_demand_active() and not self._polling:
            self._next_tx = now + self._jittered(interval)  # checked again, nothing sent
            return
        actions.send.append(self._packet())
        self._next_tx = now + self._jittered(interval)

    def _jittered(self, interval: int) -> float:
        """Seconds: 75-100 % of the interval, 75-90 % when our detect multiplier is 1."""
        top = 0.9 if self.settings.detect_mult == 1 else 1.0
        return interval * (0.75 + (top - 0.75) * self._jitter()) / 1e6

    def _packet(self, *, final: bool = False) -> ControlPacket:
        """Poll rides on every packet of a Poll Sequence except a Final reply."""
        return ControlPacket(
            state=self.state,
            my_discriminator=self.my_discriminator,
            your_discriminator=self.remote_discriminator,
            desired_min_tx=self.desired_min_tx,
            required_min_rx=self.settings.required_min_rx,
            detect_mult=self.settings.detect_mult,
            diag=self.local_diag,
            poll=self._polling and not final,
            final=final,
        )

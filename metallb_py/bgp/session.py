"""One BGP session to one configured peer: an active speaker that announces routes.

Life cycle (docs/bgp.md, "Session life cycle"): connect with a 10 s deadline that covers TCP and
the OPEN/KEEPALIVE exchange, retry with backoff 0, 1, 2, 4 ... 120 s (reset only once a session
stayed established for `STABLE_SESSION_TIME`); while established, send KEEPALIVE every hold/3, run
a real receive hold timer, answer malformed input with the NOTIFICATION the codec chose, and send
the routes as packed UPDATEs. UPDATEs with malformed but skippable path attributes are handled per
RFC 7606 (treat-as-withdraw, attribute discard): counted, logged at most once per
`UPDATE_PROBLEM_LOG_INTERVAL` and kind, no NOTIFICATION. `set_routes()` replaces the desired set;
only the difference goes on the wire. Nothing a peer sends can stop the session task: it logs,
drops, and reconnects.

The connection up to Established (socket options, the OPEN exchange, what it settles) is
`connection.py`; this module owns the retries, the established loop and the routes.

Integration: create one `BgpSession` per selected peer inside the running event loop, call
`set_routes()` whenever the advertisement set changes, `close()` when the peer goes away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from metallb_py.bgp import messages as m
from metallb_py.bgp.connection import (
    OUR_FAMILIES,
    Connection,
    PeerNotificationError,
    SessionDownError,
    dial,
    open_exchange,
)
from metallb_py.bgp.host import LocalHost
from metallb_py.config.model import IPNetwork, Peer

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
MAX_BACKOFF = 120.0
STABLE_SESSION_TIME = 30.0
"""Seconds a session must stay Established before the retry backoff starts again from 0.

Upstream resets the backoff after every successful connection, so a peer that accepts the
OPEN exchange and then rejects something (a NOTIFICATION right after our UPDATEs, or a reset
after its own KEEPALIVE) is redialled about once a second forever. A session that dies within
this time counts as one more failure instead: the delays keep growing to `MAX_BACKOFF`.
30 s is far longer than sending a full table and End-of-RIB takes (10,000 routes: well under a
second) and than the shortest hold time (3 s), so a peer that rejects the table, or goes silent
at once, is caught; yet a session that really worked and then broke is retried immediately.
A fixed time, not a multiple of the hold time: a hold-timer expiry on a silent peer with a long
hold time must not count as a stable session any more than a quick NOTIFICATION does.
"""
FIRST_TABLE_MAX_WAIT = 30.0
"""Seconds a session created with `wait_for_routes` holds its first table and End-of-RIB for
`routes_complete()`; then it sends what it has (and logs a warning)."""
UPDATE_PROBLEM_LOG_INTERVAL = 60.0
"""At most one log line per kind of malformed UPDATE (action and error) per peer in this many
seconds; the next line says how many were counted meanwhile. A peer that repeats a bad UPDATE
cannot flood the log, and `stats.malformed_updates` keeps the exact count."""
Sleep = Callable[[float], Awaitable[None]]


def backoff_delay(failures: int) -> float:
    """Seconds to wait after the n-th consecutive failure (0-based): 0, 1, 2, 4 ... 120."""
    if failures <= 0:
        return 0.0
    return float(min(2 ** (failures - 1), MAX_BACKOFF))


@dataclass
class SessionStats:
    """What MetalLB's BGP metrics need, readable at scrape time without a metrics library."""

    up: bool = False
    updates_sent: int = 0
    announced_prefixes: int = 0
    pending_prefixes: int = 0
    established_count: int = 0
    last_error: str = ""
    malformed_updates: int = 0
    """UPDATEs handled by RFC 7606 treat-as-withdraw or attribute discard (no reset)."""
    last_update_problem: str = ""


class ThrottledLog:
    """Logs the first event of each kind, then at most one line per kind and `interval`,
    carrying the count of the events that were not logged in between. The kinds must come
    from a small fixed set (here: RFC 7606 action and NOTIFICATION code/subcode)."""

    def __init__(self, interval: float, clock: Callable[[], float]) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    def event(self, kind: str) -> int | None:
        """None: do not log this one; else the number of events not logged before it."""
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._unlogged[kind] = self._unlogged.get(kind, 0) + 1
            return None
        self._last[kind] = now
        return self._unlogged.pop(kind, 0)


class BgpSession:
    """An active BGP speaker session to `peer` (must be created inside the running loop).

    `link_local_next_hop` adds the interface's link-local address as second IPv6 next hop on
    single-hop eBGP sessions. It is off by default: a router that cannot map the link-local to
    an interface (FRR without zebra, for one) rejects the whole MP_REACH_NLRI.

    `wait_for_routes` holds the first table and its End-of-RIB until `routes_complete()` (at
    most `FIRST_TABLE_MAX_WAIT`): a speaker that restarted gracefully must not send End-of-RIB
    before it knows all its routes, or the peer drops the stale ones not re-sent yet.
    """

    def __init__(
        self,
        peer: Peer,
        node_name: str,
        *,
        host: LocalHost | None = None,
        sleep: Sleep = asyncio.sleep,
        connect_timeout: float = CONNECT_TIMEOUT,
        link_local_next_hop: bool = False,
        stable_time: float = STABLE_SESSION_TIME,
        wait_for_routes: bool = False,
    ) -> None:
        self.peer = peer
        self.node_name = node_name
        self.host = host or LocalHost()
        self.stats = SessionStats()
        self.established = asyncio.Event()
        """Set while the session is Established."""
        self.flushed = asyncio.Event()
        """Set while Established and the peer has been sent the latest desired set."""
        self._sleep = sleep
        self._connect_timeout = connect_timeout
        self._stable_time = stable_time
        loop = asyncio.get_running_loop()
        self._clock = loop.time
        self._problem_log = ThrottledLog(UPDATE_PROBLEM_LOG_INTERVAL, loop.time)
        self._link_local_next_hop = link_local_next_hop
        self._desired: dict[IPNetwork, m.Route] = {}
        self._advertised: dict[IPNetwork, m.Route] = {}
        self._wake = asyncio.Event()
        self._conn: Connection | None = None
        self._closing = False
        self._ever_established = False
        self._routes_complete = asyncio.Event()
        if not wait_for_routes:
            self._routes_complete.set()
        self._task = loop.create_task(self._run(), name=f"bgp-session-{self.peer_label}")

    @property
    def peer_label(self) -> str:
        """`host:port` (IPv6 bracketed): the `peer` label of the BGP metrics."""
        return self.peer.endpoint

    # --- public API --------------------------------------------------------------------------

    def set_routes(self, routes: Iterable[m.Route]) -> None:
        """Replace the desired set (a later route for the same prefix wins) and wake the sender."""
        desired = {r.prefix: r for r in routes}
        if desired == self._desired:
            return
        self._desired = desired
        self.stats.pending_prefixes = len(desired)
        self.flushed.clear()
        self._wake.set()

    @property
    def desired_routes(self) -> dict[IPNetwork, m.Route]:
        return dict(self._desired)

    async def wait_established(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.established.wait(), timeout)

    async def wait_flushed(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.flushed.wait(), timeout)

    def routes_complete(self) -> None:
        """The desired set is whole (the speaker's start-up reconcile is over): the first table
        and End-of-RIB may go out (see `wait_for_routes`)."""
        self._routes_complete.set()

    async def close(
        self, subcode: int = m.CeaseSubcode.PEER_DECONFIGURED, *, graceful: bool = False
    ) -> None:
        """Send Cease/`subcode` if connected (6/3 peer removed, 6/2 process stopping), stop.

        `graceful`: the process stops to come back (SIGTERM). When graceful restart was
        negotiated on the connection, it is closed without a NOTIFICATION, so the peer keeps
        our routes as stale for the restart time instead of withdrawing them (RFC 4724 4.2;
        a Cease would end that, RFC 8538 aside)."""
        if self._closing:
            await asyncio.gather(self._task, return_exceptions=True)
            return
        self._closing = True
        conn = self._conn
        if conn is not None and graceful and conn.graceful_restart:
            log.info(
                "BGP peer %s: closing without NOTIFICATION (graceful restart: the peer keeps "
                "our routes for %ds)",
                self.peer_label,
                self.peer.graceful_restart_time or 0,
            )
            await conn.close_for_restart()
        elif conn is not None:
            log.info(
                "BGP peer %s: closing, sending NOTIFICATION %s",
                self.peer_label,
                m.error_name(m.ErrorCode.CEASE, subcode),
            )
            await conn.notify(m.ErrorCode.CEASE, subcode)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._set_down()

    @property
    def closed(self) -> bool:
        return self._closing and self._task.done()

    def drop(self, reason: str) -> None:
        """Tear the connection down now, without a NOTIFICATION (BFD saw the path fail, so
        the peer is presumed unreachable); the retry loop reconnects as after any failure."""
        conn = self._conn
        if conn is None or self._closing:
            return
        log.warning("BGP peer %s: dropping the session: %s", self.peer_label, reason)
        conn.abort()

    # --- the connection loop -----------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while not self._closing:
            try:
                conn = await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._record_failure(exc, "connect")
                self._drop()
            else:
                started = self._clock()
                try:
                    await self._established_loop(conn)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if not self._closing:  # else: the goodbye of close(), not a failure
                        self._record_failure(exc, "session")
                finally:
                    self._drop()
                if self._closing:
                    return  # close() ended it: no retry to announce
                lasted = self._clock() - started
                if lasted >= self._stable_time:
                    failures = 0  # it worked for a while: the first retry is immediate
                else:
                    log.info(
                        "BGP peer %s: session lasted %.1fs (< %.0fs): backoff keeps growing",
                        self.peer_label,
                        lasted,
                        self._stable_time,
                    )
            delay = backoff_delay(failures)
            failures += 1
            log.info("BGP peer %s: retrying in %.0fs", self.peer_label, delay)
            await self._sleep(delay)

    def _record_failure(self, exc: BaseException, phase: str) -> None:
        if isinstance(exc, m.BgpError):
            text = f"sent NOTIFICATION {exc}"
        elif isinstance(exc, PeerNotificationError):
            text = str(exc)
        elif isinstance(exc, TimeoutError):
            text = f"{phase} timed out"
        elif isinstance(exc, SessionDownError):
            text = str(exc)
        elif isinstance(exc, OSError):
            text = f"{type(exc).__name__}: {exc}"
        else:
            log.exception("BGP peer %s: unexpected error in %s", self.peer_label, phase)
            text = f"internal error: {exc!r}"
        self.stats.last_error = text
        log.warning("BGP peer %s: %s failed: %s", self.peer_label, phase, text)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort()
        self._set_down()

    def _set_down(self) -> None:
        if self.stats.up:
            log.info("BGP peer %s: session down", self.peer_label)
        self.stats.up = False
        self.stats.announced_prefixes = 0
        self._advertised = {}
        self.established.clear()
        self.flushed.clear()

    # --- connecting --------------------------------------------------------------------------

    async def _connect(self) -> Connection:
        """TCP and the OPEN exchange, within the connect deadline; a `close()` meanwhile
        sends its Cease on the half-open connection."""
        async with asyncio.timeout(self._connect_timeout):
            addresses = await asyncio.to_thread(self.host.addresses)
            conn = await dial(self.peer, self.host, addresses)
            self._conn = conn
            try:
                await open_exchange(
                    conn,
                    self.peer,
                    addresses,
                    self.node_name,
                    link_local_next_hop=self._link_local_next_hop,
                    graceful_restart=self._graceful_restart(),
                )
            except m.BgpError as exc:
                await conn.notify(exc.code, exc.subcode, exc.data)
                raise
            return conn

    def _graceful_restart(self) -> m.GracefulRestart | None:
        """Our Graceful Restart capability (None when not configured): Restart State set
        until this session object was first Established (a new process cannot tell a restart
        from a first start; docs/bgp.md, "Graceful restart"), Forwarding State set for every
        family (the kernel forwards to the Services, not this process)."""
        restart_time = self.peer.graceful_restart_time
        if restart_time is None:
            return None
        return m.GracefulRestart(
            restart_time,
            restarted=not self._ever_established,
            families=tuple((family, True) for family in OUR_FAMILIES),
        )

    # --- established -------------------------------------------------------------------------

    async def _established_loop(self, conn: Connection) -> None:
        self.stats.up = True
        self.stats.established_count += 1
        self.stats.last_error = ""
        self._ever_established = True
        assert conn.context is not None
        log.info(
            "BGP peer %s: session established (router-id %s, hold %ds, families %s, %s, %s)",
            self.peer_label,
            conn.router_id,
            conn.hold_time,
            sorted(conn.families),
            "4-octet AS" if conn.four_octet_as else "2-octet AS",
            _describe_graceful_restart(self.peer.graceful_restart_time, conn),
        )
        self.established.set()
        self._wake.set()  # the full desired set goes out on every (re)connect
        tasks = [
            asyncio.create_task(self._reader_loop(conn)),
            asyncio.create_task(self._sender_loop(conn)),
        ]
        if conn.hold_time:
            tasks.append(asyncio.create_task(self._keepalive_loop(conn)))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        error = next(iter(done)).exception() or SessionDownError("session task ended")
        if isinstance(error, m.BgpError):
            await conn.notify(error.code, error.subcode, error.data)
        raise error

    async def _reader_loop(self, conn: Connection) -> None:
        hold = conn.hold_time or None
        while True:
            try:
                async with asyncio.timeout(hold):
                    msg = await conn.read()
            except TimeoutError:
                raise m.BgpError(
                    m.ErrorCode.HOLD_TIMER_EXPIRED, 0, b"", f"nothing received for {hold}s"
                ) from None
            if isinstance(msg, m.Notification):
                raise PeerNotificationError(msg)
            if isinstance(msg, m.Open):
                raise m.BgpError(
                    m.ErrorCode.FSM, m.FsmSubcode.UNEXPECTED_IN_ESTABLISHED, b"", "OPEN received"
                )
            if isinstance(msg, m.Update) and msg.problems:
                self._malformed_update(msg)
            if (
                isinstance(msg, m.RouteRefresh)
                and (msg.afi, msg.safi) in conn.families
                and msg.subtype == 0
            ):
                log.info(
                    "BGP peer %s: ROUTE-REFRESH for AFI %d, re-sending",
                    self.peer_label,
                    msg.afi,
                )
                conn.refresh.add(msg.afi)
                self._wake.set()
            # KEEPALIVE and UPDATE only restart the hold timer: we do not use the peer's routes
            # (so treat-as-withdraw has nothing to withdraw).

    def _malformed_update(self, update: m.Update) -> None:
        """RFC 7606: the UPDATE was treated as a withdrawal (or lost attributes); the session
        stays up. Counted always, logged per kind at most once per interval."""
        action = update.action
        assert action is not None
        self.stats.malformed_updates += 1
        self.stats.last_update_problem = f"{action.label}: {update.problems[0]}"
        kinds: dict[str, m.UpdateProblem] = {}
        for problem in update.problems:
            kinds.setdefault(f"{problem.action.label} {problem.code}/{problem.subcode}", problem)
        for kind, problem in kinds.items():
            unlogged = self._problem_log.event(kind)
            if unlogged is None:
                continue
            log.warning(
                "BGP peer %s: malformed UPDATE (%s), handled by %s%s (RFC 7606), no "
                "NOTIFICATION sent%s; such lines at most every %.0fs",
                self.peer_label,
                problem,
                action.label,
                "" if problem.action is action else f" ({problem.action.label} for this part)",
                f"; {unlogged} more since the last line" if unlogged else "",
                self._problem_log.interval,
            )

    async def _keepalive_loop(self, conn: Connection) -> None:
        interval = conn.hold_time / 3
        while True:
            await asyncio.sleep(interval)
            conn.send(m.encode_keepalive())
            await conn.writer.drain()

    async def _sender_loop(self, conn: Connection) -> None:
        await self._wait_routes_complete()
        first = True
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._flush(conn)
            if first:
                for family in sorted(conn.families):
                    conn.send(m.encode_end_of_rib(family))
                    self.stats.updates_sent += 1
                await conn.writer.drain()
                first = False
            if not self._wake.is_set():
                self.flushed.set()

    async def _wait_routes_complete(self) -> None:
        if self._routes_complete.is_set():
            return
        try:
            await asyncio.wait_for(self._routes_complete.wait(), FIRST_TABLE_MAX_WAIT)
        except TimeoutError:
            log.warning(
                "BGP peer %s: routes still not complete after %.0fs; sending what is known",
                self.peer_label,
                FIRST_TABLE_MAX_WAIT,
            )
            self._routes_complete.set()

    def _sendable(self, conn: Connection, route: m.Route) -> bool:
        assert conn.context is not None
        version = route.prefix.version
        family = m.IPV4_UNICAST if version == 4 else m.IPV6_UNICAST
        return family in conn.families and conn.context.can_send(version)

    async def _flush(self, conn: Connection) -> None:
        """Send what the peer lacks: packed UPDATEs for new or changed routes, then packed
        withdrawals for routes no longer desired."""
        ctx = conn.context
        assert ctx is not None
        desired = self._desired  # set_routes() replaces the dict, never mutates it
        if conn.refresh:
            versions = {4 if afi == m.AFI_IPV4 else 6 for afi in conn.refresh}
            conn.refresh.clear()
            self._advertised = {
                p: r for p, r in self._advertised.items() if p.version not in versions
            }
        sendable = {p: r for p, r in desired.items() if self._sendable(conn, r)}
        held = len(desired) - len(sendable)
        if held != conn.held_back:
            conn.held_back = held
            log.warning(
                "BGP peer %s: %d routes not sent: family not negotiated with the peer or "
                "no local next hop of that family",
                self.peer_label,
                held,
            )
        advertised = self._advertised
        changed = [r for p, r in sendable.items() if advertised.get(p) != r]
        removed = [p for p in advertised if p not in sendable]
        for data in m.pack_announcements(changed, ctx) + m.pack_withdrawals(removed):
            conn.send(data)
            self.stats.updates_sent += 1
            await conn.writer.drain()
        self._advertised = sendable
        self.stats.announced_prefixes = len(sendable)


def _describe_graceful_restart(configured: int | None, conn: Connection) -> str:
    """For the "session established" log line."""
    if configured is None:
        return "graceful restart off"
    peer = conn.peer_graceful_restart
    if peer is None:
        return "graceful restart not negotiated (the peer did not offer it)"
    return f"graceful restart negotiated (ours {configured}s, peer's {peer.restart_time}s)"

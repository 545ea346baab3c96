"""Membership transport: authenticated UDP heartbeats between speakers (docs/membership.md).

A thin asyncio shell around `heartbeat.Liveness`: one UDP socket (default port 7946, the
`--ml-bindport`), one task that sends a heartbeat round every `interval` and wakes exactly when
a peer's timeout or a lease runs out, a check of this node's own link every round, and a change
callback that fires whenever the view (live nodes, minority, lease, claims, settled) changes,
so the speaker re-evaluates at once (no rate limit).

`python -m metallb_lab.harness.membership` (the lab package) runs one instance without
Kubernetes, for tests and debugging.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from metallb_py.layer2.interfaces import list_interfaces
from metallb_py.speaker.heartbeat import (
    IPAddress,
    Liveness,
    MessageError,
    Rejection,
    Timing,
    View,
    decode,
    derive_key,
    encode,
)

log = logging.getLogger(__name__)

DEFAULT_PORT = 7946
SECRET_ENV = "METALLB_ML_SECRET_KEY"
SYS_CLASS_NET = Path("/sys/class/net")


def carrier_up(operstate: str, carrier: str | None) -> bool:
    """An interface passes traffic: operstate `up` (or `unknown`, which drivers without
    operstate report) and no carrier loss. `carrier` None: unreadable (administratively down)."""
    return operstate.strip() in ("up", "unknown") and carrier is not None and carrier.strip() == "1"


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


class LinkWatch:
    """This node's own link, read from sysfs every heartbeat round (a few microseconds).

    Only trusted when sysfs shows this network namespace: the interface's `ifindex` there must
    be the one netlink reports, else the watch stays off (a process entered into a namespace
    without remounting /sys sees the host's interfaces)."""

    def __init__(self, name: str, index: int) -> None:
        self.name = name
        self.index = index
        self.directory = SYS_CLASS_NET / name
        self.enabled = (_read(self.directory / "ifindex") or "").strip() == str(index)

    def up(self) -> bool:
        if not self.enabled:
            return True
        operstate = _read(self.directory / "operstate")
        if operstate is None:  # the interface is gone
            return False
        return carrier_up(operstate, _read(self.directory / "carrier"))


def interface_of(address: str) -> tuple[str, int] | None:
    """The interface holding `address` (name, index), or None (netlink; blocks briefly)."""
    try:
        wanted = ipaddress.ip_address(address)
    except ValueError:
        return None
    for iface in list_interfaces():
        if any(a.ip == wanted for a in iface.addresses):
            return iface.name, iface.index
    return None


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: Membership) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.owner._received(data, str(addr[0]))

    def error_received(self, exc: Exception) -> None:
        # ICMP errors and unreachable networks (a peer's link is down): liveness already
        # covers them, so only count.
        self.owner.stats["send_errors"] += 1


class Membership:
    """One speaker's membership. Create, `await start()`, feed `set_peers` / `set_node_ready`,
    read `live_nodes()` / `in_minority()` or react to `on_change`; `await stop()` at exit."""

    def __init__(
        self,
        node: str,
        *,
        secret: str | bytes | None,
        bind_host: str = "",
        port: int = DEFAULT_PORT,
        timing: Timing | None = None,
        on_change: Callable[[View], None] | None = None,
        claims: Callable[[], Iterable[IPAddress]] | None = None,
        link_interface: str | None = None,
    ) -> None:
        """`claims` returns the layer2 IPs this node answers for now (sent in every heartbeat);
        `link_interface` is the interface whose carrier counts as this node's link (default:
        the one holding `bind_host`; none without a bind address)."""
        self.node = node
        self.authenticated = bool(secret)
        self._key = derive_key(secret)
        self.bind_host = bind_host
        self.port = port
        self.timing = timing or Timing()
        self.on_change = on_change
        self.boot_id = time.time_ns()
        self.claims = claims
        self.link_interface = link_interface
        self._link: LinkWatch | None = None
        self._liveness = Liveness(node, self.timing, self.boot_id)
        self._last_view: View | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()
        self.stats: collections.Counter[str] = collections.Counter()
        self._warned: set[Rejection] = set()

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        if not self.authenticated:
            log.warning(
                "no memberlist secret (%s): membership heartbeats are NOT authenticated; "
                "anyone on the network can forge them",
                SECRET_ENV,
            )
        loop = asyncio.get_running_loop()
        sock = self._bind()
        try:
            transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
        except BaseException:
            sock.close()
            raise
        self._transport = transport
        await self._watch_link()
        self._task = asyncio.create_task(self._run(), name=f"membership-{self.node}")
        self._publish()

    async def _watch_link(self) -> None:
        name = self.link_interface
        found = None
        try:
            if name is not None:
                found = (name, socket.if_nametoindex(name))
            elif self.bind_host:
                found = await asyncio.to_thread(interface_of, self.bind_host)
        except Exception as exc:  # netlink trouble or no such interface: no link watch
            log.warning("membership: cannot watch the link (%s): %s", name or self.bind_host, exc)
        if found is None:
            return
        self._link = LinkWatch(*found)
        if not self._link.enabled:
            log.warning("membership: /sys does not show %s of this namespace: no link watch", found)
            self._link = None
        else:
            log.info("membership: watching the carrier of %s", found[0])

    def _bind(self) -> socket.socket:
        """A socket on the bind address; without one, dual-stack `::` (IPv4 peers through
        mapped addresses), or `0.0.0.0` where the kernel has no IPv6."""
        hosts = [self.bind_host] if self.bind_host else ["::", "0.0.0.0"]
        for i, host in enumerate(hosts):
            v6 = ipaddress.ip_address(host).version == 6
            sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
            try:
                if v6 and not self.bind_host:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, self.port))
                sock.setblocking(False)
                return sock
            except OSError:
                sock.close()
                if i == len(hosts) - 1:
                    raise
        raise AssertionError("unreachable")

    async def stop(self) -> None:
        """Tell the peers we are leaving (they drop us at once), then close."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._transport is not None:
            self._send_round(leaving=True)
            self._transport.close()
            self._transport = None

    @property
    def local_port(self) -> int:
        """The bound port (useful with port 0)."""
        if self._transport is None:
            raise RuntimeError("not started")
        return int(self._transport.get_extra_info("sockname")[1])

    # --- inputs ---------------------------------------------------------------------------

    def set_peers(self, peers: Mapping[str, str]) -> None:
        """Speakers to watch: node name → Pod IP (the Pods `--ml-labels` selects; this node's
        own entry may be included, it is ignored)."""
        self._liveness.set_peers(peers, time.monotonic())
        self._wake.set()
        self._publish()

    def set_node_ready(self, node: str, ready: bool | None) -> None:
        """Second source: a Node that is NotReady is not live (this one included)."""
        self._liveness.set_node_ready(node, ready)
        self._publish()

    # --- outputs --------------------------------------------------------------------------

    def view(self) -> View:
        return self._liveness.view(time.monotonic())

    def live_nodes(self) -> frozenset[str]:
        return self.view().live_nodes

    def in_minority(self) -> bool:
        return self.view().in_minority

    def settled(self) -> bool:
        return self.view().settled

    async def wait_settled(self) -> None:
        """Until `set_peers` was called and every peer has been heard (or `dead_after` passed):
        the speaker should not decide anything before (it would see only itself alive)."""
        await self._settled.wait()

    # --- internals ------------------------------------------------------------------------

    def _publish(self) -> None:
        view = self.view()
        if view.settled:
            self._settled.set()
        if view == self._last_view:
            return
        self._last_view = view
        log.info(
            "membership: live=%s minority=%s (%d/%d heard, %d leased)%s",
            sorted(view.live_nodes),
            view.in_minority,
            view.alive,
            view.known,
            view.leased,
            "" if view.link_up else " link down",
        )
        if self.on_change is not None:
            self.on_change(view)

    def _received(self, data: bytes, source: str) -> None:
        now = time.monotonic()
        was_alive = True
        try:
            heartbeat = decode(data, self._key, self.authenticated)
            was_alive = self._liveness.alive(heartbeat.node, now)
            reason = self._liveness.accept(heartbeat, now, time.time_ns() // 10**6)
        except MessageError as exc:
            reason, heartbeat = exc.reason, None
        if reason is not None:
            self.stats[f"rejected_{reason.value}"] += 1
            level = logging.DEBUG if reason in self._warned else logging.WARNING
            self._warned.add(reason)
            log.log(level, "membership: refused a datagram from %s: %s", source, reason.value)
            return
        self.stats["accepted"] += 1
        assert heartbeat is not None
        if heartbeat.leaving:
            log.info("membership: %s is leaving", heartbeat.node)
        if heartbeat.probe and self._liveness.reply_due(heartbeat.node, now):
            self.stats["probes_answered"] += 1
            self._send(only=heartbeat.node)
        # A heartbeat from a peer that stays alive with the same claims changes nothing: skip
        # the view (the common case, N times per round).
        if not was_alive or self._liveness.changed:
            self._liveness.changed = False
            self._publish()

    def _send_round(self, leaving: bool = False) -> None:
        self._send(leaving=leaving)

    def _send(self, *, leaving: bool = False, only: str | None = None) -> None:
        """One heartbeat per peer (or to `only`): each carries that peer's acknowledgement."""
        if self._transport is None:
            return
        claims = self.claims() if self.claims is not None else ()
        v6 = self._transport.get_extra_info("socket").family == socket.AF_INET6
        for _, address, heartbeat in self._liveness.outgoing(
            time.monotonic(), time.time_ns() // 10**6, claims, leaving=leaving, only=only
        ):
            target = address
            if v6 and ":" not in address:
                target = f"::ffff:{address}"
            elif not v6 and ":" in address:
                self.stats["skipped_family"] += 1
                continue
            self._transport.sendto(
                encode(heartbeat, self._key, self.authenticated), (target, self.port)
            )
            self.stats["sent"] += 1

    def _check_link(self) -> None:
        if self._link is None:
            return
        up = self._link.up()
        if up != self._liveness.link_up:
            log.warning("membership: link %s %s", self._link.name, "up" if up else "DOWN")
            self.stats["link_up" if up else "link_down"] += 1
            self._liveness.set_link(up, time.monotonic())

    async def _run(self) -> None:
        next_send = time.monotonic()
        while True:
            self._check_link()
            now = time.monotonic()
            if now >= next_send:
                self._send_round()
                next_send = max(next_send + self.timing.interval, now)
            self._publish()
            deadline = next_send
            change = self._liveness.next_change(time.monotonic())
            if change is not None:
                deadline = min(deadline, change)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, deadline - time.monotonic()))

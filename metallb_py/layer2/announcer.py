"""The layer2 engine the speaker drives: `announce(key, ips)` / `withdraw(key)`.

It keeps responders on the qualifying interfaces (rescanned every 10 s and on demand), tells each
one which IPs it answers for (only interfaces whose subnet contains the IP, when there are such),
and sends gratuitous ARP / unsolicited NA when an IP is taken over: when it goes from not
announced to announced, not on every reconcile (docs/behaviour-differences.md, "Gratuitous
announcements on takeover only"). All methods run on the event loop's thread; from another
thread use `loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Iterable
from typing import TypeVar

from metallb_py.layer2 import interfaces as ifaces
from metallb_py.layer2.responder import (
    ArpResponder,
    Layer2Error,
    NdpResponder,
    Responder,
    check_privileges,
)
from metallb_py.layer2.state import (
    GRATUITOUS_PERIOD,
    GRATUITOUS_WINDOW,
    Announcements,
    Change,
    GratuitousSchedule,
    IPAddress,
    to_ip,
)
from metallb_py.layer2.stats import Layer2Stats

log = logging.getLogger(__name__)

SCAN_INTERVAL = 10.0
R = TypeVar("R", ArpResponder, NdpResponder)


class Announcer:
    """Layer2 announcements of one node.

    `only_interfaces` limits the scan to the named interfaces (the debug entry point and the
    benchmarks use it); `restrict_to_subnet=False` restores upstream's "answer on every
    interface". `list_interfaces` is the netlink adapter, replaceable for a different source.
    """

    def __init__(
        self,
        *,
        stats: Layer2Stats | None = None,
        only_interfaces: Collection[str] | None = None,
        restrict_to_subnet: bool = True,
        scan_interval: float = SCAN_INTERVAL,
        window: float = GRATUITOUS_WINDOW,
        period: float = GRATUITOUS_PERIOD,
        list_interfaces: Callable[[], list[ifaces.Interface]] = ifaces.list_interfaces,
        clock: Callable[[], float] = time.monotonic,
        gate: Callable[[str], bool] | None = None,
    ) -> None:
        """`gate(ip)`: whether this node may answer for `ip` (canonical text) at this instant;
        checked for every reply and gratuitous announcement (the speaker passes the layer2
        lease, docs/membership.md). None: always."""
        self.stats = stats if stats is not None else Layer2Stats()
        self.only_interfaces = frozenset(only_interfaces) if only_interfaces is not None else None
        self.restrict_to_subnet = restrict_to_subnet
        self.scan_interval = scan_interval
        self.period = period
        self._list_interfaces = list_interfaces
        self._clock = clock
        self.gate = gate
        self._state = Announcements()
        self._schedule = GratuitousSchedule(window)
        self._interfaces: list[ifaces.Interface] = []
        # Interface name -> its responder; one map per family.
        self.arp: dict[str, ArpResponder] = {}
        self.ndp: dict[str, NdpResponder] = {}
        # Announced IP -> interfaces answering for it.
        self._placement: dict[IPAddress, frozenset[str]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scan_task: asyncio.Task[None] | None = None
        self._ticker: asyncio.TimerHandle | None = None

    # --- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Check privileges and interfaces, open the responders, start the periodic scan.

        Raises Layer2Error (a readable message) for no root / no CAP_NET_RAW and for an
        interface named in `only_interfaces` that does not exist.
        """
        check_privileges()
        loop = asyncio.get_running_loop()
        try:
            found = await asyncio.to_thread(self._list_interfaces)
        except Exception as exc:  # netlink errors are not OSErrors in pyroute2
            raise Layer2Error(f"cannot list network interfaces: {exc}") from None
        if self.only_interfaces is not None:
            missing = sorted(self.only_interfaces - {i.name for i in found})
            if missing:
                raise Layer2Error(f"interface {', '.join(map(repr, missing))} does not exist")
        self._loop = loop
        self._apply_scan(found)
        # IPs announced before start() had no responder yet: this is their takeover.
        for ip in sorted(self._state.ips(), key=lambda a: (a.version, a)):
            self._trigger(ip)
        self._scan_task = asyncio.create_task(self._scan_forever(), name="layer2-scan")

    async def close(self) -> None:
        if self._scan_task is not None:
            self._scan_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scan_task
            self._scan_task = None
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        for responder in [*self.arp.values(), *self.ndp.values()]:
            responder.close()
        self.arp.clear()
        self.ndp.clear()
        self._loop = None

    async def __aenter__(self) -> Announcer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- what the speaker calls ----------------------------------------------------------

    def announce(self, key: str, ips: Iterable[IPAddress | str]) -> None:
        """Announce exactly `ips` for Service `key` (replacing its previous set)."""
        self._apply(self._state.announce(key, ips))

    def withdraw(self, key: str) -> None:
        """Stop announcing Service `key`'s IPs (those no other Service still uses). Nothing is
        sent: the new owner's gratuitous frames move the traffic (docs/layer2.md, "Gratuitous
        announcements")."""
        self._apply(self._state.withdraw(key))

    def refresh(self, ip: IPAddress | str) -> None:
        """Re-run the gratuitous schedule for an announced IP (e.g. after a link flap)."""
        address = to_ip(ip)
        if self._state.is_announced(address):
            self._trigger(address)

    def announced(self) -> frozenset[IPAddress]:
        return self._state.ips()

    def services(self) -> dict[str, frozenset[IPAddress]]:
        return self._state.keys()

    def placement(self) -> dict[IPAddress, frozenset[str]]:
        """Announced IP -> names of the interfaces that answer for it."""
        return dict(self._placement)

    async def scan(self) -> None:
        """Rescan interfaces now (also runs every `scan_interval` seconds)."""
        try:
            found = await asyncio.to_thread(self._list_interfaces)
        except Exception as exc:  # netlink trouble: keep the current responders
            log.warning("layer2: listing interfaces failed: %s", exc)
            return
        self._apply_scan(found)

    # --- internals -----------------------------------------------------------------------

    def _apply(self, change: Change) -> None:
        for ip in change.removed:
            self._schedule.discard(ip)
            for name in self._placement.pop(ip, frozenset()):
                responder = self._responder_for(ip, name)
                if responder is not None:
                    responder.remove_target(ip)
            self.stats.forget(str(ip))
        for ip in change.added:
            names = self._place(ip)
            self._placement[ip] = names
            for name in names:
                responder = self._responder_for(ip, name)
                if responder is not None:
                    responder.add_target(ip)
            self._trigger(ip)

    def _responder_for(self, ip: IPAddress, name: str) -> Responder | None:
        return (self.arp if ip.version == 4 else self.ndp).get(name)

    def _candidates(self, version: int) -> list[ifaces.Interface]:
        table: dict[str, ArpResponder] | dict[str, NdpResponder] = (
            self.arp if version == 4 else self.ndp
        )
        return [i for i in self._interfaces if i.name in table]

    def _place(self, ip: IPAddress) -> frozenset[str]:
        return ifaces.answering_interfaces(
            ip, self._candidates(ip.version), self.restrict_to_subnet
        )

    async def _scan_forever(self) -> None:
        while True:
            await asyncio.sleep(self.scan_interval)
            try:
                await self.scan()
            except Exception:  # keep scanning: the next tick may well succeed
                log.exception("layer2: interface scan failed")

    def _apply_scan(self, found: list[ifaces.Interface]) -> None:
        """Open/close responders to match `found`; one failing interface never stops the rest."""
        assert self._loop is not None
        if self.only_interfaces is not None:
            found = [i for i in found if i.name in self.only_interfaces]
        self._interfaces = found
        by_name = {i.name: i for i in found}
        self._sync(self.arp, {i.name for i in found if i.wants_arp}, by_name, ArpResponder)
        self._sync(self.ndp, {i.name for i in found if i.wants_ndp}, by_name, NdpResponder)
        self._placement = {ip: self._place(ip) for ip in self._state.ips()}
        for version, table in ((4, self.arp), (6, self.ndp)):
            for name, responder in table.items():
                responder.set_targets(
                    ip
                    for ip, names in self._placement.items()
                    if ip.version == version and name in names
                )

    def _sync(
        self,
        table: dict[str, R],
        wanted: set[str],
        by_name: dict[str, ifaces.Interface],
        factory: type[R],
    ) -> None:
        assert self._loop is not None
        for name in list(table):
            responder = table[name]
            current = by_name.get(name)
            if (
                name not in wanted
                or current is None
                or _identity(current) != _identity(responder.iface)
            ):
                responder.close()
                del table[name]
                log.info("layer2: closed %s responder on %s", responder.kind, name)
        for name in sorted(wanted - set(table)):
            try:
                responder = factory(by_name[name], self.stats)
                responder.gate = self.gate
                responder.start(self._loop)
            except (Layer2Error, OSError) as exc:
                log.warning("layer2: no %s responder on %s: %s", factory.kind, name, exc)
                continue
            table[name] = responder
            log.info("layer2: opened %s responder on %s", factory.kind, name)

    def _trigger(self, ip: IPAddress) -> None:
        if self._loop is None:  # not started: start() triggers every announced IP
            return
        if self._schedule.trigger(ip, self._clock()):
            self._send_gratuitous(ip)
        if self._ticker is None and self._schedule.active:
            self._ticker = self._loop.call_later(self.period, self._tick)

    def _tick(self) -> None:
        self._ticker = None
        for ip in self._schedule.tick(self._clock()):
            self._send_gratuitous(ip)
        if self._schedule.active and self._loop is not None:
            self._ticker = self._loop.call_later(self.period, self._tick)

    def _send_gratuitous(self, ip: IPAddress) -> None:
        if not self._state.is_announced(ip):
            return
        if self.gate is not None and not self.gate(str(ip)):
            return
        sent = 0
        for name in self._placement.get(ip, frozenset()):
            responder = self._responder_for(ip, name)
            if responder is not None:
                sent += responder.gratuitous(ip)
        if sent:
            self.stats.sent_gratuitous(str(ip), sent)


def _identity(iface: ifaces.Interface) -> tuple[int, bytes, object]:
    """A responder must be reopened when its interface was re-created or changed MAC/link-local."""
    return (iface.index, iface.mac, iface.link_local)

"""What this node announces, and when to repeat gratuitous announcements. Pure: the caller passes
the clock, so the rules (docs/layer2.md, "Gratuitous announcements") are tested without
sleeping."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

GRATUITOUS_WINDOW = 5.0
GRATUITOUS_PERIOD = 1.1


def to_ip(value: IPAddress | str) -> IPAddress:
    return value if isinstance(value, IPAddress) else ipaddress.ip_address(value)


@dataclass(frozen=True)
class Change:
    """IPs whose reference count went 0 -> 1 (`added`, a takeover) or 1 -> 0 (`removed`)."""

    added: frozenset[IPAddress] = frozenset()
    removed: frozenset[IPAddress] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)


class Announcements:
    """Service key -> set of IPs, plus a per-IP count of the Services using it.

    Set semantics per key (docs/behaviour-differences.md, "Set semantics per Service"):
    announcing the same IPs again changes nothing, so counts cannot drift above the number of
    Services and withdrawal always releases the IP.
    """

    def __init__(self) -> None:
        self._by_key: dict[str, frozenset[IPAddress]] = {}
        self._refs: dict[IPAddress, int] = {}

    def announce(self, key: str, ips: Iterable[IPAddress | str]) -> Change:
        new = frozenset(to_ip(ip) for ip in ips)
        old = self._by_key.get(key, frozenset())
        if new:
            self._by_key[key] = new
        else:
            self._by_key.pop(key, None)
        added, removed = set(), set()
        for ip in new - old:
            count = self._refs.get(ip, 0) + 1
            self._refs[ip] = count
            if count == 1:
                added.add(ip)
        for ip in old - new:
            count = self._refs[ip] - 1
            if count:
                self._refs[ip] = count
            else:
                del self._refs[ip]
                removed.add(ip)
        return Change(frozenset(added), frozenset(removed))

    def withdraw(self, key: str) -> Change:
        return self.announce(key, ())

    def is_announced(self, ip: IPAddress) -> bool:
        return ip in self._refs

    def refcount(self, ip: IPAddress) -> int:
        return self._refs.get(ip, 0)

    def ips(self) -> frozenset[IPAddress]:
        return frozenset(self._refs)

    def keys(self) -> dict[str, frozenset[IPAddress]]:
        return dict(self._by_key)


class GratuitousSchedule:
    """Gratuitous windows: a trigger opens (or extends) a 5 s window and sends at once if the IP
    was not already in one; a shared 1.1 s ticker re-sends every IP whose window is still open.

    The ticker starts with the first open window and stops when none is left, so one trigger
    gives announcements at +0, +1.1, +2.2, +3.3 and +4.4 s: five over ~4.4 s.
    """

    def __init__(self, window: float = GRATUITOUS_WINDOW) -> None:
        self.window = window
        self._until: dict[IPAddress, float] = {}

    def trigger(self, ip: IPAddress, now: float) -> bool:
        """Open/extend the window; True when an announcement must be sent right now."""
        send_now = ip not in self._until
        self._until[ip] = now + self.window
        return send_now

    def tick(self, now: float) -> list[IPAddress]:
        """IPs to announce at this tick; closes windows that have ended."""
        due = []
        for ip, until in list(self._until.items()):
            if now > until:
                del self._until[ip]
            else:
                due.append(ip)
        return due

    def discard(self, ip: IPAddress) -> None:
        self._until.pop(ip, None)

    @property
    def active(self) -> bool:
        return bool(self._until)

"""The allocator's indexes over integer address keys (`ips.ip_key`): which keys are used, as
maximal runs, and who uses one IP with which sharing keys and ports.
"""

from __future__ import annotations

import bisect

from metallb_py.allocator.allocation import Port
from metallb_py.allocator.ips import go_quote


class UsedRuns:
    """Used keys as maximal runs [start, end], so the first free key is one bisect away."""

    __slots__ = ("ends", "starts")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def add(self, key: int) -> None:
        starts, ends = self.starts, self.ends
        i = bisect.bisect_right(starts, key) - 1
        if i >= 0 and ends[i] >= key:
            raise AssertionError(f"key {key} already used")
        join_left = i >= 0 and ends[i] == key - 1
        join_right = i + 1 < len(starts) and starts[i + 1] == key + 1
        if join_left and join_right:
            ends[i] = ends[i + 1]
            del starts[i + 1], ends[i + 1]
        elif join_left:
            ends[i] = key
        elif join_right:
            starts[i + 1] = key
        else:
            starts.insert(i + 1, key)
            ends.insert(i + 1, key)

    def remove(self, key: int) -> None:
        starts, ends = self.starts, self.ends
        i = bisect.bisect_right(starts, key) - 1
        if i < 0 or ends[i] < key:
            raise AssertionError(f"key {key} not used")
        start, end = starts[i], ends[i]
        if start == end:
            del starts[i], ends[i]
        elif key == start:
            starts[i] = key + 1
        elif key == end:
            ends[i] = key - 1
        else:
            ends[i] = key - 1
            starts.insert(i + 1, key + 1)
            ends.insert(i + 1, end)

    def first_free(self, lo: int) -> int:
        i = bisect.bisect_right(self.starts, lo) - 1
        if i >= 0 and self.ends[i] >= lo:
            return self.ends[i] + 1
        return lo


class IPUse:
    """Who uses one IP. All users have the same keys (the sharing check guarantees it)."""

    __slots__ = ("backend_key", "ports", "sharing_key", "users")

    def __init__(self, sharing_key: str, backend_key: str) -> None:
        self.sharing_key = sharing_key
        self.backend_key = backend_key
        self.users: dict[str, None] = {}
        self.ports: dict[Port, str] = {}


def keys_conflict(use: IPUse, sharing_key: str, backend_key: str) -> str | None:
    """Why a Service with these keys may not join the IP's users, or None: both need the same
    non-empty sharing key and the same backend key."""
    if use.sharing_key == "":
        return "existing service does not allow sharing"
    if sharing_key == "":
        return "new service does not allow sharing"
    if use.sharing_key != sharing_key:
        return (
            f"sharing key {go_quote(sharing_key)} does not match existing sharing key "
            f"{go_quote(use.sharing_key)}"
        )
    if use.backend_key != backend_key:
        return (
            f"backend key {go_quote(backend_key)} does not match existing backend key "
            f"{go_quote(use.backend_key)}"
        )
    return None

"""The single-worker event queue of each component.

Semantics follow client-go's rate-limited work queue, which MetalLB relies on:

* a key is queued at most once (de-duplication), and a key being processed is never handed out
  twice: if it is added meanwhile it is queued again when the worker says `done`;
* retries (`add_rate_limited`) wait max(per-key exponential backoff, global token bucket): 5 ms
  doubling per failure up to 1000 s, and 10 keys/s with a burst of 100;
* `forget` resets the key's backoff after a success.

Plain `add` is not rate limited; in MetalLB reprocess-all goes through the limiter, which makes a
re-sync of N Services take N/10 seconds. Here it does not (docs/behaviour-differences.md): a
reconcile is cheap, and failover must not wait behind a throttle.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass
class TokenBucket:
    rate: float = 10.0
    burst: int = 100
    clock: Callable[[], float] = time.monotonic
    _tokens: float = field(init=False)
    _last: float = field(init=False)

    def __post_init__(self) -> None:
        self._tokens = float(self.burst)
        self._last = self.clock()

    def reserve(self) -> float:
        """Take one token, returning how long the caller must wait before using it."""
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


@dataclass
class ExponentialBackoff(Generic[K]):
    base: float = 0.005
    cap: float = 1000.0
    _failures: dict[K, int] = field(default_factory=dict)

    def when(self, key: K) -> float:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        return min(self.cap, self.base * (2**n))

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)


class WorkQueue(Generic[K]):
    def __init__(
        self,
        backoff: ExponentialBackoff[K] | None = None,
        bucket: TokenBucket | None = None,
    ) -> None:
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._delayed: dict[K, asyncio.TimerHandle] = {}
        self._backoff: ExponentialBackoff[K] = backoff or ExponentialBackoff()
        self._bucket = bucket or TokenBucket()
        self._closed = False

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: K) -> None:
        if self._closed or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return
        self._queue.append(key)
        self._wake()

    def add_after(self, key: K, delay: float) -> None:
        if self._closed:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        old = self._delayed.get(key)
        if old is not None:
            if old.when() <= loop.time() + delay:
                return
            old.cancel()

        def fire() -> None:
            self._delayed.pop(key, None)
            self.add(key)

        self._delayed[key] = loop.call_later(delay, fire)

    def add_rate_limited(self, key: K) -> float:
        """Queue a retry; returns the delay chosen (for logs and tests)."""
        delay = max(self._backoff.when(key), self._bucket.reserve())
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        self._backoff.forget(key)

    def retries(self, key: K) -> int:
        return self._backoff.failures(key)

    async def get(self) -> K | None:
        """The next key, or None once the queue is shut down and drained."""
        while not self._queue:
            if self._closed:
                return None
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            finally:
                if fut in self._waiters:
                    self._waiters.remove(fut)
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake()

    def shutdown(self) -> None:
        self._closed = True
        for handle in self._delayed.values():
            handle.cancel()
        self._delayed.clear()
        self._wake_all()

    def _wake(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def _wake_all(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)

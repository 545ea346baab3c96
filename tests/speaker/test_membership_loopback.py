"""The asyncio transport on loopback (127.0.0.x): real sockets, real timers, no namespaces."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable

from metallb_py.speaker.heartbeat import View
from metallb_py.speaker.membership import Membership

ADDRESSES = {"a": "127.0.0.1", "b": "127.0.0.2", "c": "127.0.0.3"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until `condition` held; bounded by `timeout`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def crash(m: Membership) -> None:
    """Stop without the leave message, like SIGKILL."""
    assert m._task is not None and m._transport is not None
    m._task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await m._task
    m._transport.close()
    m._transport = None


def test_three_speakers_see_each_other_crash_and_restart():
    async def scenario() -> None:
        port = free_port()
        changes: dict[str, list[View]] = {n: [] for n in ADDRESSES}
        members = {
            n: Membership(
                n,
                secret="s3cret",
                bind_host=a,
                port=port,
                on_change=changes[n].append,
            )
            for n, a in ADDRESSES.items()
        }
        try:
            for m in members.values():
                await m.start()
                m.set_peers(ADDRESSES)
            await asyncio.wait_for(asyncio.gather(*(m.wait_settled() for m in members.values())), 2)
            await until(
                lambda: all(m.live_nodes() == set(ADDRESSES) for m in members.values()),
                2,
                "everybody live",
            )
            assert not any(m.in_minority() for m in members.values())
            assert changes["a"][-1].live_nodes == set(ADDRESSES)

            await crash(members["c"])
            # The change callback tells the speaker (that is what it reacts to).
            gone = await until(
                lambda: (
                    changes["a"][-1].live_nodes == {"a", "b"}
                    and changes["b"][-1].live_nodes == {"a", "b"}
                ),
                2,
                "c dead",
            )
            # 150 ms without a heartbeat (the default timers), from the last one (sent up to
            # 25 ms before the crash); was 350 ms / 100 ms before the lease timers.
            assert 0.1 < gone < 1.0, gone
            assert members["a"].live_nodes() == {"a", "b"}
            assert not members["a"].in_minority() and not changes["a"][-1].in_minority

            members["c"] = Membership("c", secret="s3cret", bind_host=ADDRESSES["c"], port=port)
            await members["c"].start()
            members["c"].set_peers(ADDRESSES)
            await until(
                lambda: all(m.live_nodes() == set(ADDRESSES) for m in members.values()),
                2,
                "c back",
            )

            # A graceful stop says goodbye: the others drop it without waiting.
            await members["b"].stop()
            left = await until(lambda: "b" not in members["a"].live_nodes(), 2, "b left")
            assert left < 0.2, left
        finally:
            for m in members.values():
                await m.stop()

    asyncio.run(scenario())


def test_wrong_secret_and_no_secret_are_refused():
    async def scenario() -> None:
        port = free_port()
        peers = {"a": "127.0.0.1", "b": "127.0.0.2", "c": "127.0.0.3"}
        a = Membership("a", secret="s3cret", bind_host="127.0.0.1", port=port)
        b = Membership("b", secret="other", bind_host="127.0.0.2", port=port)
        c = Membership("c", secret=None, bind_host="127.0.0.3", port=port)
        try:
            for m in (a, b, c):
                await m.start()
                m.set_peers(peers)
            await until(
                lambda: (
                    a.stats["rejected_badMAC"] >= 3 and a.stats["rejected_unauthenticated"] >= 3
                ),
                2,
                "refusals",
            )
            assert a.live_nodes() == {"a"} and a.stats["accepted"] == 0
            # Once the peers had time to speak up, hearing nobody means the minority.
            await until(a.in_minority, 2, "a in the minority")
            # The two speakers without a (matching) secret do not hear each other either.
            assert b.live_nodes() == {"b"} and c.live_nodes() == {"c"}
            assert c.stats["rejected_badMAC"] >= 1
        finally:
            for m in (a, b, c):
                await m.stop()

    asyncio.run(scenario())

import asyncio

import pytest

from metallb_py.k8s.workqueue import ExponentialBackoff, TokenBucket, WorkQueue


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


def test_dedup_and_order():
    async def main():
        q: WorkQueue[str] = WorkQueue()
        for k in ["a", "b", "a", "c", "b"]:
            q.add(k)
        assert len(q) == 3
        got = [await q.get() for _ in range(3)]
        assert got == ["a", "b", "c"]

    run(main())


def test_key_added_while_processing_is_requeued_after_done_not_handed_out_twice():
    async def main():
        q: WorkQueue[str] = WorkQueue()
        q.add("a")
        k = await q.get()
        assert k is not None
        q.add("a")
        assert len(q) == 0  # not handed to a second worker while processing
        q.done(k)
        assert await q.get() == "a"

    run(main())


def test_exponential_backoff_5ms_doubling_capped_and_forget():
    b: ExponentialBackoff[str] = ExponentialBackoff()
    delays = [b.when("k") for _ in range(20)]
    assert delays[:4] == [0.005, 0.01, 0.02, 0.04]
    assert delays[-1] == 1000.0
    b.forget("k")
    assert b.when("k") == 0.005


def test_token_bucket_burst_100_then_10_per_second():
    now = [0.0]
    bucket = TokenBucket(clock=lambda: now[0])
    waits = [bucket.reserve() for _ in range(100)]
    assert waits == [0.0] * 100
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2)
    now[0] = 10.0  # refilled
    assert bucket.reserve() == 0.0


def test_rate_limited_retry_arrives_after_its_delay():
    async def main():
        q: WorkQueue[str] = WorkQueue()
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(5):  # 5 failures: next delay 0.08 s
            q.add_rate_limited("x")
            k = await q.get()
            assert k is not None
            q.done(k)
        assert q.retries("x") == 5
        delay = q.add_rate_limited("x")
        assert delay == pytest.approx(0.16)
        t0 = loop.time()
        assert await q.get() == "x"
        assert loop.time() - t0 >= 0.15
        assert loop.time() - start < 5

    run(main())


def test_shutdown_releases_waiters():
    async def main():
        q: WorkQueue[str] = WorkQueue()
        waiter = asyncio.create_task(q.get())
        await asyncio.sleep(0)
        q.shutdown()
        assert await waiter is None

    run(main())

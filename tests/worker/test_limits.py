"""Worker limiter, global rate limit and global concurrency (docs/port-differences.md#limits).

The port's worker runs the first 1-2 jobs and then never fetches again: it
records the limit but nothing waits on it. Ours waits for the window and goes on.
"""

from __future__ import annotations

import asyncio
import time

from bullbridge import Queue
from bullbridge.testing.node import NodeDriver
from tests.timing import record
from tests.worker.impls import PyWorker, impls, wait_until


async def _fill(producer: Queue, n: int) -> None:
    await producer.add_bulk([("job", {"i": i}) for i in range(n)])


@impls("with a limiter it stops fetching after 1-2 jobs")
async def test_worker_limiter_is_obeyed_and_resumes(
    impl: str, redis_url: str, producer: Queue, queue_name: str
) -> None:
    starts: list[float] = []

    async def body(job):
        starts.append(time.monotonic())

    await _fill(producer, 6)
    worker = await PyWorker(
        impl, queue_name, redis_url, body, limiter={"max": 2, "duration": 400}, concurrency=2
    ).start()
    try:
        # 3 s for the 0.8 s the limiter needs (measured 0.80-0.83 s idle to heavy; the port never finishes).
        assert await wait_until(lambda: len(starts) == 6, timeout=3), f"only {len(starts)} of 6 jobs ran"
        record("test_worker_limiter_is_obeyed_and_resumes", impl=impl, span=starts[-1] - starts[0])
        # At most 2 starts in any 400 ms window, minus 50 ms for timestamp rounding: a lower bound,
        # which load cannot break (it only makes starts later).
        for a, b in zip(starts, starts[2:]):
            assert b - a >= 0.35, f"limiter broken: starts {[round(s - starts[0], 3) for s in starts]}"
    finally:
        await worker.close()


@impls("a global rate limit set by Node stops it for good")
async def test_global_rate_limit_set_by_node(
    impl: str, node: NodeDriver, redis_url: str, producer: Queue, queue_name: str
) -> None:
    await node.queue_call(queue_name, "setGlobalRateLimit", 2, 400)
    starts: list[float] = []

    async def body(job):
        starts.append(time.monotonic())

    await _fill(producer, 6)
    worker = await PyWorker(impl, queue_name, redis_url, body, concurrency=3).start()
    try:
        # 3 s for the 0.8 s the rate limit needs (measured 0.80-0.82 s idle to heavy; the port never finishes).
        assert await wait_until(lambda: len(starts) == 6, timeout=3), f"only {len(starts)} of 6 jobs ran"
        record("test_global_rate_limit_set_by_node", impl=impl, span=starts[-1] - starts[0])
        # A lower bound (load only makes starts later): 3 windows of 400 ms, minus 100 ms of rounding.
        assert starts[-1] - starts[0] >= 0.7, "six jobs at 2 per 400 ms cannot finish in under 0.8 s"
    finally:
        await worker.close()


@impls("global concurrency set by Node stops it after the first job")
async def test_global_concurrency_set_by_node(
    impl: str, node: NodeDriver, redis_url: str, producer: Queue, queue_name: str
) -> None:
    await node.queue_call(queue_name, "setGlobalConcurrency", 1)
    running = 0
    peak = 0
    done: list[int] = []

    async def body(job):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        done.append(job.data["i"])

    await _fill(producer, 6)
    worker = await PyWorker(impl, queue_name, redis_url, body, concurrency=4).start()
    try:
        # 4 s for six 50 ms jobs one at a time (0.3 s; the port stops after one): a failure detector.
        assert await wait_until(lambda: len(done) == 6, timeout=4), f"only {len(done)} of 6 jobs ran"
        assert peak == 1, f"global concurrency 1 but {peak} jobs ran at once"
    finally:
        await worker.close()


async def test_rate_limit_from_handler_puts_job_back_and_pauses(make_worker, producer: Queue) -> None:
    """Node's ``worker.rateLimit(ms)`` + ``RateLimitError``: job back to wait, queue paused for ms."""
    attempts: list[tuple[str, float]] = []

    async def handle(job):
        attempts.append((job.id, time.monotonic()))
        if len(attempts) == 1:
            await job.rate_limit(500)
        return "ok"

    worker = make_worker({"job": handle})
    await worker.start()
    first = await producer.add("job", {})
    assert await producer.result(first.id, timeout=5) == "ok"
    assert [a[0] for a in attempts] == [first.id, first.id]
    # A lower bound (load only delays the retry): the 500 ms pause minus 50 ms of rounding.
    assert attempts[1][1] - attempts[0][1] >= 0.45, "the handler's rate limit was not honoured"
    job = await producer.get_job(first.id)
    assert job is not None and job.attempts_made == 1, "a rate-limited attempt must not count as a failure"

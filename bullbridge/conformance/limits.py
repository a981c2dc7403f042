"""Queue-wide limits both ways: a global rate limit and global concurrency set by
one language and obeyed by the other's workers, a limiter shared by workers of
both languages."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from bullbridge import Queue, RateLimit
from bullbridge.conformance.framework import N2P, P2N, Ctx, scenario, wait_until

# --- global rate limit and concurrency -----------------------------------------------------------

RATE_MAX, RATE_MS, RATE_JOBS = 2, 400, 6


def check_rate(starts_ms: list[float]) -> None:
    ordered = sorted(starts_ms)
    assert len(ordered) == RATE_JOBS, f"{len(ordered)} of {RATE_JOBS} jobs ran"
    rel = [round(s - ordered[0]) for s in ordered]
    for a, b in zip(ordered, ordered[RATE_MAX:]):
        assert b - a >= RATE_MS - 50, f"more than {RATE_MAX} starts within {RATE_MS} ms: starts at {rel} ms"


@scenario(
    "global_rate_limit",
    N2P,
    "a global rate limit set by Node (setGlobalRateLimit) holds a Python worker",
    requires=("global-rate-limit",),
)
async def global_rate_limit_n2p(ctx: Ctx) -> None:
    await ctx.node.queue_call(ctx.queue, "setGlobalRateLimit", RATE_MAX, RATE_MS)
    await ctx.node.call(
        "queue.addBulk", queue=ctx.queue, jobs=[{"name": "x", "data": {"i": i}} for i in range(RATE_JOBS)]
    )
    starts: list[float] = []

    async def handle(job: Any) -> None:
        starts.append(time.time() * 1000)

    await ctx.worker({"x": handle}, concurrency=3)
    await wait_until(lambda: len(starts) == RATE_JOBS, 10, f"{RATE_JOBS} jobs run (ran {len(starts)})")
    check_rate(starts)


@scenario(
    "global_rate_limit",
    P2N,
    "a global rate limit set by Python holds a Node worker",
    requires=("global-rate-limit",),
)
async def global_rate_limit_p2n(ctx: Ctx) -> None:
    await ctx.python_queue().set_global_rate_limit(RATE_MAX, RATE_MS)
    producer = ctx.python_queue()
    jobs = await producer.add_bulk([("x", {"i": i}) for i in range(RATE_JOBS)])
    await ctx.node_worker("async job => 1", concurrency=3)
    await asyncio.gather(*(producer.result(j.id, timeout=10) for j in jobs))
    stored = [await producer.get_job(j.id) for j in jobs]
    check_rate([float(s.processed_on) for s in stored if s is not None and s.processed_on is not None])


def check_serial(intervals: list[tuple[int, int]], n: int) -> None:
    assert len(intervals) == n, f"{len(intervals)} of {n} jobs finished"
    ordered = sorted(intervals)
    for (_, end), (start, _) in itertools.pairwise(ordered):
        assert start >= end, f"two jobs ran at once under global concurrency 1: {ordered}"


async def _intervals(producer: Queue, ids: list[str]) -> list[tuple[int, int]]:
    out = []
    for job_id in ids:
        job = await producer.get_job(job_id)
        if job is not None and job.processed_on is not None and job.finished_on is not None:
            out.append((job.processed_on, job.finished_on))
    return out


@scenario(
    "global_concurrency",
    N2P,
    "global concurrency 1 set by Node serialises a Python worker",
    requires=("global-concurrency",),
)
async def global_concurrency_n2p(ctx: Ctx) -> None:
    await ctx.node.queue_call(ctx.queue, "setGlobalConcurrency", 1)
    ids = await ctx.node.call(
        "queue.addBulk", queue=ctx.queue, jobs=[{"name": "x", "data": {"i": i}} for i in range(5)]
    )
    running = peak = 0

    async def handle(job: Any) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1

    await ctx.worker({"x": handle}, concurrency=4)
    for job_id in ids:
        await ctx.node_wait_state(str(job_id), "completed")
    assert peak == 1, f"{peak} jobs ran at once"
    check_serial(await _intervals(ctx.python_queue(), [str(i) for i in ids]), 5)


@scenario(
    "global_concurrency",
    P2N,
    "global concurrency 1 set by Python serialises a Node worker",
    requires=("global-concurrency",),
)
async def global_concurrency_p2n(ctx: Ctx) -> None:
    await ctx.python_queue().set_global_concurrency(1)
    producer = ctx.python_queue()
    jobs = await producer.add_bulk([("x", {"i": i}) for i in range(5)])
    await ctx.node_worker("async job => { await sleep(50); return 1 }", concurrency=4)
    await asyncio.gather(*(producer.result(j.id, timeout=10) for j in jobs))
    check_serial(await _intervals(producer, [j.id for j in jobs]), 5)


# --- a limiter shared by both languages' workers ----------------------------------------------


@scenario("shared_limiter", N2P, "Node adds; a Node and a Python worker with one limiter share its rate")
async def shared_limiter_n2p(ctx: Ctx) -> None:
    await ctx.node.call(
        "queue.addBulk", queue=ctx.queue, jobs=[{"name": "x", "data": {"i": i}} for i in range(RATE_JOBS)]
    )
    await _shared_limiter(ctx, [str(i) for i in range(1, RATE_JOBS + 1)])


@scenario("shared_limiter", P2N, "Python adds; a Node and a Python worker with one limiter share its rate")
async def shared_limiter_p2n(ctx: Ctx) -> None:
    jobs = await ctx.python_queue().add_bulk([("x", {"i": i}) for i in range(RATE_JOBS)])
    await _shared_limiter(ctx, [j.id for j in jobs])


async def _shared_limiter(ctx: Ctx, ids: list[str]) -> None:
    """A Node and a Python worker, both limited to RATE_MAX jobs per RATE_MS (BullMQ
    keeps one limiter per queue): together they must not exceed it."""
    from bullbridge import RateLimit

    async def handle(job: Any) -> str:
        return "python"

    await ctx.node_worker("async job => 'node'", limiter={"max": RATE_MAX, "duration": RATE_MS}, concurrency=2)
    await ctx.worker({"x": handle}, limiter=RateLimit(max=RATE_MAX, duration=RATE_MS), concurrency=2)
    producer = ctx.python_queue()
    outcomes = await asyncio.gather(*(producer.result(job_id, timeout=10) for job_id in ids))
    stored = [await producer.get_job(job_id) for job_id in ids]
    check_rate([float(s.processed_on) for s in stored if s is not None and s.processed_on is not None])
    assert set(outcomes) <= {"node", "python"}, outcomes


# --- a handler's own rate limit, and the limits mixed -----------------------------------------

MANUAL_MS = 600
#: A limiter that holds nothing by itself: a manual rate limit only holds workers with one.
WIDE = {"max": 1000, "duration": 1000}


class _Starts:
    """Start times (ms) of the jobs each language's worker ran, the rate limit's own job aside."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.python: list[float] = []
        self.handle = ""

    async def python_handler(self, job: Any) -> str:
        if job.name != "limit":
            self.python.append(time.time() * 1000)
        return "python"

    def all(self) -> list[float]:
        node = [
            float(e["returnvalue"])
            for e in self.ctx.node.events[self.handle]
            if e.event == "completed" and e["name"] != "limit"
        ]
        return self.python + node


def _check_window(starts: list[float], limited_at: float) -> None:
    # Kind 2 (not before): no worker of either language fetches inside the window.
    assert len(starts) == 3, f"{len(starts)} of 3 jobs ran"
    assert min(starts) - limited_at >= MANUAL_MS - 50, (
        f"a job started {min(starts) - limited_at:.0f} ms into a {MANUAL_MS} ms rate limit"
    )


@scenario("manual_rate_limit", N2P, "a Python handler rate-limits the queue (job.rate_limit): Node's worker waits too")
async def manual_rate_limit_n2p(ctx: Ctx) -> None:
    starts = _Starts(ctx)
    limited_at: list[float] = []

    async def handle(job: Any) -> str:
        if job.name == "limit" and not limited_at:
            limited_at.append(time.time() * 1000)
            await job.rate_limit(MANUAL_MS)
        return await starts.python_handler(job)

    # A manual rate limit holds workers that have a limiter (Node's rule for worker.rateLimit);
    # this one is wide enough never to hold anything by itself.
    await ctx.worker(handle, limiter=RateLimit(max=1000, duration=1000))
    first = await ctx.node.add(ctx.queue, "limit", {})
    await wait_until(lambda: limited_at, 10, "the Python handler sets the rate limit")
    starts.handle = await ctx.node_worker("async job => Date.now()", limiter=WIDE)
    for _ in range(3):
        await ctx.node.add(ctx.queue, "other", {})
    await wait_until(lambda: len(starts.all()) == 3, 10, f"3 jobs run (ran {len(starts.all())})")
    _check_window(starts.all(), limited_at[0])
    job = await ctx.node_wait_state(first, "completed")
    assert job["attemptsMade"] <= 1, f"the rate-limited job counted a failed attempt: {job['attemptsMade']}"


@scenario(
    "manual_rate_limit",
    P2N,
    "a Node processor rate-limits the queue (worker.rateLimit + RateLimitError): Python's worker waits too",
)
async def manual_rate_limit_p2n(ctx: Ctx) -> None:
    starts = _Starts(ctx)
    producer = ctx.python_queue()
    starts.handle = await ctx.node_worker(
        "async job => { shared.limited = shared.limited || {};"
        " if (job.name === 'limit' && !shared.limited[job.queueName]) {"
        " shared.limited[job.queueName] = Date.now(); await workers.get(handle).rateLimit("
        + str(MANUAL_MS)
        + "); throw bullmq.Worker.RateLimitError() } return Date.now() }",
        limiter=WIDE,
    )
    first = await producer.add("limit", {})

    async def limited_at() -> Any:
        return await ctx.node.eval("return (shared.limited || {})[args.q] || null;", q=ctx.queue)

    at = await wait_until(limited_at, 10, "the Node processor sets the rate limit")
    await ctx.worker(starts.python_handler, limiter=RateLimit(max=1000, duration=1000))
    for _ in range(3):
        await producer.add("other", {})
    await wait_until(lambda: len(starts.all()) == 3, 10, f"3 jobs run (ran {len(starts.all())})")
    _check_window(starts.all(), float(at))
    assert (await producer.wait_for(first.id, timeout=10)).state == "completed"


@scenario(
    "limits_mix",
    N2P,
    "global concurrency 2 and a shared limiter set by Node: Python and Node workers together keep both",
    requires=("global-concurrency",),
)
async def limits_mix_n2p(ctx: Ctx) -> None:
    await ctx.node.queue_call(ctx.queue, "setGlobalConcurrency", 2)
    ids = await ctx.node.call(
        "queue.addBulk", queue=ctx.queue, jobs=[{"name": "x", "data": {"i": i}} for i in range(RATE_JOBS)]
    )
    await _mixed(ctx, [str(i) for i in ids])


@scenario(
    "limits_mix",
    P2N,
    "global concurrency 2 and a shared limiter set by Python: Node and Python workers together keep both",
    requires=("global-concurrency",),
)
async def limits_mix_p2n(ctx: Ctx) -> None:
    producer = ctx.python_queue()
    await producer.set_global_concurrency(2)
    jobs = await producer.add_bulk([("x", {"i": i}) for i in range(RATE_JOBS)])
    await _mixed(ctx, [j.id for j in jobs])


async def _mixed(ctx: Ctx, ids: list[str]) -> None:
    """Both workers with concurrency 4 and the limiter RATE_MAX / RATE_MS: at most two
    jobs at once (global concurrency), at most RATE_MAX starts per window (limiter)."""
    from bullbridge import RateLimit

    async def handle(job: Any) -> str:
        await asyncio.sleep(0.05)  # each job takes a little while, so concurrency is tested
        return "python"

    await ctx.node_worker(
        "async job => { await sleep(50); return 'node' }", limiter={"max": RATE_MAX, "duration": RATE_MS}, concurrency=4
    )
    await ctx.worker({"x": handle}, limiter=RateLimit(max=RATE_MAX, duration=RATE_MS), concurrency=4)
    producer = ctx.python_queue()
    await asyncio.gather(*(producer.result(job_id, timeout=15) for job_id in ids))
    intervals = await _intervals(producer, ids)
    check_rate([float(start) for start, _ in intervals])
    for start, _ in intervals:
        running = sum(1 for s, e in intervals if s <= start < e)
        assert running <= 2, f"{running} jobs ran at once under global concurrency 2: {sorted(intervals)}"

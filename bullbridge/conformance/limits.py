"""Queue-wide limits both ways: a global rate limit and global concurrency set by
one language and obeyed by the other's workers, a limiter shared by workers of
both languages, and pausing and resuming a queue."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from bullbridge import Queue
from bullbridge.conformance.framework import N2P, P2N, Ctx, holds, scenario, wait_until
from bullbridge.errors import JobTimeout

# --- global rate limit and concurrency -----------------------------------------------------------

RATE_MAX, RATE_MS, RATE_JOBS = 2, 400, 6


def check_rate(starts_ms: list[float]) -> None:
    ordered = sorted(starts_ms)
    assert len(ordered) == RATE_JOBS, f"{len(ordered)} of {RATE_JOBS} jobs ran"
    rel = [round(s - ordered[0]) for s in ordered]
    for a, b in zip(ordered, ordered[RATE_MAX:]):
        assert b - a >= RATE_MS - 50, f"more than {RATE_MAX} starts within {RATE_MS} ms: starts at {rel} ms"


@scenario("global_rate_limit", N2P, "a global rate limit set by Node (setGlobalRateLimit) holds a Python worker")
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


@scenario("global_rate_limit", P2N, "a global rate limit set by Python (the port's Queue) holds a Node worker")
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


@scenario("global_concurrency", N2P, "global concurrency 1 set by Node serialises a Python worker")
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


@scenario("global_concurrency", P2N, "global concurrency 1 set by Python (the port's Queue) serialises a Node worker")
async def global_concurrency_p2n(ctx: Ctx) -> None:
    await ctx.python_queue().set_global_concurrency(1)
    producer = ctx.python_queue()
    jobs = await producer.add_bulk([("x", {"i": i}) for i in range(5)])
    await ctx.node_worker("async job => { await sleep(50); return 1 }", concurrency=4)
    await asyncio.gather(*(producer.result(j.id, timeout=10) for j in jobs))
    check_serial(await _intervals(producer, [j.id for j in jobs]), 5)


# --- pause / resume -----------------------------------------------------------------------------


@scenario(
    "pause_resume",
    N2P,
    "Python pauses (a job already waiting), Node adds, Python resumes: held, then both run on Python",
)
async def pause_resume_n2p(ctx: Ctx) -> None:
    py_queue = ctx.python_queue()
    before = await ctx.node.add(ctx.queue, "x", {"when": "before"})
    await py_queue.pause()
    ran: list[str] = []

    async def handle(job: Any) -> None:
        ran.append(str(job.id))

    await ctx.worker({"x": handle})
    during = await ctx.node.add(ctx.queue, "x", {"when": "during"})
    await holds(lambda: not ran, 0.3, f"jobs ran while Python had the queue paused: {ran}")
    await py_queue.resume()
    await wait_until(
        lambda: sorted(ran) == sorted([before, during]),
        3,
        f"jobs {before} and {during} run after Python resumed the queue (ran {ran})",
    )
    for job_id in (before, during):
        await ctx.node_wait_state(job_id, "completed")


@scenario(
    "pause_resume", P2N, "Node pauses (a job already waiting), Python adds, Node resumes: held, then both run on Node"
)
async def pause_resume_p2n(ctx: Ctx) -> None:
    producer = ctx.python_queue()
    before = await producer.add("x", {"when": "before"})
    await ctx.node.queue_call(ctx.queue, "pause")
    handle = await ctx.node_worker("async job => job.data.when")
    during = await producer.add("x", {"when": "during"})
    await holds(
        lambda: not [e for e in ctx.node.events[handle] if e.event in ("active", "completed")],
        0.3,
        "a job ran while Node had the queue paused",
    )
    await ctx.node.queue_call(ctx.queue, "resume")
    for job, when in ((before, "before"), (during, "during")):
        try:
            assert await producer.result(job.id, timeout=3) == when
        except JobTimeout:
            state = await producer.get_job_state(job.id)
            added = "before Node paused the queue" if when == "before" else "while Node had the queue paused"
            raise AssertionError(
                f"job {job.id} (added from Python {added}) did not run within 3 s of Node "
                f"resuming the queue (state: {state})"
            ) from None


@scenario(
    "pause_resume_idle",
    N2P,
    "Python pauses an empty queue, Node adds, Python resumes: an idle Python worker picks the job up at once",
)
async def pause_resume_idle_n2p(ctx: Ctx) -> None:
    py_queue = ctx.python_queue()
    ran: list[str] = []

    async def handle(job: Any) -> None:
        ran.append(str(job.id))

    await ctx.worker({"x": handle})
    await py_queue.pause()
    job_id = await ctx.node.add(ctx.queue, "x", {})
    await holds(lambda: not ran, 0.3, f"job {job_id} ran while Python had the queue paused")
    await py_queue.resume()
    await wait_until(lambda: ran == [job_id], 1, f"job {job_id} picked up within 1 s of Python resuming the queue")


@scenario(
    "pause_resume_idle",
    P2N,
    "Node pauses an empty queue, Python adds, Node resumes: an idle Node worker picks the job up at once",
)
async def pause_resume_idle_p2n(ctx: Ctx) -> None:
    handle = await ctx.node_worker("async job => 'ran'")
    await ctx.node.queue_call(ctx.queue, "pause")
    producer = ctx.python_queue()
    job = await producer.add("x", {})
    await holds(
        lambda: not [e for e in ctx.node.events[handle] if e.event in ("active", "completed")],
        0.3,
        f"job {job.id} ran while Node had the queue paused",
    )
    await ctx.node.queue_call(ctx.queue, "resume")
    try:
        assert await producer.result(job.id, timeout=1) == "ran"
    except JobTimeout:
        state = await producer.get_job_state(job.id)
        raise AssertionError(
            f"job {job.id} (added from Python while Node had the queue paused) not picked up "
            f"within 1 s of Node resuming the queue (state: {state})"
        ) from None


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

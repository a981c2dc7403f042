"""Stalled-job recovery both ways: a worker of one language dies mid-job and a
worker of the other finds the stalled job and runs it."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

from bullbridge import Worker
from bullbridge.conformance.framework import N2P, P2N, Ctx, scenario
from bullbridge.testing.node import NodeDriver

#: A Python worker in a process of its own, to be SIGKILLed mid-job.
_CRASHING_WORKER = """
import asyncio, sys
from bullbridge import Worker
from bullbridge.worker import WorkerSettings

async def main():
    async def slow(job):
        print("start", job.id, flush=True)
        await asyncio.sleep(120)

    worker = Worker(sys.argv[1], slow, connection=sys.argv[2],
                    lock_duration=1000, stalled_interval=500, prefix=sys.argv[3])
    await worker.start()
    print("ready", flush=True)
    await asyncio.sleep(300)

asyncio.run(main())
"""


@scenario("stalled_recovery", N2P, "a Node worker killed mid-job: a Python worker recovers and runs the job")
async def stalled_n2p(ctx: Ctx) -> None:
    doomed = NodeDriver(
        ctx.redis_url,
        driver=ctx.node.driver,
        node_path=ctx.node.node_path,
        node_modules=ctx.node.node_modules,
        prefix=ctx.node.prefix,
    )
    await doomed.start()
    ctx.on_close(doomed.kill)
    await doomed.start_worker(
        ctx.queue, "async job => { await sleep(60000) }", lockDuration=1000, stalledInterval=500, handle="doomed"
    )
    job_id = await ctx.node.add(ctx.queue, "x", {})
    await doomed.wait_event("doomed", "active", timeout=5)
    await doomed.kill(signal.SIGKILL)
    stalled: list[str] = []

    async def handle(job: Any) -> str:
        return "recovered by python"

    worker = Worker(ctx.queue, {"x": handle}, connection=ctx.redis_url, stalled_interval=500, prefix=ctx.prefix)
    worker.on("stalled", stalled.append)
    ctx.on_close(lambda: worker.close(timeout=5))
    await worker.start()
    job = await ctx.node_wait_state(job_id, "completed", timeout=8)
    assert job["returnvalue"] == "recovered by python"
    assert stalled == [job_id], stalled


@scenario("stalled_recovery", P2N, "a Python worker killed mid-job: a Node worker recovers and runs the job")
async def stalled_p2n(ctx: Ctx) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CRASHING_WORKER,
        ctx.queue,
        ctx.redis_url,
        ctx.prefix,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )

    async def reap() -> None:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()

    ctx.on_close(reap)
    assert proc.stdout is not None

    async def line() -> str:
        assert proc.stdout is not None
        return (await asyncio.wait_for(proc.stdout.readline(), 15)).decode().strip()

    assert await line() == "ready", "the Python worker process did not start"
    producer = ctx.python_queue()
    job = await producer.add("x", {})
    assert await line() == f"start {job.id}"
    proc.kill()
    await proc.wait()
    handle = await ctx.node_worker("async job => 'recovered by node'", stalledInterval=500, lockDuration=1000)
    outcome = await producer.wait_for(job.id, timeout=8)
    assert outcome.state == "completed" and outcome.returnvalue == "recovered by node", outcome
    stalled = [e["jobId"] for e in ctx.node.events[handle] if e.event == "stalled"]
    assert stalled == [job.id], stalled


# --- past maxStalledCount ----------------------------------------------------------------------

STALLED_REASON = "job stalled more than allowable limit"


@scenario(
    "max_stalled", N2P, "a Node worker killed mid-job, maxStalledCount 0: a Python worker's stall check fails the job"
)
async def max_stalled_n2p(ctx: Ctx) -> None:
    doomed = NodeDriver(
        ctx.redis_url,
        driver=ctx.node.driver,
        node_path=ctx.node.node_path,
        node_modules=ctx.node.node_modules,
        prefix=ctx.node.prefix,
    )
    await doomed.start()
    ctx.on_close(doomed.kill)
    await doomed.start_worker(
        ctx.queue, "async job => { await sleep(60000) }", lockDuration=1000, stalledInterval=500, handle="doomed"
    )
    job_id = await ctx.node.add(ctx.queue, "x", {}, {"attempts": 3})
    await doomed.wait_event("doomed", "active", timeout=5)
    await doomed.kill(signal.SIGKILL)
    ran: list[str] = []

    async def handle(job: Any) -> str:
        ran.append(str(job.id))
        return "should not run"

    worker = Worker(
        ctx.queue,
        {"x": handle},
        connection=ctx.redis_url,
        stalled_interval=500,
        max_stalled_count=0,
        prefix=ctx.prefix,
    )
    ctx.on_close(lambda: worker.close(timeout=5))
    await worker.start()
    job = await ctx.node_wait_state(job_id, "failed", timeout=8)
    assert STALLED_REASON in str(job["failedReason"]), job["failedReason"]
    assert not ran, "a job past maxStalledCount ran again"


@scenario(
    "max_stalled", P2N, "a Python worker killed mid-job, maxStalledCount 0: a Node worker's stall check fails the job"
)
async def max_stalled_p2n(ctx: Ctx) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CRASHING_WORKER,
        ctx.queue,
        ctx.redis_url,
        ctx.prefix,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )

    async def reap() -> None:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()

    ctx.on_close(reap)
    assert proc.stdout is not None

    async def line() -> str:
        assert proc.stdout is not None
        return (await asyncio.wait_for(proc.stdout.readline(), 15)).decode().strip()

    assert await line() == "ready", "the Python worker process did not start"
    producer = ctx.python_queue()
    job = await producer.add("x", {}, attempts=3)
    assert await line() == f"start {job.id}"
    proc.kill()
    await proc.wait()
    await ctx.node_worker(
        "async job => { shared.stalledRan = (shared.stalledRan || 0) + 1; return 'should not run' }",
        stalledInterval=500,
        lockDuration=1000,
        maxStalledCount=0,
    )
    outcome = await producer.wait_for(job.id, timeout=8)
    assert outcome.state == "failed" and STALLED_REASON in str(outcome.failed_reason), outcome
    # Node 6 fails such a job when a worker fetches it (a deferred failure), without running it.
    assert not await ctx.node.eval("return shared.stalledRan || 0;"), "a job past maxStalledCount ran again"

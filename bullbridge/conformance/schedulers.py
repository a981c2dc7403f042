"""Job schedulers both ways: declared in one language, run by workers of the other."""

from __future__ import annotations

import uuid
from typing import Any

from bullbridge.conformance.framework import N2P, P2N, Ctx, scenario, wait_until

# --- schedulers --------------------------------------------------------------------------------

EVERY_MS = 200


@scenario("scheduler", N2P, "a job scheduler upserted by Node fires on a Python worker")
async def scheduler_n2p(ctx: Ctx) -> None:
    await ctx.node.eval(
        "await queue(args.q).upsertJobScheduler('tick', { every: args.every },"
        " { name: 'tick', data: { from: 'node' } });",
        q=ctx.queue,
        every=EVERY_MS,
    )
    ctx.on_close(lambda: ctx.node.queue_call(ctx.queue, "removeJobScheduler", "tick"))
    runs: list[tuple[str, Any]] = []

    async def tick(job: Any) -> None:
        runs.append((str(job.id), job.data))

    await ctx.worker({"tick": tick})
    await wait_until(lambda: len(runs) >= 3, 10, f"3 scheduled runs on Python (ran {runs})")
    ids = [job_id for job_id, _ in runs]
    assert len(set(ids)) == len(ids), f"an iteration ran twice: {ids}"
    assert all("tick" in job_id for job_id in ids), ids
    assert all(data == {"from": "node"} for _, data in runs), runs


@scenario("scheduler", P2N, "a job scheduler declared in Python (bullbridge.scheduler.sync) fires on a Node worker")
async def scheduler_p2n(ctx: Ctx) -> None:
    from bullbridge.scheduler import Declaration, Schedule, sync

    await sync(
        Declaration(
            f"compat-{uuid.uuid4().hex[:6]}",
            (
                Schedule(
                    id="tick", queue=ctx.queue, every=EVERY_MS, name="tick", data={"from": "python"}, prefix=ctx.prefix
                ),
            ),
        ),
        ctx.redis_url,
    )
    ctx.on_close(lambda: ctx.node.queue_call(ctx.queue, "removeJobScheduler", "tick"))
    handle = await ctx.node_worker("async job => ({ id: job.id, data: job.data })")
    events = await ctx.node.wait_event(handle, "completed", count=3, timeout=10)
    ids = [e["jobId"] for e in events]
    assert len(set(ids)) == len(ids) and all("tick" in i for i in ids), ids
    assert all(e["returnvalue"]["data"] == {"from": "python"} for e in events)

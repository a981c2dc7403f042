"""Administering a queue across languages: clean, drain and obliterate beside a
live worker of the other language; retrying and promoting jobs (all or one);
removing a job; changing a job's priority, delay or data.

``N->P``: Node administers (``Queue``/``Job`` methods) what Python added or
ran; ``P->N``: Python (:class:`bullbridge.Queue`) administers what Node added
or ran. Either way, the other language's worker or getters see the result.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bullbridge.conformance.framework import N2P, P2N, Ctx, holds, scenario, wait_until

#: Long enough that a delayed job never runs by itself during a scenario.
FAR = 600_000


class _Gate:
    """A Python handler that holds one job active until released."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.ran: list[str] = []

    async def handle(self, job: Any) -> str:
        self.ran.append(str(job.id))
        if job.name == "hold":
            self.started.set()
            await asyncio.wait_for(self.release.wait(), 20)
        return "python"


#: A Node processor that holds a 'hold' job active until `shared.release[queue]` is set.
NODE_HOLD = (
    "async job => { if (job.name === 'hold') { shared.held = (shared.held || 0) + 1;"
    " while (!(shared.release || {})[job.queueName]) await sleep(10); } return 'node' }"
)


async def _node_release(ctx: Ctx) -> None:
    await ctx.node.eval("shared.release = shared.release || {}; shared.release[args.q] = true;", q=ctx.queue)


# --- clean -------------------------------------------------------------------------------------


@scenario("clean", N2P, "Node cleans the completed and failed jobs a live Python worker finished; it goes on")
async def clean_n2p(ctx: Ctx) -> None:
    async def handle(job: Any) -> int:
        if job.name == "bad":
            raise ValueError("no")
        return 1

    await ctx.worker(handle)
    ids = [await ctx.node.add(ctx.queue, n, {}) for n in ("ok", "ok", "bad")]
    for job_id, state in zip(ids, ("completed", "completed", "failed")):
        await ctx.node_wait_state(job_id, state)
    cleaned = await ctx.node.queue_call(ctx.queue, "clean", 0, 0, "completed")
    cleaned += await ctx.node.queue_call(ctx.queue, "clean", 0, 0, "failed")
    assert sorted(cleaned) == sorted(ids), cleaned
    producer = ctx.python_queue()
    assert [await producer.get_job(i) for i in ids] == [None] * 3
    after = await ctx.node.add(ctx.queue, "ok", {})
    await ctx.node_wait_state(after, "completed")
    assert (await producer.get_job_counts("completed", "failed")) == {"completed": 1, "failed": 0}


@scenario("clean", P2N, "Python cleans the completed and failed jobs a live Node worker finished; it goes on")
async def clean_p2n(ctx: Ctx) -> None:
    await ctx.node_worker("async job => { if (job.name === 'bad') throw new Error('no'); return 1 }")
    producer = ctx.python_queue()
    jobs = [await producer.add(n, {}) for n in ("ok", "ok", "bad")]
    for job in jobs:
        await producer.wait_for(job.id, timeout=10)
    cleaned = await producer.clean(0, state="completed") + await producer.clean(0, state="failed")
    assert sorted(cleaned) == sorted(j.id for j in jobs), cleaned
    assert [await ctx.node_job(j.id) for j in jobs] == [None] * 3
    after = await producer.add("ok", {})
    assert await producer.result(after.id, timeout=10) == 1
    assert await ctx.node_counts("completed", "failed") == {"completed": 1, "failed": 0}


# --- drain -------------------------------------------------------------------------------------


@scenario(
    "drain", N2P, "Node drains a queue while a Python worker runs a job: waiting jobs go, active and delayed stay"
)
async def drain_n2p(ctx: Ctx) -> None:
    gate = _Gate()
    await ctx.worker(gate.handle, concurrency=1)
    held = await ctx.node.add(ctx.queue, "hold", {})
    await asyncio.wait_for(gate.started.wait(), 10)
    waiting = [await ctx.node.add(ctx.queue, "w", {"i": i}) for i in range(3)]
    delayed = await ctx.node.add(ctx.queue, "d", {}, {"delay": FAR})
    await ctx.node.queue_call(ctx.queue, "drain")
    producer = ctx.python_queue()
    assert await producer.get_job_counts("waiting", "active", "delayed") == {"waiting": 0, "active": 1, "delayed": 1}
    assert [await producer.get_job(i) for i in waiting] == [None] * 3
    gate.release.set()
    await ctx.node_wait_state(held, "completed")
    await ctx.node.queue_call(ctx.queue, "drain", True)
    assert await producer.get_job(delayed) is None
    assert gate.ran == [held], f"the Python worker ran {gate.ran}: a drained job ran"


@scenario(
    "drain", P2N, "Python drains a queue while a Node worker runs a job: waiting jobs go, active and delayed stay"
)
async def drain_p2n(ctx: Ctx) -> None:
    handle = await ctx.node_worker(NODE_HOLD, concurrency=1)
    producer = ctx.python_queue()
    held = await producer.add("hold", {})
    await ctx.node.wait_event(handle, "active", timeout=10)
    waiting = [await producer.add("w", {"i": i}) for i in range(3)]
    delayed = await producer.add("d", {}, delay=FAR)
    assert await producer.drain() == 3
    counts = await ctx.node_counts("waiting", "active", "delayed")
    assert counts == {"waiting": 0, "active": 1, "delayed": 1}, counts
    assert [await ctx.node_job(j.id) for j in waiting] == [None] * 3
    await _node_release(ctx)
    assert await producer.result(held.id, timeout=10) == "node"
    assert await producer.drain(delayed=True) == 1
    assert await ctx.node_job(delayed.id) is None
    ran = [e["jobId"] for e in ctx.node.events[handle] if e.event == "active"]
    assert ran == [held.id], f"the Node worker ran {ran}: a drained job ran"


# --- obliterate --------------------------------------------------------------------------------


@scenario(
    "obliterate", N2P, "Node obliterates a queue a Python worker serves: refused while a job is active, then all gone"
)
async def obliterate_n2p(ctx: Ctx) -> None:
    gate = _Gate()
    await ctx.worker(gate.handle, concurrency=1)
    held = await ctx.node.add(ctx.queue, "hold", {})
    await asyncio.wait_for(gate.started.wait(), 10)
    others = [await ctx.node.add(ctx.queue, "w", {}, {"delay": FAR}) for _ in range(2)]
    try:
        await ctx.node.queue_call(ctx.queue, "obliterate")
    except Exception as exc:
        assert "active" in str(exc), exc
    else:
        raise AssertionError("Node obliterated a queue with an active job (a Python worker's) without force")
    gate.release.set()
    await ctx.node_wait_state(held, "completed")
    await ctx.node.queue_call(ctx.queue, "obliterate")
    producer = ctx.python_queue()
    assert [await producer.get_job(i) for i in (held, *others)] == [None] * 3
    assert not any((await producer.get_job_counts()).values())


@scenario(
    "obliterate", P2N, "Python obliterates a queue a Node worker serves: refused while a job is active, then all gone"
)
async def obliterate_p2n(ctx: Ctx) -> None:
    from bullbridge import QueueError

    handle = await ctx.node_worker(NODE_HOLD, concurrency=1)
    producer = ctx.python_queue()
    held = await producer.add("hold", {})
    await ctx.node.wait_event(handle, "active", timeout=10)
    others = [await producer.add("w", {}, delay=FAR) for _ in range(2)]
    try:
        await producer.obliterate()
    except QueueError as exc:
        assert "active" in str(exc), exc
    else:
        raise AssertionError("Python obliterated a queue with an active job (a Node worker's) without force")
    await _node_release(ctx)
    assert await producer.result(held.id, timeout=10) == "node"
    await producer.obliterate()
    assert [await ctx.node_job(j.id) for j in (held, *others)] == [None] * 3
    assert not any((await ctx.node.queue_call(ctx.queue, "getJobCounts")).values())


# --- retrying and promoting --------------------------------------------------------------------


class _FailOnce:
    def __init__(self) -> None:
        self.seen: list[str] = []

    async def handle(self, job: Any) -> str:
        first = str(job.id) not in self.seen
        self.seen.append(str(job.id))
        if first:
            raise ValueError("first run fails")
        return "second run"


NODE_FAIL_ONCE = (
    "async job => { shared.seen = shared.seen || {}; const k = job.queueName + '/' + job.id;"
    " if (!shared.seen[k]) { shared.seen[k] = 1; throw new Error('first run fails') } return 'second run' }"
)


@scenario("retry_jobs", N2P, "failed jobs a Python worker left, retried by Node's retryJobs, run again by Python")
async def retry_jobs_n2p(ctx: Ctx) -> None:
    fail_once = _FailOnce()
    await ctx.worker(fail_once.handle)
    ids = [await ctx.node.add(ctx.queue, "x", {"i": i}) for i in range(3)]
    for job_id in ids:
        await ctx.node_wait_state(job_id, "failed")
    await ctx.node.queue_call(ctx.queue, "retryJobs", {"state": "failed"})
    for job_id in ids:
        job = await ctx.node_wait_state(job_id, "completed")
        assert job["returnvalue"] == "second run", job


@scenario("retry_jobs", P2N, "failed jobs a Node worker left, retried by Python's retry_jobs, run again by Node")
async def retry_jobs_p2n(ctx: Ctx) -> None:
    await ctx.node_worker(NODE_FAIL_ONCE)
    producer = ctx.python_queue()
    jobs = [await producer.add("x", {"i": i}) for i in range(3)]
    for job in jobs:
        assert (await producer.wait_for(job.id, timeout=10)).state == "failed"
    assert await producer.retry_jobs("failed") == 3
    for job in jobs:
        assert await _completed_value(producer, job.id) == "second run"


async def _completed_value(producer: Any, job_id: str) -> Any:
    """The return value once the job is completed (polled: a retried job's first
    'failed' event is already in the stream)."""

    async def done() -> Any:
        job = await producer.get_job(job_id)
        return job if job is not None and job.finished_on and job.returnvalue is not None else None

    return (await wait_until(done, 10, f"job {job_id} completed")).returnvalue


@scenario("retry_job", N2P, "a job a Python worker failed, retried by Node's job.retry(), completed by Python")
async def retry_job_n2p(ctx: Ctx) -> None:
    fail_once = _FailOnce()
    await ctx.worker(fail_once.handle)
    job_id = await ctx.node.add(ctx.queue, "x", {})
    await ctx.node_wait_state(job_id, "failed")
    await ctx.node.call("job.call", queue=ctx.queue, jobId=job_id, method="retry", args=["failed"])
    job = await ctx.node_wait_state(job_id, "completed")
    assert job["returnvalue"] == "second run" and job["attemptsMade"] >= 1, job


@scenario("retry_job", P2N, "a job a Node worker failed, retried by Python's retry_job, completed by Node")
async def retry_job_p2n(ctx: Ctx) -> None:
    await ctx.node_worker(NODE_FAIL_ONCE)
    producer = ctx.python_queue()
    job = await producer.add("x", {})
    assert (await producer.wait_for(job.id, timeout=10)).state == "failed"
    await producer.retry_job(job.id)
    assert await _completed_value(producer, job.id) == "second run"


@scenario(
    "promote_jobs",
    N2P,
    "delayed jobs Python added, promoted by Node's promoteJobs, run at once by Python",
    requires=("promote-jobs",),
)
async def promote_jobs_n2p(ctx: Ctx) -> None:
    producer = ctx.python_queue()
    jobs = [await producer.add("x", {"i": i}, delay=FAR) for i in range(3)]
    ran: list[str] = []

    async def handle(job: Any) -> None:
        ran.append(str(job.id))

    await ctx.worker(handle)
    await ctx.node.queue_call(ctx.queue, "promoteJobs")
    await wait_until(lambda: sorted(ran) == sorted(j.id for j in jobs), 10, f"the promoted jobs run (ran {ran})")


@scenario("promote_jobs", P2N, "delayed jobs Node added, promoted by Python's promote_jobs, run at once by Node")
async def promote_jobs_p2n(ctx: Ctx) -> None:
    ids = [await ctx.node.add(ctx.queue, "x", {"i": i}, {"delay": FAR}) for i in range(3)]
    handle = await ctx.node_worker("async job => 1")
    assert await ctx.python_queue().promote_jobs() == 3
    await ctx.node.wait_event(handle, "completed", count=3, timeout=10)
    assert sorted(e["jobId"] for e in ctx.node.events[handle] if e.event == "completed") == sorted(ids)


@scenario("promote", N2P, "one of two delayed jobs Python added, promoted by Node's job.promote(), runs on Python")
async def promote_n2p(ctx: Ctx) -> None:
    producer = ctx.python_queue()
    first, second = [await producer.add("x", {"i": i}, delay=FAR) for i in range(2)]
    ran: list[str] = []

    async def handle(job: Any) -> None:
        ran.append(str(job.id))

    await ctx.worker(handle)
    await ctx.node.call("job.call", queue=ctx.queue, jobId=second.id, method="promote")
    await wait_until(lambda: ran == [second.id], 10, f"the promoted job runs (ran {ran})")
    assert await producer.get_job_state(first.id) == "delayed"


@scenario("promote", P2N, "one of two delayed jobs Node added, promoted by Python's promote_job, runs on Node")
async def promote_p2n(ctx: Ctx) -> None:
    first, second = [await ctx.node.add(ctx.queue, "x", {"i": i}, {"delay": FAR}) for i in range(2)]
    handle = await ctx.node_worker("async job => 1")
    await ctx.python_queue().promote_job(second)
    events = await ctx.node.wait_event(handle, "completed", timeout=10)
    assert [e["jobId"] for e in events] == [second]
    assert (await ctx.node_job(first) or {}).get("state") == "delayed"


# --- removing and changing one job ------------------------------------------------------------


@scenario(
    "remove", N2P, "one of two jobs Python added, removed by Node's job.remove(): the Python worker runs the other"
)
async def remove_n2p(ctx: Ctx) -> None:
    producer = ctx.python_queue()
    keep, gone = await producer.add("x", {"i": 0}), await producer.add("x", {"i": 1})
    await ctx.node.call("job.call", queue=ctx.queue, jobId=gone.id, method="remove")
    assert await producer.get_job(gone.id) is None
    ran: list[str] = []

    async def handle(job: Any) -> None:
        ran.append(str(job.id))

    await ctx.worker(handle)
    await wait_until(lambda: ran == [keep.id], 10, f"the job left runs (ran {ran})")
    await holds(lambda: ran == [keep.id], 0.2, f"a removed job ran: {ran}")


@scenario("remove", P2N, "one of two jobs Node added, removed by Python's remove: the Node worker runs the other")
async def remove_p2n(ctx: Ctx) -> None:
    keep, gone = [await ctx.node.add(ctx.queue, "x", {"i": i}) for i in range(2)]
    await ctx.python_queue().remove(gone)
    assert await ctx.node_job(gone) is None
    handle = await ctx.node_worker("async job => 1")
    await ctx.node.wait_event(handle, "completed", timeout=10)
    await holds(
        lambda: [e["jobId"] for e in ctx.node.events[handle] if e.event == "active"] == [keep],
        0.2,
        "a removed job ran",
    )


@scenario("change_priority", N2P, "Node's job.changePriority on a job Python added reorders the Python worker's runs")
async def change_priority_n2p(ctx: Ctx) -> None:
    producer = ctx.python_queue()
    jobs = [await producer.add(f"x{i}", {}, priority=5) for i in range(3)]
    await ctx.node.call("job.call", queue=ctx.queue, jobId=jobs[2].id, method="changePriority", args=[{"priority": 1}])
    order: list[str] = []

    async def handle(job: Any) -> None:
        order.append(job.name)

    await ctx.worker(handle, concurrency=1)
    await wait_until(lambda: len(order) == 3, 10, f"3 jobs run (ran {order})")
    assert order == ["x2", "x0", "x1"], order
    stored = await producer.get_job(jobs[2].id)
    assert stored is not None and stored.priority == 1


@scenario("change_priority", P2N, "Python's change_priority on a job Node added reorders the Node worker's runs")
async def change_priority_p2n(ctx: Ctx) -> None:
    ids = [await ctx.node.add(ctx.queue, f"x{i}", {}, {"priority": 5}) for i in range(3)]
    await ctx.python_queue().change_priority(ids[2], 1)
    handle = await ctx.node_worker("async job => job.name", concurrency=1)
    events = await ctx.node.wait_event(handle, "completed", count=3, timeout=10)
    assert [e["name"] for e in events] == ["x2", "x0", "x1"], [e["name"] for e in events]
    stored = await ctx.python_queue().get_job(ids[2])  # Node < 6 reads a job's priority from its opts
    assert stored is not None and stored.priority == 1, stored and stored.priority


CHANGED_DELAY_MS = 300


@scenario("change_delay", N2P, "Node's job.changeDelay on a job Python delayed: the Python worker runs it then")
async def change_delay_n2p(ctx: Ctx) -> None:
    producer = ctx.python_queue()
    job = await producer.add("x", {}, delay=FAR)
    started: list[float] = []

    async def handle(job: Any) -> None:
        started.append(time.time() * 1000)

    await ctx.worker(handle)
    changed_at = time.time() * 1000
    await ctx.node.call("job.call", queue=ctx.queue, jobId=job.id, method="changeDelay", args=[CHANGED_DELAY_MS])
    await wait_until(lambda: started, 10, "the job runs after its new delay")
    # Lower bound only (kind 2): not before its new time, give or take timestamp rounding.
    assert started[0] - changed_at >= CHANGED_DELAY_MS - 5, f"ran {started[0] - changed_at:.0f} ms after the change"


@scenario("change_delay", P2N, "Python's change_delay on a job Node delayed: the Node worker runs it then")
async def change_delay_p2n(ctx: Ctx) -> None:
    job_id = await ctx.node.add(ctx.queue, "x", {}, {"delay": FAR})
    changed_at = time.time() * 1000
    await ctx.python_queue().change_delay(job_id, CHANGED_DELAY_MS)
    job = await ctx.node_job(job_id)
    assert job is not None and job["state"] == "delayed" and job["delay"] == CHANGED_DELAY_MS, job
    handle = await ctx.node_worker("async job => Date.now()")
    events = await ctx.node.wait_event(handle, "completed", timeout=10)
    assert events[0]["returnvalue"] - changed_at >= CHANGED_DELAY_MS - 5, events[0]["returnvalue"] - changed_at


@scenario(
    "update_data",
    N2P,
    "Node's job.updateData on a job Python added: the Python handler sees the new data",
    requires=("update-data",),
)
async def update_data_n2p(ctx: Ctx) -> None:
    producer = ctx.python_queue()
    job = await producer.add("x", {"v": 1})
    await ctx.node.call("job.call", queue=ctx.queue, jobId=job.id, method="updateData", args=[{"v": 2, "by": "node"}])
    seen: list[Any] = []

    async def handle(job: Any) -> None:
        seen.append(job.data)

    await ctx.worker(handle)
    await wait_until(lambda: seen, 10, "the job runs")
    assert seen == [{"v": 2, "by": "node"}], seen


@scenario("update_data", P2N, "Python's update_data on a job Node added: the Node processor sees the new data")
async def update_data_p2n(ctx: Ctx) -> None:
    job_id = await ctx.node.add(ctx.queue, "x", {"v": 1})
    await ctx.python_queue().update_data(job_id, {"v": 2, "by": "python ✓"})
    handle = await ctx.node_worker("async job => job.data")
    events = await ctx.node.wait_event(handle, "completed", timeout=10)
    assert events[0]["returnvalue"] == {"v": 2, "by": "python ✓"}, events[0]["returnvalue"]

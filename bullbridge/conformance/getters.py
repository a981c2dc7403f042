"""Reading a queue both ways: job counts, job lists, a job's state, per-minute
metrics, job logs and the queue's ``meta.version``, written by one language
and read back by the other's getters."""

from __future__ import annotations

import asyncio
from typing import Any

from bullbridge.conformance.framework import N2P, P2N, Ctx, scenario, wait_until

#: Node 6's getJobCounts() keys (no 'paused'), the set Queue.get_job_counts() returns.
NODE6_COUNT_KEYS = {"active", "completed", "delayed", "failed", "prioritized", "waiting", "waiting-children"}
#: Jobs waiting to run, per state.
SHAPE = {"waiting": 3, "prioritized": 2, "delayed": 1}


async def _fill_by_node(ctx: Ctx) -> dict[str, list[str]]:
    ids: dict[str, list[str]] = {state: [] for state in ("waiting", "prioritized", "delayed")}
    for i in range(SHAPE["waiting"]):
        ids["waiting"].append(await ctx.node.add(ctx.queue, "w", {"i": i}))
    for p in (2, 1):
        ids["prioritized"].append(await ctx.node.add(ctx.queue, "p", {"p": p}, {"priority": p}))
    ids["delayed"].append(await ctx.node.add(ctx.queue, "d", {}, {"delay": 600_000}))
    return ids


async def _fill_by_python(ctx: Ctx) -> dict[str, list[str]]:
    producer = ctx.python_queue()
    ids: dict[str, list[str]] = {state: [] for state in ("waiting", "prioritized", "delayed")}
    for i in range(SHAPE["waiting"]):
        ids["waiting"].append((await producer.add("w", {"i": i})).id)
    for p in (2, 1):
        ids["prioritized"].append((await producer.add("p", {"p": p}, priority=p)).id)
    ids["delayed"].append((await producer.add("d", {}, delay=600_000)).id)
    return ids


async def _finished(ctx: Ctx, producer: str, runner: str) -> tuple[list[str], list[str]]:
    """Two completed jobs and one failed: added by ``producer``, run by ``runner``'s
    worker (closed again, so the jobs added next stay where they are)."""
    names = ["ok", "ok", "bad"]
    if producer == "node":
        done = [await ctx.node.add(ctx.queue, n, {}) for n in names]
    else:
        done = [(await ctx.python_queue().add(n, {})).id for n in names]
    if runner == "node":
        handle = await ctx.node_worker("async job => { if (job.name === 'bad') throw new Error('no'); return 1 }")
        await ctx.node.wait_event(handle, lambda e: e.event in ("completed", "failed"), count=3, timeout=10)
        await ctx.node.close_worker(handle)
    else:

        async def ok(job: Any) -> int:
            return 1

        async def bad(job: Any) -> None:
            raise ValueError("no")

        worker = await ctx.worker({"ok": ok, "bad": bad})
        await asyncio.gather(*(ctx.python_queue().wait_for(j, timeout=10) for j in done))
        await worker.close(timeout=5)
    return done[:2], done[2:]


@scenario("job_counts", N2P, "jobs in every state, added by Node, counted by Python as Node counts them")
async def job_counts_n2p(ctx: Ctx) -> None:
    completed, failed = await _finished(ctx, producer="node", runner="python")
    ids = await _fill_by_node(ctx)
    await _compare_counts(ctx, {**ids, "completed": completed, "failed": failed})


@scenario("job_counts", P2N, "jobs in every state, added by Python, counted by Node as Python counts them")
async def job_counts_p2n(ctx: Ctx) -> None:
    completed, failed = await _finished(ctx, producer="python", runner="node")
    ids = await _fill_by_python(ctx)
    await _compare_counts(ctx, {**ids, "completed": completed, "failed": failed})


async def _compare_counts(ctx: Ctx, ids: dict[str, list[str]]) -> None:
    ours = await ctx.python_queue().get_job_counts()
    theirs = await ctx.node_counts(*sorted(NODE6_COUNT_KEYS))
    assert set(ours) == NODE6_COUNT_KEYS, f"Python's get_job_counts() keys {sorted(ours)} are not Node 6's"
    assert ours == theirs, f"Python counts {ours}, Node counts {theirs}"
    for state, members in ids.items():
        assert ours[state] == len(members), f"{state}: counted {ours[state]}, added {len(members)}"
    assert await ctx.python_queue().count() == await ctx.node.queue_call(ctx.queue, "count")


@scenario("get_jobs", N2P, "jobs listed by state and order: Python's get_jobs reads Node's as Node's getJobs does")
async def get_jobs_n2p(ctx: Ctx) -> None:
    await _fill_by_node(ctx)
    await _compare_lists(ctx)


@scenario("get_jobs", P2N, "jobs listed by state and order: Node's getJobs reads Python's as get_jobs does")
async def get_jobs_p2n(ctx: Ctx) -> None:
    await _fill_by_python(ctx)
    await _compare_lists(ctx)


async def _compare_lists(ctx: Ctx) -> None:
    producer = ctx.python_queue()
    for states in (["waiting"], ["prioritized"], ["delayed"], ["waiting", "prioritized", "delayed"]):
        for asc in (False, True):
            ours = [j.id for j in await producer.get_jobs(states, asc=asc)]
            theirs = [str(j["id"]) for j in await ctx.node.queue_call(ctx.queue, "getJobs", states, 0, -1, asc)]
            assert ours == theirs, f"getJobs({states}, asc={asc}): Python lists {ours}, Node {theirs}"
    page = [j.id for j in await producer.get_jobs("waiting", 0, 1)]
    node_page = [str(j["id"]) for j in await ctx.node.queue_call(ctx.queue, "getJobs", ["waiting"], 0, 1)]
    assert page == node_page and len(page) == 2, (page, node_page)


@scenario("job_state", N2P, "the state of each job Node added, as Python's get_job_state names it")
async def job_state_n2p(ctx: Ctx) -> None:
    ids = await _fill_by_node(ctx)
    await _compare_states(ctx, ids)


@scenario("job_state", P2N, "the state of each job Python added, as Node's getJobState names it")
async def job_state_p2n(ctx: Ctx) -> None:
    ids = await _fill_by_python(ctx)
    await _compare_states(ctx, ids)


async def _compare_states(ctx: Ctx, ids: dict[str, list[str]]) -> None:
    producer = ctx.python_queue()
    for state, members in ids.items():
        for job_id in members:
            ours = await producer.get_job_state(job_id)
            theirs = await ctx.node.queue_call(ctx.queue, "getJobState", job_id)
            assert ours == theirs == state, f"job {job_id}: Python says {ours}, Node {theirs}, added as {state}"
    assert await producer.get_job_state("no-such-job") == await ctx.node.queue_call(
        ctx.queue, "getJobState", "no-such-job"
    )


# --- metrics ---------------------------------------------------------------------------------

METRIC_JOBS = 5


@scenario("metrics", N2P, "per-minute metrics recorded by a Python worker, read by Node's getMetrics")
async def metrics_n2p(ctx: Ctx) -> None:
    async def handle(job: Any) -> int:
        if job.name == "bad":
            raise ValueError("no")
        return 1

    await ctx.worker(handle, metrics_max_data_points=60)
    ids = [await ctx.node.add(ctx.queue, "bad" if i == 0 else "ok", {}) for i in range(METRIC_JOBS)]
    for job_id in ids:
        await ctx.node_wait_state(job_id, "failed" if job_id == ids[0] else "completed")
    completed = await ctx.node.queue_call(ctx.queue, "getMetrics", "completed")
    failed = await ctx.node.queue_call(ctx.queue, "getMetrics", "failed")
    # The per-minute points appear once a minute has passed; the counters at once.
    assert completed["meta"]["count"] == METRIC_JOBS - 1 and failed["meta"]["count"] == 1, (completed, failed)


@scenario("metrics", P2N, "per-minute metrics recorded by a Node worker, read by Python's monitor")
async def metrics_p2n(ctx: Ctx) -> None:
    from bullbridge.monitor import Monitor

    producer = ctx.python_queue()
    await ctx.node_worker(
        "async job => { if (job.name === 'bad') throw new Error('no'); return 1 }", metrics={"maxDataPoints": 60}
    )
    jobs = [await producer.add("bad" if i == 0 else "ok", {}) for i in range(METRIC_JOBS)]
    for job in jobs:
        await producer.wait_for(job.id, timeout=10)
    monitor = Monitor(ctx.redis_url, prefix=ctx.prefix)
    ctx.on_close(monitor.close)
    completed = await monitor.metrics(ctx.queue, "completed")
    failed = await monitor.metrics(ctx.queue, "failed")
    node_completed = await ctx.node.queue_call(ctx.queue, "getMetrics", "completed")
    assert completed.count == METRIC_JOBS - 1 and failed.count == 1, (completed, failed)
    assert completed.count == node_completed["meta"]["count"]
    assert completed.data == [int(n) for n in node_completed["data"]], (completed.data, node_completed["data"])


# --- logs ------------------------------------------------------------------------------------


@scenario("log_range", N2P, "log lines a Python handler writes, paged by Node's getJobLogs(start, end, asc)")
async def log_range_n2p(ctx: Ctx) -> None:
    async def handle(job: Any) -> int:
        for i in range(6):
            await job.log(f"line {i}")
        return 1

    await ctx.worker({"x": handle})
    job_id = await ctx.node.add(ctx.queue, "x", {}, {"keepLogs": 4})
    await ctx.node_wait_state(job_id, "completed")
    logs = await ctx.node.queue_call(ctx.queue, "getJobLogs", job_id, 0, 1, True)
    assert logs == {"logs": ["line 2", "line 3"], "count": 4}, logs
    newest = await ctx.node.queue_call(ctx.queue, "getJobLogs", job_id, 0, 0, False)
    assert newest == {"logs": ["line 5"], "count": 4}, newest


@scenario("log_range", P2N, "log lines a Node processor writes, trimmed to keep_logs, as Python's monitor reads them")
async def log_range_p2n(ctx: Ctx) -> None:
    from bullbridge.monitor import Monitor

    await ctx.node_worker("async job => { for (let i = 0; i < 6; i++) await job.log('line ' + i); return 1 }")
    producer = ctx.python_queue()
    job = await producer.add("x", {}, keep_logs=4)
    assert await producer.result(job.id, timeout=10) == 1
    monitor = Monitor(ctx.redis_url, prefix=ctx.prefix)
    ctx.on_close(monitor.close)
    detail = await monitor.job(ctx.queue, job.id)
    assert detail is not None and detail.logs == ["line 2", "line 3", "line 4", "line 5"], detail and detail.logs
    assert detail.log_count == 4


# --- meta.version ----------------------------------------------------------------------------


@scenario(
    "meta_version",
    N2P,
    "the version Node writes to meta, as bullbridge's guard and doctor read it (a Python add keeps it)",
    requires=("meta-version",),
)
async def meta_version_n2p(ctx: Ctx) -> None:
    from bullbridge.compat import parse_meta_version

    await ctx.node.add(ctx.queue, "x", {})
    client = await ctx.raw()
    meta = ctx.python_queue().keys["meta"]
    raw = await wait_until(lambda: client.execute("HGET", meta, "version"), 5, "Node writes meta.version")
    assert parse_meta_version(raw) == ("bullmq", ctx.node.bullmq_version), raw
    await ctx.python_queue().add("y", {})
    assert await client.execute("HGET", meta, "version") == raw, "a Python add replaced the version Node wrote"


@scenario("meta_version", P2N, "the version a Python writer puts in meta, as Node's getVersion reads it")
async def meta_version_p2n(ctx: Ctx) -> None:
    from bullbridge.compat import marker

    await ctx.python_queue().add("x", {})
    client = await ctx.raw()
    meta = ctx.python_queue().keys["meta"]
    assert await client.execute("HGET", meta, "version") == marker().encode()
    # Node's Queue writes its own version when it connects: read ours with skipMetasUpdate
    # (Node >= 5.30), or - before - on the connection of a Worker (Workers write no meta).
    code = (
        "const q = new bullmq.Queue(args.q, { connection, prefix: args.prefix, skipMetasUpdate: true });"
        " try { return await q.getVersion() } finally { await q.close() }"
        if ctx.node_version >= (5, 30, 0)
        else "const w = new bullmq.Worker(args.q, null, { connection, prefix: args.prefix, autorun: false });"
        " try { return await (await w.client).hget(args.prefix + ':' + args.q + ':meta', 'version') }"
        " finally { await w.close() }"
    )
    seen = await ctx.node.eval(code, q=ctx.queue, prefix=ctx.prefix)
    assert seen == marker(), seen

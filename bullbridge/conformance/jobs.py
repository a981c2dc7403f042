"""Single jobs both ways: data, return value, failure, progress, custom id, logs,
UnrecoverableError, and the queue's event stream."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from typing import Any

from bullbridge.conformance.framework import DATA, N2P, P2N, RESULT, Ctx, js, scenario, wait_until


@scenario("plain_job", N2P, "data added by Node reaches a Python handler intact")
async def plain_job_n2p(ctx: Ctx) -> None:
    seen: list[tuple[str, Any]] = []

    async def handle(job: Any) -> None:
        seen.append((job.name, job.data))

    await ctx.worker({"greet": handle})
    job_id = await ctx.node.add(ctx.queue, "greet", DATA)
    await ctx.node_wait_state(job_id, "completed")
    assert seen == [("greet", DATA)], f"Python handler saw {seen}"


@scenario("plain_job", P2N, "data enqueued by Python reaches a Node processor intact")
async def plain_job_p2n(ctx: Ctx) -> None:
    await ctx.node_worker("async job => ({ name: job.name, data: job.data })")
    producer = ctx.python_queue()
    job = await producer.add("greet", DATA)
    assert await producer.result(job.id, timeout=10) == {"name": "greet", "data": DATA}


@scenario("return_value", N2P, "a Python handler's return value, read by Node")
async def return_value_n2p(ctx: Ctx) -> None:
    async def handle(job: Any) -> Any:
        return RESULT

    await ctx.worker({"calc": handle})
    job_id = await ctx.node.add(ctx.queue, "calc", {})
    job = await ctx.node_wait_state(job_id, "completed")
    assert job["returnvalue"] == RESULT, job["returnvalue"]
    assert job["attemptsMade"] == 1


@scenario("return_value", P2N, "a Node processor's return value, read by Python")
async def return_value_p2n(ctx: Ctx) -> None:
    await ctx.node_worker(f"async job => ({js(RESULT)})")
    producer = ctx.python_queue()
    job = await producer.add("calc", {})
    assert await producer.result(job.id, timeout=10) == RESULT
    stored = await producer.get_job(job.id)
    assert stored is not None and stored.returnvalue == RESULT and stored.attempts_made == 1


@scenario("failure_reason", N2P, "a Python handler's exception, read by Node as failedReason")
async def failure_reason_n2p(ctx: Ctx) -> None:
    async def boom(job: Any) -> None:
        raise ValueError(f"bad value {job.data['x']}")

    await ctx.worker({"boom": boom})
    job_id = await ctx.node.add(ctx.queue, "boom", {"x": 7})
    job = await ctx.node_wait_state(job_id, "failed")
    assert "bad value 7" in job["failedReason"], job["failedReason"]
    assert job["stacktrace"] and "bad value 7" in job["stacktrace"][0]
    assert job["attemptsMade"] == 1


@scenario("failure_reason", P2N, "a Node processor's error, read by Python as failed_reason")
async def failure_reason_p2n(ctx: Ctx) -> None:
    await ctx.node_worker("async job => { throw new Error('node says no: ' + job.data.x) }")
    producer = ctx.python_queue()
    job = await producer.add("fail", {"x": 7})
    outcome = await producer.wait_for(job.id, timeout=10)
    assert outcome.state == "failed" and outcome.failed_reason == "node says no: 7", outcome
    stored = await producer.get_job(job.id)
    assert stored is not None and stored.failed_reason == "node says no: 7"
    assert "Error: node says no: 7" in stored.stacktrace[0]


@scenario("progress", N2P, "progress reported by a Python handler, seen by Node's QueueEvents and job")
async def progress_n2p(ctx: Ctx) -> None:
    events = await ctx.node.subscribe(ctx.queue, lastEventId="0-0")  # "$" would race the first XREAD
    ctx.on_close(lambda: ctx.node.call("events.close", handle=events))

    async def steps(job: Any) -> str:
        for value in (10, 50, {"stage": "done"}):
            await job.update_progress(value)
        return "ok"

    await ctx.worker({"steps": steps})
    job_id = await ctx.node.add(ctx.queue, "steps", {})
    seen = await ctx.node.wait_event(events, lambda e: e.event == "progress" and e["args"]["jobId"] == job_id, count=3)
    assert [e["args"]["data"] for e in seen] == [10, 50, {"stage": "done"}]
    job = await ctx.node_wait_state(job_id, "completed")
    assert job["progress"] == {"stage": "done"}, job["progress"]


@scenario("progress", P2N, "progress reported by a Node processor, seen by Python's QueueEvents and job")
async def progress_p2n(ctx: Ctx) -> None:
    from bullbridge import QueueEvents

    await ctx.node_worker("async job => { for (const p of [10, 50, 100]) await job.updateProgress(p); return 1 }")
    producer = ctx.python_queue()
    async with QueueEvents(ctx.queue, connection=ctx.redis_url, prefix=ctx.prefix) as events:
        seen: list[Any] = []

        async def collect() -> None:
            async for event in events:
                if event.event == "progress":
                    seen.append(event.progress)
                    if len(seen) == 3:
                        return

        collector = asyncio.create_task(collect())
        job = await producer.add("p", {})
        try:
            await asyncio.wait_for(collector, 10)
        finally:
            collector.cancel()
        assert seen == [10, 50, 100], seen
    assert await producer.result(job.id, timeout=10) == 1
    stored = await producer.get_job(job.id)
    assert stored is not None and stored.progress == 100


@scenario("custom_id", N2P, "a custom job id set by Node, as the Python handler sees it")
async def custom_id_n2p(ctx: Ctx) -> None:
    async def handle(job: Any) -> str:
        return str(job.id)

    await ctx.worker({"x": handle})
    wanted = f"order-{uuid.uuid4().hex[:6]}"
    job_id = await ctx.node.add(ctx.queue, "x", {}, {"jobId": wanted})
    assert job_id == wanted
    job = await ctx.node_wait_state(wanted, "completed")
    assert job["returnvalue"] == wanted


@scenario("custom_id", P2N, "a custom job id set by Python, as the Node processor sees it")
async def custom_id_p2n(ctx: Ctx) -> None:
    await ctx.node_worker("async job => job.id")
    producer = ctx.python_queue()
    wanted = f"invoice-{uuid.uuid4().hex[:6]}"
    job = await producer.add("x", {}, job_id=wanted)
    assert job.id == wanted
    assert await producer.result(wanted, timeout=10) == wanted
    seen = await ctx.node_job(wanted)
    assert seen is not None and seen["opts"].get("jobId") == wanted, seen and seen["opts"]


# --- logs, UnrecoverableError, the event stream -----------------------------------------------


@scenario("logs", N2P, "log lines of a Python handler, trimmed to Node's keepLogs, read by Node's getJobLogs")
async def logs_n2p(ctx: Ctx) -> None:
    async def handle(job: Any) -> str:
        for line in ("one", "two ✓", "three"):
            await job.log(line)
        return "logged"

    await ctx.worker({"x": handle})
    job_id = await ctx.node.add(ctx.queue, "x", {}, {"keepLogs": 2})
    await ctx.node_wait_state(job_id, "completed")
    logs = await ctx.node.queue_call(ctx.queue, "getJobLogs", job_id)
    assert logs == {"logs": ["two ✓", "three"], "count": 2}, logs


@scenario("logs", P2N, "log lines of a Node processor, trimmed to Python's keep_logs, read by Python")
async def logs_p2n(ctx: Ctx) -> None:
    await ctx.node_worker("async job => { for (const l of ['one', 'two ✓', 'three']) await job.log(l); return 1 }")
    producer = ctx.python_queue()
    job = await producer.add("x", {}, keep_logs=2)
    assert await producer.result(job.id, timeout=10) == 1
    client = await ctx.raw()
    lines = await client.execute("LRANGE", producer.keys.logs(job.id), 0, -1)
    assert [line.decode() for line in lines] == ["two ✓", "three"], lines


@scenario("unrecoverable", N2P, "UnrecoverableError in a Python handler ends a Node job's attempts at once")
async def unrecoverable_n2p(ctx: Ctx) -> None:
    from bullbridge import UnrecoverableError

    async def handle(job: Any) -> None:
        raise UnrecoverableError("card declined")

    await ctx.worker({"x": handle})
    job_id = await ctx.node.add(ctx.queue, "x", {}, {"attempts": 3, "backoff": 10})
    job = await ctx.node_wait_state(job_id, "failed")
    assert "card declined" in job["failedReason"] and job["attemptsMade"] == 1, job


@scenario("unrecoverable", P2N, "UnrecoverableError thrown by a Node processor ends a Python job's attempts at once")
async def unrecoverable_p2n(ctx: Ctx) -> None:
    await ctx.node_worker("async job => { throw new bullmq.UnrecoverableError('card declined') }")
    producer = ctx.python_queue()
    job = await producer.add("x", {}, attempts=3, backoff=10)
    outcome = await producer.wait_for(job.id, timeout=10)
    assert outcome.state == "failed" and outcome.failed_reason == "card declined", outcome
    stored = await producer.get_job(job.id)
    assert stored is not None and stored.attempts_made == 1, stored and stored.attempts_made


def _in_order(seen: list[str], expected: list[str]) -> bool:
    it = iter(seen)
    return all(event in it for event in expected)


@scenario("events", N2P, "a Python worker's job lifecycle, as Node's QueueEvents reports it")
async def events_n2p(ctx: Ctx) -> None:
    # From the start of the (fresh) queue's stream: Node's QueueEvents issues its
    # first XREAD after waitUntilReady returns, so '$' could miss the first events.
    handle = await ctx.node.subscribe(ctx.queue, lastEventId="0-0")
    ctx.on_close(lambda: ctx.node.call("events.close", handle=handle))

    async def ok(job: Any) -> Any:
        return RESULT

    async def bad(job: Any) -> None:
        raise ValueError("no")

    good_id = await ctx.node.add(ctx.queue, "ok", {})
    bad_id = await ctx.node.add(ctx.queue, "bad", {})
    await ctx.worker({"ok": ok, "bad": bad})
    await ctx.node.wait_event(handle, lambda e: e.event in ("completed", "failed"), count=2)

    def of(job_id: str) -> list[Any]:
        return [
            e for e in ctx.node.events[handle] if isinstance(e.get("args"), dict) and e["args"].get("jobId") == job_id
        ]

    names = {job_id: [e.event for e in of(job_id)] for job_id in (good_id, bad_id)}
    assert _in_order(names[good_id], ["added", "active", "completed"]), names
    assert _in_order(names[bad_id], ["added", "active", "failed"]), names
    completed = next(e for e in of(good_id) if e.event == "completed")
    failed = next(e for e in of(bad_id) if e.event == "failed")
    assert completed["args"]["returnvalue"] == RESULT, completed["args"]
    assert "no" in failed["args"]["failedReason"], failed["args"]


@scenario("events", P2N, "a Node worker's job lifecycle, as Python's QueueEvents reports it")
async def events_p2n(ctx: Ctx) -> None:
    from bullbridge import QueueEvents

    producer = ctx.python_queue()
    async with QueueEvents(ctx.queue, connection=ctx.redis_url, prefix=ctx.prefix) as events:
        seen: list[Any] = []

        async def collect() -> None:
            async for event in events:
                seen.append(event)
                if sum(e.event in ("completed", "failed") for e in seen) == 2:
                    return

        collector = asyncio.create_task(collect())
        good = await producer.add("ok", {})
        bad = await producer.add("bad", {})
        await ctx.node_worker(f"async job => {{ if (job.name === 'bad') throw new Error('no'); return {js(RESULT)} }}")
        try:
            await asyncio.wait_for(collector, 10)
        finally:
            collector.cancel()
    names = {job_id: [e.event for e in seen if e.job_id == job_id] for job_id in (good.id, bad.id)}
    assert _in_order(names[good.id], ["added", "active", "completed"]), names
    assert _in_order(names[bad.id], ["added", "active", "failed"]), names
    completed = next(e for e in seen if e.job_id == good.id and e.event == "completed")
    failed = next(e for e in seen if e.job_id == bad.id and e.event == "failed")
    assert completed.returnvalue == RESULT and failed.failed_reason == "no", (completed.fields, failed.fields)


# --- ids, moving a running job, discarding, sandboxes, large batches ---------------------------


@scenario(
    "custom_id_parts", N2P, "a three-part custom id ('a:b:c', Node's legacy-repeat shape) set by Node, run by Python"
)
async def custom_id_parts_n2p(ctx: Ctx) -> None:
    async def handle(job: Any) -> str:
        return str(job.id)

    await ctx.worker({"x": handle})
    wanted = f"order:{uuid.uuid4().hex[:6]}:1"
    job_id = await ctx.node.add(ctx.queue, "x", {}, {"jobId": wanted})
    job = await ctx.node_wait_state(job_id, "completed")
    assert job_id == wanted and job["returnvalue"] == wanted, job


@scenario("custom_id_parts", P2N, "a three-part custom id ('a:b:c') set by Python, as Node accepts it, run by Node")
async def custom_id_parts_p2n(ctx: Ctx) -> None:
    await ctx.node_worker("async job => job.id")
    producer = ctx.python_queue()
    wanted = f"order:{uuid.uuid4().hex[:6]}:1"
    job = await producer.add("x", {}, job_id=wanted)
    assert job.id == wanted and await producer.result(wanted, timeout=10) == wanted
    node_says = await ctx.node.eval(
        "try { await queue(args.q).add('y', {}, { jobId: 'a:b' }); return 'accepted' } catch (e) { return e.message }",
        q=ctx.queue,
    )
    from bullbridge import InvalidJobOptions

    try:
        await producer.add("y", {}, job_id="a:b")
    except InvalidJobOptions as exc:
        assert "Custom Id cannot contain :" in node_says and "Custom Id cannot contain :" in str(exc), (node_says, exc)
    else:
        raise AssertionError(f"Python accepted the two-part id 'a:b' (Node: {node_says})")


MOVED_MS = 300


@scenario(
    "move_to_delayed", N2P, "a Python handler moves Node's job back to delayed (delay_until); it runs again later"
)
async def move_to_delayed_n2p(ctx: Ctx) -> None:
    runs: list[float] = []

    async def handle(job: Any) -> str:
        runs.append(time.time() * 1000)
        if len(runs) == 1:
            await job.delay_until(timedelta(milliseconds=MOVED_MS))
        return "second run"

    await ctx.worker({"x": handle})
    job_id = await ctx.node.add(ctx.queue, "x", {}, {"attempts": 1})
    job = await ctx.node_wait_state(job_id, "completed")
    assert job["returnvalue"] == "second run" and len(runs) == 2, (job, runs)
    assert runs[1] - runs[0] >= MOVED_MS - 5, f"ran again after {runs[1] - runs[0]:.0f} ms"
    assert job["attemptsMade"] <= 1, f"moving to delayed counted as a failed attempt: {job['attemptsMade']}"


@scenario(
    "move_to_delayed",
    P2N,
    "a Node processor moves Python's job to delayed (moveToDelayed + DelayedError); it runs again later",
)
async def move_to_delayed_p2n(ctx: Ctx) -> None:
    await ctx.node_worker(
        "async (job, token) => { shared.moved = shared.moved || {}; const k = job.queueName + job.id;"
        " if (!shared.moved[k]) { shared.moved[k] = Date.now(); await job.moveToDelayed(Date.now() + "
        + str(MOVED_MS)
        + ", token); throw new bullmq.DelayedError() } return Date.now() - shared.moved[k] }"
    )
    producer = ctx.python_queue()
    job = await producer.add("x", {}, attempts=1)
    waited = await producer.result(job.id, timeout=10)
    assert waited >= MOVED_MS - 5, f"ran again after {waited} ms"
    stored = await producer.get_job(job.id)
    assert stored is not None and stored.attempts_made <= 1, stored and stored.attempts_made


@scenario(
    "discard",
    N2P,
    "a job a Node processor discarded (no retries left), retried by Python, completed by Python",
    requires=("discard",),
)
async def discard_n2p(ctx: Ctx) -> None:
    handle = await ctx.node_worker("async job => { job.discard(); throw new Error('discarded') }")
    job_id = await ctx.node.add(ctx.queue, "x", {}, {"attempts": 3, "backoff": 10})
    job = await ctx.node_wait_state(job_id, "failed")
    assert job["attemptsMade"] == 1, f"a discarded job was retried: {job['attemptsMade']} attempts"
    await ctx.node.close_worker(handle)

    async def again(job: Any) -> str:
        return "python"

    await ctx.worker({"x": again})
    await ctx.python_queue().retry_job(job_id)
    assert (await ctx.node_wait_state(job_id, "completed"))["returnvalue"] == "python"


@scenario(
    "discard", P2N, "Python's job (3 attempts) discarded by a Node processor: it fails after one", requires=("discard",)
)
async def discard_p2n(ctx: Ctx) -> None:
    await ctx.node_worker("async job => { job.discard(); throw new Error('discarded') }")
    producer = ctx.python_queue()
    job = await producer.add("x", {}, attempts=3, backoff=10)
    outcome = await producer.wait_for(job.id, timeout=10)
    assert outcome.state == "failed" and outcome.failed_reason == "discarded", outcome
    stored = await producer.get_job(job.id)
    assert stored is not None and stored.attempts_made == 1, stored and stored.attempts_made


SANDBOXED = """module.exports = async job => ({ by: 'node-sandbox', pid: process.pid, n: job.data.n * 2 });
"""


async def _sandbox_file(ctx: Ctx) -> str:
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix="bb-sandbox-"))
    path = folder / "processor.js"
    path.write_text(SANDBOXED)

    async def cleanup() -> None:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)

    ctx.on_close(cleanup)
    return str(path)


async def _sandboxed(ctx: Ctx, add: Any) -> None:
    async def handle(job: Any) -> Any:
        return {"by": "python", "n": job.data["n"] * 2}

    module = await _sandbox_file(ctx)
    handle_id = await ctx.node.start_module_worker(ctx.queue, module, sandboxed=True, report=False, concurrency=2)
    ctx.on_close(lambda: ctx.node.close_worker(handle_id, force=True))
    await ctx.worker({"x": handle}, concurrency=2)
    ids = await add(12)
    producer = ctx.python_queue()
    results = [await producer.result(job_id, timeout=15) for job_id in ids]
    assert [r["n"] for r in results] == [2 * n for n in range(12)], results
    by = {r["by"] for r in results}
    assert by <= {"python", "node-sandbox"}, by
    sandbox_pids = {r["pid"] for r in results if r["by"] == "node-sandbox"}
    node_pid = ctx.node.pid
    assert node_pid not in sandbox_pids, "the 'sandboxed' processor ran in the driver's own process"


@scenario("sandboxed", N2P, "Node adds; a sandboxed Node processor (child process) and a Python handler share the jobs")
async def sandboxed_n2p(ctx: Ctx) -> None:
    async def add(n: int) -> list[str]:
        return [
            str(i)
            for i in await ctx.node.call(
                "queue.addBulk", queue=ctx.queue, jobs=[{"name": "x", "data": {"n": i}} for i in range(n)]
            )
        ]

    await _sandboxed(ctx, add)


@scenario(
    "sandboxed", P2N, "Python adds; a sandboxed Node processor (child process) and a Python handler share the jobs"
)
async def sandboxed_p2n(ctx: Ctx) -> None:
    async def add(n: int) -> list[str]:
        return [j.id for j in await ctx.python_queue().add_bulk([("x", {"n": i}) for i in range(n)])]

    await _sandboxed(ctx, add)


BATCH = 10_000


@scenario("large_batch", N2P, "10,000 jobs bulk-added by Node, drained by a Python worker: each runs once", slow=True)
async def large_batch_n2p(ctx: Ctx) -> None:
    seen: set[int] = set()
    dupes: list[int] = []

    async def handle(job: Any) -> None:
        n = int(job.data["n"])
        (dupes.append(n) if n in seen else seen.add(n))

    for start in range(0, BATCH, 2_000):
        await ctx.node.call(
            "queue.addBulk",
            queue=ctx.queue,
            jobs=[
                {"name": "x", "data": {"n": i}, "opts": {"removeOnComplete": True}} for i in range(start, start + 2_000)
            ],
            timeout=60,
        )
    await ctx.worker({"x": handle}, concurrency=50)
    await wait_until(lambda: len(seen) == BATCH, 120, f"all {BATCH} jobs run (ran {len(seen)})")
    assert not dupes, f"{len(dupes)} jobs ran twice: {dupes[:10]}"
    counts = await ctx.node_counts()
    assert not any(counts.values()), counts


@scenario("large_batch", P2N, "10,000 jobs bulk-added by Python, drained by a Node worker: each runs once", slow=True)
async def large_batch_p2n(ctx: Ctx) -> None:
    producer = ctx.python_queue()
    for start in range(0, BATCH, 2_000):
        await producer.add_bulk([("x", {"n": i}, {"remove_on_complete": True}) for i in range(start, start + 2_000)])
    await ctx.node.eval(
        "shared.batch = shared.batch || {}; shared.batch[args.q] = { seen: new Set(), dupes: 0 };", q=ctx.queue
    )
    await ctx.node_worker(
        "async job => { const b = shared.batch[job.queueName]; if (b.seen.has(job.data.n)) b.dupes++;"
        " b.seen.add(job.data.n); return 1 }",
        concurrency=50,
    )

    async def done() -> Any:
        state = await ctx.node.eval(
            "const b = shared.batch[args.q]; return { seen: b.seen.size, dupes: b.dupes };", q=ctx.queue
        )
        return state if state["seen"] == BATCH else None

    state = await wait_until(done, 120, f"all {BATCH} jobs run by Node")
    assert state["dupes"] == 0, f"{state['dupes']} jobs ran twice"
    assert not any((await producer.get_job_counts()).values())

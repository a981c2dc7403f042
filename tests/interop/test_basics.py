"""First interop scenarios, both directions, on real Redis and real Node BullMQ.

N->P: a Node producer feeds a bullbridge worker.  P->N: a bullbridge producer
feeds a Node worker. Each checks what the *other* language observes.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from bullbridge import Queue
from bullbridge.testing.node import NodeDriver
from tests.timing import NodeBaseline, assert_as_punctual_as_node, concurrently, now_ms, record

# --- Node producer -> Python worker ------------------------------------------------------


async def test_n2p_plain_job_and_return_value(node: NodeDriver, make_worker, queue_name: str) -> None:
    seen: list[tuple[str, object]] = []

    async def greet(job):
        seen.append((job.name, job.data))
        return {"greeting": f"hello {job.data['who']}", "n": job.data["n"] * 2}

    worker = make_worker({"greet": greet})
    await worker.start()
    job_id = await node.add(queue_name, "greet", {"who": "wörld ✓", "n": 21})
    job = await _wait_node_state(node, queue_name, job_id, "completed")
    assert seen == [("greet", {"who": "wörld ✓", "n": 21})]
    # Node reads the return value Python wrote.
    assert job["returnvalue"] == {"greeting": "hello wörld ✓", "n": 42}
    assert job["attemptsMade"] == 1
    assert job["processedOn"] >= job["timestamp"]


async def test_n2p_custom_job_id(node: NodeDriver, make_worker, queue_name: str) -> None:
    ids: list[str] = []

    async def handle(job):
        ids.append(job.id)
        return job.id

    worker = make_worker({"x": handle})
    await worker.start()
    job_id = await node.add(queue_name, "x", {}, {"jobId": "order-42"})
    assert job_id == "order-42"
    job = await _wait_node_state(node, queue_name, "order-42", "completed")
    assert ids == ["order-42"]
    assert job["returnvalue"] == "order-42"


async def test_n2p_failure_reason_visible_in_node(node: NodeDriver, make_worker, queue_name: str) -> None:
    async def boom(job):
        raise ValueError("bad value")

    worker = make_worker({"boom": boom})
    await worker.start()
    job_id = await node.add(queue_name, "boom", {"a": 1})
    job = await _wait_node_state(node, queue_name, job_id, "failed")
    # The exception class survives (the port stores only "bad value").
    assert job["failedReason"] == "ValueError: bad value"
    assert any("ValueError: bad value" in trace for trace in job["stacktrace"])
    assert job["attemptsMade"] == 1


async def test_n2p_progress_visible_in_node(node: NodeDriver, make_worker, queue_name: str) -> None:
    # From the stream's start: with the default "$", events added before QueueEvents issues its first
    # XREAD are missed (a race that a loaded machine loses).
    events = await node.subscribe(queue_name, lastEventId="0-0")

    async def steps(job):
        for pct in (10, 50, 100):
            await job.update_progress(pct)
        await job.update_progress({"stage": "done", "items": 3})
        return "ok"

    worker = make_worker({"steps": steps})
    await worker.start()
    job_id = await node.add(queue_name, "steps", {})
    progress = await node.wait_event(events, lambda e: e.event == "progress" and e["args"]["jobId"] == job_id, count=4)
    assert [e["args"]["data"] for e in progress] == [10, 50, 100, {"stage": "done", "items": 3}]
    job = await _wait_node_state(node, queue_name, job_id, "completed")
    assert job["progress"] == {"stage": "done", "items": 3}
    await node.call("events.close", handle=events)


# --- Python producer -> Node worker -------------------------------------------------------


async def test_p2n_plain_job_and_return_value(node: NodeDriver, producer: Queue, queue_name: str) -> None:
    handle = await node.start_worker(
        queue_name, "async job => ({ name: job.name, echo: job.data, sum: job.data.a + job.data.b })"
    )
    try:
        job = await producer.add("calc", {"a": 2, "b": 3, "text": "日本語 🎉"})
        result = await producer.result(job.id, timeout=10)
        assert result == {"name": "calc", "echo": {"a": 2, "b": 3, "text": "日本語 🎉"}, "sum": 5}
        stored = await producer.get_job(job.id)
        assert stored is not None and stored.attempts_made == 1 and stored.returnvalue["sum"] == 5
    finally:
        await node.close_worker(handle)


async def test_p2n_custom_job_id(node: NodeDriver, producer: Queue, queue_name: str) -> None:
    handle = await node.start_worker(queue_name, "async job => job.id")
    try:
        job = await producer.add("x", {}, job_id="invoice-7")
        assert job.id == "invoice-7"
        assert await producer.result("invoice-7", timeout=10) == "invoice-7"
        seen = await node.get_job(queue_name, "invoice-7")
        assert seen is not None and seen["opts"]["jobId"] == "invoice-7"
    finally:
        await node.close_worker(handle)


async def test_p2n_failure_reason_visible_in_python(node: NodeDriver, producer: Queue, queue_name: str) -> None:
    handle = await node.start_worker(queue_name, "async job => { throw new Error('node says no: ' + job.data.x) }")
    try:
        job = await producer.add("fail", {"x": 7})
        outcome = await producer.wait_for(job.id, timeout=10)
        assert outcome.state == "failed"
        assert outcome.failed_reason == "node says no: 7"
        stored = await producer.get_job(job.id)
        assert stored is not None
        assert stored.failed_reason == "node says no: 7"
        assert "Error: node says no: 7" in stored.stacktrace[0]
    finally:
        await node.close_worker(handle)


# --- latency ----------------------------------------------------------------------------


async def test_idle_python_worker_picks_up_as_fast_as_node_p95(node: NodeDriver, make_worker, producer: Queue) -> None:
    """20 jobs added one by one to an idle worker (the port: 0.002-7.5 s; Node 3-15 ms
    idle). Each job is added at the same moment as a twin for an idle Node worker,
    and our p95 must be within the timer slack of Node's (tests/timing.py)."""
    started: dict[str, float] = {}
    arrived = asyncio.Event()

    async def handle(job):
        started[job.id] = now_ms()
        arrived.set()

    worker = make_worker({"tick": handle})
    await worker.start()
    ours, theirs = [], []
    async with NodeBaseline(node, producer.name) as baseline:
        warm = await producer.add("tick", {})  # let both workers go idle on their markers (was a bare sleep)
        await baseline.warm_up()
        await asyncio.wait_for(arrived.wait(), 10)  # failure detector
        for _ in range(20):
            arrived.clear()
            job, node_id = await concurrently(producer.add("tick", {}), baseline.add())
            await asyncio.wait_for(arrived.wait(), 10)  # failure detector
            ours.append(started[job.id] - job.timestamp)
            theirs.append(await baseline.lateness(node_id))
            await asyncio.sleep(0.05)  # the scenario: idle again between jobs
    assert warm.id in started
    p95 = statistics.quantiles(ours, n=20)[18]
    node_p95 = statistics.quantiles(theirs, n=20)[18]
    record("test_idle_python_worker_picks_up_as_fast_as_node_p95", ours=ours, node=theirs, p95=p95, node_p95=node_p95)
    assert_as_punctual_as_node([p95], [node_p95], f"add->start p95 (all: {sorted(round(v) for v in ours)})")


async def _wait_node_state(node: NodeDriver, queue: str, job_id: str, state: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    job = None
    while time.monotonic() < deadline:
        job = await node.get_job(queue, job_id)
        if job is not None and job["state"] == state:
            return job
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} not {state} within {timeout} s (last seen: {job})")

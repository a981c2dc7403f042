"""Node and Python workers on the same queue: no job lost, none run twice,
crashes in either language recovered by the other, visible to each other."""

from __future__ import annotations

import asyncio
import collections
import signal
import time

from bullbridge import Queue
from bullbridge.testing.node import NodeDriver
from tests.timing import record
from tests.worker.impls import wait_until
from tests.worker.procs import ProcWorker


async def test_competing_workers_process_each_job_exactly_once(node: NodeDriver, make_worker, producer: Queue) -> None:
    executions: collections.Counter[str] = collections.Counter()

    async def handle(job):
        executions[job.id] += 1
        await asyncio.sleep(0.001)
        return "py"

    worker = make_worker({"job": handle}, concurrency=5)
    await worker.start()
    node_worker = await node.start_worker(
        producer.name, "async job => { await sleep(1); return 'node' }", concurrency=5
    )
    try:
        jobs = await producer.add_bulk([("job", {"i": i}) for i in range(300)])
        outcomes = await asyncio.gather(*(producer.wait_for(j.id, timeout=30) for j in jobs))
        by_node_count = sum(1 for o in outcomes if o.returnvalue == "node")
        await node.wait_event(node_worker, "completed", count=by_node_count, timeout=5)
        node_done = collections.Counter(e["jobId"] for e in node.events[node_worker] if e.event == "completed")
        by_node = {o.returnvalue for o in outcomes}
        assert all(o.state == "completed" for o in outcomes)
        assert by_node == {"py", "node"}, "both languages should have taken a share"
        for job in jobs:
            runs = (executions[job.id], node_done[job.id])
            assert sum(runs) == 1, f"job {job.id} ran {runs[0]} times in Python, {runs[1]} in Node"
        counts = await node.queue_call(producer.name, "getJobCounts")
        assert counts["completed"] == 300 and counts["active"] == 0 and counts["waiting"] == 0, counts
    finally:
        await node.close_worker(node_worker)


async def test_python_worker_killed_mid_job_is_recovered_by_node(
    node: NodeDriver, redis_url: str, producer: Queue, queue_name: str
) -> None:
    # Every worker of a queue should share one stalled_interval: the check's
    # "stalled-check" key lives as long as the interval of whoever ran it.
    proc = await ProcWorker(
        "bullbridge", queue_name, redis_url, "sleep:30", lock_duration=1500, stalled_interval=500
    ).start()
    node_worker = None
    try:
        job = await producer.add("x", {})
        await proc.wait_for("start", timeout=5)
        await proc.signal(signal.SIGKILL)
        assert await proc.exited(5) == -signal.SIGKILL
        node_worker = await node.start_worker(
            queue_name, "async job => 'recovered by node'", stalledInterval=500, lockDuration=1500
        )
        killed = time.monotonic()
        # Lock expiry (1.5 s) + a stalled check (0.5 s) + 4 s slack (measured 1.50-1.55 s under stress-ng).
        outcome = await producer.wait_for(job.id, timeout=6)
        record("test_python_worker_killed_mid_job_is_recovered_by_node", took=time.monotonic() - killed)
        assert outcome.state == "completed" and outcome.returnvalue == "recovered by node"
        stalled = [e for e in node.events[node_worker] if e.event == "stalled"]
        assert [e["jobId"] for e in stalled] == [job.id]
    finally:
        await proc.stop()
        if node_worker:
            await node.close_worker(node_worker)


async def test_node_worker_killed_mid_job_is_recovered_by_python(
    redis_url: str, make_worker, producer: Queue, queue_name: str
) -> None:
    stalled: list[str] = []
    async with NodeDriver(redis_url) as doomed:
        await doomed.start_worker(
            queue_name, "async job => { await sleep(30000) }", lockDuration=1500, stalledInterval=500, handle="doomed"
        )
        job = await producer.add("x", {})
        await doomed.wait_event("doomed", "active", timeout=5)
        await doomed.kill(signal.SIGKILL)
        killed = time.monotonic()

    async def handle(j):
        return "recovered by python"

    worker = make_worker({"x": handle}, stalled_interval=500)
    worker.on("stalled", stalled.append)
    await worker.start()
    # Lock expiry (1.5 s) + a stalled check (0.5 s) + 4 s slack (measured 1.52 s under stress-ng).
    outcome = await producer.wait_for(job.id, timeout=6)
    record("test_node_worker_killed_mid_job_is_recovered_by_python", took=time.monotonic() - killed)
    assert outcome.state == "completed" and outcome.returnvalue == "recovered by python"
    assert stalled == [job.id]


async def test_node_lists_python_workers_once_with_their_marker(node: NodeDriver, make_worker, queue_name: str) -> None:
    async def handle(job):
        return None

    a = make_worker({"x": handle}, name="py-a", concurrency=3)
    b = make_worker({"x": handle}, name="py-b")
    await a.start()
    await b.start()
    node_worker = await node.start_worker(queue_name, "async job => 1", name="node-a")
    try:
        workers = await node.queue_call(queue_name, "getWorkers")
        names = sorted(w["rawname"].split(":w:", 1)[-1] for w in workers)
        assert names.count("bullbridge:py-a") == 1 and names.count("bullbridge:py-b") == 1, names
        assert "node-a" in names
        python = [n for n in names if n.startswith("bullbridge:")]
        assert len(python) == 2
    finally:
        await node.close_worker(node_worker)


async def test_pause_and_resume_stop_and_restart_fetching_at_once(make_worker, producer: Queue) -> None:
    seen: list[str] = []

    async def handle(job):
        seen.append(job.id)

    worker = make_worker({"x": handle})
    await worker.start()
    first = await producer.add("x", {})
    assert await wait_until(lambda: first.id in seen, timeout=5)  # failure detector
    await asyncio.wait_for(worker.pause(), 2)
    held = await producer.add("x", {})
    await asyncio.sleep(0.3)  # the window in which a paused worker must fetch nothing: the subject, not a sync
    assert held.id not in seen, "a paused worker must not fetch"
    assert await producer.get_job_state(held.id) == "waiting"
    resumed = time.monotonic()
    worker.resume()
    # 1 s: "at once" against a wait for the next blocking-read timeout (5 s); measured 0.02 s, idle to heavy.
    assert await wait_until(lambda: held.id in seen, timeout=1), "resume must fetch at once"
    record("test_pause_and_resume_stop_and_restart_fetching_at_once", took=time.monotonic() - resumed)

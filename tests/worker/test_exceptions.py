"""BaseExceptions from user code, and blocking handlers
(docs/port-differences.md#base-exceptions, docs/port-differences.md#blocking-handlers).

The port: KeyboardInterrupt/SystemExit in a processor kill the process with
jobs left active; CancelledError/GeneratorExit silently kill the worker's run
loop (the process looks alive and processes nothing); a blocking call stops
lock renewal and the job runs twice; a sync processor fails every job.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from bullbridge import Queue
from bullbridge.testing.node import NodeDriver
from tests.worker.impls import PyWorker, impls, wait_until
from tests.worker.procs import ProcWorker

RAISED = [
    (KeyboardInterrupt, "KeyboardInterrupt"),
    (lambda: SystemExit(3), "SystemExit: 3"),
    (asyncio.CancelledError, "CancelledError"),
    (GeneratorExit, "GeneratorExit"),
]


@pytest.mark.parametrize(("make_exc", "reason"), RAISED, ids=[r[1].split(":")[0] for r in RAISED])
async def test_base_exception_from_handler_fails_job_and_worker_goes_on(
    make_exc, reason: str, make_worker, producer: Queue
) -> None:
    async def handle(job):
        if job.data["explode"]:
            raise make_exc()
        return "still here"

    worker = make_worker({"x": handle})
    await worker.start()
    bad = await producer.add("x", {"explode": True})
    outcome = await producer.wait_for(bad.id, timeout=5)
    assert outcome.state == "failed" and outcome.failed_reason == reason
    good = await producer.add("x", {"explode": False})
    assert await producer.result(good.id, timeout=5) == "still here"
    assert worker.running


@impls("CancelledError/GeneratorExit from the processor silently kill its run loop")
@pytest.mark.parametrize("exc_type", [asyncio.CancelledError, GeneratorExit], ids=["CancelledError", "GeneratorExit"])
async def test_worker_survives_cancelled_error_from_user_code(
    impl: str, exc_type, redis_url: str, producer: Queue, queue_name: str
) -> None:
    done: list[str] = []

    async def body(job):
        if job.data["explode"]:
            raise exc_type()
        done.append(job.id)

    worker = await PyWorker(impl, queue_name, redis_url, body).start()
    try:
        await producer.add("x", {"explode": True})
        await asyncio.sleep(0.3)
        good = await producer.add("x", {"explode": False})
        # 3 s: a failure detector for one job; the port fails by it (a longer one only slows the suite).
        assert await wait_until(lambda: good.id in done, timeout=3), "the worker stopped processing"
    finally:
        await worker.close()


@impls("SystemExit/KeyboardInterrupt from the processor kill the process, job left active")
@pytest.mark.parametrize("exc_name", ["SystemExit", "KeyboardInterrupt"])
async def test_process_survives_system_exit_from_user_code(
    impl: str, exc_name: str, redis_url: str, producer: Queue, queue_name: str
) -> None:
    proc = await ProcWorker(impl, queue_name, redis_url, f"raise:{exc_name}").start()
    try:
        bad = await producer.add("x", {})
        await proc.wait_for("start", timeout=5)
        outcome = await producer.wait_for(bad.id, timeout=3)  # failure detector; the port (process gone) fails by it
        assert outcome.state == "failed"
        good = await producer.add("x", {})
        await proc.wait_for("done", timeout=5)
        assert await producer.result(good.id, timeout=5) == "py"
        assert proc.alive
    finally:
        await proc.stop()


async def test_sync_handler_runs_in_a_thread_and_keeps_its_lock(node: NodeDriver, make_worker, producer: Queue) -> None:
    """A blocking 2.5 s handler with a 1 s lock: renewal keeps running, so a Node
    worker watching for stalls never takes the job; it runs exactly once."""
    runs: list[str] = []

    def blocking(job):
        runs.append(job.id)
        time.sleep(2.5)
        return "slept"

    worker = make_worker({"x": blocking}, lock_duration=1000, stalled_interval=300)
    job = await producer.add("x", {})
    await worker.start()
    assert await wait_until(lambda: runs == [job.id], timeout=5)
    # Only now a Node worker joins, watching for stalls every 300 ms.
    node_worker = await node.start_worker(producer.name, "async job => 'node'", stalledInterval=300, lockDuration=1000)
    try:
        assert await producer.result(job.id, timeout=10) == "slept"
        assert runs == [job.id]
        assert not [e for e in node.events[node_worker] if e.event in ("active", "completed", "stalled")]
    finally:
        await node.close_worker(node_worker)


@pytest.mark.xfail(strict=True, reason="the port's Worker: a blocking processor loses its lock and the job runs twice")
async def test_port_runs_a_blocking_job_once(
    node: NodeDriver, redis_url: str, producer: Queue, queue_name: str
) -> None:
    """The port (docs/port-differences.md#blocking-handlers): a processor that
    blocks the loop 2.5 s with a 1 s lock should still run once (it loses its
    lock; Node, or the port again, re-runs it)."""
    import bullmq

    runs: list[str] = []

    async def processor(job, token):
        runs.append("py")
        time.sleep(2.5)  # blocks the loop: the port has no thread option
        return "py"

    job = await producer.add("x", {})
    worker = bullmq.Worker(
        queue_name, processor, {"connection": redis_url, "lockDuration": 1000, "stalledInterval": 300}
    )
    # The Node worker starts fetching 0.4 s later, once the port holds the job
    # (this test's own event loop is blocked by the port's processor meanwhile).
    node_worker = await node.start_worker(
        queue_name, "async job => 'node'", stalledInterval=300, lockDuration=1000, autorun=False
    )
    await node.eval("setTimeout(() => workers.get(args.h).run().catch(() => {}), 400)", h=node_worker)
    try:
        await producer.wait_for(job.id, timeout=10)
        assert runs, "the port never took the job"
        node_runs = [e for e in node.events[node_worker] if e.event == "active" and e["jobId"] == job.id]
        assert len(runs) + len(node_runs) == 1, f"ran {len(runs)}x in the port, {len(node_runs)}x in Node"
    finally:
        await node.close_worker(node_worker)
        await asyncio.wait_for(worker.close(force=True), 15)


@pytest.mark.xfail(strict=True, reason="the port's Worker fails every job of a plain def processor")
async def test_port_runs_a_sync_processor(redis_url: str, producer: Queue, queue_name: str) -> None:
    """The port (docs/port-differences.md#blocking-handlers): a plain ``def``
    processor should complete its jobs (bullbridge runs plain functions in a
    thread: test_sync_handler_runs_in_a_thread...)."""
    import bullmq

    def processor(job, token):
        return "sync"

    worker = bullmq.Worker(queue_name, processor, {"connection": redis_url})
    try:
        job = await producer.add("x", {})
        outcome = await producer.wait_for(job.id, timeout=5)
        assert outcome.state == "completed", outcome.failed_reason
    finally:
        await asyncio.wait_for(worker.close(force=True), 10)


async def test_process_handler_runs_cpu_work_off_the_loop(make_worker, producer: Queue) -> None:
    worker = make_worker({"fib2": fib_handler_via_job}, lock_duration=1000, stalled_interval=300)
    worker.handler("fib", run_in="process")(fib_handler)
    await worker.start()
    a = await producer.add("fib", {"n": 27})
    b = await producer.add("fib2", {"n": 20})
    assert await producer.result(a.id, timeout=20) == 196418
    assert await producer.result(b.id, timeout=20) == 6765


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def fib_handler(job) -> int:
    """Runs in the process pool: gets a picklable JobSnapshot."""
    assert type(job).__name__ == "JobSnapshot"
    return fib(job.data["n"])


async def fib_handler_via_job(job) -> int:
    await job.update_progress(10)
    value = await job.run_in_process(fib, job.data["n"])
    await job.update_progress(100)
    return value

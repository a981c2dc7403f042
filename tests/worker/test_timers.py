"""Idle pickup latency, sub-second backoffs and delays
(docs/port-differences.md#idle-pickup, docs/port-differences.md#timers).

The port never learns the Redis version on its blocking connection, so block
timeouts are rounded up to whole seconds (200 ms backoff -> ~1.1 s), and its
socket timeout equals its block time (idle pickup 1-7.5 s late).
"""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from bullbridge import Backoff, Queue
from bullbridge.testing.node import NodeDriver
from tests.worker.impls import PyWorker, impls, wait_until


@impls("exponential backoff 200/400/800 ms runs at ~1030/1106/1105 ms")
async def test_exponential_backoff_is_exact(impl: str, node: NodeDriver, redis_url: str, queue_name: str) -> None:
    starts: list[float] = []

    async def body(job):
        starts.append(time.time())
        if len(starts) < 4:
            raise RuntimeError("again")
        return "done"

    worker = await PyWorker(impl, queue_name, redis_url, body).start()
    try:
        # Added by Node, so the retry settings are Node's own.
        await node.add(queue_name, "flaky", {}, {"attempts": 4, "backoff": {"type": "exponential", "delay": 200}})
        assert await wait_until(lambda: len(starts) == 4, timeout=5), f"{len(starts)} attempts"
        gaps = [round((b - a) * 1000) for a, b in itertools.pairwise(starts)]
        for gap, expected in zip(gaps, (200, 400, 800)):
            assert expected - 5 <= gap <= expected + 50, f"backoff gaps {gaps} ms, expected 200/400/800 +-50"
    finally:
        await worker.close()


@impls("a 300 ms delayed job starts 200-650 ms late")
async def test_delayed_job_starts_on_time(impl: str, redis_url: str, producer: Queue, queue_name: str) -> None:
    started: dict[str, float] = {}

    async def body(job):
        started[job.id] = time.time()

    worker = await PyWorker(impl, queue_name, redis_url, body).start()
    try:
        await asyncio.sleep(0.2)
        lateness = []
        for _ in range(3):
            job = await producer.add("later", {}, delay=300)
            assert await wait_until(lambda job=job: job.id in started, timeout=3)
            lateness.append(started[job.id] * 1000 - (job.timestamp + 300))
        assert all(-5 <= late <= 50 for late in lateness), f"delayed jobs started {lateness} ms after due"
    finally:
        await worker.close()


@impls("an idle worker picks up 1-7.5 s late once its blocking read times out")
async def test_pickup_after_idle_period(impl: str, redis_url: str, producer: Queue, queue_name: str) -> None:
    started: dict[str, float] = {}

    async def body(job):
        started[job.id] = time.time()

    worker = await PyWorker(impl, queue_name, redis_url, body).start()
    try:
        await asyncio.sleep(5.3)  # idle across one full 5 s blocking wait: that is the scenario
        job = await producer.add("tick", {})
        assert await wait_until(lambda: job.id in started, timeout=3), "not picked up within 3 s"
        latency = started[job.id] * 1000 - job.timestamp
        assert latency < 100, f"picked up {latency:.0f} ms after being added"
    finally:
        await worker.close()


async def test_fixed_backoff_from_python_producer(make_worker, producer: Queue) -> None:
    starts: list[float] = []

    async def handle(job):
        starts.append(time.time())
        raise ValueError("nope")

    worker = make_worker({"x": handle})
    await worker.start()
    job = await producer.add("x", {}, attempts=3, backoff=Backoff.fixed(150))
    outcome = await producer.wait_for(job.id, timeout=5)
    assert outcome.state == "failed" and outcome.failed_reason == "ValueError: nope"
    gaps = [round((b - a) * 1000) for a, b in itertools.pairwise(starts)]
    assert len(starts) == 3 and all(145 <= g <= 200 for g in gaps), gaps
    stored = await producer.get_job(job.id)
    assert stored is not None and stored.attempts_made == 3 and len(stored.stacktrace) == 3


async def test_handler_keyword_parameters_are_left_alone(make_worker, producer: Queue) -> None:
    """The port hands an AbortSignal to any third positional parameter
    (``(job, token, extra="x")``: docs/port-differences.md#signature-sniffing).
    A bullbridge handler gets the job only; the cancellation signal is ``job.signal``."""
    seen: list[object] = []

    async def handle(job, extra="x", *, flag=True):
        seen.append((extra, flag, job.signal.cancelled))
        return extra

    worker = make_worker({"x": handle})
    await worker.start()
    job = await producer.add("x", {})
    assert await producer.result(job.id, timeout=5) == "x"
    assert seen == [("x", True, False)]


@pytest.mark.xfail(strict=True, reason="the port's Worker hands an AbortSignal to any third positional parameter")
async def test_port_leaves_a_defaulted_third_parameter_alone(redis_url: str, producer: Queue,
                                                             queue_name: str) -> None:
    """The port (docs/port-differences.md#signature-sniffing): a processor
    ``(job, token, extra="x")`` should see ``extra == "x"``."""
    import bullmq

    seen: list[object] = []

    async def processor(job, token, extra="x"):
        seen.append(extra)

    worker = bullmq.Worker(queue_name, processor, {"connection": redis_url})
    try:
        await producer.add("x", {})
        assert await wait_until(lambda: bool(seen), timeout=5)
        assert seen[0] == "x", f"the port passed {type(seen[0]).__name__} into a defaulted parameter"
    finally:
        await asyncio.wait_for(worker.close(force=True), 10)

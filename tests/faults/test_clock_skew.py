"""Time (docs/faults.md#time): this Python process's clock runs 2 s ahead of or behind
Redis and the Node host (``bullbridge.clock.set_offset``; Node and Redis keep the true
clock). BullMQ stamps jobs with the client's clock, so a skewed worker runs delayed
jobs early or late by exactly the skew - as a Node worker on that host would - and
``doctor`` flags it; locks and stall recovery run on Redis's own expiry, so a held job
keeps its lock; a scheduler keeps firing, each iteration once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as redis

from bullbridge import Worker, clock
from bullbridge.doctor import WARNING, diagnose
from bullbridge.testing.node import NodeDriver
from tests.timing import EARLY_MS, record
from tests.worker.impls import wait_until

SKEW_MS = 2000


@pytest.fixture(params=[SKEW_MS, -SKEW_MS], ids=["ahead", "behind"])
def skew(request: pytest.FixtureRequest) -> Iterator[int]:
    clock.set_offset(request.param)
    try:
        yield request.param
    finally:
        clock.set_offset(0)


def true_ms() -> float:
    return time.time() * 1000  # the host's real clock (Node's and Redis's), not bullbridge's


async def test_a_delayed_job_runs_off_by_the_skew_once(
    skew: int, node: NodeDriver, redis_url: str, queue_name: str
) -> None:
    ran: list[tuple[str, float]] = []

    async def handle(job: Any) -> None:
        ran.append((job.id, true_ms()))

    worker = Worker(queue_name, {"x": handle}, connection=redis_url)
    await worker.start()
    try:
        job_id = await node.add(queue_name, "x", {}, {"delay": 3000})  # stamped by Node's true clock
        job = await node.get_job(queue_name, job_id)
        assert job is not None
        due = job["timestamp"] + 3000
        assert await wait_until(lambda: bool(ran), timeout=10), "the delayed job never ran"  # failure detector
        lateness = ran[0][1] - due
        record("test_a_delayed_job_runs_off_by_the_skew_once", skew=skew, lateness=lateness)
        # Lower bound (kind 2): never earlier than the skew explains (the worker's "now" is the
        # true time + skew); a clock behind runs the job at least that much late.
        assert lateness >= -skew - EARLY_MS, lateness
        await asyncio.sleep(0.5)  # the scenario: a window in which a second run would show
        assert [i for i, _ in ran] == [job_id], ran
    finally:
        await worker.close(timeout=3)


async def test_a_held_job_keeps_its_lock_beside_a_node_stall_checker(
    skew: int, node: NodeDriver, redis_url: str, queue_name: str
) -> None:
    runs: list[str] = []
    release = asyncio.Event()

    async def hold(job: Any) -> str:
        runs.append(job.id)
        await release.wait()
        return "held"

    # A 1 s lock renewed every 0.5 s, held for 3 s: the lock lives on Redis's own expiry.
    worker = Worker(queue_name, {"x": hold}, connection=redis_url, lock_duration=1000)
    await worker.start()
    handle = ""
    try:
        job_id = await node.add(queue_name, "x", {})
        assert await wait_until(lambda: bool(runs), timeout=10), "not started"  # failure detector
        # A Node worker on the true clock checks for stalled jobs every 300 ms meanwhile.
        handle = await node.start_worker(queue_name, "async job => 'node'", stalledInterval=300, lockDuration=1000)
        await asyncio.sleep(3)  # the scenario: three lock durations held under a skewed clock
        release.set()
        admin = redis.from_url(redis_url, decode_responses=True)
        try:

            async def finished() -> bool:
                return bool(await admin.hget(f"bull:{queue_name}:{job_id}", "finishedOn"))

            deadline = time.monotonic() + 10  # a failure detector: one finish
            while not await finished() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)  # polling Redis for the recorded outcome
            fields = await admin.hgetall(f"bull:{queue_name}:{job_id}")
        finally:
            await admin.aclose()
        assert fields.get("returnvalue") == '"held"' and fields.get("atm") == "1", fields
        assert int(fields.get("stc", 0)) == 0 and runs == [job_id], (fields, runs)
    finally:
        release.set()
        if handle:
            await node.close_worker(handle, force=True, timeout=5)
        await worker.close(timeout=3)


async def test_a_scheduler_keeps_firing_each_iteration_once(
    skew: int, node: NodeDriver, redis_url: str, queue_name: str
) -> None:
    ran: list[str] = []

    async def tick(job: Any) -> None:
        ran.append(job.id)

    worker = Worker(queue_name, {"tick": tick}, connection=redis_url)
    await worker.start()
    try:
        await node.eval(
            "await queue(args.q).upsertJobScheduler('every-500', { every: 500 }, { name: 'tick' }); return 1",
            q=queue_name,
        )
        # A failure detector: 4 iterations of a 500 ms scheduler take 2 s.
        assert await wait_until(lambda: len(ran) >= 4, timeout=10), ran
        record("test_a_scheduler_keeps_firing_each_iteration_once", skew=skew, runs=len(ran))
        assert len(set(ran)) == len(ran), ran  # no iteration run twice
    finally:
        await node.eval("await queue(args.q).removeJobScheduler('every-500'); return 1", q=queue_name)
        await worker.close(timeout=3)


async def test_doctor_flags_a_2_s_skew(skew: int, redis_url: str) -> None:
    report = await diagnose(redis_url)  # the doctor reads bullbridge's clock, offset included
    [finding] = report.by_check("clock-skew")
    assert finding.severity == WARNING, finding
    # Off by at most half the TIME round trip, as in tests/doctor (measured there: +- 1 ms).
    assert abs(abs(finding.data["skewMs"]) - SKEW_MS) <= 200, finding.data

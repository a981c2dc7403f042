"""Operator actions through BullMQ's scripts, seen from Node; and the CLI around them."""

from __future__ import annotations

import json

import pytest
from redis.asyncio import Redis

from bullbridge import Queue
from bullbridge.errors import JobNotFound, QueueError
from bullbridge.monitor import Monitor
from bullbridge.testing.node import NodeDriver
from tests.monitor.helpers import Fake, eventually, inject, now_ms, run_cli


async def test_retry_failed_jobs_then_python_completes_them(
    node: NodeDriver, make_worker, monitor: Monitor, queue_name: str
) -> None:
    q = queue_name
    handle = await node.start_worker(q, "async job => { throw new Error('node says no') }", name="node-fail")
    ids = [await node.add(q, "work", {"i": i}) for i in range(3)]
    try:
        await node.wait_event(handle, "failed", count=3)
    finally:
        await node.close_worker(handle)
    result = await monitor.actions(q).retry()
    assert result.count == 3
    counts = await node.queue_call(q, "getJobCounts")
    assert counts["failed"] == 0 and counts["waiting"] == 3

    async def work(job):
        return "fixed"

    await make_worker({"work": work}, name="py-fix").start()
    await eventually(lambda: _count(monitor, q, "completed", 3))
    job = await node.get_job(q, ids[0])
    assert job is not None and job["returnvalue"] == "fixed" and not job.get("failedReason")


async def _count(monitor: Monitor, queue: str, state: str, n: int) -> bool:
    return (await monitor.counts(queue))[state] == n


async def test_promote_clean_drain_and_single_job_actions(
    r: Redis, redis_url: str, monitor: Monitor, node: NodeDriver, queue_name: str
) -> None:
    q = queue_name
    async with Queue(q, connection=redis_url) as p:
        for i in range(4):
            await p.add("later", {"i": i}, delay=60_000)
        for i in range(5):
            await p.add("now", {"i": i})
    actions = monitor.actions(q)
    promoted = await actions.promote()
    assert promoted.count == 4
    assert (await node.queue_call(q, "getJobCounts", "delayed", "waiting")) == {"delayed": 0, "waiting": 9}

    drained = await actions.drain()
    assert drained.count == 9 and (await monitor.counts(q))["waiting"] == 0

    now = now_ms()
    day = 86_400_000
    await inject(
        r,
        q,
        [Fake(f"old{i}", "completed", now - 3 * day, now - 3 * day, now - 2 * day) for i in range(6)]
        + [Fake(f"new{i}", "completed", now - 1000, now - 900, now - 800) for i in range(2)]
        + [Fake("bad", "failed", now - 1000, now - 900, now - 800)],
    )
    cleaned = await actions.clean("completed", grace_ms=day)
    assert cleaned.count == 6 and set(cleaned.ids) == {f"old{i}" for i in range(6)}
    assert not await r.exists(f"bull:{q}:old0") and await r.exists(f"bull:{q}:new0")
    assert (await monitor.counts(q))["completed"] == 2

    await actions.retry_job("bad")
    assert (await node.queue_call(q, "getJobState", "bad")) == "waiting"
    await actions.remove_job("bad")
    assert await monitor.job(q, "bad") is None
    with pytest.raises(JobNotFound, match="does not exist"):
        await actions.remove_job("bad")
    with pytest.raises(QueueError, match="not delayed"):
        await actions.promote_job("new0")


async def test_pause_and_resume_are_seen_by_node(node: NodeDriver, monitor: Monitor, queue_name: str) -> None:
    q = queue_name
    await node.add(q, "x", {})
    await monitor.actions(q).pause()
    assert await node.queue_call(q, "isPaused") is True
    assert (await monitor.queue_stats(q)).paused
    await monitor.actions(q).resume()
    assert await node.queue_call(q, "isPaused") is False
    assert not (await monitor.queue_stats(q)).paused


async def test_cli_actions_ask_first(redis_url: str, node: NodeDriver, queue_name: str) -> None:
    q = queue_name
    await node.add(q, "x", {})
    status, _, err = await run_cli("queue", "pause", q, "--redis", redis_url)
    assert status == 2 and "--yes" in err
    assert await node.queue_call(q, "isPaused") is False
    status, out, _ = await run_cli("queue", "pause", q, "--redis", redis_url, "--yes")
    assert status == 0 and "paused" in out
    assert await node.queue_call(q, "isPaused") is True
    status, out, _ = await run_cli("queue", "resume", q, "--redis", redis_url, "--yes", "--json")
    assert status == 0 and json.loads(out)["action"] == "resume"
    assert await node.queue_call(q, "isPaused") is False


async def test_cli_stats_and_job_json(redis_url: str, r: Redis, queue_name: str) -> None:
    q = queue_name
    now = now_ms()
    await inject(
        r,
        q,
        [
            Fake(str(i), "completed", now - 5000, now - 4000 + i, now - 3000 + 3 * i, pb="bullbridge:a")
            for i in range(10)
        ]
        + [Fake("w1", "waiting", now - 2000)],
    )
    status, out, err = await run_cli("stats", q, "--redis", redis_url, "--json")
    assert status == 0, err
    (stats,) = json.loads(out)
    assert stats["queue"] == q and stats["counts"]["completed"] == 10 and stats["counts"]["waiting"] == 1
    assert stats["processing"]["p50"] == 1000 + 2 * 4 and stats["failureRate"] == 0.0
    assert stats["languages"]["python"]["jobs"] == 10
    status, table, _ = await run_cli("stats", q, "--redis", redis_url)
    assert status == 0 and q in table and "PROC p50/p95" in table
    status, out, _ = await run_cli("job", q, "3", "--redis", redis_url, "--json")
    assert status == 0 and json.loads(out)["state"] == "completed"
    status, _, err = await run_cli("job", q, "nope", "--redis", redis_url)
    assert status == 1 and "no job" in err

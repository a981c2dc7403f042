"""A full Redis (docs/faults.md#a-full-redis): ``maxmemory`` reached with ``noeviction``.
Producers raise a one-line ``RedisOutOfMemory`` at once; a worker holding jobs
still finishes what it holds (Redis lets BullMQ's finishing script through), logs the cause
once per interval while its fetches are refused, and resumes by itself when memory
frees."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
import redis.asyncio as redis

from bullbridge import Queue, Worker
from bullbridge.errors import BullbridgeError, RedisOutOfMemory
from bullbridge.testing.redis_server import PrivateRedis
from tests.timing import record
from tests.worker.impls import wait_until


async def test_a_producer_on_a_full_redis_raises_a_clear_oom_error(private_redis: PrivateRedis) -> None:
    admin = redis.from_url(private_redis.url, decode_responses=True)
    try:
        async with Queue("fullp", connection=private_redis.url, timeout=5) as queue:
            await queue.add("warm", {})
            await admin.config_set("maxmemory", "1")
            started = time.monotonic()
            with pytest.raises(RedisOutOfMemory) as caught:
                await queue.add("x", {"big": "x" * 1000})
            took = time.monotonic() - started
            message = str(caught.value)
            record("test_a_producer_on_a_full_redis_raises_a_clear_oom_error", took=took, message=message)
            assert isinstance(caught.value, BullbridgeError) and "OOM" in message and "\n" not in message, message
            assert "maxmemory" in message, message
            # Deadline (kind 3): the refusal is a reply, not a wait; well inside the 5 s timeout.
            assert took < 5, took
            await admin.config_set("maxmemory", "0")
            await queue.add("again", {})  # memory freed: adds work again, nothing to reset
    finally:
        await admin.config_set("maxmemory", "0")
        await admin.aclose()


async def test_a_worker_on_a_full_redis_finishes_what_it_holds_logs_once_and_resumes(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    url = private_redis.url
    admin = redis.from_url(url, decode_responses=True)
    release = asyncio.Event()
    runs: list[str] = []
    completed: list[str] = []
    refused: list[str] = []

    async def hold(job: Any) -> str:
        runs.append(job.id)
        await release.wait()  # the scenario: jobs held while Redis fills up
        return "ok"

    worker = Worker("full", {"x": hold}, connection=url, concurrency=3, stalled_interval=1000)
    worker.on("completed", lambda job, result: completed.append(job.id))
    worker.on("finishFailed", lambda job, exc: refused.append(job.id))
    try:
        async with Queue("full", connection=url) as queue:
            held = {(await queue.add("x", {})).id for _ in range(3)}
            await worker.start()
            assert await wait_until(lambda: len(runs) == 3, timeout=10), runs  # failure detector
            await admin.config_set("maxmemory", "1")
            with caplog.at_level(logging.WARNING):
                release.set()
                # BullMQ's finishing script deletes before it adds: Redis lets a script that has
                # written go on, so what the worker holds is still recorded on a full Redis.
                assert await wait_until(lambda: len(completed) == 3, timeout=10), (completed, refused)  # detector
                await asyncio.sleep(2.5)  # the scenario: the worker idles on a full Redis (fetches refused)
            assert set(completed) == held and not refused, (completed, refused)
            assert all([await admin.hget(f"bull:full:{i}", "finishedOn") for i in held])  # as Redis recorded
            oom = [r.getMessage() for r in caplog.records if "OOM" in r.getMessage()]
            # Once per 10 s interval per kind (fetch, stalled check): not per job, not per retry.
            assert 1 <= len(oom) <= 3, oom
            assert "fetching from full failed: OOM" in oom[0], oom
            await admin.config_set("maxmemory", "0")
            freed = time.monotonic()
            late = await queue.add("x", {})
            # A failure detector: the fetch backs off to at most 2 s between tries on a full Redis.
            assert await wait_until(lambda: late.id in completed, timeout=10), completed
            record("test_a_worker_on_a_full_redis", resumed=time.monotonic() - freed, log_lines=len(oom))
    finally:
        release.set()
        await admin.config_set("maxmemory", "0")
        await worker.close(timeout=3)
        await admin.aclose()

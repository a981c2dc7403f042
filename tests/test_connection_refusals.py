"""Refusals that pass (NOREPLICAS, LOADING, MASTERDOWN, TRYAGAIN...) are retried where
they happen, on the same connection, for a bounded time - never a reconnect storm, never
a raw RESP error, and a message that says what Redis said and for how long (issue 24).

A real redis-server made to refuse writes with ``min-replicas-to-write 1`` and no replica.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import redis.asyncio as redis

from bullbridge import Queue, Worker
from bullbridge.errors import BullbridgeError, RedisRefusing, RespError
from bullbridge.testing.redis_server import PrivateRedis
from tests.worker.impls import wait_until


async def _refusals(admin: redis.Redis) -> int:
    stats = await admin.info("errorstats")
    return int(stats.get("errorstat_NOREPLICAS", {}).get("count", 0))


async def test_a_producer_rides_out_noreplicas_on_one_connection(private_redis: PrivateRedis) -> None:
    admin = redis.Redis(port=private_redis.port, decode_responses=True)
    try:
        async with Queue("refused", connection=private_redis.url, timeout=10) as queue:
            await queue.add("x", {})
            await admin.config_set("min-replicas-to-write", 1)
            adding = asyncio.ensure_future(queue.add("x", {"n": 2}))
            deadline = asyncio.get_running_loop().time() + 10
            while await _refusals(admin) < 2 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)  # polling Redis's own error count, with the deadline above
            assert await _refusals(admin) >= 2, "the add should be refused and retried"
            await admin.config_set("min-replicas-to-write", 0)
            job = await asyncio.wait_for(adding, 10)  # failure detector
            assert job.id == "2"
            client = queue._link.client()
            assert client.reconnects == 0, "a refusal is retried on the same connection"
    finally:
        await admin.config_set("min-replicas-to-write", 0)
        await admin.aclose()


async def test_a_refusal_that_outlasts_the_call_says_so(private_redis: PrivateRedis) -> None:
    admin = redis.Redis(port=private_redis.port, decode_responses=True)
    try:
        async with Queue("refused", connection=private_redis.url, timeout=0.5) as queue:
            await queue.add("x", {})
            await admin.config_set("min-replicas-to-write", 1)
            with pytest.raises(RedisRefusing) as info:
                await queue.add("x", {})
        message = str(info.value)
        assert isinstance(info.value, BullbridgeError) and not isinstance(info.value, RespError)
        assert "NOREPLICAS" in message and "did not run" in message and "0.5 s" in message, message
        assert "did not answer" not in message, message
    finally:
        await admin.config_set("min-replicas-to-write", 0)
        await admin.aclose()


async def test_a_finish_refused_with_noreplicas_is_retried_not_abandoned(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """The finish of a running job meets NOREPLICAS: it is retried until Redis takes it -
    the job completes once, is not left to stall and run again, and no log claims it failed."""
    admin = redis.Redis(port=private_redis.port, decode_responses=True)
    runs: list[str] = []
    started = asyncio.Event()
    release = asyncio.Event()

    async def handle(job: Any) -> str:
        runs.append(job.id)
        started.set()
        await release.wait()
        return "done"

    worker = Worker("refused-w", {"x": handle}, connection=private_redis.url, lock_duration=2000)
    completed: list[str] = []
    worker.on("completed", lambda job, result: completed.append(job.id))
    caplog.set_level(logging.INFO)
    await worker.start()
    try:
        async with Queue("refused-w", connection=private_redis.url) as queue:
            job = await queue.add("x", {})
            await asyncio.wait_for(started.wait(), 10)  # failure detector
            await admin.config_set("min-replicas-to-write", 1)
            before = await _refusals(admin)
            release.set()
            deadline = asyncio.get_running_loop().time() + 10
            while await _refusals(admin) < before + 3 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)  # polling Redis's own error count, with the deadline above
            assert not completed, "a refused finish is not a completion"
            await admin.config_set("min-replicas-to-write", 0)
            assert await wait_until(lambda: completed == [job.id], timeout=10)  # failure detector
            assert await queue.get_job_state(job.id) == "completed"
        assert runs == [job.id]
        text = caplog.text
        assert "failing it" not in text and "broke" not in text, text
    finally:
        await admin.config_set("min-replicas-to-write", 0)
        await admin.aclose()
        await worker.close(timeout=5)

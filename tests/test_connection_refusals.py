"""Refusals that pass (NOREPLICAS, LOADING, MASTERDOWN, TRYAGAIN...) are retried where
they happen, on the same connection, for a bounded time - never a reconnect storm, never
a raw RESP error, and a message that says what Redis said and for how long (issue 24).

A real redis-server made to refuse writes with ``min-replicas-to-write 1`` and no replica;
for the failover fence, a master with and without a replica to confirm writes in flight.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import redis.asyncio as redis

from bullbridge import Queue, Worker
from bullbridge.connection.resp import Endpoint, RespClient
from bullbridge.errors import BullbridgeError, RedisRefusing, RedisWriteUncertain, RespError
from bullbridge.testing.redis_server import PrivateRedis, PrivateSentinel
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


async def _in_flight_then_fence(port: int) -> tuple[Any, Any]:
    """A BLPOP that blocks 0.3 s and a SET behind it on one connection, fenced while both
    wait for their replies: what each caller gets."""
    client = RespClient(Endpoint(port=port))
    try:
        await client.execute("PING")
        conn = client._conn
        assert conn is not None
        blocked = asyncio.ensure_future(client.execute("BLPOP", "bullbridge:nothing", 0.3))
        write = asyncio.ensure_future(client.execute("SET", "bullbridge:fenced", "v"))
        assert await wait_until(lambda: len(conn._protocol.pending) == 2, timeout=5)  # failure detector
        fencing = client.fence(100)
        assert fencing is not None and not client.connected
        await fencing
        return tuple(await asyncio.gather(blocked, write, return_exceptions=True))  # type: ignore[return-value]
    finally:
        await client.close()


async def test_a_fenced_write_no_replica_confirms_is_uncertain(private_redis: PrivateRedis) -> None:
    blocked, write = await _in_flight_then_fence(private_redis.port)
    assert isinstance(write, RedisWriteUncertain) and "may or may not have been applied" in str(write), write
    assert isinstance(blocked, RedisWriteUncertain), blocked


async def test_a_fenced_write_a_replica_confirms_is_acknowledged() -> None:
    with PrivateSentinel(min_replicas=0) as group:
        assert group.master is not None
        blocked, write = await _in_flight_then_fence(group.master.port)
    assert write == b"OK" and blocked is None, (blocked, write)

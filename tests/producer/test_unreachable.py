"""A producer call fails within its timeout when Redis is unreachable (the port hangs >= 120 s)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bullbridge import Queue
from bullbridge.errors import RedisUnavailable
from bullbridge.flows import FlowJob, FlowProducer
from bullbridge.testing.redis_server import PrivateRedis, free_port
from tests.timing import record

TIMEOUT = 0.3


async def _fails_in_time(call: Callable[[], Awaitable[Any]], timeout: float = TIMEOUT) -> RedisUnavailable:
    started = time.monotonic()
    with pytest.raises(RedisUnavailable) as info:
        await asyncio.wait_for(call(), timeout + 5)
    elapsed = time.monotonic() - started
    record("test_unreachable._fails_in_time", timeout=timeout, took=elapsed)
    # The producer's own timeout + 1 s for the loop to raise it (measured <= 0.31 s for 0.3 s, idle to heavy).
    assert elapsed < timeout + 1.0, f"failed after {elapsed:.2f} s"
    return info.value


def test_default_timeout_is_ten_seconds() -> None:
    assert Queue("q", connection="redis://127.0.0.1:1").timeout == 10.0
    assert FlowProducer("redis://127.0.0.1:1").timeout == 10.0
    with pytest.raises(ValueError, match="timeout must be > 0"):
        Queue("q", connection="redis://127.0.0.1:1", timeout=0)


async def test_dead_port_fails_every_call_within_timeout() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    async with Queue("dead", connection=url, timeout=TIMEOUT) as producer, FlowProducer(url, timeout=TIMEOUT) as flows:
        error = await _fails_in_time(lambda: producer.add("x", {"a": 1}))
        assert "did not answer within 0.3 s" in str(error) and isinstance(error, ConnectionError)
        await _fails_in_time(lambda: producer.add_bulk([("x", {}), ("y", {})]))
        await _fails_in_time(lambda: producer.get_job("1"))
        await _fails_in_time(lambda: producer.get_job_state("1"))
        await _fails_in_time(lambda: producer.get_children_values("1"))
        await _fails_in_time(lambda: producer.result("1", timeout=30))
        await _fails_in_time(lambda: producer.wait_for("1", timeout=None))
        await _fails_in_time(lambda: flows.add(FlowJob("p", "dead", children=[FlowJob("c", "dead-kids")])))
        await _fails_in_time(
            lambda: flows.add(FlowJob("p", "dead", children=[FlowJob("c", "dead-kids", opts={"job_id": "kid-1"})]))
        )


async def test_redis_stopped_after_use_then_back(private_redis: PrivateRedis) -> None:
    async with Queue("stop", connection=private_redis.url, timeout=TIMEOUT) as producer:
        first = await producer.add("x", {})
        assert first.id == "1"
        private_redis.stop()
        await _fails_in_time(lambda: producer.add("x", {}))
        await _fails_in_time(lambda: producer.get_job("1"))
        private_redis.start()
        # Same port, fresh empty server: the producer reconnects by itself.
        again = await producer.add("x", {})
        assert again.id == "1"


async def test_server_that_never_answers_fails_within_timeout() -> None:
    """A socket that accepts but never replies (a hung or partitioned server)."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with Queue("hung", connection=f"redis://127.0.0.1:{port}/0", timeout=TIMEOUT) as producer:
            await _fails_in_time(lambda: producer.add("x", {}))
    finally:
        server.close()

"""Fixtures of the monitor tests: a Monitor and a redis-py client on the session Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bullbridge.monitor import Monitor


@pytest.fixture
async def r(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def monitor(redis_url: str) -> AsyncIterator[Monitor]:
    m = Monitor(redis_url)
    yield m
    await m.close()

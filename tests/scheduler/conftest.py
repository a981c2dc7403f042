"""Fixtures of the scheduler tests: a raw pipelining client on the test Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bullbridge.connection import connect
from bullbridge.connection.resp import RespClient
from bullbridge.keys import QueueKeys


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[RespClient]:
    connector = connect(redis_url)
    yield connector.fast("bullbridge:test-scheduler")
    await connector.close()


@pytest.fixture
def keys(queue_name: str) -> QueueKeys:
    return QueueKeys(queue_name)

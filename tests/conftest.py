"""Fixtures shared by the whole suite: a private Redis, a live Node driver,
unique queue names, and producers/workers that are closed after each test."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bullbridge import Queue, Worker
from bullbridge.connection import redis_url_from_env
from bullbridge.testing.node import NodeDriver
from bullbridge.testing.npm import install_bullmq
from bullbridge.testing.redis_server import PrivateRedis

pytest_plugins = ["pytester"]  # tests/testing drives the bullbridge pytest plugin in inner runs


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """BULLBRIDGE_REDIS_URL / REDIS_URL when set, else a private redis-server."""
    configured = redis_url_from_env()
    if configured:
        yield configured
        return
    with PrivateRedis() as server:
        os.environ["BULLBRIDGE_TEST_PRIVATE_REDIS"] = server.url
        yield server.url


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A redis-server of this test's own (to kill, restart or misconfigure)."""
    with PrivateRedis() as server:
        yield server


@pytest.fixture(scope="session")
async def node(redis_url: str) -> AsyncIterator[NodeDriver]:
    """One long-lived Node process running the real npm bullmq."""
    driver = await NodeDriver(redis_url).start()
    yield driver
    await driver.close()


#: The older Node BullMQ installed once per session: the plugin, `bullbridge interop check`
#: and the Node 5 paused-list regression tests (tests/compat/test_node5.py) run against it.
NODE5 = ("5.81.5", ("ioredis@5.11.1",))


@pytest.fixture(scope="session")
def node5_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """npm bullmq 5.x (with ioredis) in a folder of this session; $BULLBRIDGE_TEST_NODE5
    names an existing install instead."""
    given = os.environ.get("BULLBRIDGE_TEST_NODE5")
    if given:
        return Path(given)
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    version, extra = NODE5
    return install_bullmq(version, tmp_path_factory.mktemp("node5"), extra=extra, timeout=120)


@pytest.fixture
def queue_name(request: pytest.FixtureRequest) -> str:
    base = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:40].strip("-")
    return f"t-{base}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def producer(redis_url: str, queue_name: str) -> AsyncIterator[Queue]:
    p = Queue(queue_name, connection=redis_url)
    yield p
    await p.close()


@pytest.fixture
async def make_worker(redis_url: str, queue_name: str) -> AsyncIterator[Callable[..., Worker]]:
    """Build (and after the test, close) bullbridge workers: make_worker(handlers, **settings)."""
    made: list[Worker] = []

    def factory(handlers: Any = None, *, queue: str | None = None, start: bool = True, **settings: Any) -> Worker:
        worker = Worker(queue or queue_name, handlers, connection=redis_url, **settings)
        made.append(worker)
        return worker

    yield factory
    await asyncio.gather(*(w.close(timeout=5) for w in made), return_exceptions=True)

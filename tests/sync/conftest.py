"""Fixtures for the blocking API: a plain synchronous Redis client, blocking
queues closed after each test, and polling without an event loop."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
import redis

from bullbridge.sync import FlowProducer, Queue
from tests.telemetry.conftest import py_otel  # noqa: F401 - the in-memory OpenTelemetry fixture

T = TypeVar("T")


@pytest.fixture
def rconn(redis_url: str) -> Iterator[redis.Redis]:
    """A plain synchronous client, for reading what is really stored."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def make_queue(redis_url: str, queue_name: str) -> Iterator[Callable[..., Queue]]:
    """Blocking queues on the test's queue (or ``name``), closed after the test."""
    made: list[Queue] = []

    def factory(name: str | None = None, **kwargs: Any) -> Queue:
        kwargs.setdefault("connection", redis_url)
        queue = Queue(name or queue_name, **kwargs)
        made.append(queue)
        return queue

    yield factory
    for queue in made:
        queue.close()


@pytest.fixture
def flows(redis_url: str) -> Iterator[FlowProducer]:
    with FlowProducer(redis_url) as producer:
        yield producer


def producer_connections(rconn: redis.Redis, queue: Queue) -> list[dict[str, Any]]:
    """The connections Redis has for the queue's producer client (CLIENT LIST)."""
    name = f"{queue.keys.client_name()}:producer"
    return [c for c in rconn.client_list() if c.get("name") == name]


def client_port(entry: dict[str, Any]) -> int:
    """The client's own port in a CLIENT LIST entry (its ``addr``, ip:port)."""
    return int(str(entry["addr"]).rsplit(":", 1)[1])


def waiting_jobs(rconn: redis.Redis, queue: Queue) -> dict[str, Any]:
    """Every waiting job's data, by id, as stored."""
    ids = [i.decode() for i in rconn.lrange(queue.keys["wait"], 0, -1)]
    pipe = rconn.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(queue.keys.job(job_id), "data")
    return {job_id: json.loads(raw) for job_id, raw in zip(ids, pipe.execute())}


def poll(check: Callable[[], T | None], what: str, timeout: float = 10.0) -> T:
    """Poll until ``check()`` returns something truthy; a failure detector (kind 4)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last: {value!r})")
        time.sleep(0.01)

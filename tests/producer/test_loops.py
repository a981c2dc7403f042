"""An async Queue, FlowProducer or QueueEvents used from one event loop after another.

A module-level queue in a script that calls ``asyncio.run(...)`` per task used
to fail on the second call with asyncio's "attached to a different loop". Now
each object notices the new loop, lets go of the old loop's connections without
calling into that loop (their sockets are released, so Redis sees them close),
and connects again. Two loops *running at once* on one object is refused with
a clear error. These tests are synchronous on purpose: each ``asyncio.run``
is a fresh loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from bullbridge import FlowJob, FlowProducer, Queue, QueueEvents, Worker
from bullbridge.errors import EventLoopConflict, JobTimeout


@pytest.fixture
def rconn(redis_url: str) -> Iterator[redis.Redis]:
    """A plain synchronous client, outside every event loop under test."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def connections(rconn: redis.Redis, name: str) -> list[dict[str, Any]]:
    return [c for c in rconn.client_list() if c.get("name") == name]


def settles(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll until ``check()`` holds (Redis notices a closed socket on its next event-loop turn)."""
    deadline = time.monotonic() + timeout  # a failure detector (kind 4)
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.01)


def test_asyncio_run_again_and_again_on_one_queue(redis_url: str, queue_name: str, rconn: redis.Redis) -> None:
    queue = Queue(queue_name, connection=redis_url)
    producer = f"{queue.keys.client_name()}:producer"
    ids = [asyncio.run(queue.add("x", {"run": run})).id for run in range(3)]
    assert ids == ["1", "2", "3"]
    jobs = asyncio.run(queue.get_jobs("waiting", asc=True))
    assert [(j.id, j.data) for j in jobs] == [("1", {"run": 0}), ("2", {"run": 1}), ("3", {"run": 2})]
    # The earlier loops' connections were released, not left open: one connection, the current loop's.
    settles(lambda: len(connections(rconn, producer)) == 1, "one producer connection left")
    asyncio.run(queue.close())
    settles(lambda: not connections(rconn, producer), "no producer connection after close")


def test_result_follows_the_loop(redis_url: str, queue_name: str) -> None:
    queue = Queue(queue_name, connection=redis_url)
    first = asyncio.run(queue.add("x", {"n": 1}))
    # The first loop starts the queue's event reader; no worker, so the 0.2 s wait must expire.
    with pytest.raises(JobTimeout):
        asyncio.run(queue.result(first.id, timeout=0.2))

    async def with_a_worker() -> list[Any]:
        worker = Worker(queue_name, lambda job: job.data["n"] * 10, connection=redis_url)
        await worker.start()
        try:
            second = await queue.add("x", {"n": 2})
            # Failure detectors (kind 4): both jobs run as soon as the worker fetches them.
            return [await queue.result(first.id, timeout=10), await queue.result(second.id, timeout=10)]
        finally:
            await worker.close()

    assert asyncio.run(with_a_worker()) == [10, 20]
    asyncio.run(queue.close())


def test_queue_events_follow_the_loop(redis_url: str, queue_name: str) -> None:
    events = QueueEvents(queue_name, connection=redis_url)
    queue = Queue(queue_name, connection=redis_url)

    async def one_job(n: int) -> tuple[str, Any]:
        worker = Worker(queue_name, lambda job: job.data["n"] + 1, connection=redis_url)
        await worker.start()
        try:
            job = await queue.add("x", {"n": n})
            outcome = await events.wait_for(job.id, timeout=10)  # a failure detector (kind 4)
            return outcome.state, outcome.returnvalue
        finally:
            await worker.close()

    assert asyncio.run(one_job(1)) == ("completed", 2)
    assert asyncio.run(one_job(5)) == ("completed", 6)
    asyncio.run(events.close())
    asyncio.run(queue.close())


def test_flow_producer_follows_the_loop(redis_url: str, queue_name: str) -> None:
    flows = FlowProducer(redis_url)
    queue = Queue(queue_name, connection=redis_url)
    plain = asyncio.run(flows.add(FlowJob("parent", queue_name, children=[FlowJob("child", queue_name)])))
    # A custom child id takes the WATCH path: its own connection and a lock, both per loop.
    watched = asyncio.run(
        flows.add(FlowJob("parent", queue_name, children=[FlowJob("child", queue_name, opts={"job_id": "kid"})]))
    )
    assert watched.children[0].id == "kid"
    states = asyncio.run(queue.get_job_counts("waiting", "waiting-children"))
    assert states == {"waiting": 2, "waiting-children": 2}
    assert asyncio.run(queue.get_dependencies(plain.id)).unprocessed == [plain.children[0].key]
    asyncio.run(flows.close())
    asyncio.run(queue.close())


def test_two_running_loops_at_once_are_refused(redis_url: str, queue_name: str) -> None:
    queue = Queue(queue_name, connection=redis_url)
    other = asyncio.new_event_loop()
    thread = threading.Thread(target=other.run_forever, name="other-loop", daemon=True)
    thread.start()
    try:
        added = asyncio.run_coroutine_threadsafe(queue.add("x"), other).result(10)  # a failure detector (kind 4)
        assert added.id == "1"
        with pytest.raises(EventLoopConflict, match=r"in use by an event loop running in another thread"):
            asyncio.run(queue.add("x"))
    finally:
        other.call_soon_threadsafe(other.stop)
        thread.join(10)
    # That loop stopped (not closed): the queue moves over to this one.
    assert asyncio.run(queue.add("x")).id == "2"
    asyncio.run(queue.close())
    other.close()

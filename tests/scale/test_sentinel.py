"""Sentinel: producers and workers follow a failover by themselves, nothing lost.

With appendonly on and BullMQ's default (no WAIT), what a failover can lose is
bounded by replication lag: a job added or finished in the last instants before
the old master stopped replicating. The scenario here fails over while jobs flow
and checks every job added ends completed, each handler run counted.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator

import pytest

from bullbridge import Queue, Worker
from bullbridge.connection.sentinel import SentinelWatcher
from bullbridge.testing.redis_server import PrivateSentinel
from tests.worker.impls import wait_until


@pytest.fixture
def sentinel() -> Iterator[PrivateSentinel]:
    with PrivateSentinel() as group:
        yield group


async def test_failover_during_a_run_loses_no_job(sentinel: PrivateSentinel) -> None:
    await _failover_during_a_run(sentinel)


async def test_polling_alone_follows_a_failover(sentinel: PrivateSentinel, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback: with no failover event heard, the 1 s poll moves every client, and
    min-replicas-to-write (NOREPLICAS, retried) keeps the old master from taking writes."""
    monkeypatch.setattr(SentinelWatcher, "listen", False)
    await _failover_during_a_run(sentinel)


async def _failover_during_a_run(sentinel: PrivateSentinel) -> None:
    runs: collections.Counter[str] = collections.Counter()

    async def handle(job):
        runs[job.id] += 1
        await asyncio.sleep(0.005)
        return "ok"

    worker = Worker("orders", {"x": handle}, connection=sentinel.url, concurrency=4)
    reconnected: list[str] = []
    worker.on("reconnected", reconnected.append)
    await worker.start()
    ids: list[str] = []
    async with Queue("orders", connection=sentinel.url, timeout=15) as producer:
        for i in range(100):
            ids.append((await producer.add("x", {"i": i})).id)
        assert await wait_until(lambda: len(runs) == 100, timeout=10)
        old_port = sentinel.master.port  # type: ignore[union-attr]
        new_port = await asyncio.to_thread(sentinel.failover)
        assert new_port != old_port
        for i in range(100, 200):
            ids.append((await producer.add("x", {"i": i})).id)
        outcomes = await asyncio.gather(*(producer.wait_for(j, timeout=20) for j in ids))
    try:
        assert [o.state for o in outcomes] == ["completed"] * 200
        assert all(runs[j] == 1 for j in ids), {j: runs[j] for j in ids if runs[j] != 1}
        assert reconnected, "the worker must report that it followed the failover"
    finally:
        await worker.close(timeout=5)

"""An empty Redis (docs/faults.md#an-empty-redis): Redis restarted without persistence
while a worker, a producer, a declared scheduler, the monitor and the dashboard run.
Nothing crashes, scripts are loaded again (NOSCRIPT), the schedulers declared in
Python come back by themselves, a Node worker beside them carries on, and the
monitor and the dashboard keep answering."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient, TestServer

from bullbridge import Queue, WorkerManager
from bullbridge.dashboard import create_app
from bullbridge.errors import RedisUnavailable
from bullbridge.manager import ManagerSettings
from bullbridge.monitor import Monitor
from bullbridge.scheduler import Declaration, Schedule
from bullbridge.testing.node import NodeDriver
from bullbridge.testing.redis_server import PrivateRedis
from tests.faults.network import wait_completed
from tests.timing import record
from tests.worker.impls import wait_until


async def test_redis_restarted_empty_under_load(private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture) -> None:
    url = private_redis.url
    done: list[tuple[str, float]] = []

    async def handle(job: Any) -> int:
        done.append((job.name, time.monotonic()))
        return 1

    schedules = Declaration("faults", (Schedule(id="tick", queue="empty", name="tick", every=timedelta(seconds=1)),))
    manager = WorkerManager(connection=url, settings=ManagerSettings(handle_signals=False), schedules=schedules)
    manager.worker("empty", {"x": handle, "tick": handle})
    admin = redis.from_url(url, decode_responses=True)
    monitor = Monitor(url)
    added: list[tuple[str, float]] = []
    refused: list[str] = []
    stop = asyncio.Event()

    async def produce(queue: Queue) -> None:  # a producer that keeps adding through the outage
        while not stop.is_set():
            try:
                added.append(((await queue.add("x", {})).id, time.monotonic()))
            except RedisUnavailable as exc:  # while Redis is down: one sentence, then try again
                refused.append(str(exc))
            await asyncio.sleep(0.05)  # the producer's pace

    await manager.start()
    node = await NodeDriver(url).start()  # a Node worker beside it, on a queue of its own
    await node.start_worker("empty-node", "async job => 'node'")
    try:
        async with (
            Queue("empty", connection=url, timeout=2) as queue,
            Queue("empty-node", connection=url, timeout=2) as node_queue,
            monitor,
            TestClient(TestServer(create_app(monitor, queues=["empty"], close_monitor=False))) as dashboard,
        ):
            producing = asyncio.ensure_future(produce(queue))
            # Failure detectors: one job, one 1 s scheduler tick.
            assert await wait_until(lambda: any(n == "x" for n, _ in done), timeout=10), "worker idle"
            assert await wait_until(lambda: any(n == "tick" for n, _ in done), timeout=10), "scheduler idle"
            with caplog.at_level(logging.WARNING):
                private_redis.kill()
                private_redis.restart()  # no persistence: empty, no scripts, no scheduler
                restarted = time.monotonic()
                assert await admin.zscore("bull:empty:repeat", "tick") is None  # really empty

                async def scheduler_back() -> bool:
                    return await admin.zscore("bull:empty:repeat", "tick") is not None

                deadline = restarted + 10  # a failure detector: the re-sync runs on the first reconnect
                while not await scheduler_back() and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)  # polling Redis
                back_after = time.monotonic() - restarted
                assert await scheduler_back(), "the declared scheduler was not re-synced"
                # Failure detectors: jobs added after the restart, and a tick of the re-synced scheduler.
                assert await wait_until(lambda: any(n == "x" and t > restarted for n, t in done), timeout=10)
                assert await wait_until(lambda: any(n == "tick" and t > restarted for n, t in done), timeout=10)
                by_node = await node_queue.add("n", {})
                assert await wait_completed(admin, f"bull:empty-node:{by_node.id}", 10)  # failure detector
                stats = await monitor.queue_stats("empty")
                assert stats.counts["completed"] >= 1, stats.counts
                response = await dashboard.get("/api/queues/empty")
                assert response.status == 200, await response.text()
            stop.set()
            await producing
            record("test_redis_restarted_empty_under_load", scheduler_back_s=back_after, refused=len(refused))
            assert manager.state == "running"
            assert any("re-synced after a reconnect" in r.getMessage() for r in caplog.records)
            assert all(" " in m and "\n" not in m for m in refused), refused  # one line each
            # Every add that returned after the restart is in the new Redis (ids start again at 1).
            recent = [i for i, t in added if t > restarted]
            assert recent and all([await admin.exists(f"bull:empty:{i}") for i in recent]), recent
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await manager.close(timeout=3)
        await node.close()
        await admin.aclose()

"""A worker app for process-level tests: ``bullbridge worker tests.apps.sleepy:make``.

Environment: ``APP_QUEUE`` (queue name), ``APP_SLEEP`` (seconds per job),
``APP_CONCURRENCY``. Each handler run is counted in the Redis hash
``runs:<queue>`` (job id -> runs), so a test can prove nothing ran twice.
Jobs named ``fail`` raise ``ValueError``.
"""

from __future__ import annotations

import asyncio
import os

import redis.asyncio as redis

from bullbridge import WorkerManager


def make() -> WorkerManager:
    queue = os.environ["APP_QUEUE"]
    pause = float(os.environ.get("APP_SLEEP", "0.2"))
    url = os.environ["BULLBRIDGE_REDIS_URL"]
    counter = redis.from_url(url, decode_responses=True)
    manager = WorkerManager(connection=url)

    async def work(job):
        await counter.hincrby(f"runs:{queue}", job.id, 1)
        await asyncio.sleep(pause)
        return "done"

    async def fail(job):
        raise ValueError(f"bad input {job.data}")

    manager.worker(
        queue,
        {"work": work, "fail": fail},
        concurrency=int(os.environ.get("APP_CONCURRENCY", "5")),
        name=f"app-{os.getpid()}",
        lock_duration=5000,
        stalled_interval=1000,
    )
    return manager

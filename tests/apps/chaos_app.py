"""Python side of the chaos run: ``bullbridge worker tests.apps.chaos_app:make``.

Env: ``CHAOS_QUEUES`` (comma list), ``CHAOS_LOG`` (file each handler start is
appended to: ``queue job_id python pid epoch_ms``; a file, not Redis, so the
record survives a Redis crash).
"""

from __future__ import annotations

import asyncio
import os
import random

from bullbridge import WorkerManager
from bullbridge.clock import now_ms


def make() -> WorkerManager:
    queues = os.environ["CHAOS_QUEUES"].split(",")
    log = open(os.environ["CHAOS_LOG"], "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    pid = os.getpid()
    manager = WorkerManager(connection=os.environ["BULLBRIDGE_REDIS_URL"])

    for queue in queues:

        async def work(job, queue=queue):
            log.write(f"{queue} {job.id} python {pid} {now_ms()}\n")
            await asyncio.sleep(random.uniform(0.002, 0.02))
            return "python"

        manager.worker(
            queue,
            {"work": work},
            concurrency=8,
            name=f"chaos-{pid}",
            lock_duration=2000,
            stalled_interval=1000,
            max_stalled_count=1000,
        )
    return manager

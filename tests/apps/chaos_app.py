"""Python side of the chaos run: ``bullbridge worker tests.apps.chaos_app:make``.

Env: ``CHAOS_QUEUES`` (comma list), ``CHAOS_LOG`` (the file each handler run is
recorded in: ``start|end queue job_id python pid epoch_ms``; a file, not Redis,
so the record survives a Redis crash and the process's own SIGKILL),
``CHAOS_HANDLER_MS`` (``min,max`` of a handler's work), ``CHAOS_LOCK_MS``.
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
    low, high = (int(v) for v in os.environ.get("CHAOS_HANDLER_MS", "50,300").split(","))
    lock_ms = int(os.environ.get("CHAOS_LOCK_MS", "2000"))
    pid = os.getpid()
    manager = WorkerManager(connection=os.environ["BULLBRIDGE_REDIS_URL"])

    for queue in queues:

        async def work(job, queue=queue):
            log.write(f"start {queue} {job.id} python {pid} {now_ms()}\n")
            await asyncio.sleep(random.uniform(low, high) / 1000)  # the work: long enough to be caught by a kill
            log.write(f"end {queue} {job.id} python {pid} {now_ms()}\n")
            return "python"

        manager.worker(
            queue,
            {"work": work},
            concurrency=8,
            name=f"chaos-{pid}",
            lock_duration=lock_ms,
            stalled_interval=lock_ms // 2,
            max_stalled_count=1000,
        )
    return manager

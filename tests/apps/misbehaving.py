"""Handlers that misbehave, for process-level tests: ``bullbridge worker tests.apps.misbehaving:make``.

Environment: ``APP_QUEUE``; ``APP_MODE``:

* ``leak_thread`` - each job starts a non-daemon thread that runs for a minute
  and is never joined (the interpreter's exit would wait for it);
* ``swallow_cancel`` - the handler catches every CancelledError and goes on
  sleeping, for ever.

Each handler run is counted in the Redis hash ``runs:<queue>`` (job id -> runs).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

import redis.asyncio as redis

from bullbridge import WorkerManager


def make() -> WorkerManager:
    queue = os.environ["APP_QUEUE"]
    mode = os.environ["APP_MODE"]
    url = os.environ["BULLBRIDGE_REDIS_URL"]
    counter = redis.from_url(url, decode_responses=True)
    manager = WorkerManager(connection=url)

    async def leak_thread(job):
        await counter.hincrby(f"runs:{queue}", job.id, 1)
        threading.Thread(target=time.sleep, args=(60,), name=f"leaked-by-job-{job.id}").start()
        return "done"

    async def swallow_cancel(job):
        await counter.hincrby(f"runs:{queue}", job.id, 1)
        while True:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                pass  # the misbehaviour under test

    handler = {"leak_thread": leak_thread, "swallow_cancel": swallow_cancel}[mode]
    manager.worker(queue, {"work": handler}, name=f"app-{os.getpid()}", lock_duration=5000, stalled_interval=1000)
    return manager

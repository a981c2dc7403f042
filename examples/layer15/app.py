"""The layer's Python process: four workers, the schedules, a graceful shutdown.

    python -m examples.layer15                      # or:
    bullbridge worker examples.layer15.app:make

On SIGTERM/SIGINT the workers stop fetching and active jobs get 30 s to finish;
then (or on a second signal) the ones still running are handed back to the
queue, for another worker - Python or Node - to take at once.
"""

from __future__ import annotations

from bullbridge import ManagerSettings, Queue, RateLimit, WorkerManager
from examples.layer15 import analytics, datasync, emails, images
from examples.layer15.config import ANALYTICS, DATA_SYNC, EMAIL, IMAGES, PREFIX, REDIS_URL, RETRY
from examples.layer15.schedules import sync_schedules


def make() -> WorkerManager:
    manager = WorkerManager(
        connection=REDIS_URL,
        settings=ManagerSettings.from_env(prefix=PREFIX, drain_timeout=30.0),
        on_startup=[sync_schedules],  # the cron jobs, synced before the workers start
    )
    redis = manager.connector  # the workers, and the producers handlers add jobs with, share it

    email_jobs = Queue(EMAIL, connection=redis, prefix=PREFIX, default_job_options=RETRY)
    manager.worker(
        EMAIL, emails.handlers(email_jobs), concurrency=5, limiter=RateLimit(max=100, duration=60_000)
    )  # shared with Node's email worker

    manager.worker(IMAGES, {"process": images.process}, concurrency=3)

    batch_jobs = Queue(DATA_SYNC, connection=redis, prefix=PREFIX, default_job_options=RETRY)
    manager.worker(DATA_SYNC, datasync.handlers(batch_jobs), concurrency=5)

    manager.worker(ANALYTICS, analytics.handlers(redis, PREFIX), concurrency=10)
    return manager

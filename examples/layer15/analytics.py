"""The analytics worker: tracked events, the daily report, and the cleanup of old jobs."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bullbridge import ActiveJob, Queue
from bullbridge.connection import RedisConnector
from examples.layer15.config import QUEUES, TIMEZONE

DAY_MS = 24 * 3600 * 1000


async def track(job: ActiveJob) -> dict[str, Any]:
    """Stands in for writing the event to your analytics store: 1-5 ms."""
    await asyncio.sleep(random.uniform(0.001, 0.005))
    return {"event": job.data["event"], "user": job.data["user"]}


async def daily_report(job: ActiveJob) -> dict[str, Any]:
    """02:00 New York time: roll up yesterday (stands in for your warehouse query)."""
    yesterday = (datetime.now(ZoneInfo(TIMEZONE)) - timedelta(days=1)).date()
    job.update_progress(50)
    await asyncio.sleep(0.2)
    return {"date": yesterday.isoformat(), "status": "published"}


def handlers(redis: RedisConnector, prefix: str) -> dict[str, Any]:
    """The analytics queue's handlers; ``cleanup`` cleans every queue of the layer."""
    queues = {name: Queue(name, connection=redis, prefix=prefix) for name in QUEUES}

    async def cleanup(job: ActiveJob) -> dict[str, int]:
        """Every 6 hours: delete completed jobs older than 7 days, failed ones older than 30
        (Node's ``queue.clean(grace, 0, state)``)."""
        deleted: dict[str, int] = {}
        for name, queue in queues.items():
            completed = await queue.clean(job.data["completed_days"] * DAY_MS, state="completed")
            failed = await queue.clean(job.data["failed_days"] * DAY_MS, state="failed")
            deleted[name] = len(completed) + len(failed)
        return deleted

    return {"track": track, "daily-report": daily_report, "cleanup": cleanup}

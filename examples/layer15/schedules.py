"""The layer's cron jobs, declared once and synced to Redis when the workers start.

``sync`` makes Redis hold exactly these BullMQ job schedulers (Node sees and
runs them too), and is idempotent: every replica may run it at startup, and a
schedule deleted here is removed from Redis on the next deploy.
"""

from __future__ import annotations

import logging

from bullbridge.connection import RedisConnector
from bullbridge.scheduler import Declaration, Schedule, sync
from examples.layer15.config import ANALYTICS, DATA_SYNC, EMAIL, PREFIX, RETRY, TIMEZONE

log = logging.getLogger("layer15.schedules")

SCHEDULES = Declaration(
    "layer15",
    (
        Schedule(
            id="daily-analytics",
            queue=ANALYTICS,
            name="daily-report",
            pattern="0 2 * * *",
            tz=TIMEZONE,
            opts=RETRY,
            prefix=PREFIX,
        ),
        Schedule(
            id="hourly-backup",
            queue=DATA_SYNC,
            name="incremental-backup",
            pattern="0 * * * *",
            tz=TIMEZONE,
            opts=RETRY,
            prefix=PREFIX,
        ),
        Schedule(
            id="cleanup",
            queue=ANALYTICS,
            name="cleanup",
            pattern="0 */6 * * *",
            tz=TIMEZONE,
            data={"completed_days": 7, "failed_days": 30},
            prefix=PREFIX,
        ),
        Schedule(
            id="weekly-newsletter",
            queue=EMAIL,
            name="newsletter",
            pattern="0 10 * * 5",
            tz=TIMEZONE,
            data={"issue": "weekly", "audience": 2000, "spread_ms": 3_600_000},
            opts=RETRY,
            prefix=PREFIX,
        ),
    ),
)


async def sync_schedules(connector: RedisConnector) -> None:
    """Startup hook of the WorkerManager (see app.py)."""
    report = await sync(SCHEDULES, connector)
    for line in report.lines():
        log.info("schedule %s", line)
    report.raise_for_conflicts()

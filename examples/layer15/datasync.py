"""The data-sync worker: a sync fans out one child job per batch, then sums what they synced.

The parent adds its batches as children (``parent=Parent(...)``) and calls
``job.wait_for_children()``, which ends this run; BullMQ runs the parent again
once every batch has completed, and ``job.children_values()`` hands it their
results. A batch that fails for good fails the sync (``fail_parent_on_failure``).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from bullbridge import ActiveJob, Parent, Queue
from bullbridge.queue import JobSpec
from examples.layer15.config import PREFIX


async def sync_batch(job: ActiveJob) -> dict[str, Any]:
    """Stands in for reading one page of the source and upserting it: 10-30 ms."""
    await asyncio.sleep(random.uniform(0.01, 0.03))
    return {"offset": job.data["offset"], "records": job.data["limit"]}


async def incremental_backup(job: ActiveJob) -> dict[str, Any]:
    """The hourly backup (see schedules.py): stands in for dumping what changed."""
    await asyncio.sleep(0.05)
    return {"tables": ["users", "orders"], "scheduled_at": job.timestamp + job.delay}


def handlers(batches: Queue) -> dict[str, Any]:
    """The data-sync queue's handlers; ``batches`` adds the children to this queue."""

    async def sync(job: ActiveJob) -> dict[str, Any]:
        deps = await job.dependencies()
        if not deps.processed and not deps.unprocessed:  # first run: fan out
            records, size = job.data["records"], job.data["batch_size"]
            parent = Parent(job.id, job.queue, PREFIX)
            await batches.add_bulk(
                JobSpec(
                    "sync-batch",
                    {"source": job.data["source"], "offset": offset, "limit": min(size, records - offset)},
                    {"parent": parent, "fail_parent_on_failure": True},
                )
                for offset in range(0, records, size)
            )
        await job.wait_for_children()  # ends this run while batches are pending
        results = await job.children_values()
        return {
            "source": job.data["source"],
            "batches": len(results),
            "records": sum(r["records"] for r in results.values()),
        }

    return {"sync": sync, "sync-batch": sync_batch, "incremental-backup": incremental_backup}

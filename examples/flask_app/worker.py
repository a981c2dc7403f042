"""The jobs' side in Python: ``bullbridge worker examples.flask_app.worker:worker``.

A Node worker on the same queue does the same job (``job.data.title``, ``job.data.rows``)."""

from __future__ import annotations

import os
from typing import Any

from bullbridge import ActiveJob, Worker

worker = Worker(os.environ.get("REPORTS_QUEUE", "reports"), concurrency=4)


@worker.handler("render")
async def render(job: ActiveJob) -> dict[str, Any]:
    rows = [f"{job.data['title']} #{n}" for n in range(job.data["rows"])]
    return {"title": job.data["title"], "lines": len(rows)}

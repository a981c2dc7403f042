"""The web side: ``POST /reports`` adds a job, ``GET /reports/<id>`` says how it is doing.

The queue is made once, at import, and shared by every request thread of the
process; with ``gunicorn --preload`` it is made in the master before the
workers fork, and each worker reconnects on its own (docs/sync.md, "Fork").
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, request

from bullbridge import RedisUnavailable
from bullbridge.sync import Queue

QUEUE = os.environ.get("REPORTS_QUEUE", "reports")

app = Flask(__name__)
# No connection and no thread until the first call.
reports = Queue(QUEUE, connection=os.environ.get("BULLBRIDGE_REDIS_URL"), default_job_options={"attempts": 3})

if os.environ.get("REPORTS_CHECK_REDIS", "1") == "1":
    # Fail the deploy, not the first request, when Redis is unreachable: one call at import.
    # Under `gunicorn --preload` this runs in the master, before the fork (docs/flask.md).
    reports.count()


@app.post("/reports")
def create_report() -> tuple[dict[str, Any], int]:
    body = request.get_json(force=True)
    job = reports.add("render", {"title": str(body["title"]), "rows": int(body.get("rows", 10))}, priority=2)
    return {"id": job.id, "pid": os.getpid()}, 202


@app.get("/reports/<job_id>")
def report_status(job_id: str) -> tuple[dict[str, Any], int]:
    # The state first, then the hash: a job read before its state could finish in between.
    state = reports.get_job_state(job_id)
    if state == "unknown":
        return {"error": f"no report {job_id}"}, 404
    answer: dict[str, Any] = {"id": job_id, "state": state, "pid": os.getpid()}
    job = reports.get_job(job_id) if state in ("completed", "failed") else None
    if job is not None and state == "completed":
        answer["result"] = job.returnvalue
    elif job is not None:
        answer["error"] = job.failed_reason
    return answer, 200


@app.errorhandler(RedisUnavailable)
def redis_down(error: RedisUnavailable) -> tuple[dict[str, Any], int]:
    # Raised within the queue's timeout (10 s by default): a 503, never a hung request.
    return {"error": str(error)}, 503

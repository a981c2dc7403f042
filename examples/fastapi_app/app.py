"""One asyncio app that both produces and consumes, with the app's own lifespan.

* ``POST /thumbnails`` adds a ``resize`` job to ``images`` - a queue Node
  workers serve - and awaits its result (``Queue.result``): the request returns
  what the Node worker returned, or 502 with Node's reason, or 504 past 10 s.
* ``POST /signups`` adds a ``welcome`` job to ``emails``, which this process
  serves itself: the lifespan runs a :class:`WorkerManager` beside the web
  server (``handle_signals=False``: uvicorn owns SIGTERM; the manager drains
  when the lifespan ends). ``GET /jobs/{queue}/{id}`` reads any job back.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel

from bullbridge import ActiveJob, JobFailed, JobTimeout, ManagerSettings, Queue, WorkerManager

REDIS_URL = os.environ.get("BULLBRIDGE_REDIS_URL", "redis://127.0.0.1:6379")
IMAGES = os.environ.get("IMAGES_QUEUE", "images")  # served by Node
EMAILS = os.environ.get("EMAILS_QUEUE", "emails")  # served here


async def welcome(job: ActiveJob) -> dict[str, Any]:
    return {"sent_to": job.data["to"], "pid": os.getpid()}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    manager = WorkerManager(connection=REDIS_URL, settings=ManagerSettings(handle_signals=False, drain_timeout=10))
    manager.worker(EMAILS, {"welcome": welcome}, concurrency=5)
    queues = {name: Queue(name, connection=REDIS_URL) for name in (IMAGES, EMAILS)}
    app.state.queues = queues
    async with manager:  # started here; on shutdown: drain (10 s), hand back, disconnect
        yield
    for queue in queues.values():
        await queue.close()


app = FastAPI(lifespan=lifespan)


class Thumbnail(BaseModel):
    url: str
    width: int = 128


class Signup(BaseModel):
    to: str


def queue_of(request: Request, name: str) -> Queue:
    queues: dict[str, Queue] = request.app.state.queues
    if name not in queues:
        raise HTTPException(404, f"no queue {name}")
    return queues[name]


@app.post("/thumbnails")
async def thumbnail(body: Thumbnail, request: Request) -> dict[str, Any]:
    images = queue_of(request, IMAGES)
    job = await images.add("resize", {"url": body.url, "width": body.width}, attempts=2)
    try:
        result = await images.result(job.id, timeout=10)
    except JobFailed as failure:
        raise HTTPException(502, f"job {job.id} failed: {failure.reason}") from None
    except JobTimeout:
        raise HTTPException(504, f"job {job.id} did not finish within 10 s") from None
    return {"id": job.id, "result": result}


@app.post("/signups", status_code=202)
async def signup(body: Signup, request: Request) -> dict[str, Any]:
    job = await queue_of(request, EMAILS).add("welcome", {"to": body.to}, attempts=3)
    return {"id": job.id}


@app.get("/jobs/{queue}/{job_id}")
async def job_status(queue: str, job_id: str, request: Request) -> dict[str, Any]:
    jobs = queue_of(request, queue)
    state = await jobs.get_job_state(job_id)  # the state first: the hash read after it is at least as new
    if state == "unknown":
        raise HTTPException(404, f"no job {job_id} in {queue}")
    job = await jobs.get_job(job_id) if state == "completed" else None
    return {"id": job_id, "state": state, "result": job.returnvalue if job is not None else None}

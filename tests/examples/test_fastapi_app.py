"""examples/fastapi_app under uvicorn, over HTTP: the lifespan starts a
WorkerManager (serving ``emails`` in the app's own process) and an async
producer; ``POST /thumbnails`` enqueues into a Node worker's queue and answers
with what Node returned (or Node's failure); SIGTERM drains and exits 0."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from bullbridge.testing.node import NodeDriver
from tests.examples.servers import Server
from tests.producer.conftest import node_worker

NODE_RESIZE = """async job => {
  if (job.data.width > 4096) throw new Error('width ' + job.data.width + ' is too large');
  return { url: job.data.url, width: job.data.width, by: 'node' };
}"""


@pytest.fixture
def queues() -> dict[str, str]:
    run = uuid.uuid4().hex[:8]
    return {"IMAGES_QUEUE": f"t-images-{run}", "EMAILS_QUEUE": f"t-emails-{run}"}


@pytest.fixture
def uvicorn(redis_url: str, queues: dict[str, str]) -> Iterator[Server]:
    server = Server(
        [sys.executable, "-m", "uvicorn", "examples.fastapi_app.app:app", "--host", "127.0.0.1", "--port", "0"],
        {"BULLBRIDGE_REDIS_URL": redis_url, **queues},
        r"Uvicorn running on http://(127\.0\.0\.1:\d+)",
    )
    try:
        server.wait_for(r"Application startup complete")
        yield server
    finally:
        code = server.stop()
        # uvicorn re-raises the SIGTERM it handled once its shutdown is complete: that is a clean exit.
        assert code in (0, -signal.SIGTERM), server.output
        assert "Application shutdown complete" in server.output and "Traceback" not in server.output, server.output


async def test_fastapi_app_awaits_a_node_workers_result(
    uvicorn: Server, node: NodeDriver, queues: dict[str, str]
) -> None:
    async with node_worker(node, queues["IMAGES_QUEUE"], NODE_RESIZE):
        ok = await asyncio.to_thread(uvicorn.request, "POST", "/thumbnails", {"url": "s3://a.png", "width": 64})
        bad = await asyncio.to_thread(uvicorn.request, "POST", "/thumbnails", {"url": "s3://b.png", "width": 9999})
    assert ok[0] == 200, ok
    assert ok[1]["result"] == {"url": "s3://a.png", "width": 64, "by": "node"}
    assert bad[0] == 502 and "width 9999 is too large" in bad[1]["detail"], bad


async def test_fastapi_apps_own_worker_manager_serves_its_queue(uvicorn: Server, queues: dict[str, str]) -> None:
    status, body = await asyncio.to_thread(uvicorn.request, "POST", "/signups", {"to": "ada@example.com"})
    assert status == 202, body
    path = f"/jobs/{queues['EMAILS_QUEUE']}/{body['id']}"

    def completed() -> dict[str, Any]:
        deadline = time.monotonic() + 10  # a failure detector (kind 4): the app's worker runs it at once
        while True:
            status, job = uvicorn.request("GET", path)
            assert status == 200, job
            if job["state"] == "completed":
                return job  # type: ignore[no-any-return]
            assert time.monotonic() < deadline, job
            time.sleep(0.01)

    job = await asyncio.to_thread(completed)
    assert job["result"]["sent_to"] == "ada@example.com"
    assert job["result"]["pid"] == uvicorn.proc.pid  # run inside the web server's process
    missing = await asyncio.to_thread(uvicorn.request, "GET", path + "-nope")
    assert missing[0] == 404

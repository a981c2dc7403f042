"""examples/flask_app under gunicorn with ``--preload`` and two workers, over HTTP.

The app makes its blocking queue at import and calls it once there (a Redis
check), so the master holds a live connection and the queue's loop thread when
it forks. Each worker must then get a connection of its own - never write on
the master's socket - and the master's connection must stay as it was: checked
with ``CLIENT LIST``. Jobs are served by a Node worker; the second view polls
their result."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from bullbridge.sync import Queue
from bullbridge.testing.node import NodeDriver
from tests.examples.servers import Server
from tests.producer.conftest import node_worker

NODE_RENDER = "async job => ({ title: job.data.title, lines: job.data.rows, by: 'node' })"


@pytest.fixture
def gunicorn(redis_url: str, queue_name: str) -> Iterator[Server]:
    server = Server(
        [sys.executable, "-m", "gunicorn", "--preload", "-w", "2", "-b", "127.0.0.1:0", "examples.flask_app.app:app"],
        {"BULLBRIDGE_REDIS_URL": redis_url, "REPORTS_QUEUE": queue_name},
        r"Listening at: http://(127\.0\.0\.1:\d+)",
    )
    try:
        server.wait_for(r"Booting worker with pid", count=2)
        yield server
    finally:
        code = server.stop()
        assert code == 0 and "Traceback" not in server.output, server.output


def producer_connections(redis_url: str, queue_name: str) -> list[str]:
    """The addresses of the connections Redis has for the app's queue (its client name)."""
    name = f"{Queue(queue_name).keys.client_name()}:producer"
    with redis.Redis.from_url(redis_url) as client:
        return sorted(str(c["addr"]) for c in client.client_list() if c.get("name") == name)


async def test_flask_app_under_gunicorn_preload(
    gunicorn: Server, node: NodeDriver, redis_url: str, queue_name: str
) -> None:
    # The master called the queue at import: one connection, made before the fork.
    master = await asyncio.to_thread(producer_connections, redis_url, queue_name)
    assert len(master) == 1

    def create_until_both_workers_answer() -> dict[str, Any]:
        jobs: dict[str, Any] = {}
        pids: set[int] = set()
        # Bounded: the kernel spreads new connections over the two workers' accept calls.
        for n in range(200):
            status, body = gunicorn.request("POST", "/reports", {"title": f"r{n}", "rows": n})
            assert status == 202, body
            jobs[body["id"]] = n
            pids.add(body["pid"])
            if len(pids) == 2 and n >= 5:
                return {"jobs": jobs, "pids": pids}
        raise AssertionError(f"200 requests were all served by {pids}")

    created = await asyncio.to_thread(create_until_both_workers_answer)
    async with node_worker(node, queue_name, NODE_RENDER):

        def poll_results() -> dict[str, Any]:
            results: dict[str, Any] = {}
            deadline = time.monotonic() + 15  # a failure detector (kind 4): the Node worker runs each at once
            while len(results) < len(created["jobs"]):
                for job_id in set(created["jobs"]) - set(results):
                    status, body = gunicorn.request("GET", f"/reports/{job_id}")
                    assert status == 200 and body["id"] == job_id, body
                    if body["state"] == "completed":
                        results[job_id] = body["result"]
                assert time.monotonic() < deadline, f"{len(results)} of {len(created['jobs'])} completed"
            return results

        results = await asyncio.to_thread(poll_results)
    # Every reply was the job's own (no crossed replies between processes).
    assert results == {job_id: {"title": f"r{n}", "lines": n, "by": "node"} for job_id, n in created["jobs"].items()}
    missing = await asyncio.to_thread(gunicorn.request, "GET", "/reports/no-such-job")
    assert missing == (404, {"error": "no report no-such-job"})
    # One connection per process, and the master's is the one it had before the fork.
    after = await asyncio.to_thread(producer_connections, redis_url, queue_name)
    assert len(after) == 3 and master[0] in after, (master, after)

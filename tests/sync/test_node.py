"""Blocking calls against real Node BullMQ workers: a job added from sync code runs
on Node as written, and ``result`` returns what a Node worker returned.

The tests are async only because the Node driver is; every blocking call goes
through ``asyncio.to_thread``, from a thread that runs no loop, as a Django or
Flask request thread would."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from bullbridge import JobFailed
from bullbridge.sync import Queue
from bullbridge.testing.node import NodeDriver
from tests.producer.conftest import node_worker


async def test_a_node_worker_runs_a_job_added_from_sync_code(
    node: NodeDriver, make_queue: Callable[..., Queue], queue_name: str
) -> None:
    queue = make_queue()
    job = await asyncio.to_thread(queue.add, "welcome", {"to": "ada@example.com", "n": [1, 2]}, attempts=3, priority=2)
    processor = "async job => ({ name: job.name, data: job.data, attempts: job.opts.attempts, priority: job.priority })"
    async with node_worker(node, queue_name, processor) as handle:
        done = await node.wait_event(handle, "completed", timeout=10)  # a failure detector (kind 4)
    assert done[0]["jobId"] == job.id
    assert done[0]["returnvalue"] == {
        "name": "welcome",
        "data": {"to": "ada@example.com", "n": [1, 2]},
        "attempts": 3,
        "priority": 2,
    }


async def test_sync_result_of_jobs_a_node_worker_finished(
    node: NodeDriver, make_queue: Callable[..., Queue], queue_name: str
) -> None:
    queue = make_queue()
    ok = await asyncio.to_thread(queue.add, "x", {"n": 20})
    bad = await asyncio.to_thread(queue.add, "x", {"boom": True})
    processor = "async job => { if (job.data.boom) throw new Error('no way'); return { doubled: job.data.n * 2 } }"
    async with node_worker(node, queue_name, processor):
        # Failure detectors (kind 4): Node runs each job as soon as it is fetched.
        assert await asyncio.to_thread(queue.result, ok.id, 10) == {"doubled": 40}
        with pytest.raises(JobFailed, match="no way") as info:
            await asyncio.to_thread(queue.result, bad.id, 10)
    assert info.value.reason == "no way"
    outcome = await asyncio.to_thread(queue.wait_for, ok.id, 5)  # already finished: read from its state
    assert (outcome.state, outcome.returnvalue) == ("completed", {"doubled": 40})

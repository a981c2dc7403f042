"""A Node BullMQ worker serving a Django task: the job a ``@task`` enqueues is
read by Node as ``job.name`` (the task's dotted path) and ``job.data.args`` /
``job.data.kwargs``, and Django's ``get_result`` reads back what Node returned or
threw. Real Django, real Redis, the real npm bullmq."""

from __future__ import annotations

import asyncio
from typing import Any

from bullbridge.contrib.django.compat import TaskResultStatus
from bullbridge.testing.node import NodeDriver
from tests.contrib.conftest import finished

PROCESSOR = """async job => {
  if (job.name !== 'tests.contrib.djangoapp.tasks.node_sum') throw new Error('unexpected job ' + job.name);
  if (job.data.args.includes(0)) throw new Error('zero is not a number here');
  return { sum: job.data.args.reduce((a, b) => a + b, 0), kwargs: job.data.kwargs, priority: job.priority };
}"""


async def test_a_node_worker_serves_a_django_task(node: NodeDriver, backend: Any, django_env: dict[str, str]) -> None:
    from tests.contrib.djangoapp import tasks

    prefix = django_env["BULLBRIDGE_TEST_DJANGO_PREFIX"]
    # Django calls are blocking: from a thread that runs no loop, as in a Django view.
    ok = await asyncio.to_thread(tasks.node_sum.using(priority=10).enqueue, 1, 2, 3)
    bad = await asyncio.to_thread(tasks.node_sum.enqueue, 4, 0)
    handle = await node.start_worker("node", PROCESSOR, prefix=prefix)
    try:
        done = await asyncio.to_thread(finished, tasks.node_sum, ok.id)
        # A failure detector (kind 4): two attempts of one job, each run at once by Node.
        failed = await asyncio.to_thread(finished, tasks.node_sum, bad.id, 15)
    finally:
        await node.close_worker(handle, force=True)
    assert done.status == TaskResultStatus.SUCCESSFUL
    assert done.return_value == {"sum": 6, "kwargs": {}, "priority": 91}
    assert (done.task.queue_name, done.task.priority, done.attempts) == ("node", 10, 1)
    assert done.worker_ids and done.finished_at is not None
    assert failed.status == TaskResultStatus.FAILED and failed.attempts == 2
    error = failed.errors[-1]
    assert error.exception_class_path == "bullbridge.errors.JobFailed"  # not a Python exception
    assert error.traceback.startswith("Error: zero is not a number here")

"""Schedules shared by live workers of both languages, on real time.

Fast schedules (``every`` 250-300 ms, a seconds-first cron) so each scenario
takes a few seconds: a Python-declared schedule runs on Node workers, a
Node-declared one on Python workers, and iterations continue when workers of
the other language take over.
"""

from __future__ import annotations

import itertools
from typing import Any

from bullbridge.connection.resp import RespClient
from bullbridge.keys import QueueKeys
from bullbridge.scheduler import Declaration, Schedule, sync
from bullbridge.testing.node import NodeDriver
from tests.scheduler.helpers import scheduled_handler, wait_until


def _millis(job_id: str) -> int:
    return int(job_id.rsplit(":", 1)[1])


def _consecutive(job_ids: list[str], period: int) -> bool:
    stamps = [_millis(j) for j in job_ids]
    return all(b - a == period for a, b in itertools.pairwise(stamps))


async def _python_worker(make_worker: Any, name: str, seen: list[tuple[str, str]]) -> Any:
    ref: list[Any] = []
    worker = make_worker({name: scheduled_handler(ref, seen)})
    ref.append(worker)
    await worker.start()
    return worker


async def test_python_declared_schedule_fires_on_node_workers(
    node: NodeDriver, client: RespClient, redis_url: str, queue_name: str
) -> None:
    await sync(
        Declaration(
            "interop", (Schedule(id="tick", queue=queue_name, every=300, name="tick", data={"from": "python"}),)
        ),
        redis_url,
    )
    handle = await node.start_worker(queue_name, "async job => ({ data: job.data, id: job.id })")
    try:
        events = await node.wait_event(handle, "completed", count=4, timeout=10)
    finally:
        await node.close_worker(handle)
    ids = [e["jobId"] for e in events[:4]]
    assert all(i.startswith("repeat:tick:") for i in ids)
    assert _consecutive(ids, 300), ids
    assert events[0]["returnvalue"]["data"] == {"from": "python"}


async def test_node_declared_seconds_cron_fires_on_python_workers(
    node: NodeDriver, make_worker: Any, queue_name: str
) -> None:
    await node.eval(
        """await queue(args.q).upsertJobScheduler('secs', { pattern: '* * * * * *', tz: 'Europe/Berlin' },
                       { name: 'sec', data: { from: 'node' } });""",
        q=queue_name,
    )
    seen: list[tuple[str, str]] = []
    await _python_worker(make_worker, "sec", seen)
    await wait_until(lambda: len(seen) >= 3, timeout=10, what="3 runs on the Python worker")
    ids = [job_id for job_id, _ in seen[:3]]
    assert all(i.startswith("repeat:secs:") for i in ids)
    assert _consecutive(ids, 1000), ids


async def test_iterations_continue_when_workers_of_the_other_language_take_over(
    node: NodeDriver, make_worker: Any, client: RespClient, queue_name: str
) -> None:
    keys = QueueKeys(queue_name)
    await node.eval("await queue(args.q).upsertJobScheduler('turns', { every: 250 }, { name: 'turn' });", q=queue_name)
    ran: list[tuple[str, str]] = []

    async def python_turn(count: int) -> None:
        worker = await _python_worker(make_worker, "turn", ran)
        target = len(ran) + count
        await wait_until(lambda: len(ran) >= target, timeout=10, what="Python runs")
        await worker.close(timeout=5)

    async def node_turn(count: int) -> None:
        handle = await node.start_worker(queue_name, "async job => job.id")
        events = await node.wait_event(handle, "completed", count=count, timeout=10)
        await node.close_worker(handle)
        seen = {job_id for job_id, _ in ran}
        ran.extend(
            (e["jobId"], "node") for e in node.events[handle] if e.event == "completed" and e["jobId"] not in seen
        )
        assert len(events) >= count

    await python_turn(2)
    await node_turn(2)
    await python_turn(2)
    await node_turn(2)
    languages = [lang for _, lang in ran]
    switches = sum(1 for a, b in itertools.pairwise(languages) if a != b)
    assert languages[0] == "python" and switches == 3, languages
    ids = [job_id for job_id, _ in ran]
    assert len(set(ids)) == len(ids) >= 8, "an iteration ran twice"
    # One schedule throughout: the same 250 ms grid (slots pass while no worker runs, as in BullMQ).
    gaps = [_millis(b) - _millis(a) for a, b in itertools.pairwise(ids)]
    assert all(gap > 0 and gap % 250 == 0 for gap in gaps), gaps
    # The schedule is still alive, with exactly one pending iteration after the last run.
    assert await client.execute("ZSCORE", keys["repeat"], "turns") is not None
    iteration_count = int(await client.execute("HGET", f"{keys['repeat']}:turns", "ic"))
    assert iteration_count >= len(ids)

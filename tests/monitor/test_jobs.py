"""Job details, job lists and schedulers, checked against what Node's getters return."""

from __future__ import annotations

import json

import pytest
from redis.asyncio import Redis

from bullbridge.connection import connect
from bullbridge.errors import CorruptJob
from bullbridge.job import Job, read_dependencies
from bullbridge.jsonapi import to_json
from bullbridge.keys import QueueKeys
from bullbridge.monitor import Monitor
from bullbridge.testing.node import NodeDriver
from tests.monitor.helpers import eventually, now_ms

FAILING = """async (job) => {
  await job.log('step one');
  await job.log('step two');
  await job.updateProgress({stage: 'half', pct: 50});
  throw new Error('kaboom ' + job.data.n);
}"""


async def test_failed_job_detail_matches_node(node: NodeDriver, monitor: Monitor, queue_name: str) -> None:
    q = queue_name
    job_id = await node.add(q, "charge", {"n": 7, "text": "<b>ünïcode</b>"}, {"attempts": 1, "priority": 3})
    handle = await node.start_worker(q, FAILING, name="node-pay")
    try:
        await node.wait_event(handle, lambda e: e.event == "failed" and e["jobId"] == job_id)
    finally:
        await node.close_worker(handle)
    ours = await monitor.job(q, job_id)
    theirs = await node.get_job(q, job_id)
    assert ours is not None and theirs is not None
    assert ours.state == theirs["state"] == "failed"
    assert ours.data == theirs["data"]
    assert ours.name == theirs["name"] == "charge"
    assert ours.failed_reason == theirs["failedReason"] == "kaboom 7"
    assert ours.stacktrace == theirs["stacktrace"] and "kaboom 7" in ours.stacktrace[0]
    assert ours.progress == theirs["progress"] == {"stage": "half", "pct": 50}
    assert ours.attempts_made == theirs["attemptsMade"] == 1
    assert (ours.timestamp, ours.processed_on, ours.finished_on) == (
        theirs["timestamp"],
        theirs["processedOn"],
        theirs["finishedOn"],
    )
    assert ours.priority == 3 and ours.opts["attempts"] == 1
    assert ours.processed_by == "node-pay" and ours.language == "node"
    logs = await node.queue_call(q, "getJobLogs", job_id)
    assert ours.logs == logs["logs"] == ["step one", "step two"] and ours.log_count == logs["count"]
    assert ours.problems == []
    assert await monitor.job(q, "no-such-job") is None


async def test_parent_and_children(node: NodeDriver, make_worker, monitor: Monitor, queue_name: str) -> None:
    q, other = queue_name, queue_name + "-b"
    tree = await node.call(
        "flow.add",
        flow={
            "name": "parent",
            "queueName": q,
            "data": {},
            "children": [
                {"name": "c", "queueName": q, "data": {"v": 1}},
                {"name": "c", "queueName": other, "data": {"v": 2}},
            ],
        },
    )
    parent_id = tree["id"]
    done_child, pending_child = tree["children"][0]["id"], tree["children"][1]["id"]

    async def child(job):
        return {"doubled": job.data["v"] * 2}

    await make_worker({"c": child}, name="py-children").start()
    await eventually(lambda: _state(monitor, q, done_child, "completed"))
    parent = await monitor.job(q, parent_id)
    assert parent is not None and parent.state == "waiting-children"
    deps = await node.call("job.call", queue=q, jobId=parent_id, method="getDependencies")
    assert parent.children.processed == {f"bull:{q}:{done_child}": {"doubled": 2}}
    assert list(parent.children.processed) == list(deps["processed"])
    assert parent.children.unprocessed == deps["unprocessed"] == [f"bull:{other}:{pending_child}"]
    assert parent.children.counts == {"processed": 1, "unprocessed": 1, "ignored": 0, "failed": 0}
    kid = await monitor.job(q, done_child)
    assert kid is not None and kid.parent == {"id": parent_id, "queueKey": f"bull:{q}"}
    assert kid.parent_key == f"bull:{q}:{parent_id}"
    assert kid.language == "python" and kid.worker_name == "py-children"


async def _state(monitor: Monitor, queue: str, job_id: str, state: str) -> bool:
    job = await monitor.job(queue, job_id)
    return job is not None and job.state == state


async def test_corrupt_hash_is_shown_not_refused(r: Redis, monitor: Monitor, queue_name: str) -> None:
    await r.hset(
        f"bull:{queue_name}:bad", mapping={"name": "x", "data": "{not json", "opts": "{}", "timestamp": "yesterday"}
    )
    await r.lpush(f"bull:{queue_name}:wait", "bad")
    job = await monitor.job(queue_name, "bad")
    assert job is not None and job.state == "waiting"
    assert job.data == "{not json"
    assert any(p.startswith("data:") for p in job.problems)
    assert any(p.startswith("timestamp:") for p in job.problems)


async def test_stats_read_past_finished_jobs_with_infinite_or_nan_numbers(
    r: Redis, monitor: Monitor, queue_name: str
) -> None:
    """A foreign writer's finished job with ``1e400`` (Infinity) or ``NaN`` in its numbers: the
    queue's stats still answer (the dashboard's /api/queues was a 500 on ``int(inf)``)."""
    now = now_ms()
    for job_id, bad in (("inf", "1e400"), ("nan", "NaN")):
        await r.hset(
            f"bull:{queue_name}:{job_id}",
            mapping={
                "name": "x",
                "data": "{}",
                "opts": "{}",
                "timestamp": bad,
                "delay": bad,
                "processedOn": bad,
                "finishedOn": bad,
                "attemptsMade": bad,
            },
        )
        await r.zadd(f"bull:{queue_name}:completed", {job_id: now})
    await r.hset(f"bull:{queue_name}:meta", mapping={"opts.maxLenEvents": "10000"})
    stats = await monitor.queue_stats(queue_name)
    assert stats.counts["completed"] == 2
    job = await monitor.job(queue_name, "inf")
    assert job is not None and job.state == "completed"


def test_one_decoder_strict_for_workers_tolerant_for_showing() -> None:
    """``Job`` decodes a hash once: its properties raise on what a worker cannot use,
    ``values()`` (the monitor's) keeps the raw text with the reason beside it."""
    job = Job(
        "q",
        "1",
        {
            b"name": b"x",
            b"data": b"{bad",
            b"opts": b"[1]",
            b"timestamp": b"yesterday",
            b"atm": b"2",
            b"delay": b"",
            b"progress": b"{oops",
            b"processedOn": b"nan",
        },
    )
    with pytest.raises(CorruptJob, match="field 'timestamp' is not a number: 'yesterday'"):
        _ = job.timestamp
    with pytest.raises(CorruptJob, match="not valid JSON"):
        _ = job.data
    values = job.values()
    assert values.data == "{bad" and values.opts == {} and values.progress == "{oops"
    assert values.timestamp is None and values.processed_on is None and values.delay is None
    assert values.attempts_made == 2 and values.attempts_started == 0 and values.priority is None
    assert sorted(p.split(":")[0] for p in values.problems) == ["data", "opts", "processedOn", "timestamp"]
    assert "timestamp: not a number: 'yesterday'" in values.problems


async def test_job_pages_match_node_getjobs(node: NodeDriver, monitor: Monitor, queue_name: str) -> None:
    q = queue_name
    await node.call("queue.addBulk", queue=q, jobs=[{"name": "w", "data": {"i": i}} for i in range(30)])
    for delay in (50_000, 10_000, 30_000):
        await node.add(q, "d", {}, {"delay": delay, "jobId": f"d{delay}"})
    page = await monitor.jobs(q, "waiting", 10, 10)
    node_page = await node.queue_call(q, "getJobs", ["waiting"], 10, 19, False)
    assert page.total == 30
    assert [j.id for j in page.jobs] == [j["id"] for j in node_page]
    assert [j.name for j in page.jobs] == ["w"] * 10
    delayed = await monitor.jobs(q, "delayed")  # what runs next first
    assert [j.id for j in delayed.jobs] == ["d10000", "d30000", "d50000"]
    node_delayed = await node.queue_call(q, "getJobs", ["delayed"], 0, -1, True)
    assert [j["id"] for j in node_delayed] == ["d10000", "d30000", "d50000"]


async def test_schedulers_match_node(node: NodeDriver, monitor: Monitor, queue_name: str) -> None:
    q = queue_name
    await node.queue_call(
        q, "upsertJobScheduler", "every-minute", {"every": 60_000}, {"name": "tick", "data": {"a": 1}}
    )
    await node.queue_call(q, "upsertJobScheduler", "hourly", {"pattern": "0 * * * *", "tz": "UTC"}, {"name": "report"})
    node_list = await node.queue_call(q, "getJobSchedulers", 0, -1, True)
    page = await monitor.schedulers(q)
    assert page.total == 2
    ours = {s.id: s for s in page.schedulers}
    for theirs in node_list:
        mine = ours[theirs["key"]]
        assert mine.next_run_ms == theirs["next"]
        assert mine.name == theirs["name"]
        assert mine.every == theirs.get("every") and mine.pattern == theirs.get("pattern")
    assert ours["hourly"].tz == "UTC" and ours["every-minute"].template_data == {"a": 1}
    assert [s.id for s in page.schedulers] == sorted(ours, key=lambda i: ours[i].next_run_ms or 0)
    hourly = ours["hourly"].next_run_ms
    assert hourly is not None and hourly % 3_600_000 == 0 and hourly > now_ms()
    single = await monitor.scheduler(q, "hourly")
    assert single is not None and single.next_run_ms == hourly and single.pattern == "0 * * * *"


async def test_children_are_counted_and_listed_up_to_a_limit(r: Redis, redis_url: str, queue_name: str) -> None:
    """One reader of a parent's children (``bullbridge.job.read_dependencies``): whole for
    a worker, bounded and tolerant for the monitor."""
    parent = f"bull:{queue_name}:p"
    await r.hset(parent, mapping={"name": "parent", "data": "{}", "opts": "{}", "timestamp": now_ms()})
    await r.hset(f"{parent}:processed", mapping={f"bull:{queue_name}:c{i}": json.dumps({"i": i}) for i in range(150)})
    await r.hset(f"{parent}:processed", "bull:other:bad", "{not json")
    await r.sadd(f"{parent}:dependencies", *(f"bull:{queue_name}:u{i}" for i in range(3)))
    await r.hset(f"{parent}:failed", "bull:other:x", "boom")
    keys = QueueKeys(queue_name)
    connector = connect(redis_url)
    client = connector.fast("test-deps")
    try:
        with pytest.raises(CorruptJob):
            await read_dependencies(client, keys, "p")  # a worker's read: strict
        whole = await read_dependencies(client, keys, "p", tolerant=True)
        bounded = await read_dependencies(client, keys, "p", limit=10, tolerant=True)
    finally:
        await connector.close()
    assert whole.processed["bull:other:bad"] == "{not json" and whole.processed[f"bull:{queue_name}:c7"] == {"i": 7}
    assert whole.counts == {"processed": 151, "unprocessed": 3, "ignored": 1, "failed": 0}
    assert bounded.counts == {"processed": 151, "unprocessed": 3, "ignored": 1, "failed": 0}
    assert len(bounded.processed) == 10 and bounded.total == 155
    assert bounded.unprocessed == [f"bull:{queue_name}:u{i}" for i in range(3)]
    assert bounded.ignored == {"bull:other:x": "boom"} and bounded.failed == []
    monitor = Monitor(redis_url)
    try:
        detail = await monitor.job(queue_name, "p")
    finally:
        await monitor.close()
    assert detail is not None and detail.children.counts["processed"] == 151
    assert len(detail.children.processed) == 100  # the monitor's default limit


async def test_corrupt_and_legacy_schedulers_are_listed_not_refused(
    r: Redis, monitor: Monitor, queue_name: str
) -> None:
    """The monitor reads schedulers through ``bullbridge.scheduler``: a template that is
    not JSON shows as its text, a pre-v6 repeatable job (no hash) as ``legacy``."""
    q = f"bull:{queue_name}:repeat"
    await r.zadd(q, {"broken": 1_000, "old:key::5000": 2_000})
    await r.hset(f"{q}:broken", mapping={"name": "b", "every": "5000", "ic": "1", "data": "{oops"})
    page = await monitor.schedulers(queue_name)
    by_id = {s.id: s for s in page.schedulers}
    assert page.total == 2 and list(by_id) == ["broken", "old:key::5000"]
    assert by_id["broken"].template_data == "{oops" and by_id["broken"].every == 5000 and not by_id["broken"].legacy
    assert by_id["old:key::5000"].legacy and by_id["old:key::5000"].next_run_ms == 2_000
    row = to_json(page)["schedulers"][0]
    assert row["next"] == 1_000 and row["template"] == "{oops" and row["iterationCount"] == 1
    assert "fields" not in row and row["owner"] is None and row["queue"] == queue_name
    assert await monitor.scheduler(queue_name, "nope") is None
    # A queue with no scheduler at all, an id with ':' (issue 20: it used to raise ValueError).
    assert await monitor.scheduler(f"{queue_name}-empty", "nope") is None
    assert await monitor.scheduler(queue_name, "old:key:x") is None

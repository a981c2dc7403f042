"""Python producer -> Node worker: Node observes every option the way Python set it.

Each test enqueues with bullbridge (snake_case options, validated) and checks
what the real npm bullmq worker and Queue see: processing order, timing,
retries, removal, deduplication, ids, flows and children values.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bullbridge import Queue
from bullbridge.clock import datetime_ms
from bullbridge.connection.resp import RespClient
from bullbridge.errors import JobFailed
from bullbridge.flows import FlowJob, FlowProducer
from bullbridge.options import Backoff, Deduplication, KeepJobs
from bullbridge.testing.node import NodeDriver
from tests.timing import NodeBaseline, assert_as_punctual_as_node, concurrently, record

from .conftest import job_hash, node_order, node_worker, wait_until

FAIL_ALWAYS = """async job => {
    const key = job.queueName + ':' + job.id;
    (shared[key] ||= []).push(Date.now());
    throw new Error('attempt ' + job.attemptsMade + ' fails');
}"""


async def test_priority_order(node: NodeDriver, producer: Queue, queue_name: str) -> None:
    plan = [("p5", 5), ("none-1", None), ("p1", 1), ("p3", 3), ("p1-again", 1), ("none-2", None), ("p2", 2)]
    ids = {}
    for name, priority in plan:
        ids[(await producer.add(name, {}, priority=priority)).id] = name
    async with node_worker(node, queue_name, concurrency=1) as handle:
        order = [ids[i] for i in await node_order(node, handle, len(plan))]
    # Jobs without priority first (FIFO), then lowest priority number first, FIFO within a priority.
    assert order == ["none-1", "none-2", "p1", "p1-again", "p2", "p3", "p5"]


async def test_lifo(node: NodeDriver, producer: Queue, queue_name: str) -> None:
    ids = {}
    for name, lifo in (("a", None), ("b", True), ("c", True), ("d", False)):
        ids[(await producer.add(name, {}, lifo=lifo)).id] = name
    async with node_worker(node, queue_name, concurrency=1) as handle:
        order = [ids[i] for i in await node_order(node, handle, 4)]
    assert order == ["c", "b", "a", "d"]


async def test_delay_and_run_at_reach_node_as_written(
    node: NodeDriver, producer: Queue, raw: RespClient, queue_name: str
) -> None:
    """What the producer writes is exactly what Node's delay timer reads: the job's
    ``delay`` and ``timestamp`` fields and its due time in the delayed set. Node's
    worker then starts these jobs as punctually as a delayed job Node itself added,
    measured in the same test (Node's own lateness is 5-250 ms depending on load:
    an absolute bound here would test the machine, not the producer)."""
    async with (
        node_worker(node, queue_name, "async job => Date.now()", concurrency=2),
        NodeBaseline(node, queue_name) as baseline,
    ):
        await baseline.warm_up()
        delayed, node_delayed = await concurrently(
            producer.add("delayed", {}, delay=timedelta(milliseconds=300)), baseline.add(300)
        )
        run_at = datetime.now(UTC) + timedelta(milliseconds=400)
        scheduled = await producer.add("scheduled", {}, delay=run_at)
        far = await producer.add("far", {}, delay=timedelta(minutes=1))  # stays in the delayed set
        due = {delayed.id: delayed.timestamp + 300, scheduled.id: datetime_ms(run_at)}
        for job, due_ms in (*due.items(), (far.id, far.timestamp + 60_000)):
            stored = await job_hash(raw, producer.keys.job(job))
            assert int(stored["timestamp"]) + int(stored["delay"]) == due_ms, stored
            assert json.loads(stored["opts"])["delay"] == int(stored["delay"]), stored
        assert int((await job_hash(raw, producer.keys.job(delayed.id)))["delay"]) == 300
        # BullMQ's delayed-set score: due time in ms << 12, plus a 12-bit counter.
        score = await raw.execute("ZSCORE", producer.keys["delayed"], far.id)
        assert int(float(score)) >> 12 == far.timestamp + 60_000, score
        started = {job.id: await producer.result(job.id, timeout=10) for job in (delayed, scheduled)}
        theirs = [await baseline.lateness(node_delayed, 300)]
    ours = [started[job_id] - due[job_id] for job_id in due]
    record("test_delay_and_run_at_reach_node_as_written", ours=ours, node=theirs)
    assert_as_punctual_as_node(ours, theirs, "Python-added delayed jobs on a Node worker")
    node_job = await node.get_job(queue_name, delayed.id)
    assert node_job is not None and node_job["opts"]["delay"] == 300


@pytest.mark.parametrize(
    ("backoff", "node_form", "gaps"),
    [
        (Backoff.fixed(150), {"type": "fixed", "delay": 150}, [150, 150]),
        (Backoff.exponential(100), {"type": "exponential", "delay": 100}, [100, 200]),
        (200, {"type": "fixed", "delay": 200}, [200, 200]),  # a number is a fixed backoff (as Node normalises it)
    ],
    ids=["fixed", "exponential", "number"],
)
async def test_attempts_and_backoff_gaps(
    node: NodeDriver, producer: Queue, queue_name: str, backoff: Any, node_form: Any, gaps: list[int]
) -> None:
    """The producer writes Node's own backoff option, and Node's worker retries the
    job as it retries the same job added by Node (its first retry is itself up to
    ~100 ms late; both measured in the same test, tests/timing.py)."""
    async with node_worker(node, queue_name, FAIL_ALWAYS), NodeBaseline(node, queue_name) as baseline:
        job, theirs = await concurrently(
            producer.add("flaky", {}, attempts=3, backoff=backoff), baseline.backoff_lateness(node_form, 3, gaps)
        )
        with pytest.raises(JobFailed, match="attempt 2 fails"):
            await producer.result(job.id, timeout=10)
    starts = await node.call("shared.get", key=f"{queue_name}:{job.id}")
    assert len(starts) == 3
    ours = [b - a - g for (a, b), g in zip(itertools.pairwise(starts), gaps)]
    record("test_p2n_attempts_and_backoff_gaps", backoff=node_form, ours=ours, node=theirs)
    assert_as_punctual_as_node(ours, theirs, f"retries of {node_form!r} on a Node worker")
    node_job = await node.get_job(queue_name, job.id)
    assert node_job is not None and node_job["attemptsMade"] == 3 and node_job["state"] == "failed"
    assert node_job["opts"]["backoff"] == node_form and node_job["opts"]["attempts"] == 3


@pytest.mark.parametrize(
    ("form", "fail", "jobs", "kept"),
    [
        ({"remove_on_complete": True}, False, 2, 0),
        ({"remove_on_complete": False}, False, 2, 2),
        ({"remove_on_complete": 1}, False, 3, 1),
        ({"remove_on_complete": KeepJobs(count=2, age=3600)}, False, 3, 2),
        ({"remove_on_complete": {"age": 3600}}, False, 2, 2),
        ({"remove_on_fail": True}, True, 2, 0),
        ({"remove_on_fail": 1}, True, 3, 1),
        ({"remove_on_fail": KeepJobs(count=2)}, True, 3, 2),
    ],
    ids=[
        "complete-true",
        "complete-false",
        "complete-count",
        "complete-keepjobs",
        "complete-age",
        "fail-true",
        "fail-count",
        "fail-keepjobs",
    ],
)
async def test_remove_on_complete_and_fail_forms(
    node: NodeDriver, producer: Queue, queue_name: str, form: dict[str, Any], fail: bool, jobs: int, kept: int
) -> None:
    processor = "async job => { throw new Error('no') }" if fail else "async job => 'ok'"
    state = "failed" if fail else "completed"
    async with node_worker(node, queue_name, processor, concurrency=1) as handle:
        ids = []
        for n in range(jobs):
            ids.append((await producer.add("job", {"n": n}, **form)).id)
            await node.wait_event(handle, state, count=n + 1)
    counts = await node.queue_call(queue_name, "getJobCounts", state)
    assert counts[state] == kept
    remaining = [job_id for job_id in ids if await producer.get_job(job_id) is not None]
    assert remaining == ids[len(ids) - kept :]  # the newest are kept


async def test_deduplication(node: NodeDriver, producer: Queue, queue_name: str) -> None:
    # From the stream's start: with the default "$", events added before QueueEvents issues its first
    # XREAD are missed (a race that a loaded machine loses).
    events = await node.subscribe(queue_name, lastEventId="0-0")
    first = await producer.add("job", {"v": 1}, deduplication="user-7")
    second = await producer.add("job", {"v": 2}, deduplication=Deduplication("user-7"))
    assert second.id == first.id
    await node.wait_event(events, lambda e: e.event == "deduplicated" and e["args"]["jobId"] == first.id)
    async with node_worker(node, queue_name, "async job => job.data"):
        assert await producer.result(first.id, timeout=10) == {"v": 1}
        node_job = await node.get_job(queue_name, first.id)
        assert node_job is not None and node_job["deduplicationId"] == "user-7"
        # Simple mode: the id is free again once the job finished.
        third = await producer.add("job", {"v": 3}, deduplication="user-7")
        assert third.id != first.id
        assert await producer.result(third.id, timeout=10) == {"v": 3}
    counts = await node.queue_call(queue_name, "getJobCounts", "completed", "waiting")
    assert counts == {"completed": 2, "waiting": 0}
    await node.call("events.close", handle=events)


async def test_deduplication_ttl(node: NodeDriver, producer: Queue, queue_name: str) -> None:
    async with node_worker(node, queue_name, "async job => job.data"):
        first = await producer.add("job", {"v": 1}, deduplication=Deduplication("d", ttl=timedelta(seconds=1)))
        assert await producer.result(first.id, timeout=10) == {"v": 1}
        # Within the ttl a duplicate is dropped even though the first job finished...
        again = await producer.add("job", {"v": 2}, deduplication=Deduplication("d", ttl=1000))
        assert again.id == first.id
        # ...and after it, a new job is added.
        fresh = await wait_until(lambda: _new_id(producer, first.id), timeout=5, what="ttl expiry")
        assert await producer.result(fresh, timeout=10) == {"v": 3}


async def _new_id(producer: Queue, old: str) -> str | None:
    job = await producer.add("job", {"v": 3}, deduplication=Deduplication("d", ttl=1000))
    return job.id if job.id != old else None


async def test_custom_id_and_duplicate_id(node: NodeDriver, producer: Queue, queue_name: str) -> None:
    first = await producer.add("job", {"v": 1}, job_id="order-1")
    again = await producer.add("job", {"v": 2}, job_id="order-1")
    assert first.id == again.id == "order-1"
    async with node_worker(node, queue_name, "async job => ({ id: job.id, data: job.data })") as handle:
        assert await producer.result("order-1", timeout=10) == {"id": "order-1", "data": {"v": 1}}
        auto = await producer.add("job", {})
        await node.wait_event(handle, "completed", count=2)
    assert auto.id.isdigit()  # BullMQ's counter (it counts custom-id adds too, in both languages)
    assert (await node.queue_call(queue_name, "getJobCounts", "completed"))["completed"] == 2


async def test_flow_children_values_across_queues(
    node: NodeDriver, flow_producer: FlowProducer, redis_url: str, queue_name: str
) -> None:
    parts, paint = f"{queue_name}-parts", f"{queue_name}-paint"
    flow = FlowJob(
        "car",
        queue_name,
        {"model": "T"},
        children=[
            FlowJob("wheel", parts, {"n": 1}),
            FlowJob("wheel", parts, {"n": 2}, opts={"job_id": "wheel-2", "priority": 1}),
            FlowJob("coat", paint, {"colour": "black"}, children=[FlowJob("primer", parts, {"n": 0})]),
        ],
    )
    tree = await flow_producer.add(flow)
    assert len(tree.id) == 36 and tree.id.count("-") == 4  # Node-style UUIDs
    async with Queue(queue_name, connection=redis_url) as parent_queue:
        assert await parent_queue.get_job_state(tree.id) == "waiting-children"
        async with (
            node_worker(node, parts, "async job => ({ part: job.data.n })"),
            node_worker(node, paint, "async job => ({ coat: await job.getChildrenValues() })"),
            node_worker(node, queue_name, "async job => await job.getChildrenValues()"),
        ):
            values = await parent_queue.result(tree.id, timeout=10)
        wheel1, wheel2, coat = tree.children
        primer = coat.children[0]
        assert values == {
            wheel1.key: {"part": 1},
            wheel2.key: {"part": 2},
            coat.key: {"coat": {primer.key: {"part": 0}}},
        }
        assert await parent_queue.get_children_values(tree.id) == values
        deps = await parent_queue.get_dependencies(tree.id)
        assert deps.unprocessed == [] and deps.failed == [] and set(deps.processed) == set(values)
    node_child = await node.get_job(parts, "wheel-2")
    assert node_child is not None
    assert node_child["parentKey"] == tree.key and node_child["parent"] == {
        "id": tree.id,
        "queueKey": f"bull:{queue_name}",
    }


@pytest.mark.parametrize(
    "policy",
    [
        "fail_parent_on_failure",
        "ignore_dependency_on_failure",
        "remove_dependency_on_failure",
        "continue_parent_on_failure",
        None,
    ],
)
async def test_flow_failure_policies(
    node: NodeDriver, flow_producer: FlowProducer, redis_url: str, queue_name: str, policy: str | None
) -> None:
    kids, idle = f"{queue_name}-kids", f"{queue_name}-idle"
    opts = {policy: True} if policy else {}
    children = [FlowJob("ok", kids, {"fail": False}), FlowJob("bad", kids, {"fail": True}, opts=opts)]
    if policy == "continue_parent_on_failure":
        children.append(FlowJob("never-processed", idle, {}))  # no worker: stays pending
    tree = await flow_producer.add(FlowJob("parent", queue_name, {}, children=children))
    ok, bad = tree.children[0], tree.children[1]
    kid_processor = "async job => { if (job.data.fail) throw new Error('child broke'); return 'fine' }"
    # With continueParentOnFailure the parent runs while children may be pending:
    # finishing it is then its own business (BullMQ: removeUnprocessedChildren).
    parent_processor = """async job => {
        const deps = await job.getDependencies();
        if (deps.unprocessed.length) await job.removeUnprocessedChildren();
        return { values: await job.getChildrenValues(), ignored: await job.getIgnoredChildrenFailures(),
                 failed: deps.failed, unprocessed: deps.unprocessed };
    }"""
    async with (
        Queue(queue_name, connection=redis_url) as parents,
        node_worker(node, kids, kid_processor, concurrency=1) as kid_handle,
        node_worker(node, queue_name, parent_processor),
    ):
        await node.wait_event(kid_handle, "failed")
        await node.wait_event(kid_handle, "completed")
        if policy == "fail_parent_on_failure":
            with pytest.raises(JobFailed, match=f"child {bad.key} failed"):
                await parents.result(tree.id, timeout=10)
            return
        if policy is None:  # BullMQ's default: the parent waits for ever (both children are final now)
            assert await parents.get_job_state(tree.id) == "waiting-children"
            return
        result = await parents.result(tree.id, timeout=10)
    assert result["values"] == {ok.key: "fine"}
    assert result["failed"] == []
    # ignore and continue both record the failure where getIgnoredChildrenFailures reads it.
    if policy in ("ignore_dependency_on_failure", "continue_parent_on_failure"):
        assert result["ignored"] == {bad.key: "child broke"}
    else:
        assert result["ignored"] == {}
    if policy == "continue_parent_on_failure":  # the parent ran before its last child
        assert result["unprocessed"] == [tree.children[2].key]
    else:
        assert result["unprocessed"] == []


async def test_flow_reusing_a_completed_custom_id_child_waits_for_its_siblings(
    node: NodeDriver, flow_producer: FlowProducer, redis_url: str, queue_name: str
) -> None:
    """Pins the parent-release ordering (see bullbridge.flows): listed first, the
    completed child would make the port's script release the parent before the
    new sibling is even added."""
    kids, slow = f"{queue_name}-kids", f"{queue_name}-slow"
    async with Queue(kids, connection=redis_url) as kid_queue, Queue(queue_name, connection=redis_url) as parents:
        async with node_worker(node, kids, "async job => ({ kid: job.data.n })"):
            await kid_queue.add("kid", {"n": 1}, job_id="kid-1")
            assert await kid_queue.result("kid-1", timeout=10) == {"kid": 1}
            tree = await flow_producer.add(
                FlowJob(
                    "parent",
                    queue_name,
                    {},
                    children=[
                        FlowJob("kid", kids, {"n": 1}, opts={"job_id": "kid-1"}),  # completed already
                        FlowJob("new", slow, {"n": 2}),  # not processed yet
                    ],
                )
            )
        assert await parents.get_job_state(tree.id) == "waiting-children"
        assert (await parents.get_dependencies(tree.id)).unprocessed == [tree.children[1].key]
        async with (
            node_worker(node, slow, "async job => ({ slow: job.data.n })"),
            node_worker(node, queue_name, "async job => await job.getChildrenValues()"),
        ):
            values = await parents.result(tree.id, timeout=10)
    assert values == {f"bull:{kids}:kid-1": {"kid": 1}, tree.children[1].key: {"slow": 2}}


async def test_flow_with_only_completed_children_runs_the_parent(
    node: NodeDriver, flow_producer: FlowProducer, redis_url: str, queue_name: str
) -> None:
    """What Node's releaseParentIfNoPendingDependencies does, the port's script does itself."""
    kids = f"{queue_name}-kids"
    async with Queue(kids, connection=redis_url) as kid_queue, Queue(queue_name, connection=redis_url) as parents:
        async with node_worker(node, kids, "async job => job.data.n"):
            for n in (1, 2):
                await kid_queue.add("kid", {"n": n}, job_id=f"kid-{n}")
                await kid_queue.result(f"kid-{n}", timeout=10)
        tree = await flow_producer.add(
            FlowJob(
                "parent",
                queue_name,
                {},
                children=[
                    FlowJob("kid", kids, {"n": 1}, opts={"job_id": "kid-1"}),
                    FlowJob("kid", kids, {"n": 2}, opts={"job_id": "kid-2"}),
                ],
            )
        )
        assert await parents.get_job_state(tree.id) == "waiting"
        async with node_worker(node, queue_name, "async job => await job.getChildrenValues()"):
            assert await parents.result(tree.id, timeout=10) == {f"bull:{kids}:kid-1": 1, f"bull:{kids}:kid-2": 2}


async def test_logs_and_stack_trace_limits(node: NodeDriver, producer: Queue, queue_name: str) -> None:
    processor = """async job => {
        for (let i = 0; i < 4; i++) await job.log('line ' + i);
        if (job.data.fail) throw new Error('nope');
        return 'ok';
    }"""
    async with node_worker(node, queue_name, processor):
        logged = await producer.add("logs", {"fail": False}, keep_logs=2)
        failing = await producer.add("fails", {"fail": True}, attempts=3, stack_trace_limit=1)
        await producer.result(logged.id, timeout=10)
        with pytest.raises(JobFailed):
            await producer.result(failing.id, timeout=10)
    logs = await node.queue_call(queue_name, "getJobLogs", logged.id)
    assert logs == {"logs": ["line 2", "line 3"], "count": 2}
    node_job = await node.get_job(queue_name, failing.id)
    assert node_job is not None and node_job["attemptsMade"] == 3 and len(node_job["stacktrace"]) == 1


async def test_timestamp_bulk_and_queue_defaults(node: NodeDriver, redis_url: str, queue_name: str) -> None:
    stamp = datetime(2024, 2, 29, 12, 0, tzinfo=UTC)
    defaults = {"attempts": 2, "backoff": Backoff.fixed(10), "remove_on_fail": 5}
    async with Queue(queue_name, connection=redis_url, default_job_options=defaults) as producer:
        jobs = await producer.add_bulk(
            [
                ("a", {"n": 1}),
                ("b", {"n": 2}, {"attempts": 4, "timestamp": stamp}),
                {"name": "c", "data": {"n": 3}, "opts": {"remove_on_fail": False, "priority": 3}},
            ]
        )
        async with node_worker(node, queue_name, "async job => job.opts", concurrency=1) as handle:
            order = await node_order(node, handle, 3)
            opts = {job.name: await producer.result(job.id, timeout=10) for job in jobs}
    assert order == [jobs[0].id, jobs[1].id, jobs[2].id]
    backoff = {"type": "fixed", "delay": 10}
    assert opts["a"] == {"attempts": 2, "backoff": backoff, "removeOnFail": 5}
    assert opts["b"] == {
        "attempts": 4,
        "timestamp": int(stamp.timestamp() * 1000),
        "backoff": backoff,
        "removeOnFail": 5,
    }
    assert opts["c"] == {"attempts": 2, "priority": 3, "backoff": backoff, "removeOnFail": False}
    node_b = await node.get_job(queue_name, jobs[1].id)
    assert node_b is not None and node_b["timestamp"] == int(stamp.timestamp() * 1000)


async def test_enqueue_many_concurrently_share_one_connection(
    node: NodeDriver, producer: Queue, queue_name: str
) -> None:
    started = time.monotonic()
    jobs = await asyncio.gather(*(producer.add("n", {"i": i}) for i in range(200)))
    took = time.monotonic() - started
    assert sorted(int(j.id) for j in jobs) == list(range(1, 201))
    record("test_enqueue_many_concurrently_share_one_connection", took=took)
    # 5 s for 200 adds: a floor that catches one-connection-per-add or a lock-step bug, not a
    # throughput figure (make bench reports that); measured 0.02-0.03 s idle, 0.10 s loaded.
    assert took < 5, f"200 concurrent adds took {took:.2f} s"
    async with node_worker(node, queue_name, "async job => job.data.i * 2", concurrency=20) as handle:
        await node.wait_event(handle, "completed", count=200)
    assert await producer.result(jobs[-1].id, timeout=5) == 398

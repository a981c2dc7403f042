"""Node producer -> bullbridge worker: Python observes every option the way Node set it.

Jobs and flows are added by the real npm bullmq (Queue.add, FlowProducer);
bullbridge Workers process them. Each test checks what the Python handler saw
(order, timing, attempts, data, children values) and what Node reads back.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest

from bullbridge import Queue, Worker
from bullbridge.testing.node import NodeDriver
from tests import timing
from tests.timing import NodeBaseline, assert_as_punctual_as_node, concurrently

from .conftest import node_state, wait_until

MakeWorker = Callable[..., Worker]


def _now_ms() -> float:
    return time.time() * 1000


async def test_priority_order(node: NodeDriver, make_worker: MakeWorker, queue_name: str) -> None:
    plan = [("p5", 5), ("none-1", None), ("p1", 1), ("p3", 3), ("p1-again", 1), ("none-2", None), ("p2", 2)]
    for name, priority in plan:
        await node.add(queue_name, name, {}, {"priority": priority} if priority else {})
    seen: list[str] = []

    async def record(job: Any) -> None:
        seen.append(job.name)

    worker = make_worker(record, concurrency=1)
    await worker.start()
    await wait_until(lambda: len(seen) == len(plan), what="all jobs processed")
    assert seen == ["none-1", "none-2", "p1", "p1-again", "p2", "p3", "p5"]


async def test_lifo(node: NodeDriver, make_worker: MakeWorker, queue_name: str) -> None:
    for name, lifo in (("a", False), ("b", True), ("c", True), ("d", False)):
        await node.add(queue_name, name, {}, {"lifo": lifo})
    seen: list[str] = []

    async def record(job: Any) -> None:
        seen.append(job.name)

    worker = make_worker(record, concurrency=1)
    await worker.start()
    await wait_until(lambda: len(seen) == 4, what="all jobs processed")
    assert seen == ["c", "b", "a", "d"]


async def test_delay_honoured_as_punctually_as_node(node: NodeDriver, make_worker: MakeWorker, queue_name: str) -> None:
    """Node-added delayed jobs start on our worker as punctually as the same jobs
    on Node's own worker, measured in the same test (tests/timing.py)."""
    started: dict[str, float] = {}

    async def record(job: Any) -> float:
        started[job.id] = _now_ms()
        return started[job.id]

    worker = make_worker(record, concurrency=2)
    await worker.start()
    async with NodeBaseline(node, queue_name) as baseline:
        await baseline.warm_up()
        short, longer, node_short, node_longer = await concurrently(
            node.add(queue_name, "short", {}, {"delay": 250}),
            node.add(queue_name, "longer", {}, {"delay": 450}),
            baseline.add(250),
            baseline.add(450),
        )
        ours = []
        for job_id, delay in ((short, 250), (longer, 450)):
            job = await node_state(node, queue_name, job_id, "completed")
            assert job["opts"]["delay"] == delay
            ours.append(started[job_id] - (job["timestamp"] + delay))
        theirs = [await baseline.lateness(node_short, 250), await baseline.lateness(node_longer, 450)]
    timing.record("test_n2p_delay", ours=ours, node=theirs)
    assert_as_punctual_as_node(ours, theirs, "Node-added delayed jobs on a bullbridge worker")


@pytest.mark.parametrize(
    ("backoff", "node_twin", "gaps"),
    [
        ({"type": "fixed", "delay": 150}, {"type": "fixed", "delay": 150}, [150, 150]),
        ({"type": "exponential", "delay": 100}, {"type": "exponential", "delay": 100}, [100, 200]),
        (120, 120, [120, 120]),
        # Node's twin of linear 50 (50, 100 ms) is exponential 50: the same two gaps from a built-in.
        ({"type": "linear", "delay": 50}, {"type": "exponential", "delay": 50}, [50, 100]),
    ],
    ids=["fixed", "exponential", "number", "custom-linear"],
)
async def test_attempts_and_backoff_gaps(
    node: NodeDriver, make_worker: MakeWorker, queue_name: str, backoff: Any, node_twin: Any, gaps: list[int]
) -> None:
    """Our worker retries a Node-added job as punctually as Node's worker retries
    the same job, measured in the same test (tests/timing.py)."""
    starts: list[float] = []

    async def flaky(job: Any) -> None:
        starts.append(_now_ms())
        raise RuntimeError(f"attempt {job.attempts_made + 1} fails")

    def linear(attempts_made: int, kind: str, error: BaseException, job: Any) -> int:
        return int(attempts_made * job.opts["backoff"]["delay"])

    worker = make_worker({"flaky": flaky}, backoff_strategies={"linear": linear})
    await worker.start()
    async with NodeBaseline(node, queue_name) as baseline:
        job_id, theirs = await concurrently(
            node.add(queue_name, "flaky", {}, {"attempts": 3, "backoff": backoff}),
            baseline.backoff_lateness(node_twin, 3, gaps),
        )
        job = await node_state(node, queue_name, job_id, "failed")
    assert job["attemptsMade"] == 3 and job["failedReason"] == "RuntimeError: attempt 3 fails"
    assert len(starts) == 3
    ours = [b - a - g for (a, b), g in zip(itertools.pairwise(starts), gaps)]
    timing.record("test_n2p_attempts_and_backoff_gaps", backoff=backoff, ours=ours, node=theirs)
    assert_as_punctual_as_node(ours, theirs, f"retries of {backoff!r} on a bullbridge worker")


@pytest.mark.parametrize(
    ("form", "fail", "jobs", "kept"),
    [
        ({"removeOnComplete": True}, False, 2, 0),
        ({"removeOnComplete": 1}, False, 3, 1),
        ({"removeOnComplete": {"count": 2, "age": 3600}}, False, 3, 2),
        ({"removeOnFail": True}, True, 2, 0),
        ({"removeOnFail": {"count": 1}}, True, 3, 1),
        ({"removeOnFail": False}, True, 2, 2),
    ],
    ids=["complete-true", "complete-count", "complete-keepjobs", "fail-true", "fail-keepjobs", "fail-false"],
)
async def test_remove_on_complete_and_fail_forms(
    node: NodeDriver, make_worker: MakeWorker, queue_name: str, form: dict[str, Any], fail: bool, jobs: int, kept: int
) -> None:
    async def handle(job: Any) -> str:
        if fail:
            raise ValueError("no")
        return "ok"

    worker = make_worker({"job": handle}, concurrency=1)
    await worker.start()
    state = "failed" if fail else "completed"
    ids = []
    for n in range(1, jobs + 1):
        ids.append(await node.add(queue_name, "job", {"n": n}, form))
        await wait_until(lambda n=n: (worker.failed if fail else worker.completed) == n, what=f"job {n} {state}")
    counts = await node.queue_call(queue_name, "getJobCounts", state)
    assert counts[state] == kept
    remaining = [job_id for job_id in ids if await node.get_job(queue_name, job_id) is not None]
    assert remaining == ids[len(ids) - kept :]


async def test_deduplication(node: NodeDriver, make_worker: MakeWorker, queue_name: str) -> None:
    first = await node.add(queue_name, "job", {"v": 1}, {"deduplication": {"id": "user-7"}})
    second = await node.add(queue_name, "job", {"v": 2}, {"deduplication": {"id": "user-7"}})
    assert first == second
    seen: list[tuple[Any, str | None]] = []

    async def handle(job: Any) -> Any:
        seen.append((job.data, job.deduplication_id))
        return job.data

    worker = make_worker({"job": handle})
    await worker.start()
    await node_state(node, queue_name, first, "completed")
    # The dedup key is released when the Python worker finishes the job.
    third = await node.add(queue_name, "job", {"v": 3}, {"deduplication": {"id": "user-7"}})
    assert third != first
    await node_state(node, queue_name, third, "completed")
    assert seen == [({"v": 1}, "user-7"), ({"v": 3}, "user-7")]


async def test_flow_children_processed_in_python(
    node: NodeDriver, make_worker: MakeWorker, redis_url: str, queue_name: str
) -> None:
    parts, paint = f"{queue_name}-parts", f"{queue_name}-paint"
    tree = await node.call(
        "flow.add",
        flow={
            "name": "car",
            "queueName": queue_name,
            "data": {"model": "T"},
            "children": [
                {"name": "wheel", "queueName": parts, "data": {"n": 1}},
                {"name": "wheel", "queueName": parts, "data": {"n": 2}, "opts": {"jobId": "wheel-2"}},
                {
                    "name": "coat",
                    "queueName": paint,
                    "data": {"colour": "black"},
                    "children": [{"name": "primer", "queueName": parts, "data": {"n": 0}}],
                },
            ],
        },
    )

    async def part(job: Any) -> dict[str, Any]:
        return {"part": job.data["n"]}

    async def coat(job: Any) -> dict[str, Any]:
        return {"coat": await job.children_values()}

    async def car(job: Any) -> dict[str, Any]:
        return await job.children_values()  # type: ignore[no-any-return]

    for queue, handler in ((parts, part), (paint, coat), (queue_name, car)):
        await make_worker(handler, queue=queue, concurrency=2).start()
    parent = await node_state(node, queue_name, tree["id"], "completed")
    wheel1, wheel2, coat_node = tree["children"]
    primer = coat_node["children"][0]

    def key(node_: dict[str, Any]) -> str:
        return f"bull:{node_['queue']}:{node_['id']}"

    expected = {
        key(wheel1): {"part": 1},
        key(wheel2): {"part": 2},
        key(coat_node): {"coat": {key(primer): {"part": 0}}},
    }
    assert parent["returnvalue"] == expected
    assert await node.call("job.call", queue=queue_name, jobId=tree["id"], method="getChildrenValues") == {
        k: v for k, v in expected.items()
    }
    async with Queue(queue_name, connection=redis_url) as producer:
        assert await producer.get_children_values(tree["id"]) == expected


async def _fail_parent_flow(
    node: NodeDriver, make_worker: MakeWorker, queue_name: str
) -> tuple[dict[str, Any], list[str], str]:
    kids = f"{queue_name}-kids"
    tree = await node.call(
        "flow.add",
        flow={
            "name": "parent",
            "queueName": queue_name,
            "children": [
                {"name": "bad", "queueName": kids, "opts": {"failParentOnFailure": True}},
                {"name": "ok", "queueName": kids},
            ],
        },
    )
    ran_parent: list[str] = []

    async def kid(job: Any) -> str:
        if job.name == "bad":
            raise ValueError("child broke")
        return "fine"

    async def parent(job: Any) -> None:
        ran_parent.append(job.id)

    await make_worker(kid, queue=kids, concurrency=1).start()
    await make_worker(parent).start()
    child = await node_state(node, kids, tree["children"][0]["id"], "failed")
    assert child["failedReason"] == "ValueError: child broke"
    job = await node_state(node, queue_name, tree["id"], "failed")
    return job, ran_parent, f"bull:{kids}:{tree['children'][0]['id']}"


async def test_flow_fail_parent_on_failure_in_python(
    node: NodeDriver, make_worker: MakeWorker, queue_name: str
) -> None:
    job, ran_parent, bad_key = await _fail_parent_flow(node, make_worker, queue_name)
    assert ran_parent == []  # the parent fails without its handler running
    assert bad_key in job["failedReason"]


async def test_flow_fail_parent_reason_is_nodes(node: NodeDriver, make_worker: MakeWorker, queue_name: str) -> None:
    job, _, bad_key = await _fail_parent_flow(node, make_worker, queue_name)
    assert job["failedReason"] == f"child {bad_key} failed"


@pytest.mark.parametrize("policy", ["ignoreDependencyOnFailure", "removeDependencyOnFailure"])
async def test_flow_dependency_policies_in_python(
    node: NodeDriver, make_worker: MakeWorker, queue_name: str, policy: str
) -> None:
    kids = f"{queue_name}-kids"
    tree = await node.call(
        "flow.add",
        flow={
            "name": "parent",
            "queueName": queue_name,
            "children": [{"name": "ok", "queueName": kids}, {"name": "bad", "queueName": kids, "opts": {policy: True}}],
        },
    )

    async def kid(job: Any) -> str:
        if job.name == "bad":
            raise ValueError("child broke")
        return "fine"

    async def parent(job: Any) -> Any:
        return await job.children_values()

    await make_worker(kid, queue=kids, concurrency=1).start()
    await make_worker(parent).start()
    ok_key, bad_key = (f"bull:{kids}:{c['id']}" for c in tree["children"])
    job = await node_state(node, queue_name, tree["id"], "completed")
    assert job["returnvalue"] == {ok_key: "fine"}
    ignored = await node.call("job.call", queue=queue_name, jobId=tree["id"], method="getIgnoredChildrenFailures")
    assert ignored == ({bad_key: "ValueError: child broke"} if policy == "ignoreDependencyOnFailure" else {})


async def test_logs_and_stack_trace_limits_in_python(
    node: NodeDriver, make_worker: MakeWorker, queue_name: str
) -> None:
    async def handle(job: Any) -> str:
        for i in range(4):
            await job.log(f"line {i}")
        if job.data["fail"]:
            raise ValueError("nope")
        return "ok"

    await make_worker(handle).start()
    logged = await node.add(queue_name, "logs", {"fail": False}, {"keepLogs": 2})
    failing = await node.add(queue_name, "fails", {"fail": True}, {"attempts": 3, "stackTraceLimit": 1})
    await node_state(node, queue_name, logged, "completed")
    job = await node_state(node, queue_name, failing, "failed")
    assert job["attemptsMade"] == 3 and len(job["stacktrace"]) == 1 and "ValueError: nope" in job["stacktrace"][0]
    assert await node.queue_call(queue_name, "getJobLogs", logged) == {"logs": ["line 2", "line 3"], "count": 2}

"""Job options both ways: what each side stores and reads back for every option,
and the behaviour they select - priority and LIFO order, delay, retries with
backoff, removal on completion and failure, deduplication."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Awaitable
from typing import Any

from bullbridge.conformance.framework import N2P, P2N, Ctx, scenario, wait_until

# --- every option, as each side stores and reads it -------------------------------------------

#: (case, Node's options, bullbridge's options): the same options, each way of writing them.
OPTION_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "attempts-exponential",
        {"attempts": 3, "backoff": {"type": "exponential", "delay": 200}},
        {"attempts": 3, "backoff": {"type": "exponential", "delay": 200}},
    ),
    (
        "attempts-fixed-jitter",
        {"attempts": 2, "backoff": {"type": "fixed", "delay": 100, "jitter": 0.5}},
        {"attempts": 2, "backoff": {"type": "fixed", "delay": 100, "jitter": 0.5}},
    ),
    ("attempts-number", {"attempts": 2, "backoff": 1000}, {"attempts": 2, "backoff": 1000}),
    ("priority-lifo", {"priority": 42, "lifo": True}, {"priority": 42, "lifo": True}),
    (
        "remove-true-keepjobs",
        {"removeOnComplete": True, "removeOnFail": {"count": 5, "age": 3600}},
        {"remove_on_complete": True, "remove_on_fail": {"count": 5, "age": 3600}},
    ),
    (
        "remove-count-false",
        {"removeOnComplete": 3, "removeOnFail": False},
        {"remove_on_complete": 3, "remove_on_fail": False},
    ),
    ("delay", {"delay": 60000}, {"delay": 60000}),
    (
        "logs-stack-size",
        {"keepLogs": 3, "stackTraceLimit": 2, "sizeLimit": 1000},
        {"keep_logs": 3, "stack_trace_limit": 2, "size_limit": 1000},
    ),
    ("job-id", {"jobId": "custom-1"}, {"job_id": "custom-1"}),
    ("timestamp", {"timestamp": 1700000000123}, {"timestamp": 1700000000123}),
    ("dedup-ttl", {"deduplication": {"id": "d-1", "ttl": 5000}}, {"deduplication": {"id": "d-1", "ttl": 5000}}),
]


def _cases(ctx: Ctx) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """The option cases this Node version has (deduplication from 5.17)."""
    from bullbridge.compat import missing_features

    dedup = not missing_features(ctx.node.bullmq_version, ("deduplication",))
    return [c for c in OPTION_CASES if dedup or not c[0].startswith("dedup")]


#: Defaults Node before 5.x stores in a job's opts and bullbridge (like Node 6) leaves out.
_NODE_STORED_DEFAULTS = {"delay": 0, "attempts": 0}


def _without_stored_defaults(opts: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in opts.items() if _NODE_STORED_DEFAULTS.get(k, object()) != v}


async def _both_writers(ctx: Ctx) -> tuple[str, str, list[tuple[str, str, str]]]:
    """Every option case written by Python (one queue) and by Node (another):
    ``(python queue, node queue, [(case, python job id, node job id)])``."""
    py_queue, node_queue = ctx.queue_name("python"), ctx.queue_name("node")
    producer = ctx.python_queue(py_queue)
    ids = []
    for case, node_opts, py_opts in _cases(ctx):
        data = {"case": case}
        py_job = await producer.add("opts", data, **py_opts)
        node_id = await ctx.node.add(node_queue, "opts", data, node_opts)
        ids.append((case, py_job.id, node_id))
    return py_queue, node_queue, ids


@scenario("stored_options", N2P, "every job option written by Node is stored as bullbridge stores it (read by Python)")
async def options_n2p(ctx: Ctx) -> None:
    py_queue, node_queue, ids = await _both_writers(ctx)
    py_reader, node_reader = ctx.python_queue(py_queue), ctx.python_queue(node_queue)
    differ = []
    for case, py_id, node_id in ids:
        mine, theirs = await py_reader.get_job(py_id), await node_reader.get_job(node_id)
        assert mine is not None and theirs is not None, f"{case}: a job is missing"
        ours, node = _without_stored_defaults(mine.opts), _without_stored_defaults(theirs.opts)
        if (mine.name, mine.data, ours) != (theirs.name, theirs.data, node):
            differ.append(f"{case}: Node stored {theirs.opts}, bullbridge {mine.opts}")
    assert not differ, "; ".join(differ)


@scenario("stored_options", P2N, "every job option written by Python reads in Node's job.opts as Node's own")
async def options_p2n(ctx: Ctx) -> None:
    py_queue, node_queue, ids = await _both_writers(ctx)
    differ = []
    for case, py_id, node_id in ids:
        mine = await ctx.node.job_view(py_queue, py_id)
        theirs = await ctx.node.job_view(node_queue, node_id)
        assert mine is not None and theirs is not None, f"{case}: a job is missing"
        mine_opts, theirs_opts = (_without_stored_defaults(v["parsedOpts"]) for v in (mine, theirs))
        if mine_opts != theirs_opts or mine["parsedData"] != theirs["parsedData"]:
            differ.append(
                f"{case}: Node reads {mine['parsedOpts']} for bullbridge's job, {theirs['parsedOpts']} for its own"
            )
    assert not differ, "; ".join(differ)


# --- priority, delay, retries, removeOnComplete, deduplication, LIFO, removeOnFail --------------

PRIORITIES = [5, 1, 3, 2, 4]
#: Expected run order: a job without priority first, then priority 1 (highest) to 5.
PRIORITY_ORDER = ["none", "p1", "p2", "p3", "p4", "p5"]


@scenario("priority_order", N2P, "priorities set by Node decide the order a Python worker runs jobs in")
async def priority_n2p(ctx: Ctx) -> None:
    for p in PRIORITIES:
        await ctx.node.add(ctx.queue, f"p{p}", {}, {"priority": p})
    await ctx.node.add(ctx.queue, "none", {})
    order: list[str] = []

    async def handle(job: Any) -> None:
        order.append(job.name)

    await ctx.worker(handle, concurrency=1)
    await wait_until(lambda: len(order) == 6, 10, f"6 jobs run (ran {order})")
    assert order == PRIORITY_ORDER, order


@scenario("priority_order", P2N, "priorities set by Python decide the order a Node worker runs jobs in")
async def priority_p2n(ctx: Ctx) -> None:
    producer = ctx.python_queue()
    for p in PRIORITIES:
        await producer.add(f"p{p}", {}, priority=p)
    await producer.add("none", {})
    handle = await ctx.node_worker("async job => job.name", concurrency=1)
    events = await ctx.node.wait_event(handle, "completed", count=6, timeout=10)
    order = [e["name"] for e in events]
    assert order == PRIORITY_ORDER, order


DELAY_MS = 500


@scenario("delay", N2P, "a delay set by Node is honoured by a Python worker")
async def delay_n2p(ctx: Ctx) -> None:
    started: list[float] = []

    async def handle(job: Any) -> None:
        started.append(time.time() * 1000 - job.timestamp)

    await ctx.worker({"later": handle})
    job_id = await ctx.node.add(ctx.queue, "later", {}, {"delay": DELAY_MS})
    job = await ctx.node_job(job_id)
    assert job is not None and job["state"] == "delayed", job and job["state"]
    await ctx.node_wait_state(job_id, "completed", timeout=5)
    assert len(started) == 1 and DELAY_MS - 5 <= started[0] <= DELAY_MS + 1500, f"started after {started} ms"


@scenario("delay", P2N, "a delay set by Python is honoured by a Node worker")
async def delay_p2n(ctx: Ctx) -> None:
    await ctx.node_worker("async job => Date.now()")
    producer = ctx.python_queue()
    job = await producer.add("later", {}, delay=DELAY_MS)
    assert await producer.get_job_state(job.id) == "delayed"
    ran_at = await producer.result(job.id, timeout=5)
    waited = ran_at - job.timestamp
    assert DELAY_MS - 5 <= waited <= DELAY_MS + 1500, f"ran {waited} ms after it was added"


@scenario("retries_backoff", N2P, "attempts and exponential backoff set by Node, run by a Python worker")
async def retries_n2p(ctx: Ctx) -> None:
    starts: list[float] = []

    async def flaky(job: Any) -> str:
        starts.append(time.monotonic())
        if len(starts) < 3:
            raise RuntimeError(f"attempt {len(starts)}")
        return "third time lucky"

    await ctx.worker({"flaky": flaky})
    job_id = await ctx.node.add(
        ctx.queue, "flaky", {}, {"attempts": 3, "backoff": {"type": "exponential", "delay": 100}}
    )
    job = await ctx.node_wait_state(job_id, "completed", timeout=10)
    assert job["returnvalue"] == "third time lucky" and job["attemptsMade"] == 3, job
    gaps = [round((b - a) * 1000) for a, b in itertools.pairwise(starts)]
    assert gaps[0] >= 95 and gaps[1] >= 195, f"backoff 100/200 ms not honoured: gaps {gaps} ms"


@scenario("retries_backoff", P2N, "attempts and exponential backoff set by Python, run by a Node worker")
async def retries_p2n(ctx: Ctx) -> None:
    from bullbridge import Backoff

    await ctx.node_worker(
        "async job => { if (job.attemptsMade < 2) throw new Error('attempt ' + job.attemptsMade); return 'ok' }"
    )
    producer = ctx.python_queue()
    job = await producer.add("flaky", {}, attempts=3, backoff=Backoff.exponential(100))
    assert await producer.result(job.id, timeout=10) == "ok"
    stored = await producer.get_job(job.id)
    assert stored is not None and stored.attempts_made == 3, stored
    assert stored.processed_on is not None and stored.processed_on - job.timestamp >= 295, (
        f"third attempt started {stored.processed_on and stored.processed_on - job.timestamp} ms after adding: "
        "backoff 100 + 200 ms not honoured"
    )


@scenario("remove_on_complete", N2P, "removeOnComplete (true and a count) set by Node, applied by a Python worker")
async def remove_on_complete_n2p(ctx: Ctx) -> None:
    async def handle(job: Any) -> int:
        return int(job.data["i"])

    gone = await ctx.node.add(ctx.queue, "x", {"i": 0}, {"removeOnComplete": True})
    counted = [await ctx.node.add(ctx.queue, "x", {"i": i}, {"removeOnComplete": 1}) for i in (1, 2, 3)]
    await ctx.worker({"x": handle}, concurrency=1)
    await ctx.node_wait_state(counted[-1], "completed")
    await wait_until(lambda: _is_none(ctx.node_job(gone)), 5, f"job {gone} (removeOnComplete: true) removed")
    for job_id in counted[:-1]:
        assert await ctx.node_job(job_id) is None, f"job {job_id} should have been trimmed (removeOnComplete: 1)"
    counts = await ctx.node_counts()
    assert counts["completed"] == 1, counts


async def _is_none(awaitable: Awaitable[Any]) -> bool:
    return await awaitable is None


@scenario("remove_on_complete", P2N, "remove_on_complete (True and a count) set by Python, applied by Node")
async def remove_on_complete_p2n(ctx: Ctx) -> None:
    producer = ctx.python_queue()
    gone = await producer.add("x", {"i": 0}, remove_on_complete=True)
    counted = [await producer.add("x", {"i": i}, remove_on_complete=1) for i in (1, 2, 3)]
    await ctx.node_worker("async job => job.data.i", concurrency=1)
    assert await producer.result(counted[-1].id, timeout=10) == 3
    assert await producer.result(gone.id, timeout=10) == 0, "a removed job's result comes from the event stream"
    assert await producer.get_job(gone.id) is None
    for job in counted[:-1]:
        assert await producer.get_job(job.id) is None, f"job {job.id} should have been trimmed"
    assert await producer.get_job(counted[-1].id) is not None


@scenario("dedup", N2P, "a deduplication id used by Node dedups a Python add; one run", requires=("deduplication",))
async def dedup_n2p(ctx: Ctx) -> None:
    dedup_id = f"d-{uuid.uuid4().hex[:6]}"
    first = await ctx.node.add(ctx.queue, "x", {"from": "node"}, {"deduplication": {"id": dedup_id}})
    producer = ctx.python_queue()
    second = await producer.add("x", {"from": "python"}, deduplication=dedup_id)
    assert second.id == first, f"Python's duplicate got id {second.id}, Node's job is {first}"
    runs: list[Any] = []

    async def handle(job: Any) -> None:
        runs.append(job.data)

    await ctx.worker({"x": handle})
    await ctx.node_wait_state(first, "completed")
    counts = await ctx.node_counts()
    assert sum(counts.values()) == 1 and runs == [{"from": "node"}], (counts, runs)


@scenario("dedup", P2N, "a deduplication id used by Python dedups a Node add; one run", requires=("deduplication",))
async def dedup_p2n(ctx: Ctx) -> None:
    dedup_id = f"d-{uuid.uuid4().hex[:6]}"
    producer = ctx.python_queue()
    first = await producer.add("x", {"from": "python"}, deduplication=dedup_id)
    second = await ctx.node.add(ctx.queue, "x", {"from": "node"}, {"deduplication": {"id": dedup_id}})
    assert second == first.id, f"Node's duplicate got id {second}, Python's job is {first.id}"
    assert await ctx.node.queue_call(ctx.queue, "getDeduplicationJobId", dedup_id) == first.id
    await ctx.node_worker("async job => job.data")
    assert await producer.result(first.id, timeout=10) == {"from": "python"}
    counts = await ctx.node_counts()
    assert sum(counts.values()) == 1, counts


@scenario("lifo", N2P, "LIFO jobs added by Node are run first, newest first, by a Python worker")
async def lifo_n2p(ctx: Ctx) -> None:
    for name, lifo in (("a", False), ("b", True), ("c", True), ("d", False)):
        await ctx.node.add(ctx.queue, name, {}, {"lifo": lifo})
    order: list[str] = []

    async def handle(job: Any) -> None:
        order.append(job.name)

    await ctx.worker(handle, concurrency=1)
    await wait_until(lambda: len(order) == 4, 10, f"4 jobs run (ran {order})")
    assert order == ["c", "b", "a", "d"], order


@scenario("lifo", P2N, "LIFO jobs enqueued by Python are run first, newest first, by a Node worker")
async def lifo_p2n(ctx: Ctx) -> None:
    producer = ctx.python_queue()
    for name, lifo in (("a", None), ("b", True), ("c", True), ("d", False)):
        await producer.add(name, {}, lifo=lifo)
    handle = await ctx.node_worker("async job => job.name", concurrency=1)
    events = await ctx.node.wait_event(handle, "completed", count=4, timeout=10)
    order = [e["name"] for e in events]
    assert order == ["c", "b", "a", "d"], order


@scenario("remove_on_fail", N2P, "removeOnFail (true and a count) set by Node, applied by a Python worker")
async def remove_on_fail_n2p(ctx: Ctx) -> None:
    async def handle(job: Any) -> None:
        raise ValueError("no")

    gone = await ctx.node.add(ctx.queue, "x", {"i": 0}, {"removeOnFail": True})
    counted = [await ctx.node.add(ctx.queue, "x", {"i": i}, {"removeOnFail": 1}) for i in (1, 2, 3)]
    await ctx.worker({"x": handle}, concurrency=1)
    await ctx.node_wait_state(counted[-1], "failed")
    assert await ctx.node_job(gone) is None, f"job {gone} (removeOnFail: true) should be gone"
    for job_id in counted[:-1]:
        assert await ctx.node_job(job_id) is None, f"job {job_id} should have been trimmed (removeOnFail: 1)"
    counts = await ctx.node_counts()
    assert counts["failed"] == 1, counts


@scenario("remove_on_fail", P2N, "remove_on_fail (True and a count) set by Python, applied by a Node worker")
async def remove_on_fail_p2n(ctx: Ctx) -> None:
    producer = ctx.python_queue()
    gone = await producer.add("x", {"i": 0}, remove_on_fail=True)
    counted = [await producer.add("x", {"i": i}, remove_on_fail=1) for i in (1, 2, 3)]
    await ctx.node_worker("async job => { throw new Error('no') }", concurrency=1)
    for job in (gone, *counted):
        assert (await producer.wait_for(job.id, timeout=10)).state == "failed"
    assert await producer.get_job(gone.id) is None
    for job in counted[:-1]:
        assert await producer.get_job(job.id) is None, f"job {job.id} should have been trimmed"
    assert await producer.get_job(counted[-1].id) is not None

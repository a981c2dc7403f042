"""Interop scenarios of the compatibility matrix, each in both directions.

``N->P`` means Node produces (or sets up) and Python consumes (or observes);
``P->N`` the reverse. Every scenario drives real Node BullMQ through the
interop driver (:class:`~bullbridge.testing.node.NodeDriver`, whatever
``bullmq`` its ``NODE_PATH`` holds) and real bullbridge / Python-port code on
one Redis, and asserts what the *other* language observes.

Used two ways:

* ``compat/run.py`` runs this module as ``python -m compat.scenarios`` once per
  version pair, inside an environment that holds that pair (a temporary venv
  with the port version under test; a temporary ``node_modules`` with the Node
  version under test) and reads the JSON it writes;
* ``tests/compat/test_pinned_pair.py`` runs :data:`SCENARIOS` against the pinned
  pair inside the normal test suite.

A scenario is an ``async def(ctx)`` that raises ``AssertionError`` (or
anything) when the two languages disagree. Each one uses fresh queue names and
closes what it started, so they can share one Redis and one Node process.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bullbridge import Producer, Worker, WorkerSettings
from bullbridge.errors import JobTimeout
from bullbridge.testing.node import DEFAULT_DRIVER, NodeDriver

log = logging.getLogger("bullbridge.compat.scenarios")

N2P = "N->P"
P2N = "P->N"
DIRECTIONS = (N2P, P2N)

#: Upper bound of one scenario (each normally takes well under 3 s).
SCENARIO_TIMEOUT = 30.0

ScenarioFn = Callable[["Ctx"], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    name: str
    direction: str
    title: str
    fn: ScenarioFn = field(repr=False, compare=False)

    @property
    def id(self) -> str:
        """``name[direction]``, how the matrix and the known-differences table name it."""
        return f"{self.name}[{self.direction}]"


SCENARIOS: list[Scenario] = []


def scenario(name: str, direction: str, title: str) -> Callable[[ScenarioFn], ScenarioFn]:
    def register(fn: ScenarioFn) -> ScenarioFn:
        assert direction in DIRECTIONS
        SCENARIOS.append(Scenario(name, direction, title, fn))
        return fn

    return register


@dataclass
class ScenarioResult:
    scenario: str
    direction: str
    status: str  # "pass" | "fail"
    seconds: float
    error: str | None = None

    @property
    def id(self) -> str:
        return f"{self.scenario}[{self.direction}]"


# --- context ------------------------------------------------------------------------------


async def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition",
                     interval: float = 0.02) -> Any:
    """Poll ``predicate`` (sync or async) until truthy; its value, else AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not true within {timeout} s")
        await asyncio.sleep(interval)


async def holds(predicate: Callable[[], Any], duration: float, what: str, interval: float = 0.02) -> None:
    """Poll ``predicate`` for ``duration`` seconds; AssertionError as soon as it is false."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if not value:
            raise AssertionError(what)
        await asyncio.sleep(interval)


@dataclass
class Ctx:
    """What a scenario gets: Redis, the Node driver, a fresh queue, and closers."""

    redis_url: str
    node: NodeDriver
    scenario: Scenario
    queue: str = ""
    _closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.queue:
            self.queue = self.queue_name()

    def queue_name(self, role: str = "") -> str:
        base = f"compat-{self.scenario.name}-{'n2p' if self.scenario.direction == N2P else 'p2n'}"
        return f"{base}{'-' + role if role else ''}-{uuid.uuid4().hex[:8]}"

    def on_close(self, closer: Callable[[], Awaitable[Any]]) -> None:
        self._closers.append(closer)

    def producer(self, queue: str | None = None) -> Producer:
        p = Producer(queue or self.queue, connection=self.redis_url)
        self.on_close(p.close)
        return p

    async def worker(self, handlers: Any, queue: str | None = None, **settings: Any) -> Worker:
        """A started bullbridge worker (closed with the scenario)."""
        worker = Worker(queue or self.queue, handlers, connection=self.redis_url,
                        settings=WorkerSettings(**settings))
        self.on_close(lambda: worker.close(timeout=5))
        await worker.start()
        return worker

    async def node_worker(self, processor: str, queue: str | None = None, **opts: Any) -> str:
        """A started Node worker (closed with the scenario); its events are ``node.events[handle]``."""
        handle = await self.node.start_worker(queue or self.queue, processor, **opts)
        self.on_close(lambda: self.node.close_worker(handle, force=True))
        return handle

    async def node_job(self, job_id: str, queue: str | None = None) -> dict[str, Any] | None:
        return await self.node.get_job(queue or self.queue, job_id)

    async def node_wait_state(self, job_id: str, state: str, queue: str | None = None,
                              timeout: float = 10.0) -> dict[str, Any]:
        """Poll Node's view of a job until it is in ``state``."""
        last: list[Any] = [None]

        async def check() -> Any:
            job = await self.node_job(job_id, queue)
            last[0] = job
            return job if job is not None and job["state"] == state else None

        try:
            return await wait_until(check, timeout, f"job {job_id} {state} in Node's view")  # type: ignore[no-any-return]
        except AssertionError:
            seen = last[0]
            summary = None if seen is None else {k: seen.get(k) for k in ("state", "failedReason", "attemptsMade")}
            raise AssertionError(f"job {job_id} not {state} within {timeout} s as Node sees it (last: {summary})")\
                from None

    async def close(self) -> None:
        for closer in reversed(self._closers):
            try:
                await asyncio.wait_for(closer(), 15)
            except Exception as exc:  # a scenario's cleanup must not fail the next one
                log.debug("closing after %s: %s", self.scenario.id, exc)
        self._closers.clear()


async def run_scenario(s: Scenario, redis_url: str, node: NodeDriver,
                       timeout: float = SCENARIO_TIMEOUT) -> ScenarioResult:
    """Run one scenario; a failure or error is reported, never raised."""
    ctx = Ctx(redis_url, node, s)
    started = time.monotonic()
    error: str | None = None
    try:
        await asyncio.wait_for(s.fn(ctx), timeout)
    except TimeoutError:
        error = f"timed out after {timeout:g} s"
    except AssertionError as exc:
        error = str(exc) or "assertion failed"
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        await ctx.close()
    return ScenarioResult(s.name, s.direction, "fail" if error else "pass",
                          round(time.monotonic() - started, 3), error)


def js(value: Any) -> str:
    """A JSON value as a JavaScript literal."""
    return json.dumps(value, ensure_ascii=False)


DATA: dict[str, Any] = {
    "text": "wörld ✓ 日本語 🎉", "n": 21, "float": 2.5, "none": None, "yes": True, "empty": {},
    "nested": {"list": [1, "two", [3], {"four": 4}]},
}
RESULT: dict[str, Any] = {"ok": True, "items": [1, 2.5, "x", None], "text": "ünïcode ✓"}


# --- plain job, return value, failure, progress, custom id ------------------------------------


@scenario("plain_job", N2P, "data added by Node reaches a Python handler intact")
async def plain_job_n2p(ctx: Ctx) -> None:
    seen: list[tuple[str, Any]] = []

    async def handle(job: Any) -> None:
        seen.append((job.name, job.data))

    await ctx.worker({"greet": handle})
    job_id = await ctx.node.add(ctx.queue, "greet", DATA)
    await ctx.node_wait_state(job_id, "completed")
    assert seen == [("greet", DATA)], f"Python handler saw {seen}"


@scenario("plain_job", P2N, "data enqueued by Python reaches a Node processor intact")
async def plain_job_p2n(ctx: Ctx) -> None:
    await ctx.node_worker("async job => ({ name: job.name, data: job.data })")
    producer = ctx.producer()
    job = await producer.enqueue("greet", DATA)
    assert await producer.result(job.id, timeout=10) == {"name": "greet", "data": DATA}


@scenario("return_value", N2P, "a Python handler's return value, read by Node")
async def return_value_n2p(ctx: Ctx) -> None:
    async def handle(job: Any) -> Any:
        return RESULT

    await ctx.worker({"calc": handle})
    job_id = await ctx.node.add(ctx.queue, "calc", {})
    job = await ctx.node_wait_state(job_id, "completed")
    assert job["returnvalue"] == RESULT, job["returnvalue"]
    assert job["attemptsMade"] == 1


@scenario("return_value", P2N, "a Node processor's return value, read by Python")
async def return_value_p2n(ctx: Ctx) -> None:
    await ctx.node_worker(f"async job => ({js(RESULT)})")
    producer = ctx.producer()
    job = await producer.enqueue("calc", {})
    assert await producer.result(job.id, timeout=10) == RESULT
    stored = await producer.get_job(job.id)
    assert stored is not None and stored.returnvalue == RESULT and stored.attempts_made == 1


@scenario("failure_reason", N2P, "a Python handler's exception, read by Node as failedReason")
async def failure_reason_n2p(ctx: Ctx) -> None:
    async def boom(job: Any) -> None:
        raise ValueError(f"bad value {job.data['x']}")

    await ctx.worker({"boom": boom})
    job_id = await ctx.node.add(ctx.queue, "boom", {"x": 7})
    job = await ctx.node_wait_state(job_id, "failed")
    assert "bad value 7" in job["failedReason"], job["failedReason"]
    assert job["stacktrace"] and "bad value 7" in job["stacktrace"][0]
    assert job["attemptsMade"] == 1


@scenario("failure_reason", P2N, "a Node processor's error, read by Python as failed_reason")
async def failure_reason_p2n(ctx: Ctx) -> None:
    await ctx.node_worker("async job => { throw new Error('node says no: ' + job.data.x) }")
    producer = ctx.producer()
    job = await producer.enqueue("fail", {"x": 7})
    outcome = await producer.wait_for(job.id, timeout=10)
    assert outcome.state == "failed" and outcome.failed_reason == "node says no: 7", outcome
    stored = await producer.get_job(job.id)
    assert stored is not None and stored.failed_reason == "node says no: 7"
    assert "Error: node says no: 7" in stored.stacktrace[0]


@scenario("progress", N2P, "progress reported by a Python handler, seen by Node's QueueEvents and job")
async def progress_n2p(ctx: Ctx) -> None:
    events = await ctx.node.subscribe(ctx.queue)
    ctx.on_close(lambda: ctx.node.call("events.close", handle=events))

    async def steps(job: Any) -> str:
        for value in (10, 50, {"stage": "done"}):
            await job.update_progress(value)
        return "ok"

    await ctx.worker({"steps": steps})
    job_id = await ctx.node.add(ctx.queue, "steps", {})
    seen = await ctx.node.wait_event(
        events, lambda e: e.event == "progress" and e["args"]["jobId"] == job_id, count=3)
    assert [e["args"]["data"] for e in seen] == [10, 50, {"stage": "done"}]
    job = await ctx.node_wait_state(job_id, "completed")
    assert job["progress"] == {"stage": "done"}, job["progress"]


@scenario("progress", P2N, "progress reported by a Node processor, seen by Python's QueueEvents and job")
async def progress_p2n(ctx: Ctx) -> None:
    from bullbridge import QueueEvents

    await ctx.node_worker("async job => { for (const p of [10, 50, 100]) await job.updateProgress(p); return 1 }")
    producer = ctx.producer()
    async with QueueEvents(ctx.queue, connection=ctx.redis_url) as events:
        seen: list[Any] = []

        async def collect() -> None:
            async for event in events:
                if event.event == "progress":
                    seen.append(event.progress)
                    if len(seen) == 3:
                        return

        collector = asyncio.create_task(collect())
        job = await producer.enqueue("p", {})
        try:
            await asyncio.wait_for(collector, 10)
        finally:
            collector.cancel()
        assert seen == [10, 50, 100], seen
    assert await producer.result(job.id, timeout=10) == 1
    stored = await producer.get_job(job.id)
    assert stored is not None and stored.progress == 100


@scenario("custom_id", N2P, "a custom job id set by Node, as the Python handler sees it")
async def custom_id_n2p(ctx: Ctx) -> None:
    async def handle(job: Any) -> str:
        return str(job.id)

    await ctx.worker({"x": handle})
    wanted = f"order-{uuid.uuid4().hex[:6]}"
    job_id = await ctx.node.add(ctx.queue, "x", {}, {"jobId": wanted})
    assert job_id == wanted
    job = await ctx.node_wait_state(wanted, "completed")
    assert job["returnvalue"] == wanted


@scenario("custom_id", P2N, "a custom job id set by Python, as the Node processor sees it")
async def custom_id_p2n(ctx: Ctx) -> None:
    await ctx.node_worker("async job => job.id")
    producer = ctx.producer()
    wanted = f"invoice-{uuid.uuid4().hex[:6]}"
    job = await producer.enqueue("x", {}, job_id=wanted)
    assert job.id == wanted
    assert await producer.result(wanted, timeout=10) == wanted
    seen = await ctx.node_job(wanted)
    assert seen is not None and seen["opts"].get("jobId") == wanted, seen and seen["opts"]


# --- priority, delay, retries, removeOnComplete, deduplication ---------------------------------

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

    await ctx.worker({"*": handle}, concurrency=1)
    await wait_until(lambda: len(order) == 6, 10, f"6 jobs run (ran {order})")
    assert order == PRIORITY_ORDER, order


@scenario("priority_order", P2N, "priorities set by Python decide the order a Node worker runs jobs in")
async def priority_p2n(ctx: Ctx) -> None:
    producer = ctx.producer()
    for p in PRIORITIES:
        await producer.enqueue(f"p{p}", {}, priority=p)
    await producer.enqueue("none", {})
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
    producer = ctx.producer()
    job = await producer.enqueue("later", {}, delay=DELAY_MS)
    assert await producer.get_state(job.id) == "delayed"
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
    job_id = await ctx.node.add(ctx.queue, "flaky", {},
                                {"attempts": 3, "backoff": {"type": "exponential", "delay": 100}})
    job = await ctx.node_wait_state(job_id, "completed", timeout=10)
    assert job["returnvalue"] == "third time lucky" and job["attemptsMade"] == 3, job
    gaps = [round((b - a) * 1000) for a, b in itertools.pairwise(starts)]
    assert gaps[0] >= 95 and gaps[1] >= 195, f"backoff 100/200 ms not honoured: gaps {gaps} ms"


@scenario("retries_backoff", P2N, "attempts and exponential backoff set by Python, run by a Node worker")
async def retries_p2n(ctx: Ctx) -> None:
    from bullbridge import Backoff

    await ctx.node_worker(
        "async job => { if (job.attemptsMade < 2) throw new Error('attempt ' + job.attemptsMade); return 'ok' }")
    producer = ctx.producer()
    job = await producer.enqueue("flaky", {}, attempts=3, backoff=Backoff.exponential(100))
    assert await producer.result(job.id, timeout=10) == "ok"
    stored = await producer.get_job(job.id)
    assert stored is not None and stored.attempts_made == 3, stored
    assert stored.processed_on is not None and stored.processed_on - job.timestamp >= 295, (
        f"third attempt started {stored.processed_on and stored.processed_on - job.timestamp} ms after adding: "
        "backoff 100 + 200 ms not honoured")


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
    counts = await ctx.node.queue_call(ctx.queue, "getJobCounts")
    assert counts["completed"] == 1, counts


async def _is_none(awaitable: Awaitable[Any]) -> bool:
    return await awaitable is None


@scenario("remove_on_complete", P2N, "remove_on_complete (True and a count) set by Python, applied by Node")
async def remove_on_complete_p2n(ctx: Ctx) -> None:
    producer = ctx.producer()
    gone = await producer.enqueue("x", {"i": 0}, remove_on_complete=True)
    counted = [await producer.enqueue("x", {"i": i}, remove_on_complete=1) for i in (1, 2, 3)]
    await ctx.node_worker("async job => job.data.i", concurrency=1)
    assert await producer.result(counted[-1].id, timeout=10) == 3
    assert await producer.result(gone.id, timeout=10) == 0, "a removed job's result comes from the event stream"
    assert await producer.get_job(gone.id) is None
    for job in counted[:-1]:
        assert await producer.get_job(job.id) is None, f"job {job.id} should have been trimmed"
    assert await producer.get_job(counted[-1].id) is not None


@scenario("dedup", N2P, "a deduplication id used by Node dedups a Python enqueue; one run")
async def dedup_n2p(ctx: Ctx) -> None:
    dedup_id = f"d-{uuid.uuid4().hex[:6]}"
    first = await ctx.node.add(ctx.queue, "x", {"from": "node"}, {"deduplication": {"id": dedup_id}})
    producer = ctx.producer()
    second = await producer.enqueue("x", {"from": "python"}, deduplication=dedup_id)
    assert second.id == first, f"Python's duplicate got id {second.id}, Node's job is {first}"
    runs: list[Any] = []

    async def handle(job: Any) -> None:
        runs.append(job.data)

    await ctx.worker({"x": handle})
    await ctx.node_wait_state(first, "completed")
    counts = await ctx.node.queue_call(ctx.queue, "getJobCounts")
    assert sum(counts.values()) == 1 and runs == [{"from": "node"}], (counts, runs)


@scenario("dedup", P2N, "a deduplication id used by Python dedups a Node add; one run")
async def dedup_p2n(ctx: Ctx) -> None:
    dedup_id = f"d-{uuid.uuid4().hex[:6]}"
    producer = ctx.producer()
    first = await producer.enqueue("x", {"from": "python"}, deduplication=dedup_id)
    second = await ctx.node.add(ctx.queue, "x", {"from": "node"}, {"deduplication": {"id": dedup_id}})
    assert second == first.id, f"Node's duplicate got id {second}, Python's job is {first.id}"
    assert await ctx.node.queue_call(ctx.queue, "getDeduplicationJobId", dedup_id) == first.id
    await ctx.node_worker("async job => job.data")
    assert await producer.result(first.id, timeout=10) == {"from": "python"}
    counts = await ctx.node.queue_call(ctx.queue, "getJobCounts")
    assert sum(counts.values()) == 1, counts


# --- flows ------------------------------------------------------------------------------------


@scenario("flow", N2P, "a flow added by Node: children run on Python, the parent on Node reads their values")
async def flow_n2p(ctx: Ctx) -> None:
    parent_q, child_q = ctx.queue_name("parent"), ctx.queue_name("child")
    tree = await ctx.node.call("flow.add", flow={
        "name": "parent", "queueName": parent_q, "data": {},
        "children": [{"name": "child", "queueName": child_q, "data": {"n": n}} for n in (1, 2)]})
    parent_id = tree["id"]
    assert (await ctx.node_wait_state(parent_id, "waiting-children", parent_q))["state"] == "waiting-children"

    async def child(job: Any) -> Any:
        return {"n10": job.data["n"] * 10}

    await ctx.worker({"child": child}, queue=child_q)
    await ctx.node_worker(
        "async job => { const v = await job.getChildrenValues();"
        " return { keys: Object.keys(v).sort(), values: Object.values(v).map(x => x.n10).sort((a, b) => a - b) } }",
        queue=parent_q)
    parent = await ctx.node_wait_state(parent_id, "completed", parent_q)
    child_keys = sorted(f"bull:{child_q}:{c['id']}" for c in tree["children"])
    assert parent["returnvalue"] == {"keys": child_keys, "values": [10, 20]}, parent["returnvalue"]


@scenario("flow", P2N, "a flow added by Python: children run on Node, the parent on Python reads their values")
async def flow_p2n(ctx: Ctx) -> None:
    from bullbridge.flows import FlowJob, FlowProducer

    parent_q, child_q = ctx.queue_name("parent"), ctx.queue_name("child")
    async with FlowProducer(ctx.redis_url) as flows:
        tree = await flows.add(FlowJob("parent", parent_q, {}, children=[
            FlowJob("child", child_q, {"n": n}) for n in (1, 2)]))
    parents = ctx.producer(parent_q)
    assert await parents.get_state(tree.id) == "waiting-children"
    seen = await ctx.node.get_job(child_q, tree.children[0].id)
    assert seen is not None and seen["parentKey"] == tree.key, seen and seen.get("parentKey")
    await ctx.node_worker("async job => ({ n10: job.data.n * 10 })", queue=child_q)

    async def parent(job: Any) -> Any:
        values = await job.children_values()
        return {"keys": sorted(values), "values": sorted(v["n10"] for v in values.values())}

    await ctx.worker({"parent": parent}, queue=parent_q)
    result = await parents.result(tree.id, timeout=10)
    assert result == {"keys": sorted(c.key for c in tree.children), "values": [10, 20]}, result


# --- schedulers --------------------------------------------------------------------------------

EVERY_MS = 200


@scenario("scheduler", N2P, "a job scheduler upserted by Node fires on a Python worker")
async def scheduler_n2p(ctx: Ctx) -> None:
    await ctx.node.eval(
        "await queue(args.q).upsertJobScheduler('tick', { every: args.every },"
        " { name: 'tick', data: { from: 'node' } });",
        q=ctx.queue, every=EVERY_MS)
    ctx.on_close(lambda: ctx.node.queue_call(ctx.queue, "removeJobScheduler", "tick"))
    runs: list[tuple[str, Any]] = []

    async def tick(job: Any) -> None:
        runs.append((str(job.id), job.data))

    await ctx.worker({"tick": tick})
    await wait_until(lambda: len(runs) >= 3, 10, f"3 scheduled runs on Python (ran {runs})")
    ids = [job_id for job_id, _ in runs]
    assert len(set(ids)) == len(ids), f"an iteration ran twice: {ids}"
    assert all("tick" in job_id for job_id in ids), ids
    assert all(data == {"from": "node"} for _, data in runs), runs


@scenario("scheduler", P2N, "a job scheduler declared in Python (bullbridge.scheduler.sync) fires on a Node worker")
async def scheduler_p2n(ctx: Ctx) -> None:
    from bullbridge.scheduler import Declaration, Schedule, sync

    await sync(Declaration(f"compat-{uuid.uuid4().hex[:6]}", (
        Schedule(id="tick", queue=ctx.queue, every=EVERY_MS, name="tick", data={"from": "python"}),)),
        ctx.redis_url)
    ctx.on_close(lambda: ctx.node.queue_call(ctx.queue, "removeJobScheduler", "tick"))
    handle = await ctx.node_worker("async job => ({ id: job.id, data: job.data })")
    events = await ctx.node.wait_event(handle, "completed", count=3, timeout=10)
    ids = [e["jobId"] for e in events]
    assert len(set(ids)) == len(ids) and all("tick" in i for i in ids), ids
    assert all(e["returnvalue"]["data"] == {"from": "python"} for e in events)


# --- global rate limit and concurrency -----------------------------------------------------------

RATE_MAX, RATE_MS, RATE_JOBS = 2, 400, 6


def check_rate(starts_ms: list[float]) -> None:
    ordered = sorted(starts_ms)
    assert len(ordered) == RATE_JOBS, f"{len(ordered)} of {RATE_JOBS} jobs ran"
    rel = [round(s - ordered[0]) for s in ordered]
    for a, b in zip(ordered, ordered[RATE_MAX:]):
        assert b - a >= RATE_MS - 50, f"more than {RATE_MAX} starts within {RATE_MS} ms: starts at {rel} ms"


async def _port_queue(ctx: Ctx) -> Any:
    """The Python port's own Queue (bullbridge has no API for the queue-wide limits)."""
    import bullmq

    queue = bullmq.Queue(ctx.queue, {"connection": ctx.redis_url})
    ctx.on_close(queue.close)
    return queue


@scenario("global_rate_limit", N2P, "a global rate limit set by Node (setGlobalRateLimit) holds a Python worker")
async def global_rate_limit_n2p(ctx: Ctx) -> None:
    await ctx.node.queue_call(ctx.queue, "setGlobalRateLimit", RATE_MAX, RATE_MS)
    await ctx.node.call("queue.addBulk", queue=ctx.queue, jobs=[{"name": "x", "data": {"i": i}}
                                                               for i in range(RATE_JOBS)])
    starts: list[float] = []

    async def handle(job: Any) -> None:
        starts.append(time.time() * 1000)

    await ctx.worker({"x": handle}, concurrency=3)
    await wait_until(lambda: len(starts) == RATE_JOBS, 10, f"{RATE_JOBS} jobs run (ran {len(starts)})")
    check_rate(starts)


@scenario("global_rate_limit", P2N, "a global rate limit set by Python (the port's Queue) holds a Node worker")
async def global_rate_limit_p2n(ctx: Ctx) -> None:
    await (await _port_queue(ctx)).setGlobalRateLimit(RATE_MAX, RATE_MS)
    producer = ctx.producer()
    jobs = await producer.enqueue_bulk([("x", {"i": i}) for i in range(RATE_JOBS)])
    await ctx.node_worker("async job => 1", concurrency=3)
    await asyncio.gather(*(producer.result(j.id, timeout=10) for j in jobs))
    stored = [await producer.get_job(j.id) for j in jobs]
    check_rate([float(s.processed_on) for s in stored if s is not None and s.processed_on is not None])


def check_serial(intervals: list[tuple[int, int]], n: int) -> None:
    assert len(intervals) == n, f"{len(intervals)} of {n} jobs finished"
    ordered = sorted(intervals)
    for (_, end), (start, _) in itertools.pairwise(ordered):
        assert start >= end, f"two jobs ran at once under global concurrency 1: {ordered}"


async def _intervals(producer: Producer, ids: list[str]) -> list[tuple[int, int]]:
    out = []
    for job_id in ids:
        job = await producer.get_job(job_id)
        if job is not None and job.processed_on is not None and job.finished_on is not None:
            out.append((job.processed_on, job.finished_on))
    return out


@scenario("global_concurrency", N2P, "global concurrency 1 set by Node serialises a Python worker")
async def global_concurrency_n2p(ctx: Ctx) -> None:
    await ctx.node.queue_call(ctx.queue, "setGlobalConcurrency", 1)
    ids = await ctx.node.call("queue.addBulk", queue=ctx.queue, jobs=[{"name": "x", "data": {"i": i}}
                                                                     for i in range(5)])
    running = peak = 0

    async def handle(job: Any) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1

    await ctx.worker({"x": handle}, concurrency=4)
    for job_id in ids:
        await ctx.node_wait_state(str(job_id), "completed")
    assert peak == 1, f"{peak} jobs ran at once"
    check_serial(await _intervals(ctx.producer(), [str(i) for i in ids]), 5)


@scenario("global_concurrency", P2N, "global concurrency 1 set by Python (the port's Queue) serialises a Node worker")
async def global_concurrency_p2n(ctx: Ctx) -> None:
    await (await _port_queue(ctx)).setGlobalConcurrency(1)
    producer = ctx.producer()
    jobs = await producer.enqueue_bulk([("x", {"i": i}) for i in range(5)])
    await ctx.node_worker("async job => { await sleep(50); return 1 }", concurrency=4)
    await asyncio.gather(*(producer.result(j.id, timeout=10) for j in jobs))
    check_serial(await _intervals(producer, [j.id for j in jobs]), 5)


# --- pause / resume -----------------------------------------------------------------------------


@scenario("pause_resume", N2P,
          "Python pauses (a job already waiting), Node adds, Python resumes: held, then both run on Python")
async def pause_resume_n2p(ctx: Ctx) -> None:
    from bullbridge.monitor import Monitor

    monitor = Monitor(ctx.redis_url)
    ctx.on_close(monitor.close)
    actions = monitor.actions(ctx.queue)
    before = await ctx.node.add(ctx.queue, "x", {"when": "before"})
    await actions.pause()
    ran: list[str] = []

    async def handle(job: Any) -> None:
        ran.append(str(job.id))

    await ctx.worker({"x": handle})
    during = await ctx.node.add(ctx.queue, "x", {"when": "during"})
    await holds(lambda: not ran, 0.3, f"jobs ran while Python had the queue paused: {ran}")
    await actions.resume()
    await wait_until(lambda: sorted(ran) == sorted([before, during]), 3,
                     f"jobs {before} and {during} run after Python resumed the queue (ran {ran})")
    for job_id in (before, during):
        await ctx.node_wait_state(job_id, "completed")


@scenario("pause_resume", P2N,
          "Node pauses (a job already waiting), Python adds, Node resumes: held, then both run on Node")
async def pause_resume_p2n(ctx: Ctx) -> None:
    producer = ctx.producer()
    before = await producer.enqueue("x", {"when": "before"})
    await ctx.node.queue_call(ctx.queue, "pause")
    handle = await ctx.node_worker("async job => job.data.when")
    during = await producer.enqueue("x", {"when": "during"})
    await holds(lambda: not [e for e in ctx.node.events[handle] if e.event in ("active", "completed")], 0.3,
                "a job ran while Node had the queue paused")
    await ctx.node.queue_call(ctx.queue, "resume")
    for job, when in ((before, "before"), (during, "during")):
        try:
            assert await producer.result(job.id, timeout=3) == when
        except JobTimeout:
            state = await producer.get_state(job.id)
            added = "before Node paused the queue" if when == "before" else "while Node had the queue paused"
            raise AssertionError(f"job {job.id} (added from Python {added}) did not run within 3 s of Node "
                                 f"resuming the queue (state: {state})") from None


@scenario("pause_resume_idle", N2P,
          "Python pauses an empty queue, Node adds, Python resumes: an idle Python worker picks the job up at once")
async def pause_resume_idle_n2p(ctx: Ctx) -> None:
    from bullbridge.monitor import Monitor

    monitor = Monitor(ctx.redis_url)
    ctx.on_close(monitor.close)
    actions = monitor.actions(ctx.queue)
    ran: list[str] = []

    async def handle(job: Any) -> None:
        ran.append(str(job.id))

    await ctx.worker({"x": handle})
    await actions.pause()
    job_id = await ctx.node.add(ctx.queue, "x", {})
    await holds(lambda: not ran, 0.3, f"job {job_id} ran while Python had the queue paused")
    await actions.resume()
    await wait_until(lambda: ran == [job_id], 1, f"job {job_id} picked up within 1 s of Python resuming the queue")


@scenario("pause_resume_idle", P2N,
          "Node pauses an empty queue, Python adds, Node resumes: an idle Node worker picks the job up at once")
async def pause_resume_idle_p2n(ctx: Ctx) -> None:
    handle = await ctx.node_worker("async job => 'ran'")
    await ctx.node.queue_call(ctx.queue, "pause")
    producer = ctx.producer()
    job = await producer.enqueue("x", {})
    await holds(lambda: not [e for e in ctx.node.events[handle] if e.event in ("active", "completed")], 0.3,
                f"job {job.id} ran while Node had the queue paused")
    await ctx.node.queue_call(ctx.queue, "resume")
    try:
        assert await producer.result(job.id, timeout=1) == "ran"
    except JobTimeout:
        state = await producer.get_state(job.id)
        raise AssertionError(f"job {job.id} (added from Python while Node had the queue paused) not picked up "
                             f"within 1 s of Node resuming the queue (state: {state})") from None


# --- stalled recovery -----------------------------------------------------------------------------

#: A Python worker in a process of its own, to be SIGKILLed mid-job.
_CRASHING_WORKER = """
import asyncio, sys
from bullbridge import Worker, WorkerSettings

async def main():
    async def slow(job):
        print("start", job.id, flush=True)
        await asyncio.sleep(120)

    worker = Worker(sys.argv[1], {"*": slow}, connection=sys.argv[2],
                    settings=WorkerSettings(lock_duration=1000, stalled_interval=500))
    await worker.start()
    print("ready", flush=True)
    await asyncio.sleep(300)

asyncio.run(main())
"""


@scenario("stalled_recovery", N2P, "a Node worker killed mid-job: a Python worker recovers and runs the job")
async def stalled_n2p(ctx: Ctx) -> None:
    doomed = NodeDriver(ctx.redis_url, driver=ctx.node.driver, node_path=ctx.node.node_path)
    if getattr(ctx.node, "node_modules", None):  # the same bullmq as the main driver
        doomed.node_modules = ctx.node.node_modules
    await doomed.start()
    ctx.on_close(doomed.kill)
    await doomed.start_worker(ctx.queue, "async job => { await sleep(60000) }", lockDuration=1000,
                              stalledInterval=500, handle="doomed")
    job_id = await ctx.node.add(ctx.queue, "x", {})
    await doomed.wait_event("doomed", "active", timeout=5)
    await doomed.kill(signal.SIGKILL)
    stalled: list[str] = []

    async def handle(job: Any) -> str:
        return "recovered by python"

    worker = Worker(ctx.queue, {"x": handle}, connection=ctx.redis_url, settings=WorkerSettings(stalled_interval=500))
    worker.on("stalled", stalled.append)
    ctx.on_close(lambda: worker.close(timeout=5))
    await worker.start()
    job = await ctx.node_wait_state(job_id, "completed", timeout=8)
    assert job["returnvalue"] == "recovered by python"
    assert stalled == [job_id], stalled


@scenario("stalled_recovery", P2N, "a Python worker killed mid-job: a Node worker recovers and runs the job")
async def stalled_p2n(ctx: Ctx) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CRASHING_WORKER, ctx.queue, ctx.redis_url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)

    async def reap() -> None:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()

    ctx.on_close(reap)
    assert proc.stdout is not None

    async def line() -> str:
        assert proc.stdout is not None
        return (await asyncio.wait_for(proc.stdout.readline(), 15)).decode().strip()

    assert await line() == "ready", "the Python worker process did not start"
    producer = ctx.producer()
    job = await producer.enqueue("x", {})
    assert await line() == f"start {job.id}"
    proc.kill()
    await proc.wait()
    handle = await ctx.node_worker("async job => 'recovered by node'", stalledInterval=500, lockDuration=1000)
    outcome = await producer.wait_for(job.id, timeout=8)
    assert outcome.state == "completed" and outcome.returnvalue == "recovered by node", outcome
    stalled = [e["jobId"] for e in ctx.node.events[handle] if e.event == "stalled"]
    assert stalled == [job.id], stalled


# --- command line (what compat/run.py runs in each environment) -------------------------------------


def select(only: list[str] | None) -> list[Scenario]:
    """Scenarios whose name or id is in ``only`` (all when empty)."""
    if not only:
        return list(SCENARIOS)
    chosen = [s for s in SCENARIOS if s.name in only or s.id in only]
    unknown = set(only) - {s.name for s in SCENARIOS} - {s.id for s in SCENARIOS}
    if unknown:
        raise SystemExit(f"unknown scenarios: {', '.join(sorted(unknown))}")
    return chosen


def port_version() -> str:
    from importlib.metadata import version

    return version("bullmq")


async def redis_version(redis_url: str) -> str:
    from bullbridge.connection import connect, parse_info

    connector = connect(redis_url)
    try:
        info = parse_info(await connector.fast("bullbridge-compat").execute("INFO", "server"))
        return info.get("redis_version", "unknown")
    finally:
        await connector.close()


async def run_all(redis_url: str, driver: Path, node_path: str | None, only: list[str] | None,
                  expect_node: str | None) -> dict[str, Any]:
    node = NodeDriver(redis_url, driver=driver, node_path=node_path)
    await node.start()
    try:
        if expect_node and node.bullmq_version != expect_node:
            raise SystemExit(f"the Node driver loaded bullmq {node.bullmq_version}, not {expect_node}: "
                             "check NODE_PATH and that the driver sits outside any node_modules tree")
        info = await node.call("ping")
        results = []
        for s in select(only):
            result = await run_scenario(s, redis_url, node)
            log.info("%-34s %s %.2fs %s", s.id, result.status, result.seconds, result.error or "")
            results.append(asdict(result))
        return {"node_bullmq": node.bullmq_version, "node": info["node"], "python_port": port_version(),
                "python": sys.version.split()[0], "redis": await redis_version(redis_url), "results": results}
    finally:
        await node.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compat.scenarios",
                                     description="Run the interop scenarios against one version pair")
    parser.add_argument("--redis", required=True, metavar="URL")
    parser.add_argument("--driver", type=Path, default=DEFAULT_DRIVER, help="the Node driver script")
    parser.add_argument("--node-path", help="NODE_PATH for the driver (a node_modules holding bullmq)")
    parser.add_argument("--expect-node", metavar="VERSION", help="refuse to run unless the driver loads this bullmq")
    parser.add_argument("--only", action="append", help="scenario name or id (repeatable)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("bullbridge.worker").setLevel(logging.ERROR)
    report = asyncio.run(run_all(args.redis, args.driver, args.node_path, args.only, args.expect_node))
    text = json.dumps(report, indent=2, ensure_ascii=False)
    if args.json:
        args.json.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

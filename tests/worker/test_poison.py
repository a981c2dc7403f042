"""Poison jobs and unknown backoff types
(docs/port-differences.md#poison-jobs, docs/port-differences.md#unknown-backoff).

A job hash written by a foreign writer can be broken. The port fails to parse
it after locking it, emits an error, and the job stalls and comes back forever;
a job whose hash vanished is "completed" with ``data={}``. An unknown backoff
type makes it raise inside moveToFailed: the job stalls twice and fails as
"stalled more than allowable limit". Ours fails such jobs at once, with a
reason naming the problem, and keeps serving good jobs.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import redis.asyncio as redis

from bullbridge import Queue
from bullbridge.testing.node import NodeDriver
from tests.timing import NodeBaseline, assert_as_punctual_as_node, concurrently, now_ms, record
from tests.worker.impls import PyWorker, impls, wait_until

CORRUPTIONS: list[tuple[str, dict[str, Any], str]] = [
    ("data-not-json", {"data": "{not json"}, "field 'data' is not valid JSON"),
    ("data-not-utf8", {"data": b'{"a": "\xff\xfe"}'}, "field 'data' is not UTF-8"),
    ("opts-not-json", {"opts": "[[["}, "field 'opts' is not valid JSON"),
    ("opts-not-object", {"opts": "[1, 2]"}, "field 'opts' is JSON but not an object"),
    ("timestamp-not-number", {"timestamp": "yesterday"}, "field 'timestamp' is not a number"),
    ("attempts-not-number", {"atm": "many"}, "field 'atm' is not a number"),
    # BullMQ's own fetch script fails half way on this one (HINCRBY ats), leaving it active.
    ("started-not-number", {"ats": "some"}, "field 'ats' is not a number"),
]


async def _corrupt(redis_url: str, key: str, fields: dict[str, Any]) -> None:
    client = redis.from_url(redis_url)
    try:
        await client.hset(key, mapping=fields)
    finally:
        await client.aclose()


@pytest.mark.parametrize(("case", "fields", "reason"), CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
async def test_corrupt_job_fails_with_reason_and_worker_goes_on(
    case: str, fields: dict[str, Any], reason: str, redis_url: str, make_worker, producer: Queue
) -> None:
    handled: list[str] = []

    async def handle(job):
        handled.append(job.id)
        return "ok"

    bad = await producer.add("job", {"fine": True}, attempts=5)
    await _corrupt(redis_url, producer.keys.job(bad.id), fields)
    good = await producer.add("job", {"fine": True})
    worker = make_worker({"job": handle})
    await worker.start()
    outcome = await producer.wait_for(bad.id, timeout=5)
    assert outcome.state == "failed"
    assert outcome.failed_reason is not None and reason in outcome.failed_reason, outcome.failed_reason
    assert outcome.failed_reason.startswith("corrupt job:")
    assert await producer.result(good.id, timeout=5) == "ok"
    assert handled == [good.id], "the handler must never see a corrupt job"
    stored = await producer.get_job(bad.id)
    assert stored is not None and stored.attempts_made == 1, "a corrupt job is not retried"


@impls("a corrupt job cycles through stall recovery instead of failing")
async def test_corrupt_data_fails_promptly(impl: str, redis_url: str, producer: Queue, queue_name: str) -> None:
    async def body(job):
        return "ok"

    bad = await producer.add("job", {"a": 1})
    await _corrupt(redis_url, producer.keys.job(bad.id), {"data": "{not json"})
    worker = await PyWorker(impl, queue_name, redis_url, body, stalled_interval=1000, lock_duration=1000).start()
    try:
        assert await wait_until(lambda: False, timeout=0) is False
        state = None
        for _ in range(200):
            state = await producer.get_job_state(bad.id)
            if state == "failed":
                break
            await _sleep(0.02)
        assert state == "failed", f"corrupt job is {state}, not failed"
    finally:
        await worker.close()


@impls("a job whose hash vanished is completed with data={}")
async def test_vanished_job_fails_not_completes(impl: str, redis_url: str, producer: Queue, queue_name: str) -> None:
    seen: list[Any] = []

    async def body(job):
        seen.append(job.data)
        return "ok"

    ghost = await producer.add("job", {"a": 1})
    client = redis.from_url(redis_url)
    await client.delete(producer.keys.job(ghost.id))
    await client.aclose()
    worker = await PyWorker(impl, queue_name, redis_url, body).start()
    try:
        outcome = await producer.wait_for(ghost.id, timeout=4)  # failure detector for one job
        assert outcome.state == "failed", f"vanished job ended {outcome.state} (handler saw {seen})"
        assert outcome.failed_reason and "job hash is missing" in outcome.failed_reason
        assert seen == []
    finally:
        await worker.close()


async def test_unknown_job_name_fails_clearly_without_retry(make_worker, producer: Queue) -> None:
    async def known(job):
        return 1

    worker = make_worker({"known": known})
    await worker.start()
    job = await producer.add("mystery", {}, attempts=3)
    outcome = await producer.wait_for(job.id, timeout=5)
    assert outcome.state == "failed"
    assert outcome.failed_reason == (
        f"UnknownJobName: no handler for job name 'mystery' on queue '{producer.name}' (handlers: known); "
        "register one or a fallback"
    )
    stored = await producer.get_job(job.id)
    assert stored is not None and stored.attempts_made == 1


async def test_fallback_handler_takes_unknown_names(make_worker, producer: Queue) -> None:
    worker = make_worker()

    @worker.handler("known")
    async def known(job):
        return "known"

    @worker.fallback
    async def anything(job):
        return f"fallback:{job.name}"

    await worker.start()
    a = await producer.add("known", {})
    b = await producer.add("other", {})
    assert await producer.result(a.id, timeout=5) == "known"
    assert await producer.result(b.id, timeout=5) == "fallback:other"


@impls("an unknown backoff type stalls the job twice and fails it as 'stalled'")
async def test_unknown_backoff_type_from_node_fails_clearly(
    impl: str, node: NodeDriver, redis_url: str, producer: Queue, queue_name: str
) -> None:
    runs: list[int] = []

    async def body(job):
        runs.append(1)
        raise RuntimeError("flaky")

    worker = await PyWorker(impl, queue_name, redis_url, body, stalled_interval=1000, lock_duration=1000).start()
    try:
        job_id = await node.add(
            queue_name, "job", {}, {"attempts": 3, "backoff": {"type": "jittered-linear", "delay": 100}}
        )
        outcome = await producer.wait_for(job_id, timeout=4)  # failure detector (1 s stall cycles for the port)
        assert outcome.state == "failed"
        assert outcome.failed_reason is not None
        assert "unknown backoff type 'jittered-linear'" in outcome.failed_reason, outcome.failed_reason
        assert outcome.failed_reason.startswith("RuntimeError: flaky")
        assert runs == [1]
    finally:
        await worker.close()


async def test_custom_backoff_registered_in_python_serves_node_jobs(
    node: NodeDriver, make_worker, producer: Queue
) -> None:
    starts: list[float] = []
    calls: list[tuple[int, str]] = []

    def linear(attempts_made: int, kind: str, err: BaseException, job: Any) -> int:
        calls.append((attempts_made, kind))
        return 100 * attempts_made

    async def handle(job):
        starts.append(now_ms())
        if len(starts) < 3:
            raise RuntimeError("again")
        return "third time"

    worker = make_worker({"job": handle}, backoff_strategies={"linear": linear})
    await worker.start()
    async with NodeBaseline(node, producer.name) as baseline:
        # Node's twin of linear 100 (100, 200 ms) is exponential 100, timed by Node's worker meanwhile.
        job_id, theirs = await concurrently(
            node.add(producer.name, "job", {}, {"attempts": 3, "backoff": {"type": "linear"}}),
            baseline.backoff_lateness({"type": "exponential", "delay": 100}, 3, [100, 200]),
        )
        assert await producer.result(job_id, timeout=10) == "third time"  # failure detector
    assert calls == [(1, "linear"), (2, "linear")]
    ours = [b - a - g for (a, b), g in zip(itertools.pairwise(starts), (100, 200))]
    record("test_custom_backoff_registered_in_python_serves_node_jobs", ours=ours, node=theirs)
    assert_as_punctual_as_node(ours, theirs, "custom linear backoff 100/200 ms")


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


# Options a foreign writer stored that Node 6.7 still reads (job.js shouldRetryJob:
# `attemptsMade + 1 < opts.attempts`, JS coercion included; Backoffs.calculate: a delay of -1
# means "do not retry", any other negative one retries at once, the delayed score being
# `timestamp + (delay > 0 ? delay : 0)`). Each job runs on a Python and on a Node worker
# whose processors always throw: both must make the same number of attempts.
RETRY_EDGES: list[tuple[str, str, int]] = [
    ("attempts-numeric-string", '{"attempts": "3"}', 3),
    ("attempts-padded-string", '{"attempts": " 2 "}', 2),
    ("attempts-hex-string", '{"attempts": "0x3"}', 3),
    ("attempts-fraction", '{"attempts": 2.5}', 3),
    ("attempts-negative", '{"attempts": -1}', 1),
    ("attempts-zero", '{"attempts": 0}', 1),
    ("backoff-negative-number", '{"attempts": 2, "backoff": -1000}', 2),
    ("backoff-negative-delay", '{"attempts": 2, "backoff": {"type": "fixed", "delay": -1000}}', 2),
    ("backoff-string-delay", '{"attempts": 3, "backoff": {"type": "fixed", "delay": "10"}}', 3),
    ("custom-backoff-minus-one", '{"attempts": 3, "backoff": {"type": "never"}}', 1),
]


@pytest.mark.parametrize(("case", "opts", "attempts"), RETRY_EDGES, ids=[e[0] for e in RETRY_EDGES])
async def test_retry_edge_cases_attempt_as_often_as_node(
    case: str, opts: str, attempts: int, node: NodeDriver, make_worker, producer: Queue, redis_url: str
) -> None:
    node_queue = producer.name + "-node"
    runs: list[str] = []

    async def fail(job):
        runs.append(job.id)
        raise RuntimeError("always")

    ours = await producer.add("job", {})
    async with Queue(node_queue, connection=redis_url) as theirs_producer:
        theirs = await theirs_producer.add("job", {})
        await _corrupt(redis_url, producer.keys.job(ours.id), {"opts": opts})
        await _corrupt(redis_url, theirs_producer.keys.job(theirs.id), {"opts": opts})
        await make_worker({"job": fail}, backoff_strategies={"never": lambda *_: -1}).start()
        handle = await node.start_worker(
            node_queue, "async job => { throw new Error('always') }", backoffStrategy="() => -1"
        )
        try:
            mine = await producer.wait_for(ours.id, timeout=10)  # failure detector
            node_outcome = await theirs_producer.wait_for(theirs.id, timeout=10)
            node_job = await theirs_producer.get_job(theirs.id)
        finally:
            await node.close_worker(handle)
    job = await producer.get_job(ours.id)
    assert mine.state == node_outcome.state == "failed"
    assert job is not None and node_job is not None
    assert (job.attempts_made, node_job.attempts_made) == (attempts, attempts), case
    assert len(runs) == attempts
    if case == "custom-backoff-minus-one":
        assert "not retried: the backoff strategy returned -1" in (mine.failed_reason or "")


class _UnreadableMessage(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message for you")


class _BrokenNotes(Exception):
    """``traceback`` reads ``__notes__`` with getattr: this one raises, inside the failure path."""

    @property
    def __notes__(self) -> list[str]:  # type: ignore[override]
        raise RuntimeError("notes broken")


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (_UnreadableMessage, "_UnreadableMessage: <its message could not be read: RuntimeError>"),
        (_BrokenNotes, "_BrokenNotes: x (not retried: failing the attempt raised RuntimeError: notes broken)"),
    ],
    ids=["unreadable-message", "failure-path-raises"],
)
async def test_an_error_inside_the_failure_path_still_fails_the_job_once(
    error: type[Exception], reason: str, make_worker, producer: Queue
) -> None:
    """It was a stall loop and a second run (``{"attempts": NaN}``: ``cannot convert float NaN``)."""
    runs: list[str] = []

    async def handle(job):
        runs.append(job.id)
        if job.data.get("bad"):
            raise error("x")
        return "ok"

    worker = make_worker({"job": handle}, stalled_interval=1000, lock_duration=1000)
    await worker.start()
    bad = await producer.add("job", {"bad": True}, attempts=1)
    outcome = await producer.wait_for(bad.id, timeout=10)  # failure detector
    assert outcome.state == "failed" and outcome.failed_reason == reason, outcome
    good = await producer.add("job", {})
    assert await producer.result(good.id, timeout=10) == "ok"
    assert runs == [bad.id, good.id], "the bad job ran once, and the worker goes on"
    assert await worker.client.execute("LLEN", producer.keys["active"]) == 0


async def test_a_marker_scored_infinity_does_not_stop_the_worker(redis_url: str, make_worker, producer: Queue) -> None:
    """A foreign writer's marker with an ``inf`` score (Redis replies "inf"): the worker's fetch
    loop takes it as "due now" and serves the queue (it raised OverflowError converting it)."""
    done: list[str] = []

    async def handle(job):
        done.append(job.id)
        return "ok"

    await _zadd(redis_url, producer.keys["marker"], {"0": float("inf")})
    worker = make_worker({"job": handle})
    await worker.start()
    job = await producer.add("job", {})
    outcome = await producer.wait_for(job.id, timeout=10)  # a failure detector
    assert outcome.state == "completed" and done == [job.id]


async def _zadd(redis_url: str, key: str, members: dict[str, float]) -> None:
    client = redis.from_url(redis_url)
    try:
        await client.zadd(key, members)
    finally:
        await client.aclose()

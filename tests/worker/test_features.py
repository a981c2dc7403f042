"""What a handler can do with its job, and how the worker reports and closes."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from bullbridge import Queue, Worker
from bullbridge.errors import ConfigurationError
from bullbridge.testing.node import NodeDriver
from bullbridge.worker import WorkerSettings
from tests.timing import NodeBaseline, assert_as_punctual_as_node, concurrently, now_ms, record
from tests.worker.impls import wait_until


async def test_progress_and_logs_from_a_thread_handler_reach_node(
    node: NodeDriver, make_worker, producer: Queue
) -> None:
    def resize(job):  # plain function: runs in a thread
        for pct in (10, 50, 100):
            job.update_progress(pct)
            job.log(f"at {pct}%").result(timeout=5)  # a thread handler may block until Redis confirms
            time.sleep(0.01)
        return "resized"

    progress_seen: list[object] = []
    worker = make_worker({"resize": resize})
    worker.on("progress", lambda job, value: progress_seen.append(value))
    await worker.start()
    job = await producer.add("resize", {}, keep_logs=2)
    assert await producer.result(job.id, timeout=5) == "resized"
    logs = await node.queue_call(producer.name, "getJobLogs", job.id)
    assert logs == {"logs": ["at 50%", "at 100%"], "count": 2}, "keep_logs=2 keeps the last two lines"
    seen = await node.get_job(producer.name, job.id)
    assert seen is not None and seen["progress"] == 100
    assert await wait_until(lambda: progress_seen == [10, 50, 100], timeout=5), progress_seen  # failure detector


async def test_delay_until_moves_the_job_back_without_using_an_attempt(
    node: NodeDriver, make_worker, producer: Queue
) -> None:
    starts: list[float] = []

    async def handle(job):
        starts.append(now_ms())
        if len(starts) == 1:
            await job.delay_until(timedelta(milliseconds=300))
        return "later"

    worker = make_worker({"x": handle})
    await worker.start()
    async with NodeBaseline(node, producer.name) as baseline:
        await baseline.warm_up()
        # Node's worker times a 300 ms delayed job of its own meanwhile: the timer baseline.
        job, node_id = await concurrently(producer.add("x", {}, attempts=1), baseline.add(300))
        assert await producer.result(job.id, timeout=10) == "later"  # failure detector
        theirs = [await baseline.lateness(node_id, 300)]
    ours = [starts[1] - starts[0] - 300]
    record("test_delay_until_moves_the_job_back_without_using_an_attempt", ours=ours, node=theirs)
    assert_as_punctual_as_node(ours, theirs, "delay_until(300 ms) from a handler")
    stored = await producer.get_job(job.id)
    assert stored is not None and stored.attempts_made == 1


async def test_unrecoverable_error_skips_remaining_attempts(make_worker, producer: Queue) -> None:
    from bullbridge import UnrecoverableError

    runs: list[int] = []

    async def handle(job):
        runs.append(1)
        raise UnrecoverableError("card declined")

    worker = make_worker({"x": handle})
    await worker.start()
    job = await producer.add("x", {}, attempts=5, backoff=10)
    outcome = await producer.wait_for(job.id, timeout=5)
    assert outcome.state == "failed" and outcome.failed_reason == "UnrecoverableError: card declined"
    assert runs == [1]


async def test_unrecoverable_error_thrown_by_node_is_honoured_for_node_jobs(node: NodeDriver, producer: Queue) -> None:
    handle = await node.start_worker(producer.name, "async job => { throw new bullmq.UnrecoverableError('nope') }")
    try:
        job = await producer.add("x", {}, attempts=4)
        outcome = await producer.wait_for(job.id, timeout=5)
        assert outcome.state == "failed" and outcome.failed_reason == "nope"
        stored = await producer.get_job(job.id)
        assert stored is not None and stored.attempts_made == 1
    finally:
        await node.close_worker(handle)


async def test_return_value_node_cannot_read_fails_the_job_clearly(make_worker, producer: Queue) -> None:
    async def handle(job):
        return {"ok": float("nan")}

    worker = make_worker({"x": handle})
    await worker.start()
    job = await producer.add("x", {}, attempts=3)
    outcome = await producer.wait_for(job.id, timeout=5)
    assert outcome.state == "failed"
    assert outcome.failed_reason is not None and "return value is not JSON-safe" in outcome.failed_reason
    assert "$.ok" in outcome.failed_reason


async def test_worker_default_remove_on_complete_and_job_override(make_worker, producer: Queue) -> None:
    async def handle(job):
        return job.data

    worker = make_worker({"x": handle}, remove_on_complete=True)
    await worker.start()
    gone = await producer.add("x", 1)
    kept = await producer.add("x", 2, remove_on_complete=False)
    assert await producer.result(gone.id, timeout=5) == 1
    assert await producer.result(kept.id, timeout=5) == 2
    assert await producer.get_job(gone.id) is None
    assert await producer.get_job(kept.id) is not None


async def test_close_with_deadline_hands_running_jobs_back_at_once(
    node: NodeDriver, redis_url: str, producer: Queue, queue_name: str
) -> None:
    started = asyncio.Event()

    async def slow(job):
        started.set()
        await asyncio.sleep(30)

    worker = Worker(queue_name, {"x": slow}, connection=redis_url)
    await worker.start()
    job = await producer.add("x", {})
    await asyncio.wait_for(started.wait(), 5)
    t0 = time.monotonic()
    clean = await worker.close(timeout=0.5)
    took = time.monotonic() - t0
    record("test_close_with_deadline_hands_running_jobs_back_at_once", took=took)
    # 0.5 s deadline + 2 s for the hand-back, a few Redis calls (measured 0.50-0.52 s in all, idle to heavy).
    assert not clean and took < 2.5, f"close(timeout=0.5) took {took:.2f} s"
    assert await producer.get_job_state(job.id) == "waiting", "the job must be back in wait at once"
    stored = await producer.get_job(job.id)
    assert stored is not None and stored.stalled_counter == 0, "handing back is not a stall"
    handle = await node.start_worker(queue_name, "async job => 'node finished it'")
    try:
        assert await producer.result(job.id, timeout=5) == "node finished it"
    finally:
        await node.close_worker(handle)


async def test_close_waits_for_active_jobs_when_they_finish_in_time(make_worker, producer: Queue) -> None:
    started = asyncio.Event()

    async def short(job):
        started.set()
        await asyncio.sleep(0.3)
        return "finished"

    worker = make_worker({"x": short})
    await worker.start()
    job = await producer.add("x", {})
    await asyncio.wait_for(started.wait(), 5)
    assert await worker.close(timeout=5) is True
    assert await producer.result(job.id, timeout=5) == "finished"  # already finished: a failure detector


async def test_worker_events_fire_in_order(make_worker, producer: Queue) -> None:
    events: list[str] = []
    worker = make_worker()

    @worker.handler("ok")
    async def ok(job):
        return 1

    @worker.handler("bad")
    async def bad(job):
        raise KeyError("missing")

    worker.on("active", lambda job: events.append(f"active:{job.name}"))
    worker.on("completed", lambda job, result: events.append(f"completed:{job.name}"))
    worker.on("failed", lambda job, exc, reason: events.append(f"failed:{reason}"))

    async def broken_listener(job, result):
        raise RuntimeError("listener bug must not hurt the worker")

    worker.on("completed", broken_listener)
    await worker.start()
    a = await producer.add("ok", {})
    await producer.result(a.id, timeout=5)
    b = await producer.add("bad", {})
    await producer.wait_for(b.id, timeout=5)
    assert await wait_until(lambda: len(events) == 4, timeout=5)  # failure detector
    assert events == ["active:ok", "completed:ok", "active:bad", "failed:KeyError: 'missing'"]


def test_settings_are_validated() -> None:
    with pytest.raises(ConfigurationError, match="concurrency"):
        WorkerSettings(concurrency=0)
    with pytest.raises(ConfigurationError, match="lock_renew_time"):
        WorkerSettings(lock_duration=1000, lock_renew_time=2000)
    with pytest.raises(ConfigurationError, match="without spaces"):
        WorkerSettings(name="my worker")
    assert WorkerSettings(lock_duration=timedelta(seconds=2)).lock_renew_ms == 1000


def test_handler_modes_are_checked() -> None:
    worker = Worker("q", connection="redis://127.0.0.1:1")

    def sync(job):
        return 1

    async def coro(job):
        return 1

    with pytest.raises(ConfigurationError, match="not async"):
        worker.handler("a", run_in="loop")(sync)
    with pytest.raises(ConfigurationError, match="plain"):
        worker.handler("b", run_in="thread")(coro)
    worker.handler("c")(sync)
    with pytest.raises(ConfigurationError, match="already has a handler"):
        worker.handler("c")(sync)
    assert worker.registry.resolve("c") is not None and worker.registry.resolve("c").run_in == "thread"


def test_one_way_to_configure_and_to_register_a_fallback() -> None:
    worker = Worker("q", connection="redis://127.0.0.1:1", prefix="{app}", concurrency=3, name="w1")
    assert (worker.settings.concurrency, worker.settings.wire_name, worker.keys["wait"]) == (
        3,
        "bullbridge:w1",
        "{app}:q:wait",
    )
    with pytest.raises(ConfigurationError, match=r"unknown worker setting\(s\) concurency \(known: .*concurrency"):
        Worker("q", connection="redis://127.0.0.1:1", concurency=3)
    with pytest.raises(ConfigurationError, match="'\\*' is not a wildcard"):
        Worker("q", {"*": lambda job: 1}, connection="redis://127.0.0.1:1")

    async def every(job):
        return job.name

    processor = Worker("q", every, connection="redis://127.0.0.1:1")  # Node's processor: every name
    assert processor.registry.resolve("anything") is not None
    decorated = Worker("q", connection="redis://127.0.0.1:1")
    assert decorated.registry.resolve("anything") is None
    decorated.fallback(run_in="thread")(lambda job: 1)
    assert decorated.registry.resolve("anything").run_in == "thread"


def test_a_misspelt_event_name_is_refused() -> None:
    worker = Worker("q", connection="redis://127.0.0.1:1")
    worker.on("lockLost", lambda job: None)
    with pytest.raises(ConfigurationError, match=r"Worker emits no 'lock-lost' event \(it emits: active, "):
        worker.on("lock-lost", lambda job: None)  # type: ignore[arg-type]

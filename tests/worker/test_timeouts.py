"""Handler timeouts (docs/worker.md#timeouts): Node's BullMQ has none.

A handler past its ``timeout`` fails the attempt with ``TimeoutError: handler
'<name>' exceeded <t> s``; the job's attempts and backoff decide what is next.
How the handler is stopped depends on where it runs: an async handler is
cancelled (and never waited for), a thread is abandoned with a WARNING (a
thread cannot be killed), a process pool is replaced (the other jobs with work
in it go back to wait, no attempt counted).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bullbridge import Queue, Worker
from bullbridge.errors import ConfigurationError, LockLost
from bullbridge.testing.node import NodeDriver
from bullbridge.worker import Handler, WorkerSettings
from tests.interop.test_basics import _wait_node_state
from tests.worker import pool_handlers
from tests.worker.faults import Outcomes
from tests.worker.impls import wait_until


def test_timeouts_are_validated_and_a_handler_s_own_wins() -> None:
    for bad in (0, -1, math.nan, "30", True):
        with pytest.raises(ConfigurationError, match="handler_timeout must be a number of seconds"):
            WorkerSettings(handler_timeout=bad)
    assert WorkerSettings(handler_timeout=timedelta(milliseconds=1500)).handler_timeout == 1.5

    async def h(job: Any) -> None: ...

    worker = Worker("q", connection="redis://127.0.0.1:1", handler_timeout=10)
    with pytest.raises(ConfigurationError, match="timeout must be a number of seconds"):
        worker.handler("zero", timeout=0)(h)
    worker.handler("own", timeout=timedelta(seconds=2))(h)
    worker.handler("exempt", timeout=math.inf)(h)
    worker.handler("default")(h)
    worker.registry.update({"mapped": Handler(h, timeout=3)})
    with pytest.raises(ConfigurationError, match="is not async"):
        worker.registry.update({"checked": Handler(lambda job: None, "loop")})  # a Handler(...) is checked too
    timeouts = {name: worker.runner.timeout_of(worker.registry.resolve(name)) for name in worker.registry.names}
    assert timeouts == {"own": 2.0, "exempt": None, "default": 10.0, "mapped": 3.0}
    assert Worker("q", {"x": h}, connection="redis://127.0.0.1:1").runner.timeout_of(Handler(h, "loop")) is None


async def test_an_async_handler_past_its_timeout_is_cancelled_and_attempts_decide(
    make_worker: Any, producer: Queue
) -> None:
    cancelled: list[str] = []

    async def resize(job: Any) -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(job.signal.reason or "")
            raise
        return "never"

    worker = make_worker()
    worker.handler("resize", timeout=0.3)(resize)
    seen = Outcomes(worker)
    await worker.start()
    t0 = time.monotonic()
    job = await producer.add("resize", {}, attempts=2)
    outcome = await producer.wait_for(job.id, timeout=10)  # failure detector: two 0.3 s attempts
    assert time.monotonic() - t0 >= 0.6, "each attempt ran its whole 0.3 s (a lower bound)"
    assert outcome.state == "failed"
    assert outcome.failed_reason == "TimeoutError: handler 'resize' exceeded 0.3 s"
    stored = await producer.get_job(job.id)
    assert stored is not None and stored.attempts_made == 2
    assert await seen.wait(2) == [("retrying", job.id), ("failed", job.id)]  # the worker's own events
    assert cancelled == ["handler 'resize' exceeded 0.3 s"] * 2, "cancelled, with the signal set first"
    assert await worker.close(timeout=5) is True


async def test_the_worker_default_applies_where_a_handler_has_none(make_worker: Any, producer: Queue) -> None:
    async def slow(job: Any) -> str:
        await asyncio.sleep(30)
        return "never"

    async def exempt(job: Any) -> str:
        await asyncio.sleep(0.6)  # longer than the worker's default
        return "done"

    worker = make_worker({"slow": slow, "exempt": Handler(exempt, timeout=math.inf)}, handler_timeout=0.3)
    await worker.start()
    a, b = await producer.add("slow", {}), await producer.add("exempt", {})
    outcome = await producer.wait_for(a.id, timeout=10)
    assert outcome.failed_reason == "TimeoutError: handler 'slow' exceeded 0.3 s"
    assert await producer.result(b.id, timeout=10) == "done"


async def test_a_handler_that_swallows_its_cancellation_is_not_waited_for(
    make_worker: Any, producer: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    """It catches CancelledError and goes on: the attempt fails at the timeout all
    the same, a WARNING says the handler ignores cancellation, its late writes are
    refused and its late result is dropped - and the job does not run again."""
    late: list[Any] = []
    runs: list[str] = []
    release = asyncio.Event()

    async def stubborn(job: Any) -> str:
        runs.append(job.id)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await release.wait()  # ignores the cancellation and carries on
        try:
            job.update_progress(99)
        except LockLost as exc:
            late.append(exc)
        return "late"

    worker = make_worker()
    worker.handler("stubborn", timeout=0.3)(stubborn)
    seen = Outcomes(worker)
    await worker.start()
    with caplog.at_level(logging.WARNING, logger="bullbridge.worker"):
        job = await producer.add("stubborn", {})
        outcome = await producer.wait_for(job.id, timeout=10)
        assert outcome.failed_reason == "TimeoutError: handler 'stubborn' exceeded 0.3 s"
        assert not release.is_set() and runs == [job.id], "failed while the handler still runs"
        # The warning comes ORPHAN_GRACE (1 s) after the cancellation; 10 s is a failure detector.
        assert await wait_until(lambda: any("catches CancelledError" in r.getMessage() for r in caplog.records), 10)
    release.set()
    assert await wait_until(lambda: bool(late), 5)
    assert "this attempt is over" in str(late[0])
    await asyncio.sleep(0.2)  # the scenario: the late result had its chance to be written
    assert await seen.wait(1) == [("failed", job.id)] and runs == [job.id]
    assert (await producer.get_job(job.id)).progress != 99  # type: ignore[union-attr]
    assert await worker.close(timeout=5) is True, "its outcome was recorded: a clean close"


async def test_a_thread_handler_past_its_timeout_is_abandoned_and_replaced(
    make_worker: Any, producer: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    """A thread cannot be killed: the attempt fails, the thread is abandoned with
    a WARNING and the pool starts another, so a one-thread pool keeps serving."""
    finished = threading.Event()

    def blocking(job: Any) -> str:
        time.sleep(1.5)  # no signal check: it cannot be stopped
        finished.set()
        return "late"

    def quick(job: Any) -> str:
        return "quick"

    worker = make_worker({"quick": quick}, concurrency=2, thread_pool_size=1)
    worker.handler("blocking", timeout=0.3)(blocking)
    seen = Outcomes(worker)
    await worker.start()
    with caplog.at_level(logging.WARNING, logger="bullbridge.worker"):
        slow = await producer.add("blocking", {})
        outcome = await producer.wait_for(slow.id, timeout=10)
        assert outcome.failed_reason == "TimeoutError: handler 'blocking' exceeded 0.3 s"
        assert not finished.is_set(), "failed while the thread still runs"
        fast = await producer.add("quick", {})
        assert await producer.result(fast.id, timeout=5) == "quick", "the pool's one thread was replaced"
    warnings = [r.getMessage() for r in caplog.records if "a thread cannot be killed" in r.getMessage()]
    assert len(warnings) == 1 and "1 abandoned thread(s) still running" in warnings[0], warnings
    assert await wait_until(finished.is_set, 5)
    assert await wait_until(lambda: worker.runner.threads.abandoned == 0, 5), "the old thread ended with its call"
    assert await seen.wait(2) == [("failed", slow.id), ("completed", fast.id)], "the late result was dropped"


@pytest.mark.parametrize("culprit", ["process handler", "run_in_process call"])
async def test_a_process_past_its_timeout_replaces_the_pool_and_its_other_jobs_go_back_to_wait(
    culprit: str, make_worker: Any, producer: Queue, tmp_path: Path
) -> None:
    """A pool process cannot be stopped alone: the pool is replaced. The job that
    timed out fails; a job whose work was running in the same pool goes back to
    wait without an attempt counted (handedBack), runs again in the new pool,
    and completes."""

    async def via_call(job: Any) -> str:
        return await job.run_in_process(pool_handlers.stuck_call, 60)

    worker = make_worker(concurrency=2, process_pool_size=2)
    if culprit == "process handler":
        worker.handler("culprit", run_in="process", timeout=1)(pool_handlers.stuck)
    else:
        worker.handler("culprit", timeout=1)(via_call)
    worker.handler("victim", run_in="process")(pool_handlers.slow_first_time)
    seen = Outcomes(worker)
    await worker.start()
    data = {"dir": str(tmp_path), "first": 30}
    victim = await producer.add("victim", data, attempts=1)
    assert await wait_until(lambda: (tmp_path / f"{victim.id}.runs").exists(), 20), "the victim runs in the pool"
    bad = await producer.add("culprit", data, attempts=1)
    outcome = await producer.wait_for(bad.id, timeout=20)  # failure detector (a pool process starts in ~1 s)
    assert outcome.failed_reason == "TimeoutError: handler 'culprit' exceeded 1 s"
    assert await producer.result(victim.id, timeout=20) == "finished", "the victim ran again in the new pool"
    runs = (tmp_path / f"{victim.id}.runs").read_text().split()
    assert len(runs) == 2 and runs[0] != runs[1], "two runs, in two different processes"
    stored = await producer.get_job(victim.id)
    assert stored is not None and stored.attempts_made == 1 and stored.stalled_counter == 0
    events = await seen.wait(3)
    assert sorted(events) == sorted([("handedBack", victim.id), ("failed", bad.id), ("completed", victim.id)])
    assert worker.runner.replaced_pools == 1
    assert await worker.close(timeout=5) is True, "every outcome recorded: a clean close"


async def test_a_process_that_dies_breaks_no_later_job(make_worker: Any, producer: Queue, tmp_path: Path) -> None:
    """A handler that kills its pool process (os._exit, a crash) broke the pool
    for good: every later process job failed with BrokenProcessPool. Now the
    attempt fails (no culprit can be told from its neighbours) and the pool is
    replaced."""
    worker = make_worker()
    worker.handler("dies", run_in="process")(pool_handlers.exits_abruptly)
    worker.handler("square", run_in="process")(pool_handlers.square)
    await worker.start()
    dead = await producer.add("dies", {"dir": str(tmp_path)}, attempts=1)
    outcome = await producer.wait_for(dead.id, timeout=20)
    assert outcome.failed_reason is not None and outcome.failed_reason.startswith("BrokenProcessPool")
    later = await producer.add("square", {"n": 7})
    assert await producer.result(later.id, timeout=20) == 49
    assert worker.runner.replaced_pools == 1


async def test_node_reads_a_python_timeout_as_a_failure(node: NodeDriver, make_worker: Any, queue_name: str) -> None:
    """A Node producer's job with attempts: 2 times out twice in Python; Node
    reads the failure: failedReason, attemptsMade, the stack trace."""

    async def resize(job: Any) -> str:
        await asyncio.sleep(30)
        return "never"

    worker = make_worker()
    worker.handler("resize", timeout=0.3)(resize)
    await worker.start()
    job_id = await node.add(queue_name, "resize", {"w": 100}, {"attempts": 2})
    job = await _wait_node_state(node, queue_name, job_id, "failed")
    assert job["failedReason"] == "TimeoutError: handler 'resize' exceeded 0.3 s"
    assert job["attemptsMade"] == 2
    assert len(job["stacktrace"]) == 2 and all("HandlerTimeout" in t for t in job["stacktrace"])

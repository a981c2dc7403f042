"""User code that misbehaves (docs/worker.md#handlers-that-misbehave): each case
ends with the job in a defined state, one clear log line, and no second run but
BullMQ's own stall recovery.

Process-level cases (a leaked thread holding the exit, a handler that swallows
cancellation at the drain deadline) are in tests/test_shutdown.py; a process
that dies, and handlers past their timeout, in tests/worker/test_timeouts.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from bullbridge import Queue
from bullbridge.codec import JsonCodec
from tests.worker.faults import Held, Outcomes
from tests.worker.impls import wait_until


async def test_an_async_handler_that_blocks_the_loop_past_its_lock_gets_lock_lost_only(
    make_worker: Any, producer: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    """``time.sleep`` in an ``async def`` for longer than the lock: renewal cannot
    run, the lock expires, the finish finds it gone. Node emits only the lock
    error; the worker used to emit lockLost and then completed. Now: lockLost, the
    loop-block warning naming the job, and BullMQ's stall recovery runs it again."""
    runs: list[float] = []

    async def blocking(job: Any) -> str:
        runs.append(time.monotonic())
        if len(runs) == 1:
            time.sleep(1.6)  # the misbehaviour under test: a blocking call on the loop, past the 1 s lock
        return "done"

    worker = make_worker({"x": blocking}, lock_duration=1000, stalled_interval=500)
    seen = Outcomes(worker)
    await worker.start()
    with caplog.at_level(logging.WARNING, logger="bullbridge.worker"):
        job = await producer.add("x", {})
        assert await producer.result(job.id, timeout=10) == "done"  # failure detector: stall recovery
    assert await seen.wait(2) == [("lockLost", job.id), ("completed", job.id)]  # the worker's own events
    assert seen.counters() == {"lost_locks": 1, "completed": 1}
    stored = await producer.get_job(job.id)
    assert stored is not None and stored.stalled_counter == 1, "the second run came from stall recovery"
    assert len(runs) == 2
    messages = [r.getMessage() for r in caplog.records]
    assert any("event loop was blocked" in m and f"jobs {job.id} were active" in m for m in messages), messages
    assert any(f"job {job.id} (x)" in m and "lost its lock" in m for m in messages), messages
    assert await worker.close(timeout=5) is False, "a lost lock is not a clean run"


async def test_a_handler_that_swallows_a_forced_close_s_cancellation_is_handed_back_not_waited_for(
    make_worker: Any, producer: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    """The close's deadline cancels the handler; it catches that and goes on.
    The worker waits FORCE_GRACE (2 s), then hands the job back (no attempt or
    stall counted) and returns False; when the handler finally returns, nothing
    is written and nothing is emitted."""
    release = asyncio.Event()
    runs: list[str] = []

    async def stubborn(job: Any) -> str:
        runs.append(job.id)
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                pass  # the misbehaviour under test
        return "late"

    worker = make_worker({"x": stubborn})
    seen = Outcomes(worker)
    await worker.start()
    job = await producer.add("x", {})
    assert await wait_until(lambda: runs == [job.id], 5)
    with caplog.at_level(logging.WARNING, logger="bullbridge.worker"):
        t0 = time.monotonic()
        assert await worker.close(timeout=0.3) is False
        took = time.monotonic() - t0
    # 0.3 s deadline + FORCE_GRACE 2 s, then one hand-back call; 10 s would mean it waited on the handler.
    assert 2.3 <= took < 10, took
    assert seen.seen == [("handedBack", job.id)]
    assert any("its handler ignored its cancellation" in r.getMessage() for r in caplog.records)
    assert await producer.get_job_state(job.id) == "waiting"
    stored = await producer.get_job(job.id)
    assert stored is not None and stored.attempts_made == 0 and stored.stalled_counter == 0
    release.set()
    await asyncio.sleep(0.2)  # the scenario: the handler's late return had its chance to be written
    assert seen.seen == [("handedBack", job.id)] and runs == [job.id]
    assert await producer.get_job_state(job.id) == "waiting"


class RefusingCodec(JsonCodec):
    """A codec of the user's that raises something other than NotJsonSafe."""

    def encode(self, value: Any) -> bytes:
        if value == "refuse me":
            raise TypeError("this codec refuses it")
        return super().encode(value)


def _cyclic() -> Any:
    value: dict[str, Any] = {"ok": 1}
    value["self"] = value
    return value


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (_cyclic, "NotJsonSafe: return value is not JSON-safe: a circular reference"),
        (lambda: {"tags": {"a", "b"}}, "NotJsonSafe: return value is not JSON-safe: set has no JSON form"),
        (lambda: "refuse me", "NotJsonSafe: return value could not be encoded: TypeError: this codec refuses it"),
    ],
    ids=["circular", "set", "codec-raises"],
)
async def test_a_result_the_codec_refuses_after_the_work_fails_the_job_once(
    result: Any, reason: str, make_worker: Any, producer: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    """The work is done, its return value cannot be stored: the job fails at once
    without a retry (attempts=3 notwithstanding: a retry would redo the work), a
    WARNING says so, and the worker goes on. A circular value used to hang the
    loop; a codec raising anything but NotJsonSafe left the job to stall and run again."""
    done: list[str] = []

    async def work(job: Any) -> Any:
        done.append(job.id)
        return result() if job.name == "x" else "fine"

    worker = make_worker({"x": work, "y": work}, codec=RefusingCodec())
    seen = Outcomes(worker)
    await worker.start()
    with caplog.at_level(logging.WARNING, logger="bullbridge.worker"):
        job = await producer.add("x", {}, attempts=3)
        outcome = await producer.wait_for(job.id, timeout=10)
    assert outcome.state == "failed" and outcome.failed_reason is not None
    assert outcome.failed_reason.startswith(reason), outcome.failed_reason
    stored = await producer.get_job(job.id)
    assert stored is not None and stored.attempts_made == 1, "not retried"
    warnings = [r.getMessage() for r in caplog.records if "cannot be stored" in r.getMessage()]
    assert len(warnings) == 1 and f"job {job.id} (x)" in warnings[0], warnings
    after = await producer.add("y", {})
    assert await producer.result(after.id, timeout=5) == "fine"
    assert done == [job.id, after.id], "the refused job ran once"
    assert await seen.wait(2) == [("failed", job.id), ("completed", after.id)]


async def test_progress_from_a_handler_the_worker_gave_up_on_is_refused(make_worker: Any, producer: Queue) -> None:
    """Once a forced close handed the job back, a handler still running cannot
    write to it: the job may already be another worker's."""
    held = Held()
    worker = make_worker({"x": held})
    await worker.start()
    job = await producer.add("x", {})
    await held.wait_started()
    active = worker.locks.active[job.id]
    assert await worker.close(force=True) is False
    with pytest.raises(Exception, match="this attempt is over"):
        active.update_progress(50)

"""A worker says a job completed (or failed, or will be retried) only once Redis
recorded it (docs/worker.md#outcomes).

Each outcome write is made to fail here - Redis killed or out of memory, a reply
lost after the script ran, the lock taken away (deleted, or held under another
token) - and the test checks the events, the counters, ``close()``'s flag and,
for the manager, the exit code. Every attempt ends in exactly one of
``completed``, ``failed``, ``retrying``, ``lockLost``, ``finishFailed``,
``handedBack``; the first three only when the script's reply says so.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import redis.asyncio as redis

from bullbridge import ManagerSettings, Queue, Worker, WorkerManager, scripts
from bullbridge.errors import FinishNotRecorded
from bullbridge.keys import QueueKeys
from bullbridge.testing.redis_server import PrivateRedis
from tests.worker.faults import Held, LosingProxy, Outcomes
from tests.worker.impls import wait_until


async def _raise(job: Any) -> Any:
    raise ValueError("bad input")


async def _rate_limit(job: Any) -> Any:
    await job.rate_limit(50)


#: Each way an attempt ends, and the options that make it end that way.
ENDINGS = {
    "complete": (None, {}),  # moveToFinished -> completed
    "fail": (_raise, {"attempts": 1}),  # moveToFinished -> failed
    "retry_now": (_raise, {"attempts": 2}),  # retryJob
    "retry_later": (_raise, {"attempts": 2, "backoff": 60_000}),  # moveToDelayed
    "rate_limit": (_rate_limit, {}),  # moveJobFromActiveToWait
}


async def _job_state(url: str, queue: str, job_id: str) -> tuple[str, dict[str, str]]:
    client = redis.from_url(url, decode_responses=True)
    try:
        keys = QueueKeys(queue)
        fields = await client.hgetall(keys.job(job_id))
        active = job_id in await client.lrange(keys["active"], 0, -1)
        return ("active" if active else "not active"), fields
    finally:
        await client.aclose()


# -- the lock taken away: lockLost, and nothing else for that attempt ------------------------


@pytest.mark.parametrize("how", ["deleted", "stolen"])
@pytest.mark.parametrize("ending", list(ENDINGS))
async def test_a_lock_taken_away_before_the_write_is_lock_lost_only(
    ending: str, how: str, redis_url: str, producer: Queue, make_worker: Any
) -> None:
    """The lock key deleted (the script answers -2, "Missing lock") or held under
    another worker's token (-6, "Lock mismatch"): Node's worker emits only that
    error; ours emits lockLost, counts it, writes nothing, and the close is not clean."""
    then, opts = ENDINGS[ending]
    held = Held(then)
    worker = make_worker({"x": held})
    seen = Outcomes(worker)
    await worker.start()
    job = await producer.add("x", {}, **opts)
    await held.wait_started()
    before = await _job_state(redis_url, producer.name, job.id)
    admin = redis.from_url(redis_url)
    lock = QueueKeys(producer.name).lock(job.id)
    try:
        if how == "deleted":
            await admin.delete(lock)
        else:
            await admin.set(lock, "another-worker:1")
        held.release.set()
        assert await seen.wait() == [("lockLost", job.id)]
        assert await wait_until(lambda: worker.active_count == 0, 5)
        assert seen.seen == [("lockLost", job.id)], "nothing but lockLost for this attempt"
        assert seen.counters() == {"lost_locks": 1}
        assert await _job_state(redis_url, producer.name, job.id) == before, "nothing was written"
        if how == "stolen":
            assert await admin.get(lock) == b"another-worker:1"
    finally:
        await admin.aclose()
    assert await worker.close(timeout=5) is False, "a lost lock is not a clean run"


@pytest.mark.parametrize("how", ["deleted", "stolen"])
async def test_a_lock_taken_away_before_a_forced_hand_back_is_lock_lost_not_handed_back(
    how: str, redis_url: str, producer: Queue, make_worker: Any
) -> None:
    held = Held()
    worker = make_worker({"x": held})
    seen = Outcomes(worker)
    await worker.start()
    job = await producer.add("x", {})
    await held.wait_started()
    admin = redis.from_url(redis_url)
    lock = QueueKeys(producer.name).lock(job.id)
    try:
        await (admin.delete(lock) if how == "deleted" else admin.set(lock, "another-worker:1"))
        assert await worker.close(force=True) is False
    finally:
        await admin.aclose()
    assert seen.seen == [("lockLost", job.id)]
    assert seen.counters() == {"lost_locks": 1}
    assert (await _job_state(redis_url, producer.name, job.id))[0] == "active", "not handed back: not ours"


@pytest.mark.parametrize("then", ["returns", "raises"])
async def test_a_lock_the_renewal_finds_lost_is_reported_once_and_nothing_is_written(
    then: str, redis_url: str, producer: Queue, make_worker: Any
) -> None:
    """Lock renewal finds the lock gone: lockLost once, the signal is set, and
    when the handler ends - returning or raising - nothing is written and nothing
    else is emitted (the port, and Node, still try to complete it)."""
    held = Held(_raise if then == "raises" else None)
    worker = make_worker({"x": held}, lock_duration=1000)  # renewed every 500 ms
    seen = Outcomes(worker)
    await worker.start()
    job = await producer.add("x", {}, attempts=3)
    await held.wait_started()
    admin = redis.from_url(redis_url)
    lock = QueueKeys(producer.name).lock(job.id)
    try:
        await admin.set(lock, "another-worker:1", px=60_000)
        assert await seen.wait() == [("lockLost", job.id)]  # from the renewal: the handler still runs
        active = worker.locks.active[job.id]
        assert active.lock_lost and active.signal.cancelled and active.signal.reason == "lock lost"
        held.release.set()
        assert await wait_until(lambda: worker.active_count == 0, 5)
        assert seen.seen == [("lockLost", job.id)]
        assert seen.counters() == {"lost_locks": 1}
        state, fields = await _job_state(redis_url, producer.name, job.id)
        assert state == "active" and "failedReason" not in fields and fields.get("atm", "0") == "0"
        assert await admin.get(lock) == b"another-worker:1"
    finally:
        await admin.aclose()
    assert await worker.close(timeout=5) is False


# -- Redis did not record it: finishFailed ------------------------------------------------------


async def test_a_finish_that_stops_part_way_is_finish_failed_and_says_where_the_job_is(
    redis_url: str, producer: Queue, make_worker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """BullMQ's finishing script errors half way (a WRONGTYPE on the job's
    deduplication key, after it removed the lock and took the job out of active;
    Redis does not roll a script back): the job is neither active nor completed.
    The worker says so - finishFailed with the cause, one ERROR saying where the
    job is - and never "completed"; it does not run the job again."""
    held = Held()
    worker = make_worker({"x": held})
    seen = Outcomes(worker)
    await worker.start()
    job = await producer.add("x", {})
    await held.wait_started()
    keys = QueueKeys(producer.name)
    admin = redis.from_url(redis_url)
    try:
        await admin.hset(keys.job(job.id), "deid", "broken")
        await admin.rpush(keys.base + "de:broken", "not a job id")  # GET on it: WRONGTYPE
        with caplog.at_level(logging.ERROR, logger="bullbridge.worker"):
            held.release.set()
            assert await seen.wait() == [("finishFailed", job.id)]
        (error,) = seen.args["finishFailed"][0]
        assert isinstance(error, FinishNotRecorded) and error.outcome == "completed"
        assert "WRONGTYPE" in str(error) and "WRONGTYPE" in str(error.__cause__)
        assert seen.counters() == {"finish_failed": 1}
        lines = [r.getMessage() for r in caplog.records if "could not be recorded as completed" in r.getMessage()]
        assert len(lines) == 1 and "Redis holds no outcome for it" in lines[0], lines
        state, fields = await _job_state(redis_url, producer.name, job.id)
        assert state == "not active" and "returnvalue" not in fields and "finishedOn" not in fields
        assert await admin.zscore(keys["completed"], job.id) is None
        assert held.runs == [job.id], "the worker did not run it again"
    finally:
        await admin.aclose()
    assert await worker.close(timeout=5) is False


@pytest.mark.parametrize("refusal", ["error reply", "error code"])
async def test_a_finish_refused_before_anything_moved_stays_active_for_stall_recovery(
    refusal: str, redis_url: str, producer: Queue, make_worker: Any
) -> None:
    """A finish refused with the lock still ours - BullMQ's script erroring on its
    first look at the job (a WRONGTYPE), or answering -4 ("pending dependencies") -
    is finishFailed; the job stays active, and its only second run is BullMQ's
    stall recovery (the job's stalled counter says so), which this worker then
    completes and reports once."""
    held = Held()
    worker = make_worker({"x": held}, lock_duration=1000, stalled_interval=500)
    seen = Outcomes(worker)
    await worker.start()
    job = await producer.add("x", {})
    await held.wait_started()
    dependencies = QueueKeys(producer.name).job(job.id) + ":dependencies"
    admin = redis.from_url(redis_url)
    try:
        if refusal == "error reply":
            await admin.set(dependencies, "not a set")  # SCARD on it: WRONGTYPE
        else:
            await admin.sadd(dependencies, f"{QueueKeys(producer.name).base}child")
        held.release.set()
        assert await seen.wait() == [("finishFailed", job.id)]
        assert seen.counters() == {"finish_failed": 1}
        assert (await _job_state(redis_url, producer.name, job.id))[0] == "active"
        await admin.delete(dependencies)
        # A failure detector: the 1 s lock expires, then two 0.5 s stall checks move the job back.
        assert await producer.result(job.id, timeout=10) == "done"
        stored = await producer.get_job(job.id)
        assert stored is not None and stored.stalled_counter == 1, "the second run came from stall recovery"
        assert await seen.wait(2) == [("finishFailed", job.id), ("completed", job.id)]
        assert held.runs == [job.id, job.id]
    finally:
        await admin.aclose()
    assert await worker.close(timeout=5) is False, "one outcome was not recorded"


async def test_redis_gone_while_closing_is_finish_failed_and_an_unclean_close(private_redis: PrivateRedis) -> None:
    """The probe: Redis dies, the handler then finishes during the drain. The
    worker logged "will be recovered as stalled" and still emitted completed,
    counted it and closed clean. Now: finishFailed, no completed, close() False."""
    url = private_redis.url
    held = Held()
    worker = Worker("gone", {"x": held}, connection=url)
    seen = Outcomes(worker)
    await worker.start()
    async with Queue("gone", connection=url) as producer:
        job = await producer.add("x", {})
    await held.wait_started()
    private_redis.kill()
    closing = asyncio.ensure_future(worker.close(timeout=20))
    await asyncio.sleep(0)  # the scenario: the drain has begun when the handler returns
    held.release.set()
    # 20 s drain: the handler finishes at once; the write waits 1 s twice, then gives up.
    assert await asyncio.wait_for(closing, 20) is False
    assert seen.seen == [("finishFailed", job.id)]
    assert seen.counters() == {"finish_failed": 1}
    assert worker.completed == 0


async def test_redis_back_before_the_worker_gave_up_records_and_reports_once() -> None:
    """Redis killed mid-job and started again (persisted): the finish waits for it,
    is recorded, and only then reported - once."""
    with PrivateRedis(persist=True, extra_args=("--appendfsync", "always")) as server:
        held = Held()
        worker = Worker("back", {"x": held}, connection=server.url)
        seen = Outcomes(worker)
        await worker.start()
        async with Queue("back", connection=server.url) as producer:
            job = await producer.add("x", {})
            await held.wait_started()
            server.kill()
            held.release.set()
            await asyncio.sleep(0.3)  # the scenario: the write is tried while Redis is down
            assert seen.seen == []
            server.restart()
            assert await seen.wait() == [("completed", job.id)]
            assert await producer.result(job.id, timeout=10) == "done"
        assert seen.counters() == {"completed": 1}
        assert held.runs == [job.id]
        assert await worker.close(timeout=5) is True


@pytest.mark.parametrize("queued", [False, True], ids=["alone", "with-a-next-job"])
async def test_a_reply_lost_after_redis_recorded_it_is_read_back_not_guessed(
    queued: bool, redis_url: str, producer: Queue, queue_name: str
) -> None:
    """The finishing script ran but its reply was lost with the connection. The
    retry answers -2 (our first call removed the lock); the worker reads the job
    back (lock, attempt counters) and reports completed once - it used to take
    any such answer as done, even when another worker had taken the job. A job
    that lost call fetched (its lock holds our token) is found and run at once,
    not left to stall."""
    proxy = await LosingProxy(redis_url).start()
    held = Held()
    worker = Worker(queue_name, {"x": held}, connection=proxy.url)
    seen = Outcomes(worker)
    try:
        await worker.start()
        job = await producer.add("x", {})
        await held.wait_started()
        following = await producer.add("x", {}) if queued else None
        proxy.lose_reply_to(scripts.script("moveToFinished").sha.encode())
        held.release.set()
        assert (await seen.wait())[0] == ("completed", job.id)
        assert proxy.cuts == 1, "the reply was lost after Redis ran the script"
        assert await producer.result(job.id, timeout=5) == "done"
        if following is not None:
            # 5 s: a failure detector that also tells "run at once" from a stall (the 30 s lock, then a check).
            assert await producer.result(following.id, timeout=5) == "done"
            stored = await producer.get_job(following.id)
            assert stored is not None and stored.stalled_counter == 0
        expected = [job.id] if following is None else [job.id, following.id]
        assert await seen.wait(len(expected)) == [("completed", i) for i in expected]
        assert held.runs == expected
        assert await worker.close(timeout=5) is True
    finally:
        await worker.close(timeout=5)
        await proxy.close()


async def test_a_reply_lost_when_the_job_moved_on_is_not_taken_as_done(
    redis_url: str, producer: Queue, queue_name: str
) -> None:
    """The reply to the finish is lost, and meanwhile another worker's token holds
    the lock (the job was taken over): the retry's -6 is the truth - lockLost."""
    proxy = await LosingProxy(redis_url).start()
    held = Held()
    worker = Worker(queue_name, {"x": held}, connection=proxy.url)
    seen = Outcomes(worker)
    admin = redis.from_url(redis_url)
    try:
        await worker.start()
        job = await producer.add("x", {})
        await held.wait_started()
        await admin.set(QueueKeys(queue_name).lock(job.id), "another-worker:1")
        proxy.lose_reply_to(scripts.script("moveToFinished").sha.encode())
        held.release.set()
        assert await seen.wait() == [("lockLost", job.id)]
        assert proxy.cuts == 1
        assert seen.counters() == {"lost_locks": 1}
    finally:
        await admin.aclose()
        await worker.close(timeout=5)
        await proxy.close()


async def test_a_forced_close_lets_a_finish_in_flight_land_and_hands_back_what_it_fetched(
    redis_url: str, producer: Queue, queue_name: str
) -> None:
    """A forced close while a finish is on its way (its reply held back): the
    slot is not cancelled mid-write - the completion is recorded and reported -
    and the next job that same script call fetched is handed back, not started."""
    proxy = await LosingProxy(redis_url).start()
    held = Held()
    worker = Worker(queue_name, {"x": held}, connection=proxy.url)
    seen = Outcomes(worker)
    try:
        await worker.start()
        first = await producer.add("x", {})
        await held.wait_started()
        second = await producer.add("x", {})  # waiting: the finish of the first fetches it
        proxy.hold_reply_to(scripts.script("moveToFinished").sha.encode())
        held.release.set()
        await asyncio.wait_for(proxy.holding.wait(), 10)
        closing = asyncio.ensure_future(worker.close(force=True))
        await asyncio.sleep(0.2)  # the scenario: the forced close happens while the reply is held
        proxy.let_go()
        assert await asyncio.wait_for(closing, 10) is False, "a job was handed back"
        assert seen.seen == [("completed", first.id), ("handedBack", second.id)]
        assert await producer.result(first.id, timeout=5) == "done"
        assert await producer.get_job_state(second.id) == "waiting"
        stored = await producer.get_job(second.id)
        assert stored is not None and stored.attempts_made == 0 and stored.stalled_counter == 0
        assert held.runs == [first.id], "the fetched job was not started"
    finally:
        await worker.close(timeout=5)
        await proxy.close()


# -- the manager: health counters and the exit code --------------------------------------------


async def test_the_manager_counts_only_recorded_outcomes_and_exits_1(
    redis_url: str, producer: Queue, queue_name: str
) -> None:
    ok, held = Held(), Held()
    manager = WorkerManager(connection=redis_url, settings=ManagerSettings(handle_signals=False, drain_timeout=5))
    worker = manager.worker(queue_name, {"ok": ok, "held": held})
    seen = Outcomes(worker)
    running = asyncio.ensure_future(manager.run())
    try:
        await wait_until(lambda: manager.state == "running", 10)
        ok.release.set()
        first = await producer.add("ok", {})
        assert await producer.result(first.id, timeout=10) == "done"
        second = await producer.add("held", {})
        await held.wait_started()
        admin = redis.from_url(redis_url)
        await admin.delete(QueueKeys(queue_name).lock(second.id))
        await admin.aclose()
        held.release.set()
        await seen.wait(2)
        report = manager.report()
        assert (report.completed, report.failed, report.lost_locks, report.finish_failed) == (1, 0, 1, 0)
        assert '"lostLocks": 1' in report.to_json()
        manager.request_shutdown("test")
        assert await asyncio.wait_for(running, 10) == 1, "a lost lock: exit code 1"
    finally:
        if not running.done():
            running.cancel()
    assert manager.exit_code == 1

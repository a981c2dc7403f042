"""The Node-shaped queue: each read and each administrative write answered as
Node's own ``Queue`` answers it, on the same queue, in the same test."""

from __future__ import annotations

import pytest

from bullbridge import JobNotFound, Queue, QueueError
from bullbridge.testing.node import NodeDriver


async def _fill(queue: Queue) -> dict[str, list[str]]:
    """Jobs in waiting, prioritized, delayed, completed and failed, by state."""
    ids: dict[str, list[str]] = {"waiting": [], "prioritized": [], "delayed": []}
    for i in range(3):
        ids["waiting"].append((await queue.add("w", {"i": i})).id)
    ids["prioritized"].append((await queue.add("p", {}, priority=3)).id)
    ids["delayed"].append((await queue.add("d", {}, delay=60_000)).id)
    return ids


async def test_counts_and_lists_read_as_nodes_getters(node: NodeDriver, producer: Queue) -> None:
    ids = await _fill(producer)
    counts = await producer.get_job_counts()
    node_counts = await node.queue_call(producer.name, "getJobCounts")
    assert counts == node_counts  # same keys (no 'paused' in Node 6), same numbers
    assert counts["waiting"] == 3 and counts["prioritized"] == 1 and counts["delayed"] == 1
    assert await producer.get_job_counts("waiting", "delayed") == {"waiting": 3, "delayed": 1}
    assert await producer.count() == await node.queue_call(producer.name, "count") == 5
    for asc in (False, True):
        ours = [j.id for j in await producer.get_jobs(["waiting", "prioritized", "delayed"], asc=asc)]
        theirs = [
            j["id"]
            for j in await node.queue_call(producer.name, "getJobs", ["waiting", "prioritized", "delayed"], 0, -1, asc)
        ]
        assert ours == theirs, asc
    assert [j.id for j in await producer.get_jobs("waiting", 0, 1)] == ids["waiting"][::-1][:2]
    with pytest.raises(ValueError, match="unknown job state"):
        await producer.get_job_counts("finished")


async def test_pause_resume_drain_clean_and_obliterate(node: NodeDriver, producer: Queue) -> None:
    ids = await _fill(producer)
    assert not await producer.is_paused()
    await producer.pause()
    assert await producer.is_paused() and await node.queue_call(producer.name, "isPaused") is True
    await producer.resume()
    assert not await node.queue_call(producer.name, "isPaused")
    assert await producer.promote_jobs() == 1
    assert await producer.get_job_state(ids["delayed"][0]) == "waiting"
    assert await producer.drain() == 5
    assert await producer.count() == 0
    kept = await producer.add("k", {}, delay=60_000)
    assert await producer.drain() == 0 and await producer.get_job_state(kept.id) == "delayed"
    assert await producer.drain(delayed=True) == 1
    await producer.obliterate()
    assert await producer.get_job(kept.id) is None
    assert await node.queue_call(producer.name, "getJobCounts") == dict.fromkeys(await producer.get_job_counts(), 0)


async def test_finished_jobs_retried_cleaned_and_removed(node: NodeDriver, producer: Queue) -> None:
    done = await producer.add("ok", {})
    bad = await producer.add("bad", {})
    handle = await node.start_worker(
        producer.name, "async job => { if (job.name === 'bad') throw new Error('x'); return 1 }"
    )
    try:
        assert (await producer.wait_for(bad.id, timeout=10)).state == "failed"
        assert (await producer.wait_for(done.id, timeout=10)).state == "completed"
    finally:
        await node.close_worker(handle)
    assert await producer.retry_jobs("failed") == 1
    assert await producer.get_job_state(bad.id) == "waiting"
    with pytest.raises(QueueError, match="not failed"):
        await producer.retry_job(bad.id)
    with pytest.raises(JobNotFound):
        await producer.retry_job("nope")
    assert await producer.clean(0, state="completed") == [done.id]
    assert await producer.get_job(done.id) is None
    await producer.remove(bad.id)
    assert await producer.get_job(bad.id) is None
    with pytest.raises(JobNotFound):
        await producer.remove(bad.id)


async def test_queue_wide_limits_are_what_node_reads(node: NodeDriver, producer: Queue) -> None:
    await producer.set_global_concurrency(3)
    await producer.set_global_rate_limit(10, 1000)
    assert await node.queue_call(producer.name, "getGlobalConcurrency") == 3
    assert await node.queue_call(producer.name, "getGlobalRateLimit") == {"max": 10, "duration": 1000}
    await producer.remove_global_concurrency()
    await producer.remove_global_rate_limit()
    assert await node.queue_call(producer.name, "getGlobalConcurrency") is None
    with pytest.raises(ValueError, match="global concurrency must be an int >= 1"):
        await producer.set_global_concurrency(0)


async def test_job_schedulers_through_the_queue_are_nodes(node: NodeDriver, producer: Queue) -> None:
    first = await producer.upsert_job_scheduler(
        "nightly", pattern="0 2 * * *", tz="America/New_York", name="report", data={"kind": "daily"}
    )
    assert first is not None and first.job_id.startswith("repeat:nightly:")
    await producer.upsert_job_scheduler("beat", every=60_000)
    listed = await node.eval(
        "return (await queue(args.q).getJobSchedulers()).map(s => [s.key, s.next, s.tz]);", q=producer.name
    )
    ours = await producer.get_job_schedulers()
    assert sorted([s.id, s.next_run_ms, s.tz] for s in ours) == sorted(listed)
    nightly = await producer.get_job_scheduler("nightly")
    assert nightly is not None and (nightly.pattern, nightly.name, nightly.template_data) == (
        "0 2 * * *",
        "report",
        {"kind": "daily"},
    )
    assert await producer.get_job_scheduler("nope") is None
    assert await producer.remove_job_scheduler("beat") is True
    assert await producer.remove_job_scheduler("beat") is False
    assert await node.eval("return (await queue(args.q).getJobSchedulers()).map(s => s.key);", q=producer.name) == [
        "nightly"
    ]
    with pytest.raises(ValueError, match="give a cron pattern or an every interval"):
        await producer.upsert_job_scheduler("empty")


async def test_a_jobs_priority_delay_and_data_change_as_node_changes_them(node: NodeDriver, producer: Queue) -> None:
    """Queue.change_priority / change_delay / update_data: BullMQ's changePriority,
    changeDelay and updateData scripts, read back by Node; refusals name the job."""
    from bullbridge import ConfigurationError

    waiting = await producer.add("w", {"v": 1})
    delayed = await producer.add("d", {}, delay=600_000)
    await producer.change_priority(waiting.id, 3)
    assert await node.queue_call(producer.name, "getJobState", waiting.id) == "prioritized"
    await producer.update_data(waiting.id, {"v": 2})
    seen = await node.get_job(producer.name, waiting.id)
    assert seen is not None and seen["data"] == {"v": 2} and seen["priority"] == 3
    await producer.change_delay(delayed.id, 1_000)
    assert (await node.get_job(producer.name, delayed.id) or {}).get("delay") == 1_000
    with pytest.raises(QueueError, match=f"job {waiting.id} of queue .* is not delayed"):
        await producer.change_delay(waiting.id, 5)
    for call in (
        producer.change_priority("nope", 1),
        producer.update_data("nope", {}),
        producer.change_delay("nope", 1),
    ):
        with pytest.raises(JobNotFound, match="job nope does not exist"):
            await call
    with pytest.raises(ConfigurationError, match="priority must be an int between 0 and 2097151"):
        await producer.change_priority(waiting.id, -1)


async def test_deduplication_reschedule_moves_the_delayed_job_only(producer: Queue) -> None:
    """Node 6.7's reschedule: a duplicate gives the existing, still delayed job its own
    delay from its own timestamp; a job that is no longer delayed is left alone."""
    first = await producer.add("x", {"v": 1}, delay=600_000, deduplication={"id": "r", "reschedule": True})
    dup = await producer.add("x", {"v": 2}, delay=2_000, deduplication={"id": "r", "reschedule": True})
    assert dup.id == first.id
    job = await producer.get_job(first.id)
    assert job is not None and job.delay == 2_000 and job.data == {"v": 1}
    raw = await producer.connector.fast("t").execute("ZSCORE", producer.keys["delayed"], first.id)
    assert int(float(raw)) >> 12 == dup.timestamp + 2_000, "due at the duplicate's timestamp + its delay"
    await producer.promote_job(first.id)
    again = await producer.add("x", {"v": 3}, delay=5_000, deduplication={"id": "r", "reschedule": True})
    assert again.id == first.id and await producer.get_job_state(first.id) == "waiting"

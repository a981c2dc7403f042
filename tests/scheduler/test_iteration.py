"""``schedule_next_iteration`` on a job hash does exactly what Node's worker does.

Twin queues hold identical schedulers (made by Node); the pending job of one is
iterated by bullbridge, the other's by Node's ``upsertJobScheduler`` as its
Worker calls it, and the results are compared. Time is simulated by giving
the schedulers a start date in the future: BullMQ computes each next run from
``max(prevMillis, now)``, so iterating a future job walks the calendar, across
DST changes, without waiting.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bullbridge import codec
from bullbridge.clock import datetime_ms, now_ms
from bullbridge.connection.resp import RespClient
from bullbridge.job import Job, fields_to_dict
from bullbridge.keys import QueueKeys
from bullbridge.scheduler import (
    Declaration,
    LegacyRepeatableJob,
    Schedule,
    fire_sequence,
    schedule_next_iteration,
    sync,
)
from bullbridge.testing.node import NodeDriver
from tests.scheduler.helpers import NODE_ITERATE, iso, node_next_millis

NEW_YORK = ZoneInfo("America/New_York")


async def _pending(client: RespClient, keys: QueueKeys, scheduler_id: str) -> Job:
    """The scheduler's current iteration, read as a worker reads a fetched job."""
    score = await client.execute("ZSCORE", keys["repeat"], scheduler_id)
    assert score is not None, f"scheduler {scheduler_id} is gone"
    job_id = f"repeat:{scheduler_id}:{int(float(score))}"
    flat = await client.execute("HGETALL", keys.job(job_id))
    assert flat, f"no job hash for {job_id}"
    return Job(keys.name, job_id, fields_to_dict(flat))


def _opts(job: Job) -> dict[str, Any]:
    return {k: v for k, v in job.opts.items() if k not in ("timestamp", "delay")}


async def _node_upsert(
    node: NodeDriver, queue: str, scheduler_id: str, repeat: dict[str, Any], template: dict[str, Any]
) -> None:
    await node.eval(
        "await queue(args.q).upsertJobScheduler(args.id, args.repeat, args.template);",
        q=queue,
        id=scheduler_id,
        repeat=repeat,
        template=template,
    )


TWINS = [
    (
        "cron",
        {"pattern": "0 2 * * *", "tz": "America/New_York", "limit": 5},
        {
            "name": "nightly",
            "data": {"a": 1},
            "opts": {"attempts": 3, "backoff": 2000, "removeOnComplete": True, "keepLogs": 3, "priority": 4},
        },
    ),
    ("secs", {"pattern": "*/10 * * * * *", "tz": "Europe/Berlin"}, {"name": "s", "data": {"b": [1, 2]}}),
    ("every", {"every": 7_200_000, "offset": 600_000}, {"name": "e", "opts": {"removeOnFail": {"count": 3}}}),
]


@pytest.mark.parametrize(("scheduler_id", "repeat", "template"), TWINS, ids=[t[0] for t in TWINS])
async def test_next_iteration_is_what_a_node_worker_adds(
    node: NodeDriver,
    client: RespClient,
    queue_name: str,
    scheduler_id: str,
    repeat: dict[str, Any],
    template: dict[str, Any],
) -> None:
    start = now_ms() + 10 * 86_400_000
    repeat = {**repeat, "startDate": start}
    py_keys, node_keys = QueueKeys(queue_name), QueueKeys(queue_name + "-n")
    for keys in (py_keys, node_keys):
        await _node_upsert(node, keys.name, scheduler_id, repeat, template)
    py_job = await _pending(client, py_keys, scheduler_id)
    node_job = await _pending(client, node_keys, scheduler_id)
    assert py_job.id == node_job.id

    for _ in range(3):
        py_next = await schedule_next_iteration(client, py_keys, py_job)
        node_next = await node.eval(NODE_ITERATE, queue=node_keys.name, jobId=node_job.id)
        assert py_next == node_next is not None
        py_job = await _pending(client, py_keys, scheduler_id)
        node_job = await _pending(client, node_keys, scheduler_id)
        assert py_job.id == node_job.id == py_next
        assert _opts(py_job) == _opts(node_job)
        assert (py_job.name, py_job.data, py_job.priority) == (node_job.name, node_job.data, node_job.priority)
        py_hash = await client.execute("HGETALL", f"{py_keys['repeat']}:{scheduler_id}")
        node_hash = await client.execute("HGETALL", f"{node_keys['repeat']}:{scheduler_id}")
        assert fields_to_dict(py_hash) == fields_to_dict(node_hash)


async def test_calling_twice_for_the_same_job_adds_one_iteration(
    node: NodeDriver, client: RespClient, keys: QueueKeys
) -> None:
    await _node_upsert(
        node, keys.name, "twice", {"pattern": "0 * * * *", "tz": "UTC", "startDate": now_ms() + 86_400_000}, {}
    )
    job = await _pending(client, keys, "twice")
    first = await schedule_next_iteration(client, keys, job)
    assert first is not None and first != job.id
    assert await schedule_next_iteration(client, keys, job) is None
    assert (await _pending(client, keys, "twice")).id == first


async def test_limit_and_end_date_stop_the_schedule_as_in_node(
    node: NodeDriver, client: RespClient, keys: QueueKeys
) -> None:
    start = now_ms() + 86_400_000
    await _node_upsert(
        node, keys.name, "two", {"pattern": "0 * * * *", "tz": "UTC", "limit": 2, "startDate": start}, {}
    )
    await _node_upsert(
        node,
        keys.name,
        "ends",
        {"pattern": "0 * * * *", "tz": "UTC", "startDate": start, "endDate": start + 2 * 3_600_000 + 1},
        {},
    )
    job = await _pending(client, keys, "two")
    assert await schedule_next_iteration(client, keys, job) is not None
    assert await schedule_next_iteration(client, keys, await _pending(client, keys, "two")) is None
    job = await _pending(client, keys, "ends")
    assert await schedule_next_iteration(client, keys, job) is not None  # the 2nd hour is inside the window
    assert await schedule_next_iteration(client, keys, await _pending(client, keys, "ends")) is None


async def test_jobs_without_a_scheduler_are_ignored_and_removed_legacy_repeatables_end(
    client: RespClient, keys: QueueKeys
) -> None:
    plain = Job(keys.name, "1", {b"name": b"x", b"data": b"{}", b"opts": b"{}"})
    assert await schedule_next_iteration(client, keys, plain) is None
    legacy = Job(
        keys.name,
        "repeat:abc:1",
        {
            b"name": b"x",
            b"data": b"{}",
            b"rjk": b"x:abc::UTC:*/5 * * * *",
            b"opts": codec.encode({"repeat": {"pattern": "*/5 * * * *"}}),
        },
    )
    # A legacy (Node < 5.10) key no longer in the queue's repeat set: removed, so no next iteration.
    assert await schedule_next_iteration(client, keys, legacy) is None
    assert not await client.execute("ZCARD", keys["delayed"])
    broken = Job(keys.name, "repeat:abc:2", {**legacy.fields, b"opts": b"{}"})
    with pytest.raises(LegacyRepeatableJob, match="no repeat options"):
        await schedule_next_iteration(client, keys, broken)


# --- the seed app's schedules, across both DST changes of 2027 ------------------------------

SEED = (
    ("nightly-report", "0 2 * * *", {}),  # daily 02:00 New York
    ("hourly-sync", "0 * * * *", {}),  # hourly
    ("six-hourly-rollup", "0 */6 * * *", {}),  # every 6 h
    ("friday-digest", "0 10 * * 5", {"spread_ms": 900_000}),  # Fridays 10:00; the handler spreads the sends
)
#: Enough runs from a Friday 09:00 start for every schedule to cross the DST change.
STEPS = {"nightly-report": 4, "hourly-sync": 48, "six-hourly-rollup": 12, "friday-digest": 3}


def seed_declaration(queue: str, start: datetime) -> Declaration:
    return Declaration(
        "seed-app",
        tuple(
            Schedule(id=sid, queue=queue, pattern=pattern, tz="America/New_York", data=data, start_date=start)
            for sid, pattern, data in SEED
        ),
    )


@pytest.mark.parametrize(
    "start",
    [datetime(2027, 3, 12, 9, tzinfo=NEW_YORK), datetime(2027, 11, 5, 9, tzinfo=NEW_YORK)],
    ids=["spring", "fall"],
)
async def test_seed_schedules_fire_at_nodes_instants_across_dst(
    node: NodeDriver, client: RespClient, redis_url: str, queue_name: str, start: datetime
) -> None:
    """Declared in Python, synced, then iterated with Python and Node taking turns
    on simulated time: the fire instants are those bullbridge predicts, and
    those Node computes from the stored scheduler alone."""
    keys = QueueKeys(queue_name)
    declaration = seed_declaration(queue_name, start)
    created_at = now_ms()
    report = await sync(declaration, redis_url)
    assert len(report.created) == 4
    start_ms = datetime_ms(start)
    stored = await node.eval(
        """
      const out = {};
      for (const s of await queue(args.q).getJobSchedulers()) out[s.key] = [s.pattern, s.tz, s.startDate];
      return out;""",
        q=queue_name,
    )
    node_cases = [[stored[sid][0], stored[sid][1], created_at, stored[sid][2], None, STEPS[sid]] for sid, _, _ in SEED]
    node_sequences = await node_next_millis(node, node_cases)
    for (sid, _, _), node_sequence in zip(SEED, node_sequences):
        schedule = next(s for s in declaration.schedules if s.id == sid)
        predicted = fire_sequence(schedule.repeat(), created_at=created_at, count=STEPS[sid])
        assert predicted == node_sequence, (sid, [iso(t) for t in predicted], [iso(t) for t in node_sequence])
        assert predicted[0] > start_ms
        fired = []
        job = await _pending(client, keys, sid)
        for step in range(STEPS[sid]):
            fired.append(int(job.id.rsplit(":", 1)[1]))
            if step % 2 == 0:
                await schedule_next_iteration(client, keys, job)
            else:
                await node.eval(NODE_ITERATE, queue=queue_name, jobId=job.id)
            job = await _pending(client, keys, sid)
        assert fired == predicted, (sid, [iso(t) for t in fired], [iso(t) for t in predicted])
        offsets = {datetime.fromtimestamp(t / 1000, NEW_YORK).utcoffset() for t in fired}
        assert len(offsets) == 2, f"{sid} did not cross the DST change"
    # The nightly run stays at 02:00 local; on the spring-forward day, when 02:00 does not exist, Node fires at 03:00.
    nightly = fire_sequence(declaration.schedules[0].repeat(), created_at=created_at, count=4)
    hours = [datetime.fromtimestamp(t / 1000, NEW_YORK).hour for t in nightly]
    assert hours == ([2, 3, 2, 2] if start.month == 3 else [2, 2, 2, 2])


async def test_a_scheduler_without_template_data_keeps_the_jobs_data(
    node: NodeDriver, client: RespClient, keys: QueueKeys
) -> None:
    """Node 5.16-5.3x kept a scheduler's data in its jobs only (no 'data' in the hash). Node 5's
    updateJobScheduler carries it over and stores it; the port's (Node 6's) would give {}."""
    await _node_upsert(node, keys.name, "legacy-data", {"every": 3_600_000}, {"name": "t", "data": {"keep": "me"}})
    hash_key = f"{keys['repeat']}:legacy-data"
    await client.execute("HDEL", hash_key, "data")  # the hash as Node 5.19.1 leaves it
    current = await _pending(client, keys, "legacy-data")
    assert current.data == {"keep": "me"}
    next_id = await schedule_next_iteration(client, keys, current)
    assert next_id is not None
    nxt = Job(keys.name, next_id, fields_to_dict(await client.execute("HGETALL", keys.job(next_id))))
    assert nxt.data == {"keep": "me"}, nxt.data
    assert await client.execute("HGET", hash_key, "data") == b'{"keep":"me"}'

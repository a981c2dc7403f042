"""``sync``: Python declarations become BullMQ job schedulers Node reads as its own,
and sync only ever changes the schedulers its declaration owns."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bullbridge import codec
from bullbridge.clock import datetime_ms
from bullbridge.connection.resp import RespClient
from bullbridge.keys import QueueKeys
from bullbridge.options import Backoff, JobOptions
from bullbridge.scheduler import Declaration, OwnershipConflict, Schedule, sync
from bullbridge.scheduler.ownership import owners_key
from bullbridge.scheduler.records import read_schedulers
from bullbridge.scheduler.timing import Repeat, pattern_next_millis
from bullbridge.testing.node import NodeDriver


def _decl(name: str, *schedules: Schedule) -> Declaration:
    return Declaration(name, schedules)


async def _hash(client: RespClient, key: str) -> dict[str, str]:
    flat = await client.execute("HGETALL", key)
    return {k.decode(): v.decode() for k, v in zip(flat[::2], flat[1::2])}


async def _delayed(client: RespClient, keys: QueueKeys) -> list[str]:
    return [m.decode() for m in await client.execute("ZRANGE", keys["delayed"], 0, -1)]


def _comparable_scheduler(fields: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = dict(fields)
    for key in ("data", "opts"):
        if key in out:
            out[key] = codec.decode(out[key])
    return out


def _comparable_job_opts(raw: str) -> dict[str, Any]:
    opts: dict[str, Any] = codec.decode(raw)
    for key in ("timestamp", "delay"):
        opts.pop(key, None)
    return opts


async def test_python_declared_schedulers_are_stored_exactly_as_node_stores_them(
    node: NodeDriver, client: RespClient, redis_url: str, queue_name: str
) -> None:
    """A Python declaration and the equivalent Node upsertJobScheduler leave the
    same scheduler hash and the same first-iteration job (modulo timestamps)."""
    end = datetime.now(UTC) + timedelta(days=30)
    opts = JobOptions(attempts=3, backoff=Backoff.exponential(1000), remove_on_complete=10, keep_logs=5)
    py_queue, node_queue = queue_name, queue_name + "-node"
    declaration = _decl(
        "parity",
        Schedule(
            id="nightly",
            queue=py_queue,
            pattern="0 2 * * *",
            tz="America/New_York",
            name="cleanup",
            data={"days": 30, "label": "ü"},
            opts=opts,
            limit=100,
            end_date=end,
        ),
        Schedule(id="beat", queue=py_queue, every=600_000, offset=1234, data={"n": 1}),
    )
    report = await sync(declaration, redis_url)
    assert sorted(report.created) == [f"{py_queue}/beat", f"{py_queue}/nightly"]
    await node.eval(
        """
      const q = queue(args.q);
      await q.upsertJobScheduler('nightly', { pattern: '0 2 * * *', tz: 'America/New_York', limit: 100,
        endDate: args.end }, { name: 'cleanup', data: { days: 30, label: 'ü' },
        opts: { attempts: 3, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: 10, keepLogs: 5 } });
      await q.upsertJobScheduler('beat', { every: 600000, offset: 1234 }, { data: { n: 1 } });
    """,
        q=node_queue,
        end=datetime_ms(end),
    )
    py_keys, node_keys = QueueKeys(py_queue), QueueKeys(node_queue)
    for scheduler_id in ("nightly", "beat"):
        py_hash = await _hash(client, f"{py_keys['repeat']}:{scheduler_id}")
        node_hash = await _hash(client, f"{node_keys['repeat']}:{scheduler_id}")
        assert _comparable_scheduler(py_hash) == _comparable_scheduler(node_hash), scheduler_id
    py_jobs, node_jobs = await _delayed(client, py_keys), await _delayed(client, node_keys)
    nightly = [j for j in py_jobs if j.startswith("repeat:nightly:")]
    assert nightly and nightly == [j for j in node_jobs if j.startswith("repeat:nightly:")]
    for job_id in py_jobs:
        py_job = await _hash(client, py_keys.job(job_id))
        node_job = await _hash(client, node_keys.job(job_id))
        assert _comparable_job_opts(py_job["opts"]) == _comparable_job_opts(node_job["opts"]), job_id
        assert (py_job["name"], py_job["rjk"], codec.decode(py_job["data"])) == (
            node_job["name"],
            node_job["rjk"],
            codec.decode(node_job["data"]),
        )
    # Node's own API lists the Python-declared schedulers with the same next run.
    listed = await node.eval(
        "return (await queue(args.q).getJobSchedulers()).map(s => [s.key, s.next, s.tz]);", q=py_queue
    )
    expected_next = pattern_next_millis(
        int(datetime.now(UTC).timestamp() * 1000), Repeat(pattern="0 2 * * *", tz="America/New_York")
    )
    assert ["nightly", expected_next, "America/New_York"] in listed


async def test_resync_leaves_unchanged_schedulers_alone(client: RespClient, redis_url: str, queue_name: str) -> None:
    keys = QueueKeys(queue_name)
    declaration = _decl("keep", Schedule(id="hourly", queue=queue_name, pattern="0 * * * *", tz="Europe/Berlin"))
    first = await sync(declaration, redis_url)
    assert first.created == [f"{queue_name}/hourly"]
    await client.execute("HSET", f"{keys['repeat']}:hourly", "ic", 7)  # as if 7 runs happened
    before = await _delayed(client, keys)
    second = await sync(declaration, redis_url)
    assert second.unchanged == [f"{queue_name}/hourly"] and not second.changed
    assert await _delayed(client, keys) == before
    assert (await _hash(client, f"{keys['repeat']}:hourly"))["ic"] == "7"


async def test_changed_schedule_is_updated_and_undeclared_one_removed(
    client: RespClient, redis_url: str, queue_name: str
) -> None:
    keys = QueueKeys(queue_name)
    a = Schedule(id="a", queue=queue_name, pattern="0 3 * * *", tz="UTC")
    b = Schedule(id="b", queue=queue_name, every=3_600_000)
    await sync(_decl("svc", a, b), redis_url)
    a2 = Schedule(id="a", queue=queue_name, pattern="0 4 * * *", tz="UTC", data={"v": 2})
    report = await sync(_decl("svc", a2), redis_url)
    assert report.updated == [f"{queue_name}/a"]
    assert report.removed == [f"{queue_name}/b"]
    infos = await read_schedulers(client, keys)
    assert set(infos) == {"a"}
    assert infos["a"].pattern == "0 4 * * *" and infos["a"].owner == "svc"
    assert not [j for j in await _delayed(client, keys) if j.startswith("repeat:b:")]
    assert set((await _hash(client, owners_key(keys))).keys()) == {"a"}


async def test_sync_never_touches_schedulers_it_does_not_own(
    node: NodeDriver, client: RespClient, redis_url: str, queue_name: str
) -> None:
    keys = QueueKeys(queue_name)
    await node.eval(
        """
      const q = queue(args.q);
      await q.upsertJobScheduler('node-only', { every: 3600000 }, { name: 'n' });
      await q.upsertJobScheduler('taken', { pattern: '0 5 * * *', tz: 'UTC' }, { name: 'node-version' });
    """,
        q=queue_name,
    )
    ours = Schedule(id="taken", queue=queue_name, pattern="0 6 * * *", tz="UTC", name="python-version")
    report = await sync(_decl("py", ours), redis_url)
    assert report.conflicts == [f"{queue_name}/taken"] and not report.changed
    with pytest.raises(OwnershipConflict, match="taken"):
        report.raise_for_conflicts()
    infos = await read_schedulers(client, keys)
    assert infos["taken"].name == "node-version" and infos["taken"].pattern == "0 5 * * *"
    # An empty declaration prunes nothing it does not own.
    report = await sync(_decl("py"), redis_url)
    assert not report.removed
    assert set(await read_schedulers(client, keys)) == {"node-only", "taken"}
    # Another declaration cannot take a Python-owned scheduler either.
    await sync(_decl("py", Schedule(id="mine", queue=queue_name, every=60_000)), redis_url)
    report = await sync(_decl("other", Schedule(id="mine", queue=queue_name, every=30_000)), redis_url)
    assert report.conflicts == [f"{queue_name}/mine"]
    assert (await read_schedulers(client, keys))["mine"].every == 60_000
    # ... unless told to adopt.
    report = await sync(_decl("py", Schedule(id="mine", queue=queue_name, every=60_000), ours), redis_url, adopt=True)
    assert report.updated == [f"{queue_name}/taken"]
    infos = await read_schedulers(client, keys)
    assert infos["taken"].name == "python-version" and infos["taken"].owner == "py"
    assert infos["node-only"].owner is None


async def test_scheduler_changed_by_node_is_released_not_removed(
    node: NodeDriver, client: RespClient, redis_url: str, queue_name: str
) -> None:
    keys = QueueKeys(queue_name)
    await sync(_decl("py", Schedule(id="x", queue=queue_name, pattern="0 1 * * *", tz="UTC")), redis_url)
    await node.eval(
        "await queue(args.q).upsertJobScheduler('x', { pattern: '0 9 * * *', tz: 'UTC' }, {});", q=queue_name
    )
    report = await sync(_decl("py"), redis_url)
    assert report.released == [f"{queue_name}/x"] and not report.removed
    infos = await read_schedulers(client, keys)
    assert infos["x"].pattern == "0 9 * * *" and infos["x"].owner is None


async def test_concurrent_syncs_of_one_declaration_leave_exactly_one_scheduler(
    client: RespClient, redis_url: str, queue_name: str
) -> None:
    keys = QueueKeys(queue_name)

    def declaration() -> Declaration:  # each "instance" builds its own objects
        return _decl(
            "fleet",
            Schedule(id="daily", queue=queue_name, pattern="0 2 * * *", tz="America/New_York"),
            Schedule(id="tick", queue=queue_name, every=500),
        )

    reports = await asyncio.gather(*(sync(declaration(), redis_url) for _ in range(4)))
    assert sorted(len(r.created) for r in reports) == [0, 0, 0, 2]
    assert sum(len(r.unchanged) for r in reports) == 6
    assert sorted(m.decode() for m in await client.execute("ZRANGE", keys["repeat"], 0, -1)) == ["daily", "tick"]
    pending = await client.execute_many([("ZRANGE", keys["delayed"], 0, -1), ("LRANGE", keys["wait"], 0, -1)])
    jobs = [m.decode() for part in pending for m in part]
    assert len([j for j in jobs if j.startswith("repeat:daily:")]) == 1
    assert len([j for j in jobs if j.startswith("repeat:tick:")]) == 1


async def test_schedule_moved_to_another_queue_is_pruned_from_the_old_one(
    client: RespClient, redis_url: str, queue_name: str
) -> None:
    old, new = queue_name, queue_name + "-b"
    await sync(_decl("mover", Schedule(id="m", queue=old, every=3_600_000)), redis_url)
    report = await sync(_decl("mover", Schedule(id="m", queue=new, every=3_600_000)), redis_url)
    assert report.created == [f"{new}/m"] and report.removed == [f"{old}/m"]
    assert not await read_schedulers(client, QueueKeys(old))


async def test_pattern_without_tz_is_stored_as_utc_with_a_warning(
    node: NodeDriver, client: RespClient, redis_url: str, queue_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bullbridge.scheduler.sync"):
        await sync(_decl("notz", Schedule(id="n", queue=queue_name, pattern="30 2 * * *")), redis_url)
    assert any("has no tz" in r.getMessage() for r in caplog.records)
    info = (await read_schedulers(client, QueueKeys(queue_name)))["n"]
    assert info.tz == "UTC"
    # Node, whatever its own process zone, now computes the same next run.
    node_next = await node.eval(
        """
      const s = await queue(args.q).getJobScheduler('n');
      return bullmq.defaultRepeatStrategy(args.now, { pattern: s.pattern, tz: s.tz });
    """,
        q=queue_name,
        now=1_762_000_000_000,
    )
    assert node_next == pattern_next_millis(1_762_000_000_000, Repeat(pattern="30 2 * * *"))


async def test_expired_schedule_is_skipped_and_pattern_with_no_run_left_too(redis_url: str, queue_name: str) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=2)
    report = await sync(
        _decl("late", Schedule(id="yearly", queue=queue_name, pattern="0 0 1 1 *", tz="UTC", end_date=soon)), redis_url
    )
    assert report.skipped == [f"{queue_name}/yearly"] and not report.created

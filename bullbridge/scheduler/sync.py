"""Make Redis hold exactly the schedulers a declaration declares.

``sync`` upserts each declared schedule as a BullMQ job scheduler (BullMQ's
own ``addJobScheduler``, as Node's ``Queue.upsertJobScheduler`` does) and
removes the schedulers this declaration created earlier and no longer
declares. It never touches a scheduler it does not own:

* an id already used by a scheduler without our ownership record (made by
  Node, by hand, by another declaration) is a *conflict*: left alone and
  reported, unless ``adopt=True``;
* a scheduler we created but someone else changed since (a Node upsert with
  the same id) is *restored* if still declared, *released* (left in place,
  record dropped) if not;
* an unchanged scheduler is not rewritten, so its iteration count, its
  pending job and ``limit`` accounting survive every deploy.

Syncs of one declaration are serialised by a short Redis lock, so several
instances starting at once leave one scheduler per id and report it created
once. A ``pattern`` without ``tz`` is stored as UTC (with a warning): Node
would otherwise compute it in each process's local zone.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field

from bullbridge.clock import now_ms
from bullbridge.connection import ConnectionSource, RedisConnector, connect
from bullbridge.connection.resp import RespClient
from bullbridge.keys import QueueKeys
from bullbridge.scheduler import ownership, store
from bullbridge.scheduler.declaration import Declaration
from bullbridge.scheduler.errors import InvalidSchedule, OwnershipConflict, SchedulerError
from bullbridge.scheduler.records import read_schedulers
from bullbridge.scheduler.schedule import Schedule

log = logging.getLogger("bullbridge.scheduler.sync")

LOCK_TTL_MS = 30_000
# Compare-and-delete for our own lock key (not a BullMQ structure).
_UNLOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


@dataclass
class SyncReport:
    """What a sync did, as ``queue/id`` strings per outcome."""

    declaration: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.removed)

    def raise_for_conflicts(self) -> SyncReport:
        """Raise :class:`OwnershipConflict` when a declared id was left alone
        because someone else owns it (for services that must not start then)."""
        if self.conflicts:
            raise OwnershipConflict(
                f"declaration {self.declaration!r}: {', '.join(self.conflicts)} exist and are not owned by it "
                "(made by Node, by hand or by another declaration); rename them, or sync with adopt=True"
            )
        return self

    def lines(self) -> list[str]:
        out = []
        for label in ("created", "updated", "unchanged", "removed", "released", "conflicts", "skipped"):
            for item in getattr(self, label):
                out.append(f"{label:9} {item}")
        return out


async def sync(
    declaration: Declaration,
    connection: ConnectionSource | RespClient | None = None,
    *,
    adopt: bool = False,
    lock_timeout: float = 10.0,
) -> SyncReport:
    """Reconcile Redis with ``declaration``; see the module docstring."""
    for schedule in declaration.schedules:
        if schedule.pattern is not None and schedule.tz is None:
            log.warning(
                "schedule %r has no tz: bullbridge stores it as tz='UTC' so every worker agrees "
                "(a Node scheduler without tz would run in each Node process's local zone); "
                "set tz explicitly to silence this",
                schedule.id,
            )
    if isinstance(connection, RespClient):
        return await _sync(declaration, connection, adopt, lock_timeout)
    connector = connect(connection)
    client = connector.fast("bullbridge:scheduler-sync")
    try:
        return await _sync(declaration, client, adopt, lock_timeout)
    finally:
        await client.close()
        if not isinstance(connection, RedisConnector):
            await connector.close()


async def _sync(declaration: Declaration, client: RespClient, adopt: bool, lock_timeout: float) -> SyncReport:
    report = SyncReport(declaration.name)
    by_queue: dict[tuple[str, str], list[Schedule]] = defaultdict(list)
    for schedule in declaration.schedules:
        by_queue[(schedule.prefix, schedule.queue)].append(schedule)
    prefixes = {prefix for prefix, _ in by_queue} or {"bull"}
    tokens = {prefix: await _lock(client, prefix, declaration.name, lock_timeout) for prefix in sorted(prefixes)}
    try:
        for prefix in sorted(prefixes):
            indexed = await client.execute("SMEMBERS", ownership.declarations_key(prefix, declaration.name))
            queues = {q for p, q in by_queue if p == prefix} | {_text(q) for q in indexed}
            for queue in sorted(queues):
                await _sync_queue(
                    client, declaration.name, QueueKeys(queue, prefix), by_queue.get((prefix, queue), []), adopt, report
                )
    finally:
        for prefix, token in tokens.items():
            await client.execute("EVAL", _UNLOCK, 1, ownership.lock_key(prefix, declaration.name), token)
    log.info(
        "sync of %s: %d created, %d updated, %d unchanged, %d removed, %d conflicts",
        declaration.name,
        len(report.created),
        len(report.updated),
        len(report.unchanged),
        len(report.removed),
        len(report.conflicts),
    )
    return report


async def _lock(client: RespClient, prefix: str, name: str, timeout: float) -> str:
    token = secrets.token_hex(8)
    key = ownership.lock_key(prefix, name)
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        if await client.execute("SET", key, token, "NX", "PX", LOCK_TTL_MS):
            return token
        if time.monotonic() > deadline:
            raise SchedulerError(f"another sync of declaration {name!r} holds {key} for more than {timeout:g} s")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


async def _sync_queue(
    client: RespClient, owner: str, keys: QueueKeys, declared: list[Schedule], adopt: bool, report: SyncReport
) -> None:
    records = await ownership.owner_records(client, keys)
    ours = {i for i, r in records.items() if r.owner == owner}
    ids = sorted({s.id for s in declared} | ours)
    live = await read_schedulers(client, keys, ids)
    now = now_ms()
    active: dict[str, Schedule] = {}
    for schedule in declared:
        where = f"{keys.name}/{schedule.id}"
        try:
            if store.upsert_command(keys, schedule, now=now) is None:
                report.skipped.append(where)
                log.warning("schedule %s has no run left before its end_date; not scheduled", where)
                continue
        except InvalidSchedule as exc:
            report.skipped.append(where)
            log.warning("%s; not scheduled", exc)
            continue
        active[schedule.id] = schedule

    for scheduler_id, schedule in active.items():
        where = f"{keys.name}/{scheduler_id}"
        info = live[scheduler_id]
        record = records.get(scheduler_id)
        expect = schedule.expected_state()
        new_record = ownership.OwnerRecord(owner, expect, now)
        present = info.exists or info.legacy
        if not present:
            await store.upsert(client, keys, schedule, record=new_record)
            report.created.append(where)
            continue
        mine = record is not None and record.owner == owner
        if not mine:
            if not adopt:
                holder = f"declaration {record.owner!r}" if record else "someone else (Node, or by hand)"
                log.warning(
                    "scheduler %s exists and belongs to %s: left alone (sync with adopt=True to take it)", where, holder
                )
                report.conflicts.append(where)
                continue
            log.warning("adopting scheduler %s", where)
        elif record is not None and not store.matches(record.expect, info) and not store.matches(expect, info):
            log.warning(
                "scheduler %s was changed outside declaration %r; restoring the declared definition", where, owner
            )
        if mine and store.matches(expect, info):
            if record is not None and record.expect != expect:
                await client.execute("HSET", ownership.owners_key(keys), scheduler_id, new_record.encode())
            report.unchanged.append(where)
            continue
        await store.upsert(client, keys, schedule, record=new_record)
        report.updated.append(where)

    for scheduler_id in sorted(ours - set(active)):
        where = f"{keys.name}/{scheduler_id}"
        info = live[scheduler_id]
        record = records[scheduler_id]
        if not (info.exists or info.legacy):
            await client.execute("HDEL", ownership.owners_key(keys), scheduler_id)
        elif store.matches(record.expect, info):
            await store.remove(client, keys, scheduler_id)
            report.removed.append(where)
        else:
            await client.execute("HDEL", ownership.owners_key(keys), scheduler_id)
            log.warning("scheduler %s is no longer declared but was changed by someone else: left in place", where)
            report.released.append(where)

    remaining = await ownership.owner_records(client, keys)
    index = ownership.declarations_key(keys.prefix, owner)
    if any(r.owner == owner for r in remaining.values()):
        await client.execute("SADD", index, keys.name)
    else:
        await client.execute("SREM", index, keys.name)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

"""Job schedulers in Redis: written and removed by BullMQ's own scripts, read as Node reads them.

A scheduler is BullMQ's: a member of the queue's ``repeat`` sorted set (score:
next run), a hash ``<prefix>:<queue>:repeat:<id>`` (name, pattern/every, tz,
start/end date, limit, offset, template ``data``/``opts``, iteration count
``ic``) and one delayed job ``repeat:<id>:<nextMillis>``. This module writes
them only through the port's ``addJobScheduler`` / ``removeJobScheduler``
scripts, with the arguments Node's ``JobScheduler.upsertJobScheduler``
(``override: true``) builds.

Ownership lives beside it, in keys BullMQ never reads (so Node tolerates them):

* ``<prefix>:<queue>:bullbridge:schedulers`` - a hash, scheduler id -> JSON
  ``{"owner": <declaration>, "expect": <scheduler state we wrote>, "synced": ms}``;
* ``<prefix>:bullbridge:declarations:<declaration>`` - a set of the queues where
  the declaration owns schedulers (so a schedule moved to another queue is
  still found and pruned);
* ``<prefix>:bullbridge:sync-lock:<declaration>`` - a short lock serialising
  syncs of one declaration.

``expect`` lets sync tell "still as we wrote it" from "changed by someone else"
(a Node ``upsertJobScheduler`` with the same id): only the former is ever
removed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bullbridge import codec, scripts
from bullbridge.clock import now_ms
from bullbridge.connection.resp import Arg, RespClient, RespError
from bullbridge.errors import CorruptJob, ScriptError
from bullbridge.keys import QueueKeys
from bullbridge.scheduler.errors import InvalidSchedule, SchedulerError
from bullbridge.scheduler.schedule import Schedule
from bullbridge.scheduler.timing import pattern_next_millis

log = logging.getLogger("bullbridge.scheduler.store")

SCRIPTS = ("addJobScheduler", "removeJobScheduler", "updateJobScheduler")
_STATE_INTS = ("every", "startDate", "endDate", "limit", "offset")


def owners_key(keys: QueueKeys) -> str:
    return f"{keys.base}bullbridge:schedulers"


def declarations_key(prefix: str, declaration: str) -> str:
    return f"{prefix}:bullbridge:declarations:{declaration}"


def lock_key(prefix: str, declaration: str) -> str:
    return f"{prefix}:bullbridge:sync-lock:{declaration}"


def scheduler_key(keys: QueueKeys, scheduler_id: str) -> str:
    return f"{keys['repeat']}:{scheduler_id}"


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


async def load_scripts(client: RespClient, names: Sequence[str] = SCRIPTS) -> None:
    """Make sure the scripts exist on the server before a MULTI uses them."""
    await client.execute_many([("SCRIPT", "LOAD", scripts.script(n).source) for n in names])


# --- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SchedulerInfo:
    """One scheduler as stored (by either language), plus its owner if any."""

    queue: str
    id: str
    next_millis: int | None
    fields: dict[str, str]
    owner: str | None = None

    @property
    def exists(self) -> bool:
        """BullMQ's ``isJobScheduler``: the hash has an iteration count."""
        return "ic" in self.fields

    @property
    def legacy(self) -> bool:
        """A pre-v6 repeatable job (a ``repeat`` member without a scheduler hash)."""
        return self.next_millis is not None and not self.fields

    def _int(self, key: str) -> int | None:
        raw = self.fields.get(key)
        if raw is None or raw == "":
            return None
        try:
            return int(float(raw))
        except ValueError:
            return None

    @property
    def name(self) -> str | None:
        return self.fields.get("name")

    @property
    def pattern(self) -> str | None:
        return self.fields.get("pattern") or None

    @property
    def every(self) -> int | None:
        return self._int("every")

    @property
    def tz(self) -> str | None:
        return self.fields.get("tz") or None

    @property
    def limit(self) -> int | None:
        return self._int("limit")

    @property
    def iteration_count(self) -> int | None:
        return self._int("ic")

    @property
    def start_date(self) -> int | None:
        return self._int("startDate")

    @property
    def end_date(self) -> int | None:
        return self._int("endDate")

    def state(self) -> dict[str, Any]:
        """The comparable definition (the shape of :meth:`Schedule.expected_state`)."""
        out: dict[str, Any] = {
            "name": self.fields.get("name"),
            "pattern": self.fields.get("pattern"),
            "tz": self.fields.get("tz"),
        }
        for key in _STATE_INTS:
            out[key] = self._int(key)
        for key in ("data", "opts"):
            raw = self.fields.get(key)
            try:
                out[key] = codec.decode(raw) if raw else {}
            except CorruptJob:
                out[key] = raw
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the CLI's ``list --json``)."""
        return {
            "queue": self.queue,
            "id": self.id,
            "name": self.name,
            "pattern": self.pattern,
            "every": self.every,
            "tz": self.tz,
            "next": self.next_millis,
            "iterationCount": self.iteration_count,
            "limit": self.limit,
            "startDate": self.start_date,
            "endDate": self.end_date,
            "owner": self.owner,
            "legacy": self.legacy,
        }


def matches(expect: dict[str, Any], live: SchedulerInfo) -> bool:
    """Whether the live scheduler still holds the definition ``expect``
    (:meth:`Schedule.expected_state`); ``offset`` counts only when declared."""
    state = live.state()
    return all(state.get(key) == value for key, value in expect.items()
               if key != "offset" or value is not None)


async def read_schedulers(client: RespClient, keys: QueueKeys, ids: Sequence[str] | None = None
                          ) -> dict[str, SchedulerInfo]:
    """Schedulers of one queue by id (all of them when ``ids`` is None), with owners."""
    if ids is None:
        flat = await client.execute("ZRANGE", keys["repeat"], 0, -1, "WITHSCORES")
        pairs = list(zip(flat[::2], flat[1::2]))
        ids = [_text(member) for member, _ in pairs]
        scores: list[Any] = [score for _, score in pairs]
        replies = await client.execute_many(
            [*(("HGETALL", scheduler_key(keys, i)) for i in ids), ("HGETALL", owners_key(keys))])
    else:
        commands: list[tuple[Arg, ...]] = [("ZSCORE", keys["repeat"], i) for i in ids]
        commands += [("HGETALL", scheduler_key(keys, i)) for i in ids]
        commands.append(("HGETALL", owners_key(keys)))
        replies = await client.execute_many(commands)
        scores = replies[: len(ids)]
        replies = replies[len(ids):]
    owners = _owner_records(replies[-1])
    out: dict[str, SchedulerInfo] = {}
    for scheduler_id, score, raw in zip(ids, scores, replies[:-1]):
        flat_fields = list(raw or [])
        fields = {_text(k): _text(v) for k, v in zip(flat_fields[::2], flat_fields[1::2])}
        record = owners.get(scheduler_id)
        out[scheduler_id] = SchedulerInfo(
            queue=keys.name, id=scheduler_id,
            next_millis=int(float(score)) if score is not None else None,
            fields=fields, owner=record.owner if record else None)
    return out


# --- ownership records ---------------------------------------------------------------------


@dataclass(frozen=True)
class OwnerRecord:
    owner: str
    expect: dict[str, Any] = field(default_factory=dict)
    synced: int = 0

    def encode(self) -> bytes:
        return json.dumps({"owner": self.owner, "expect": self.expect, "synced": self.synced},
                          separators=(",", ":"), sort_keys=True).encode()


def _owner_records(flat: Any) -> dict[str, OwnerRecord]:
    items = list(flat or [])
    out: dict[str, OwnerRecord] = {}
    for key, raw in zip(items[::2], items[1::2]):
        try:
            value = json.loads(raw)
            out[_text(key)] = OwnerRecord(str(value["owner"]), dict(value.get("expect") or {}),
                                          int(value.get("synced") or 0))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring unreadable ownership record %r in %s", _text(key), _text(raw)[:80])
    return out


async def owner_records(client: RespClient, keys: QueueKeys) -> dict[str, OwnerRecord]:
    return _owner_records(await client.execute("HGETALL", owners_key(keys)))


# --- writing ---------------------------------------------------------------------------------


def next_job_opts(base: dict[str, Any], *, scheduler_id: str, next_millis: int | None, repeat: dict[str, Any],
                  count: int, offset: int | None, now: int) -> dict[str, Any]:
    """Node's ``JobScheduler.getNextJobOpts``, already in stored (``optsAsJSON``)
    form: the options of the iteration a scheduler adds.

    For ``every`` schedulers Node passes no ``nextMillis``: the script computes
    it and overwrites ``jobId`` and ``delay``; ``prevMillis`` stays unset."""
    merged = dict(base)
    merged.pop("repeatJobKey", None)
    if next_millis is not None:
        merged["jobId"] = f"repeat:{scheduler_id}:{next_millis}"
        merged["delay"] = max(0, next_millis + (offset or 0) - now)
        merged["prevMillis"] = next_millis
    else:
        merged["jobId"] = f"repeat:{scheduler_id}:undefined"
        merged["delay"] = 0
        merged.pop("prevMillis", None)
    merged["timestamp"] = now
    merged["repeatJobKey"] = scheduler_id
    merged_repeat = {**repeat, "offset": offset, "count": count}
    for key in ("startDate", "endDate"):
        value = repeat.get(key)
        merged_repeat[key] = int(value) if value else None
    merged["repeat"] = {k: v for k, v in merged_repeat.items() if v is not None}
    return {k: v for k, v in merged.items() if v is not None}


@dataclass(frozen=True)
class Upserted:
    """The first iteration ``addJobScheduler`` added: its job id and delay."""

    job_id: str
    delay: int


def upsert_command(keys: QueueKeys, schedule: Schedule, *, now: int | None = None) -> tuple[Arg, ...] | None:
    """The EVALSHA of ``addJobScheduler`` that Node's ``Queue.upsertJobScheduler``
    would send for this schedule, or None when BullMQ would add nothing (a
    pattern with no run left before ``end_date``)."""
    now = now_ms() if now is None else now
    if schedule.end_ms and schedule.end_ms < now:
        raise InvalidSchedule(f"schedule {schedule.id!r}: End date must be greater than current timestamp")
    repeat = schedule.repeat()
    next_millis: int | None = None
    if schedule.pattern is not None:
        next_millis = pattern_next_millis(now, repeat, clock=now)
        if next_millis is None:
            return None
    new_offset = schedule.offset_ms if schedule.every is not None and schedule.offset_ms else None
    template = schedule.template_opts()
    delayed = next_job_opts(template, scheduler_id=schedule.id, next_millis=next_millis,
                            repeat=schedule.repeat_opts(), count=1, offset=new_offset, now=now_ms())
    k = keys
    script_keys: list[Arg] = [k["repeat"], k["delayed"], k["wait"], k["paused"], k["meta"], k["prioritized"],
                              k["marker"], k["id"], k["events"], k["pc"], k["active"]]
    args: list[Arg] = [
        next_millis if next_millis is not None else "",
        scripts.pack(schedule.scheduler_opts()),
        schedule.id,
        schedule.data_json(),
        scripts.pack(template),
        scripts.pack(delayed),
        now_ms(),
        k.base,
        "",
    ]
    return scripts.evalsha_command("addJobScheduler", script_keys, args)


def remove_command(keys: QueueKeys, scheduler_id: str) -> tuple[Arg, ...]:
    """The EVALSHA of ``removeJobScheduler`` (Node's ``Queue.removeJobScheduler``)."""
    return scripts.evalsha_command("removeJobScheduler", [keys["repeat"], keys["delayed"], keys["events"]],
                                   [scheduler_id, keys.base])


def upsert_result(reply: Any, scheduler_id: str) -> Upserted:
    """Decode ``addJobScheduler``'s reply; raise on its error codes."""
    if isinstance(reply, RespError):
        raise SchedulerError(f"addJobScheduler for {scheduler_id!r} failed: {reply}")
    if isinstance(reply, int) and reply < 0:
        reason = {-10: "a job with this iteration's id already exists (SchedulerJobIdCollision)",
                  -11: "every slot scanned is taken (SchedulerJobSlotsBusy)"}.get(reply, f"code {reply}")
        raise ScriptError(f"addJobScheduler for {scheduler_id!r} refused: {reason}", reply)
    job_id, delay = reply
    return Upserted(_text(job_id), int(float(_text(delay))))


async def upsert(client: RespClient, keys: QueueKeys, schedule: Schedule, *,
                 record: OwnerRecord | None = None) -> Upserted | None:
    """Create or replace one scheduler (and its ownership record, atomically)."""
    command = upsert_command(keys, schedule)
    if command is None:
        if record is not None:
            await client.execute("HDEL", owners_key(keys), schedule.id)
        return None
    await load_scripts(client, ("addJobScheduler",))
    commands: list[tuple[Arg, ...]] = [command]
    if record is not None:
        commands.append(("HSET", owners_key(keys), schedule.id, record.encode()))
    replies = await client.execute_many(commands, transaction=True)
    return upsert_result(replies[0], schedule.id)


async def remove(client: RespClient, keys: QueueKeys, scheduler_id: str, *, forget: bool = True) -> bool:
    """Remove a scheduler and its pending iteration (and our record of it).
    True when it existed."""
    await load_scripts(client, ("removeJobScheduler",))
    commands: list[tuple[Arg, ...]] = [remove_command(keys, scheduler_id)]
    if forget:
        commands.append(("HDEL", owners_key(keys), scheduler_id))
    replies = await client.execute_many(commands, transaction=True)
    if isinstance(replies[0], RespError):
        raise SchedulerError(f"removeJobScheduler for {scheduler_id!r} failed: {replies[0]}")
    return bool(replies[0] == 0)

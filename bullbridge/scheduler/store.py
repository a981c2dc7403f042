"""Job schedulers written and removed by BullMQ's own scripts, as Node writes them.

This module writes schedulers (see :mod:`bullbridge.scheduler.records` for
what one is in Redis) only through the port's ``addJobScheduler`` /
``removeJobScheduler`` scripts, with the arguments Node's
``JobScheduler.upsertJobScheduler`` (``override: true``) builds, and keeps the
ownership record (:mod:`bullbridge.scheduler.ownership`) in the same MULTI.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bullbridge import scripts
from bullbridge.clock import now_ms
from bullbridge.connection.resp import Arg, RespClient, RespError
from bullbridge.errors import ScriptError
from bullbridge.keys import QueueKeys
from bullbridge.scheduler.errors import InvalidSchedule, SchedulerError
from bullbridge.scheduler.ownership import OwnerRecord, owners_key
from bullbridge.scheduler.records import SchedulerInfo
from bullbridge.scheduler.schedule import Schedule
from bullbridge.scheduler.timing import pattern_next_millis

SCRIPTS = ("addJobScheduler", "removeJobScheduler", "updateJobScheduler")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


async def load_scripts(client: RespClient, names: Sequence[str] = SCRIPTS) -> None:
    """Make sure the scripts exist on the server before a MULTI uses them."""
    await client.execute_many([("SCRIPT", "LOAD", scripts.script(n).source) for n in names])


# --- comparing -------------------------------------------------------------------------------


def matches(expect: dict[str, Any], live: SchedulerInfo) -> bool:
    """Whether the live scheduler still holds the definition ``expect``
    (:meth:`Schedule.expected_state`); ``offset`` counts only when declared."""
    state = live.state()
    return all(state.get(key) == value for key, value in expect.items() if key != "offset" or value is not None)


# --- writing ---------------------------------------------------------------------------------


def node_job_opts(stored: dict[str, Any]) -> dict[str, Any]:
    """A job's stored options as Node re-stores them after reading the job
    (``optsFromJSON`` + the ``Job`` constructor + ``optsAsJSON``): without
    ``repeatJobKey``, ``attempts`` defaulting to 0, a numeric ``backoff``
    normalised to ``{type: 'fixed', delay}`` and a falsy one dropped."""
    opts = dict(stored)
    opts.pop("repeatJobKey", None)
    opts.setdefault("attempts", 0)
    backoff = opts.get("backoff")
    if isinstance(backoff, (int, float)) and not isinstance(backoff, bool) and math.isfinite(backoff):
        opts["backoff"] = {"type": "fixed", "delay": backoff}
    elif not _js_truthy(backoff):
        opts.pop("backoff", None)
    return opts


def _js_truthy(value: Any) -> bool:
    if value is None or value is False or value == "":
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0 and not (isinstance(value, float) and math.isnan(value))
    return True


def next_job_opts(
    base: dict[str, Any],
    *,
    scheduler_id: str,
    next_millis: int | None,
    repeat: dict[str, Any],
    count: int,
    offset: int | None,
    now: int,
) -> dict[str, Any]:
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
    delayed = next_job_opts(
        template,
        scheduler_id=schedule.id,
        next_millis=next_millis,
        repeat=schedule.repeat_opts(),
        count=1,
        offset=new_offset,
        now=now_ms(),
    )
    k = keys
    script_keys: list[Arg] = [
        k["repeat"],
        k["delayed"],
        k["wait"],
        k["paused"],
        k["meta"],
        k["prioritized"],
        k["marker"],
        k["id"],
        k["events"],
        k["pc"],
        k["active"],
    ]
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
    return scripts.evalsha_command(
        "removeJobScheduler", [keys["repeat"], keys["delayed"], keys["events"]], [scheduler_id, keys.base]
    )


def upsert_result(reply: Any, scheduler_id: str) -> Upserted:
    """Decode ``addJobScheduler``'s reply; raise on its error codes."""
    if isinstance(reply, RespError):
        raise SchedulerError(f"addJobScheduler for {scheduler_id!r} failed: {reply}")
    if isinstance(reply, int) and reply < 0:
        reason = {
            -10: "a job with this iteration's id already exists (SchedulerJobIdCollision)",
            -11: "every slot scanned is taken (SchedulerJobSlotsBusy)",
        }.get(reply, f"code {reply}")
        raise ScriptError(f"addJobScheduler for {scheduler_id!r} refused: {reason}", reply)
    job_id, delay = reply
    return Upserted(_text(job_id), int(float(_text(delay))))


async def upsert(
    client: RespClient, keys: QueueKeys, schedule: Schedule, *, record: OwnerRecord | None = None
) -> Upserted | None:
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

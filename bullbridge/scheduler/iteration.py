"""Materialise a scheduler's next iteration when a worker picks up the current one.

Node's Worker, on every fetched job whose hash has ``rjk`` (the scheduler
id), calls ``JobScheduler.upsertJobScheduler(job.repeatJobKey,
job.opts.repeat, job.name, job.data, job.opts, {override: false, producerId:
job.id})`` before processing it. That adds the next delayed job, so a
schedule keeps going whichever language's worker runs it. The port instead
computes the next cron run with croniter (one hour late at DST fall-back),
so a shared schedule drifts when a Python worker takes a turn.

:func:`schedule_next_iteration` does what Node does, step for step: the same
limit and ``endDate`` checks, ``now = max(prevMillis, Date.now())``, the next
run from :mod:`bullbridge.scheduler.timing` (cron-parser's algorithm), the
next job's options exactly as Node derives them from the current job's
(``optsFromJSON`` -> ``new Job`` -> ``getNextJobOpts`` -> ``optsAsJSON``), and
the port's ``updateJobScheduler`` script with Node's argument layout. The
script ignores a second call for the same job, so calling it twice is safe.

A legacy repeatable job (Node < 5.10's ``repeat`` option: a ``name:id:endDate:tz:every``
key and no scheduler hash) gets its next iteration as a Node 5 worker adds it
(:mod:`bullbridge.scheduler.legacy`; Node 6 refuses it).

Errors: :class:`LegacyRepeatableJob` when such a job has no repeat options;
:class:`SchedulerError` / :class:`InvalidSchedule` when Node's
``upsertJobScheduler`` would throw (Node then emits an ``error`` and does not
run the job; it comes back through stall recovery).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from bullbridge import scripts
from bullbridge.clock import now_ms
from bullbridge.compat import parse_meta_version, parse_version
from bullbridge.connection.resp import Arg, RespClient
from bullbridge.job import Job
from bullbridge.keys import QueueKeys
from bullbridge.scheduler.errors import SchedulerError
from bullbridge.scheduler.legacy import has_legacy_key_shape, schedule_next_legacy
from bullbridge.scheduler.records import scheduler_key
from bullbridge.scheduler.store import next_job_opts, node_job_opts
from bullbridge.scheduler.timing import Repeat, pattern_next_millis

log = logging.getLogger("bullbridge.scheduler.iteration")

LEGACY_MIGRATION_URL = "https://docs.bullmq.io/guide/migrations/migrate-from-v5-to-v6"
_warned_no_tz: set[str] = set()


def _js_truthy(value: Any) -> bool:
    if value is None or value is False or value == "":
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0 and not (isinstance(value, float) and math.isnan(value))
    return True


def _number(value: Any, what: str) -> int | None:
    """A stored numeric option (ms or count) as an int; None when unset."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise SchedulerError(f"repeat option {what} is not a number: {value!r}")
    try:
        return int(float(value))
    except (ValueError, OverflowError):  # "x", or Infinity (1e400) from a foreign writer
        raise SchedulerError(f"repeat option {what} is not a number: {value!r}") from None


def _before_scheduler_script(raw_version: Any) -> bool:
    """Whether the queue's Node writes no newer version than 5.34.7 (or none at all: Node <
    5.20): its workers continue repeatables in JavaScript, not with ``updateJobScheduler``."""
    parsed = parse_meta_version(raw_version)
    if parsed is None or parsed[0] != "bullmq":
        return parsed is None or parsed[0] == "bullbridge"
    version = parse_version(parsed[1])
    return version is not None and version < (5, 34, 8)


async def _keep_template_data(client: RespClient, keys: QueueKeys, scheduler_id: str, job: Job) -> None:
    """A scheduler Node 5.16-5.3x made keeps its job data in its jobs, not in its hash.
    Node 5's ``updateJobScheduler`` then carries the current job's data over (and stores
    it in the hash); the port's (Node 6's) gives the next iteration ``{}``. Store the
    data first where the hash has none, as Node 5 does, so the next iteration keeps it."""
    data = job.fields.get(b"data")
    if not data or data == b"{}":
        return
    hash_key = scheduler_key(keys, scheduler_id)
    exists, has_data = await client.execute_many([("EXISTS", hash_key), ("HEXISTS", hash_key, "data")])
    if exists and not has_data:
        await client.execute("HSETNX", hash_key, "data", data)


async def schedule_next_iteration(client: RespClient, keys: QueueKeys, job: Job) -> str | None:
    """Add the next iteration of ``job``'s scheduler, as a Node worker does on
    fetching it. Returns the new job's id, or None when there is none (not a
    scheduled job, limit or end date reached, already added by another call)."""
    scheduler_id = job.repeat_job_key
    if not scheduler_id:
        return None
    counted, version = await client.execute_many(
        [("HEXISTS", scheduler_key(keys, scheduler_id), "ic"), ("HGET", keys["meta"], "version")]
    )
    if not counted and (has_legacy_key_shape(scheduler_id) or _before_scheduler_script(version)):
        # A repeatable job (the `repeat` option) no scheduler script ever counted: Node
        # 5.0-5.33 add its next iteration in JavaScript (Node 6 refuses a legacy key) -
        # bullbridge does what Node 5 does (scheduler.legacy).
        return await schedule_next_legacy(client, keys, job)
    stored = job.opts
    if "debounce" in stored:
        raise SchedulerError("Debounce option has been removed. Use deduplication option instead")
    repeat = stored.get("repeat")
    if not isinstance(repeat, dict):
        raise SchedulerError(f"job {job.id} has a scheduler key ({scheduler_id!r}) but no repeat options")
    pattern, every = repeat.get("pattern"), repeat.get("every")
    if _js_truthy(pattern) and _js_truthy(every):
        raise SchedulerError("Both .pattern and .every options are defined for this repeatable job")
    if not _js_truthy(pattern) and not _js_truthy(every):
        raise SchedulerError("Either .pattern or .every options must be defined for this repeatable job")
    if _js_truthy(repeat.get("immediately")) and _js_truthy(repeat.get("startDate")):
        raise SchedulerError("Both .immediately and .startDate options are defined for this repeatable job")

    count = _number(repeat.get("count"), "count")
    iteration = count + 1 if count else 1
    if "limit" in repeat and iteration > (_number(repeat.get("limit"), "limit") or 0):
        return None
    now = now_ms()
    end_date = _number(repeat.get("endDate"), "endDate") if _js_truthy(repeat.get("endDate")) else None
    if end_date is not None and now > end_date:
        return None
    prev_millis = _number(stored.get("prevMillis"), "prevMillis") if _js_truthy(stored.get("prevMillis")) else 0
    now = max(now, prev_millis or 0)

    offset = _number(repeat.get("offset"), "offset") if _js_truthy(repeat.get("offset")) else None
    new_offset = offset if _js_truthy(every) and offset else None
    next_millis: int | None = None
    if _js_truthy(pattern):
        tz = repeat.get("tz") or None
        if tz is None and scheduler_id not in _warned_no_tz:
            _warned_no_tz.add(scheduler_id)
            log.warning(
                "scheduler %r of %s has no tz: bullbridge computes it in UTC (Node uses its process's "
                "local zone; they agree when Node runs with TZ=UTC)",
                scheduler_id,
                keys.name,
            )
        start_date = _number(repeat.get("startDate"), "startDate") if _js_truthy(repeat.get("startDate")) else None
        next_millis = pattern_next_millis(
            now,
            Repeat(
                pattern=str(pattern),
                tz=tz,
                start_date=start_date,
                end_date=end_date,
                immediately=_js_truthy(repeat.get("immediately")),
                hash_seed=repeat.get("hashSeed") or None,
                strict=bool(repeat.get("strict")),
            ),
        )
        if next_millis is None:
            return None

    filtered = {k: v for k, v in repeat.items() if k != "immediately"}
    merged = next_job_opts(
        node_job_opts(stored),
        scheduler_id=scheduler_id,
        next_millis=next_millis,
        repeat=filtered,
        count=iteration,
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
        k.job(job.id),
        k["active"],
    ]
    args: list[Arg] = [
        next_millis if next_millis is not None else "",
        scheduler_id,
        job.fields.get(b"data") or b"{}",
        scripts.pack(merged),
        now_ms(),
        k.base,
        job.id,
    ]
    await _keep_template_data(client, keys, scheduler_id, job)
    result = await scripts.run(client, "updateJobScheduler", script_keys, args)
    if not result:
        return None
    next_id = result.decode() if isinstance(result, bytes) else str(result)
    log.debug("scheduler %s of %s: next iteration %s", scheduler_id, keys.name, next_id)
    return next_id

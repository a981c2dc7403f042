"""Legacy repeatable jobs (Node < 6's ``repeat`` option): the next iteration, as Node 5 adds it.

Node 5.0-5.9 keeps a repeatable job as a member of the queue's ``repeat`` zset
named by its *legacy key* - ``<name>:<jobId>:<endDate>:<tz>:<pattern or every>`` -
scored with its next run, and no hash. When a Node 5 worker fetches an
iteration (a job whose ``rjk`` is that key), it adds the next one
(``Repeat.addNextRepeatableJob``; from 5.10 ``updateRepeatableJob`` with
``override: false``, the same for such a key). Node 6 refuses to: it emits an
error and the repeatable stops. A bullbridge worker continues it exactly as
Node 5 would, so a Python service can run a Node 5 fleet's repeatable jobs:

1. the count, ``limit`` and ``endDate`` checks; ``now = max(prevMillis, Date.now())``;
2. the next run: ``every`` -> the next multiple of ``every`` after ``now``
   (``immediately``: ``now``'s own slot); a ``pattern`` -> cron-parser's next
   run (:func:`bullbridge.scheduler.timing.pattern_next_millis`);
3. nothing if the repeatable was removed (its key is no longer in ``repeat``);
4. the job id ``repeat:<md5(name + jobId + md5(key))>:<next>``, the delay
   ``next + offset - now``, Node's merged options (``prevMillis``, ``timestamp``,
   ``repeat.count + 1``), then - in Node's order - the repeatable's new score
   (Node's ``ZADD``) and the job (BullMQ's add script, with the key as ``rjk``).

Repeatables Node 5.10+ created have a hashed key (no ``:``) and a ``repeat:<key>``
hash: Node 5.10-5.33's workers continue them the same way (5.16-5.33 through
their JavaScript ``JobScheduler``, same options: ``prevMillis``, ``repeat.count``),
iteration ids ``repeat:<key>:<next>``; from 5.34.8 Node runs BullMQ's
``updateJobScheduler`` script, as the port does (:mod:`bullbridge.scheduler.iteration`
picks by the queue's ``meta.version``).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from bullbridge.clock import now_ms
from bullbridge.compat import parse_meta_version, parse_version
from bullbridge.connection.resp import RespClient
from bullbridge.job import Job
from bullbridge.keys import QueueKeys
from bullbridge.scheduler.errors import LegacyRepeatableJob, SchedulerError
from bullbridge.scheduler.store import node_job_opts
from bullbridge.scheduler.timing import Repeat, pattern_next_millis
from bullbridge.scripts import QueueScripts, check_code, run

log = logging.getLogger("bullbridge.scheduler.legacy")


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _truthy(value: Any) -> bool:
    return value not in (None, False, "", 0)


def _int(value: Any, what: str) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):  # "x", or Infinity (1e400) from a foreign writer
        raise SchedulerError(f"repeat option {what} is not a number: {value!r}") from None


def has_legacy_key_shape(key: str) -> bool:
    """``hasLegacyRepeatableKeyShape``: ``name:id:endDate:tz:<cron|every>``."""
    parts = key.split(":", 4)
    if len(parts) < 5:
        return False
    end_date, suffix = parts[2], parts[4]
    if end_date and not (end_date.isascii() and end_date.isdigit()):
        return False
    if not suffix:
        return False
    return " " in suffix or (suffix.isascii() and suffix.isdigit())


def legacy_key(name: str, repeat: dict[str, Any]) -> str:
    """Node 5's ``getRepeatKey``: ``<name>:<jobId>:<endDate>:<tz>:<pattern or every>``."""
    end = repeat.get("endDate")
    end_text = str(_int(end, "endDate")) if _truthy(end) else ""
    pattern = repeat.get("pattern")
    suffix = str(pattern) if _truthy(pattern) else _js_string(repeat.get("every"))
    return f"{name}:{repeat.get('jobId') or ''}:{end_text}:{repeat.get('tz') or ''}:{suffix}"


def _js_string(value: Any) -> str:
    """``String(x)`` for a JSON number or undefined."""
    if value is None:
        return "undefined"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def next_millis(now: int, repeat: dict[str, Any]) -> int | None:
    """Node 5's ``getNextMillis``."""
    pattern, every = repeat.get("pattern"), repeat.get("every")
    if _truthy(pattern) and _truthy(every):
        raise SchedulerError("Both .pattern and .every options are defined for this repeatable job")
    if _truthy(every):
        step = _int(every, "every")
        return (now // step) * step + (0 if _truthy(repeat.get("immediately")) else step)
    if not _truthy(pattern):
        return None
    if _truthy(repeat.get("immediately")):
        return now_ms()
    start = repeat.get("startDate")
    return pattern_next_millis(
        now,
        Repeat(
            pattern=str(pattern),
            tz=repeat.get("tz") or None,
            start_date=_int(start, "startDate") if _truthy(start) else None,
        ),
    )


async def _job_id_rule(client: RespClient, keys: QueueKeys) -> str:
    """Which id Node's worker gives the next iteration: before 5.10 from the repeat
    options' ``jobId``, from 5.10 (``getRepeatJobKey``) from the data's ``id``."""
    parsed = parse_meta_version(await client.execute("HGET", keys["meta"], "version"))
    version = parse_version(parsed[1]) if parsed and parsed[0] == "bullmq" else None
    return "data" if version is not None and version >= (5, 10, 0) else "repeat"


async def schedule_next_legacy(client: RespClient, keys: QueueKeys, job: Job) -> str | None:
    """Add the next iteration of a legacy repeatable job as a Node 5 worker does;
    its id, or None when there is none (limit, end date, removed repeatable)."""
    stored = job.opts
    if not isinstance(stored.get("repeat"), dict):
        raise LegacyRepeatableJob(
            f"job {job.id} has the legacy repeatable key {job.repeat_job_key!r} but no repeat options: "
            "its next iteration cannot be computed; re-add the repeatable job from Node"
        )
    repeat = dict(stored["repeat"])
    if repeat.get("pattern") is None and "cron" in repeat:
        repeat["pattern"] = repeat.pop("cron")
    repeat.pop("cron", None)
    prev = _int(stored["prevMillis"], "prevMillis") if _truthy(stored.get("prevMillis")) else 0
    count = _int(repeat["count"], "count") + 1 if _truthy(repeat.get("count")) else 1
    if "limit" in repeat and count > _int(repeat["limit"], "limit"):
        return None
    now = now_ms()
    if _truthy(repeat.get("endDate")) and now > _int(repeat["endDate"], "endDate"):
        return None
    now = max(now, prev)
    nxt = next_millis(now, repeat)
    if not nxt:
        return None
    immediately = bool((repeat.get("every") or repeat.get("pattern")) and _truthy(repeat.get("immediately")))
    offset = now - nxt if immediately else None
    if not prev and stored.get("jobId"):
        repeat["jobId"] = stored["jobId"]
    key = job.repeat_job_key or legacy_key(job.name, repeat)
    if await client.execute("ZSCORE", keys["repeat"], key) is None:
        return None  # the repeatable was removed
    if has_legacy_key_shape(key):  # a legacy key: Node hashes it into the iteration's id
        data = job.data if isinstance(job.data, dict) else {}
        seed = repeat.get("jobId") if await _job_id_rule(client, keys) == "repeat" else data.get("id")
        job_id = f"repeat:{_md5(job.name + str(seed or '') + _md5(key))}:{nxt}"
    else:  # a keyed repeatable (Node >= 5.10): Repeat.getRepeatDelayedJobId
        job_id = f"repeat:{key}:{nxt}"
    timestamp = now_ms()
    delay = nxt + (offset or 0) - timestamp
    filtered = {k: v for k, v in repeat.items() if k != "immediately"}
    merged = {
        **node_job_opts(stored),
        "jobId": job_id,
        "delay": 0 if delay < 0 or immediately else delay,
        "timestamp": timestamp,
        "prevMillis": nxt,
        "repeat": {**({"offset": offset} if offset is not None else {}), **filtered, "count": count},
    }
    script, script_keys, args = QueueScripts(keys).add_job(
        job_id=job_id,
        name=job.name,
        timestamp=timestamp,
        data_json=job.fields.get(b"data") or b"{}",
        encoded_opts=merged,
        repeat_job_key=key,
    )
    # Node's order: the repeatable's new score, then the job (two commands, as in Node).
    await client.execute("ZADD", keys["repeat"], nxt, key)
    added = await run(client, script, script_keys, args)
    new_id = check_code(added, script, job_id=job_id)
    log.debug("legacy repeatable %s of %s: next iteration %s", key, keys.name, new_id)
    return new_id.decode() if isinstance(new_id, bytes) else str(new_id)

"""Queue-level writes, each one BullMQ's own script, called as Node calls it.

=====================  ===============================  ==========================================
operation              script                           as in Node
=====================  ===============================  ==========================================
retry finished jobs    ``moveJobsToWait``               ``Queue.retryJobs({state, count})``
promote delayed jobs   ``moveJobsToWait`` (delayed)     ``Queue.promoteJobs({count})``
clean by age/state     ``cleanJobsInSet``               ``Queue.clean(grace, limit, state)``
pause / resume         ``pause``                        ``Queue.pause()`` / ``Queue.resume()``
drain                  ``drain``                        ``Queue.drain(delayed)``
obliterate             ``obliterate``                   ``Queue.obliterate({force, count})``
retry one job          ``reprocessJob``                 ``Job.retry(state)``
promote one job        ``promote``                      ``Job.promote()``
remove one job         ``removeJob``                    ``Job.remove()`` / ``Queue.remove(id)``
change a priority      ``changePriority``               ``Job.changePriority({priority, lifo})``
change a delay         ``changeDelay``                  ``Job.changeDelay(delay)``
replace a job's data   ``updateData``                   ``Job.updateData(data)``
queue-wide limits      ``HSET``/``HDEL`` on ``meta``    ``setGlobalConcurrency``, ``setGlobalRateLimit``
=====================  ===============================  ==========================================

Loops are Node's: ``retryJobs``/``promoteJobs``/``obliterate`` call the script
until it says nothing is left; ``clean`` deletes in batches (1,000 here, so one
script call never blocks Redis long) until a batch comes back short or
``limit`` is reached. Each function takes the client to run on, so the
:class:`~bullbridge.queue.Queue` (with its deadline) and the operator tools
(on the monitor's connection) share one implementation.
"""

from __future__ import annotations

import logging
from typing import Any

from bullbridge import codec, scripts
from bullbridge.clock import now_ms
from bullbridge.connection.resp import RespClient
from bullbridge.errors import ConfigurationError, CorruptJob, JobNotFound, QueueError
from bullbridge.keys import QueueKeys
from bullbridge.options import PRIORITY_LIMIT

log = logging.getLogger("bullbridge.queue")

#: Node's ``Number.MAX_VALUE``, the timestamp promoteJobs passes (every delayed job is due).
_MAX_VALUE = "1.7976931348623157e+308"
CLEAN_BATCH = 1000
#: States ``clean`` accepts (Node's names; ``waiting`` is the ``wait`` list).
CLEANABLE = ("completed", "failed", "delayed", "waiting", "wait", "paused", "prioritized", "active")


def _int(text: Any) -> int:
    return int(text or 0)


async def _run(client: RespClient, keys: QueueKeys, name: str, script_keys: list[Any], args: list[Any]) -> Any:
    log.debug("queue %s: running %s", keys.name, name)
    return await scripts.run(client, name, script_keys, args)


def _move_to_wait_keys(keys: QueueKeys, state: str) -> list[Any]:
    return [
        keys.base,
        keys["events"],
        keys[state],
        keys["wait"],
        keys["paused"],
        keys["meta"],
        keys["active"],
        keys["marker"],
    ]


async def retry_jobs(
    client: RespClient, keys: QueueKeys, state: str = "failed", *, count: int = 1000, timestamp: int | None = None
) -> int:
    """Move ``failed`` (or ``completed``) jobs finished before ``timestamp`` back to
    wait; how many moved."""
    if state not in ("failed", "completed"):
        raise ConfigurationError(f"only failed or completed jobs can be retried, not {state!r}")
    before = _int(await client.execute("ZCARD", keys[state]))
    args = [count, timestamp if timestamp is not None else now_ms(), state]
    while await _run(client, keys, "moveJobsToWait", _move_to_wait_keys(keys, state), args):
        pass
    return max(0, before - _int(await client.execute("ZCARD", keys[state])))


async def promote_jobs(client: RespClient, keys: QueueKeys, *, count: int = 1000) -> int:
    """Move every delayed job to wait now; how many moved."""
    before = _int(await client.execute("ZCARD", keys["delayed"]))
    while await _run(
        client, keys, "moveJobsToWait", _move_to_wait_keys(keys, "delayed"), [count, _MAX_VALUE, "delayed"]
    ):
        pass
    return max(0, before - _int(await client.execute("ZCARD", keys["delayed"])))


async def clean(
    client: RespClient, keys: QueueKeys, grace_ms: int, limit: int = 0, state: str = "completed"
) -> list[str]:
    """Delete jobs of ``state`` older than ``grace_ms`` (``limit`` 0: all of them);
    the ids deleted."""
    if state not in CLEANABLE:
        raise ConfigurationError(f"cannot clean state {state!r} (one of {', '.join(CLEANABLE)})")
    # waiting: the wait list and a legacy paused list (a queue Node < 6 paused; bullbridge.protocol)
    kinds = ("wait", "paused") if state in ("waiting", "wait") else (state,)
    timestamp = now_ms() - max(0, grace_ms)
    deleted: list[str] = []
    for kind in kinds:
        while True:
            batch = CLEAN_BATCH if limit <= 0 else min(CLEAN_BATCH, limit - len(deleted))
            if batch <= 0:
                break
            ids = await _run(
                client,
                keys,
                "cleanJobsInSet",
                [keys[kind], keys["events"], keys["repeat"]],
                [keys.base, timestamp, batch, kind],
            )
            deleted.extend(i.decode() if isinstance(i, bytes) else str(i) for i in ids)
            if len(ids) < batch:
                break
    return deleted


def _pause_keys(keys: QueueKeys, pause: bool) -> list[Any]:
    src, dst = ("wait", "paused") if pause else ("paused", "wait")
    return [keys[src], keys[dst], keys["meta"], keys["prioritized"], keys["events"], keys["delayed"], keys["marker"]]


async def pause(client: RespClient, keys: QueueKeys) -> None:
    """Pause the queue for every worker, of either language."""
    await _run(client, keys, "pause", _pause_keys(keys, True), ["paused", "1"])


async def resume(client: RespClient, keys: QueueKeys) -> None:
    """Resume; like Node, repeat while a legacy paused list still holds jobs (event once)."""
    emit = "1"
    while _int(await _run(client, keys, "pause", _pause_keys(keys, False), ["resumed", emit])) > 0:
        emit = "0"


async def is_paused(client: RespClient, keys: QueueKeys) -> bool:
    """Node's ``isPaused``: the ``paused`` field of the queue's meta hash."""
    return bool(await client.execute("HEXISTS", keys["meta"], "paused"))


async def drain(client: RespClient, keys: QueueKeys, *, delayed: bool = False) -> int:
    """Remove waiting (and with ``delayed`` also delayed) jobs; active and
    finished ones stay. How many were removed."""
    counts = await client.execute_many(
        [("LLEN", keys["wait"]), ("LLEN", keys["paused"]), ("ZCARD", keys["prioritized"]), ("ZCARD", keys["delayed"])]
    )
    await _run(
        client,
        keys,
        "drain",
        [keys["wait"], keys["paused"], keys["delayed"], keys["prioritized"], keys["repeat"]],
        [keys.base, "1" if delayed else "0"],
    )
    return sum(_int(c) for c in counts[:3]) + (_int(counts[3]) if delayed else 0)


async def obliterate(client: RespClient, keys: QueueKeys, *, force: bool = False, count: int = 1000) -> None:
    """Delete the queue and everything in it (Node's ``obliterate``): pauses it
    first; refuses while jobs are active unless ``force``."""
    await pause(client, keys)
    while True:
        cursor = _int(
            await _run(client, keys, "obliterate", [keys["meta"], keys.base], [count, "force" if force else ""])
        )
        if cursor == -1:
            raise QueueError(f"cannot obliterate queue {keys.name!r}: it is not paused")
        if cursor == -2:
            raise QueueError(
                f"cannot obliterate queue {keys.name!r}: it has active jobs (wait for them, or pass force=True)"
            )
        if cursor == 0:
            return


async def retry_job(client: RespClient, keys: QueueKeys, job_id: str, state: str = "failed") -> None:
    """Retry one finished job (Node's ``Job.retry``), keeping its attempts count."""
    raw_opts = await client.execute("HGET", keys.job(job_id), "opts")
    try:
        opts = codec.decode(raw_opts) if raw_opts else {}
    except CorruptJob:
        opts = {}
    push = "RPUSH" if isinstance(opts, dict) and opts.get("lifo") else "LPUSH"
    result = _int(
        await _run(
            client,
            keys,
            "reprocessJob",
            [
                keys.job(job_id),
                keys["events"],
                keys[state],
                keys["wait"],
                keys["meta"],
                keys["active"],
                keys["marker"],
                keys["prioritized"],
                keys["pc"],
            ],
            [job_id, push, "failedReason" if state == "failed" else "returnvalue", state, "0", "0"],
        )
    )
    if result == -1:
        raise JobNotFound(f"job {job_id} does not exist in queue {keys.name}")
    if result == -3:
        raise QueueError(f"job {job_id} of queue {keys.name} is not {state}")
    if result < 0:
        raise QueueError(f"job {job_id} of queue {keys.name} could not be retried (code {result})")


async def promote_job(client: RespClient, keys: QueueKeys, job_id: str) -> None:
    """Move one delayed job to wait now (Node's ``Job.promote``)."""
    result = _int(
        await _run(
            client,
            keys,
            "promote",
            [
                keys["delayed"],
                keys["wait"],
                keys["paused"],
                keys["meta"],
                keys["prioritized"],
                keys["active"],
                keys["pc"],
                keys["events"],
                keys["marker"],
            ],
            [keys.base, job_id],
        )
    )
    if result < 0:
        raise QueueError(f"job {job_id} of queue {keys.name} is not delayed")


async def remove_job(client: RespClient, keys: QueueKeys, job_id: str, *, remove_children: bool = True) -> None:
    """Delete one job that is not active (Node's ``Job.remove``)."""
    if not await client.execute("EXISTS", keys.job(job_id)):
        raise JobNotFound(f"job {job_id} does not exist in queue {keys.name}")
    result = _int(
        await _run(
            client,
            keys,
            "removeJob",
            [keys.job(job_id), keys["repeat"]],
            [job_id, 1 if remove_children else 0, keys.base],
        )
    )
    if result == -8:
        raise QueueError(
            f"job {job_id} of queue {keys.name} is the next run of a job scheduler: remove the scheduler instead"
        )
    if result <= 0:
        raise QueueError(f"job {job_id} of queue {keys.name} is locked (active, or a child is): it was not removed")


def _job_code(result: Any, keys: QueueKeys, job_id: str, command: str, state: str = "") -> None:
    """BullMQ's -1 (no such job) and -3 (not in ``state``) as bullbridge's errors."""
    code = _int(result) if isinstance(result, int | bytes | str) else 0
    if code == -1:
        raise JobNotFound(f"job {job_id} does not exist in queue {keys.name}")
    if code == -3:
        raise QueueError(f"job {job_id} of queue {keys.name} is not {state}: {command} changes {state} jobs only")
    if code < 0:
        raise QueueError(f"{command} of job {job_id} of queue {keys.name} failed (BullMQ code {code})")


async def change_priority(client: RespClient, keys: QueueKeys, job_id: str, priority: int, lifo: bool) -> None:
    """A waiting job's new priority (0: none; ``lifo`` then puts it first), as Node's
    ``job.changePriority({priority, lifo})``; a delayed or active job keeps it for later."""
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= PRIORITY_LIMIT:
        raise ConfigurationError(f"priority must be an int between 0 and {PRIORITY_LIMIT}, got {priority!r}")
    result = await _run(
        client,
        keys,
        "changePriority",
        [
            keys["wait"],
            keys["paused"],
            keys["meta"],
            keys["prioritized"],
            keys["active"],
            keys["pc"],
            keys["marker"],
        ],
        [priority, keys.base, job_id, 1 if lifo else 0],
    )
    _job_code(result, keys, job_id, "changePriority")


async def change_delay(
    client: RespClient, keys: QueueKeys, job_id: str, delay_ms: int, *, timestamp: int | None = None
) -> None:
    """A delayed job now runs ``delay_ms`` after ``timestamp`` (default: now), as
    Node's ``job.changeDelay(delay)``."""
    result = await _run(
        client,
        keys,
        "changeDelay",
        [keys["delayed"], keys["meta"], keys["marker"], keys["events"]],
        [delay_ms, str(timestamp if timestamp is not None else now_ms()), job_id, keys.job(job_id)],
    )
    _job_code(result, keys, job_id, "changeDelay", "delayed")


async def reschedule(client: RespClient, keys: QueueKeys, job_id: str, delay_ms: int, timestamp: int) -> bool:
    """Deduplication ``reschedule`` (Node 6.7's add scripts, done after the port's add):
    when the add returned ``job_id`` because a job with the same deduplication id
    exists, and that job is still delayed, it now runs ``delay_ms`` after the new
    add's ``timestamp``. A job this add created itself (same timestamp and delay)
    is left alone. True when a job was rescheduled."""
    stamp, delay = await client.execute("HMGET", keys.job(job_id), "timestamp", "delay")
    if stamp is not None and _int(stamp) == timestamp and _int(delay) == delay_ms:
        return False  # the job this add created (or one identical to it)
    try:
        await change_delay(client, keys, job_id, delay_ms, timestamp=timestamp)
    except (JobNotFound, QueueError):
        return False  # no longer delayed (or gone): Node reschedules only a delayed job
    return True


async def update_data(client: RespClient, keys: QueueKeys, job_id: str, data_json: bytes | str) -> None:
    """Replace a job's data (Node's ``job.updateData(data)``); ``data_json`` is already encoded."""
    result = await _run(client, keys, "updateData", [keys.job(job_id)], [data_json])
    _job_code(result, keys, job_id, "updateData")


# -- queue-wide limits: Node sets these as plain fields of the meta hash (no script),
# and every worker's fetch script reads them (the port's worker hangs on them:
# docs/port-differences.md#limits).


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{what} must be an int >= 1, got {value!r}")
    return value


async def set_global_concurrency(client: RespClient, keys: QueueKeys, concurrency: int) -> None:
    """At most ``concurrency`` jobs active at once across every worker (Node's ``setGlobalConcurrency``)."""
    await client.execute("HSET", keys["meta"], "concurrency", _positive_int(concurrency, "global concurrency"))


async def remove_global_concurrency(client: RespClient, keys: QueueKeys) -> None:
    await client.execute("HDEL", keys["meta"], "concurrency")


async def set_global_rate_limit(client: RespClient, keys: QueueKeys, max_jobs: int, duration_ms: int) -> None:
    """At most ``max_jobs`` per ``duration_ms`` across every worker (Node's ``setGlobalRateLimit``)."""
    await client.execute(
        "HSET",
        keys["meta"],
        "max",
        _positive_int(max_jobs, "global rate limit max"),
        "duration",
        _positive_int(duration_ms, "global rate limit duration"),
    )


async def remove_global_rate_limit(client: RespClient, keys: QueueKeys) -> None:
    await client.execute("HDEL", keys["meta"], "max", "duration")

"""Operator actions on a queue, each one BullMQ's own script, called as Node calls it.

The monitor itself never writes; these are separate on purpose, and the CLI
and the dashboard only reach them behind a confirmation (``--yes``) or an
explicit ``--allow-actions --token``.

=====================  ===============================  ==========================================
action                 script                           as in Node
=====================  ===============================  ==========================================
retry finished jobs    ``moveJobsToWait``               ``Queue.retryJobs({state, count})``
promote delayed jobs   ``moveJobsToWait`` (delayed)     ``Queue.promoteJobs({count})``
clean by age/state     ``cleanJobsInSet``               ``Queue.clean(grace, limit, state)``
pause / resume         ``pause``                        ``Queue.pause()`` / ``Queue.resume()``
drain                  ``drain``                        ``Queue.drain(delayed)``
retry one job          ``reprocessJob``                 ``Job.retry(state)``
promote one job        ``promote``                      ``Job.promote()``
remove one job         ``removeJob``                    ``Job.remove()`` / ``Queue.remove(id)``
=====================  ===============================  ==========================================

Loops are Node's: ``retryJobs``/``promoteJobs`` call the script until it says
nothing is left; ``clean`` deletes in batches (1,000 here, so one script call
never blocks Redis long) until a batch comes back short or ``limit`` is reached.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bullbridge import codec
from bullbridge.clock import now_ms
from bullbridge.errors import CorruptJob
from bullbridge.keys import QueueKeys
from bullbridge.monitor.jobs import state_key
from bullbridge.monitor.reader import MonitorError, Reader, text

log = logging.getLogger("bullbridge.monitor.actions")

#: Node's ``Number.MAX_VALUE``, the timestamp promoteJobs passes (every delayed job is due).
_MAX_VALUE = "1.7976931348623157e+308"
CLEAN_BATCH = 1000
CLEANABLE = ("completed", "failed", "delayed", "waiting", "paused", "prioritized", "active")


@dataclass(frozen=True)
class ActionResult:
    """What an action did."""

    action: str
    queue: str
    count: int = 0
    ids: tuple[str, ...] = ()


class QueueActions:
    """Writes on one queue, through BullMQ's scripts."""

    def __init__(self, reader: Reader, keys: QueueKeys) -> None:
        self.reader = reader
        self.keys = keys

    async def _run(self, name: str, keys: list[Any], args: list[Any]) -> Any:
        log.info("queue %s: running %s", self.keys.name, name)
        return await self.reader.run_script(name, keys, args)

    def _move_to_wait_keys(self, state: str) -> list[Any]:
        k = self.keys
        return [k.base, k["events"], k[state], k["wait"], k["paused"], k["meta"], k["active"], k["marker"]]

    async def retry(self, state: str = "failed", *, count: int = 1000, before_ms: int | None = None) -> ActionResult:
        """Move finished jobs (``failed`` or ``completed``) finished before ``before_ms`` back to wait."""
        if state not in ("failed", "completed"):
            raise MonitorError(f"only failed or completed jobs can be retried, not {state!r}")
        timestamp = before_ms if before_ms is not None else now_ms()
        before = int(await self.reader.execute("ZCARD", self.keys[state]))
        while await self._run("moveJobsToWait", self._move_to_wait_keys(state), [count, timestamp, state]):
            pass
        after = int(await self.reader.execute("ZCARD", self.keys[state]))
        return ActionResult("retry", self.keys.name, max(0, before - after))

    async def promote(self, *, count: int = 1000) -> ActionResult:
        """Move every delayed job to wait now."""
        before = int(await self.reader.execute("ZCARD", self.keys["delayed"]))
        while await self._run("moveJobsToWait", self._move_to_wait_keys("delayed"), [count, _MAX_VALUE, "delayed"]):
            pass
        after = int(await self.reader.execute("ZCARD", self.keys["delayed"]))
        return ActionResult("promote", self.keys.name, max(0, before - after))

    async def clean(self, state: str, *, grace_ms: int, limit: int = 0) -> ActionResult:
        """Delete jobs of ``state`` older than ``grace_ms`` (``limit`` 0 = all of them)."""
        if state not in CLEANABLE:
            raise MonitorError(f"cannot clean state {state!r} (one of {', '.join(CLEANABLE)})")
        kind = state_key(state)
        timestamp = now_ms() - max(0, grace_ms)
        deleted: list[str] = []
        while True:
            batch = CLEAN_BATCH if limit <= 0 else min(CLEAN_BATCH, limit - len(deleted))
            if batch <= 0:
                break
            ids = await self._run("cleanJobsInSet", [self.keys[kind], self.keys["events"], self.keys["repeat"]],
                                  [self.keys.base, timestamp, batch, kind])
            deleted.extend(text(i) or "" for i in ids)
            if len(ids) < batch:
                break
        return ActionResult("clean", self.keys.name, len(deleted), tuple(deleted))

    def _pause_keys(self, pause: bool) -> list[Any]:
        k = self.keys
        src, dst = ("wait", "paused") if pause else ("paused", "wait")
        return [k[src], k[dst], k["meta"], k["prioritized"], k["events"], k["delayed"], k["marker"]]

    async def pause(self) -> ActionResult:
        """Pause the queue for every worker, of either language."""
        await self._run("pause", self._pause_keys(True), ["paused", "1"])
        return ActionResult("pause", self.keys.name)

    async def resume(self) -> ActionResult:
        """Resume; like Node, repeat while a legacy paused list still holds jobs (event once)."""
        emit = "1"
        while int(await self._run("pause", self._pause_keys(False), ["resumed", emit]) or 0) > 0:
            emit = "0"
        return ActionResult("resume", self.keys.name)

    # -- queue-wide limits: Node sets these as plain fields of the meta hash (no script),
    # and every worker's fetch script reads them (FINDINGS row 1: the port's worker hangs on them).

    async def set_global_concurrency(self, concurrency: int) -> ActionResult:
        """At most ``concurrency`` jobs active at once across every worker (Node's setGlobalConcurrency)."""
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"global concurrency must be an int >= 1, got {concurrency!r}")
        await self.reader.execute("HSET", self.keys["meta"], "concurrency", concurrency)
        return ActionResult("set-global-concurrency", self.keys.name)

    async def remove_global_concurrency(self) -> ActionResult:
        await self.reader.execute("HDEL", self.keys["meta"], "concurrency")
        return ActionResult("remove-global-concurrency", self.keys.name)

    async def set_global_rate_limit(self, max_jobs: int, duration_ms: int) -> ActionResult:
        """At most ``max_jobs`` per ``duration_ms`` across every worker (Node's setGlobalRateLimit)."""
        for value, what in ((max_jobs, "max"), (duration_ms, "duration")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"global rate limit {what} must be an int >= 1, got {value!r}")
        await self.reader.execute("HSET", self.keys["meta"], "max", max_jobs, "duration", duration_ms)
        return ActionResult("set-global-rate-limit", self.keys.name)

    async def remove_global_rate_limit(self) -> ActionResult:
        await self.reader.execute("HDEL", self.keys["meta"], "max", "duration")
        return ActionResult("remove-global-rate-limit", self.keys.name)

    async def drain(self, *, delayed: bool = False) -> ActionResult:
        """Remove waiting (and with ``delayed`` also delayed) jobs; active and finished stay."""
        k = self.keys
        counts = await self.reader.pipeline([("LLEN", k["wait"]), ("LLEN", k["paused"]), ("ZCARD", k["prioritized"]),
                                             ("ZCARD", k["delayed"])])
        await self._run("drain", [k["wait"], k["paused"], k["delayed"], k["prioritized"], k["repeat"]],
                        [k.base, "1" if delayed else "0"])
        removed = sum(int(c) for c in counts[:3]) + (int(counts[3]) if delayed else 0)
        return ActionResult("drain", self.keys.name, removed)

    async def retry_job(self, job_id: str, state: str = "failed") -> ActionResult:
        """Retry one finished job (``Job.retry``), keeping its attempts count."""
        k = self.keys
        raw_opts = await self.reader.execute("HGET", k.job(job_id), "opts")
        try:
            opts = codec.decode(raw_opts) if raw_opts else {}
        except CorruptJob:
            opts = {}
        push = "RPUSH" if isinstance(opts, dict) and opts.get("lifo") else "LPUSH"
        result = await self._run("reprocessJob", [
            k.job(job_id), k["events"], k[state], k["wait"], k["meta"], k["active"], k["marker"], k["prioritized"],
            k["pc"]], [job_id, push, "failedReason" if state == "failed" else "returnvalue", state, "0", "0"])
        if int(result) == -1:
            raise MonitorError(f"job {job_id} does not exist in queue {k.name}")
        if int(result) == -3:
            raise MonitorError(f"job {job_id} is not {state}")
        if int(result) < 0:
            raise MonitorError(f"job {job_id} could not be retried (code {result})")
        return ActionResult("retry-job", k.name, 1, (job_id,))

    async def promote_job(self, job_id: str) -> ActionResult:
        """Move one delayed job to wait now (``Job.promote``)."""
        k = self.keys
        result = await self._run("promote", [
            k["delayed"], k["wait"], k["paused"], k["meta"], k["prioritized"], k["active"], k["pc"], k["events"],
            k["marker"]], [k.base, job_id])
        if int(result) < 0:
            raise MonitorError(f"job {job_id} is not delayed")
        return ActionResult("promote-job", k.name, 1, (job_id,))

    async def remove_job(self, job_id: str, *, remove_children: bool = True) -> ActionResult:
        """Delete one job that is not active (``Job.remove``)."""
        k = self.keys
        if not await self.reader.execute("EXISTS", k.job(job_id)):
            raise MonitorError(f"job {job_id} does not exist in queue {k.name}")
        result = int(await self._run("removeJob", [k.job(job_id), k["repeat"]],
                                     [job_id, 1 if remove_children else 0, k.base]))
        if result == -8:
            raise MonitorError(f"job {job_id} is the next run of a job scheduler: remove the scheduler instead")
        if result <= 0:
            raise MonitorError(f"job {job_id} is locked (active, or a child is): it was not removed")
        return ActionResult("remove-job", k.name, 1, (job_id,))

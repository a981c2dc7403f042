"""Operator actions on a queue, as the CLI and the dashboard report them.

The writes themselves are :mod:`bullbridge.queue.admin` - BullMQ's own
scripts, called as Node calls them, the same code a
:class:`~bullbridge.queue.Queue` runs. This adapter runs them on the
monitor's connection and says what each did (:class:`ActionResult`: how many
jobs, which ids), for a confirmation line or a JSON reply. The monitor itself
never writes; the CLI and the dashboard reach these only behind a confirmation
(``--yes``) or an explicit ``--allow-actions --token``.
"""

from __future__ import annotations

from dataclasses import dataclass

from bullbridge.connection.resp import RespClient
from bullbridge.keys import QueueKeys
from bullbridge.monitor.discovery import require_queue
from bullbridge.queue import admin


@dataclass(frozen=True)
class ActionResult:
    """What an action did."""

    action: str
    queue: str
    count: int = 0
    ids: tuple[str, ...] = ()


class QueueActions:
    """The operator actions on one queue (each a :mod:`bullbridge.queue.admin` write).

    Every action first checks that the queue exists and raises
    :class:`~bullbridge.errors.UnknownQueue` otherwise: a typo in a queue name
    never creates keys (a pause would write ``<prefix>:<typo>:meta``)."""

    def __init__(self, client: RespClient, keys: QueueKeys) -> None:
        self.client = client
        self.keys = keys

    def _done(self, action: str, count: int = 0, ids: tuple[str, ...] = ()) -> ActionResult:
        return ActionResult(action, self.keys.name, count, ids)

    async def _require(self) -> None:
        await require_queue(self.client, self.keys)

    async def retry(self, state: str = "failed", *, count: int = 1000, before_ms: int | None = None) -> ActionResult:
        """Move finished jobs (``failed`` or ``completed``) finished before ``before_ms`` back to wait."""
        await self._require()
        moved = await admin.retry_jobs(self.client, self.keys, state, count=count, timestamp=before_ms)
        return self._done("retry", moved)

    async def promote(self, *, count: int = 1000) -> ActionResult:
        """Move every delayed job to wait now."""
        await self._require()
        return self._done("promote", await admin.promote_jobs(self.client, self.keys, count=count))

    async def clean(self, state: str, *, grace_ms: int, limit: int = 0) -> ActionResult:
        """Delete jobs of ``state`` older than ``grace_ms`` (``limit`` 0 = all of them)."""
        await self._require()
        deleted = await admin.clean(self.client, self.keys, grace_ms, limit, state)
        return self._done("clean", len(deleted), tuple(deleted))

    async def pause(self) -> ActionResult:
        """Pause the queue for every worker, of either language."""
        await self._require()
        await admin.pause(self.client, self.keys)
        return self._done("pause")

    async def resume(self) -> ActionResult:
        await self._require()
        await admin.resume(self.client, self.keys)
        return self._done("resume")

    async def set_global_concurrency(self, concurrency: int) -> ActionResult:
        await self._require()
        await admin.set_global_concurrency(self.client, self.keys, concurrency)
        return self._done("set-global-concurrency")

    async def remove_global_concurrency(self) -> ActionResult:
        await self._require()
        await admin.remove_global_concurrency(self.client, self.keys)
        return self._done("remove-global-concurrency")

    async def set_global_rate_limit(self, max_jobs: int, duration_ms: int) -> ActionResult:
        await self._require()
        await admin.set_global_rate_limit(self.client, self.keys, max_jobs, duration_ms)
        return self._done("set-global-rate-limit")

    async def remove_global_rate_limit(self) -> ActionResult:
        await self._require()
        await admin.remove_global_rate_limit(self.client, self.keys)
        return self._done("remove-global-rate-limit")

    async def drain(self, *, delayed: bool = False) -> ActionResult:
        """Remove waiting (and with ``delayed`` also delayed) jobs; active and finished stay."""
        await self._require()
        return self._done("drain", await admin.drain(self.client, self.keys, delayed=delayed))

    async def retry_job(self, job_id: str, state: str = "failed") -> ActionResult:
        """Retry one finished job, keeping its attempts count."""
        await self._require()
        await admin.retry_job(self.client, self.keys, job_id, state)
        return self._done("retry-job", 1, (job_id,))

    async def promote_job(self, job_id: str) -> ActionResult:
        """Move one delayed job to wait now."""
        await self._require()
        await admin.promote_job(self.client, self.keys, job_id)
        return self._done("promote-job", 1, (job_id,))

    async def remove_job(self, job_id: str, *, remove_children: bool = True) -> ActionResult:
        """Delete one job that is not active."""
        await self._require()
        await admin.remove_job(self.client, self.keys, job_id, remove_children=remove_children)
        return self._done("remove-job", 1, (job_id,))

"""The worker's background duties: renewing locks and recovering stalled jobs.

* Lock renewal: every ``lock_renew_time`` the locks of all active jobs are
  extended in one ``extendLocks`` call. A job whose lock could not be renewed
  (it expired while the loop was blocked, or another worker took it after a
  stall) is reported once (``lockLost``), its :class:`CancelSignal` is set so its
  handler can stop, and its outcome will not be written.
* Stall recovery: every ``stalled_interval`` (and once at start, as Node does)
  ``moveStalledJobsToWait`` returns jobs whose worker died to wait - or fails
  them after ``max_stalled_count`` stalls. The script itself ensures only one
  worker of the queue does it per interval.
* Loop watch: when a handler blocks the event loop (a sync call inside an
  ``async def``), lock renewal cannot run; the watch logs which jobs were
  active so the handler can be moved to ``run_in="thread"``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from bullbridge import scripts
from bullbridge.aio import cancel_and_wait
from bullbridge.connection.resp import RespConnectionError, RespError
from bullbridge.worker.host import WorkerHost

if TYPE_CHECKING:
    from bullbridge.worker.context import ActiveJob

log = logging.getLogger("bullbridge.worker")
#: Seconds before a lock renewal that could not be made is tried again.
RENEW_RETRY = 1.0


class RateLimitedLog:
    """Log a recurring error at most once per ``every`` seconds, with a count."""

    def __init__(self, logger: logging.Logger, every: float = 10.0) -> None:
        self._log = logger
        self._every = every
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def error(self, key: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -1e9) >= self._every:
            skipped = self._suppressed.pop(key, 0)
            suffix = f" ({skipped} more like it suppressed)" if skipped else ""
            self._last[key] = now
            self._log.error(message + suffix, *args)
        else:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1


class MaintainedWorker(WorkerHost, Protocol):
    """A worker whose locks and stalled jobs are looked after: it logs recurring
    errors through a :class:`RateLimitedLog` and reports a lost lock once."""

    errors: RateLimitedLog

    def lock_lost(self, job: ActiveJob, why: str) -> None: ...


class LockRenewer:
    """Extends the locks of every active job, in one script call per round."""

    def __init__(self, worker: MaintainedWorker) -> None:
        self.worker = worker
        self.active: dict[str, ActiveJob] = {}
        self._task: asyncio.Task[None] | None = None

    def track(self, job: ActiveJob) -> None:
        self.active[job.id] = job

    def untrack(self, job: ActiveJob) -> None:
        if self.active.get(job.id) is job:
            del self.active[job.id]

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._loop())

    async def _loop(self) -> None:
        interval = self.worker.settings.lock_renew_ms / 1000
        wait = interval
        while True:
            await asyncio.sleep(wait)
            # A renewal that could not be written (a dropped or black-holed connection, now
            # reconnecting) is tried again soon, while the locks still hold (docs/faults.md).
            wait = interval if await self.renew() else min(interval, RENEW_RETRY)

    async def renew(self) -> bool:
        """Extend the active jobs' locks; False when the call could not be made."""
        jobs = [j for j in self.active.values() if not j.lock_lost]
        if not jobs:
            return True
        w = self.worker
        keys, args = w.qs.extend_locks([j.id for j in jobs], [j.token for j in jobs], w.settings.lock_duration_ms)
        try:
            failed = await scripts.run(w.client, "extendLocks", keys, args)
        except (RespConnectionError, RespError) as exc:
            w.errors.error("renew", "could not renew job locks on %s: %s", w.queue, exc)
            return False
        for raw in failed or []:
            job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            job = self.active.get(job_id)
            if job is not None:
                w.lock_lost(job, "its lock could not be renewed")
        return True

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None


class StalledChecker:
    """Runs ``moveStalledJobsToWait`` at start and every ``stalled_interval``."""

    def __init__(self, worker: MaintainedWorker) -> None:
        self.worker = worker
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._loop())

    async def _loop(self) -> None:
        interval = self.worker.settings.stalled_interval_ms / 1000
        while True:
            await self.check()
            await asyncio.sleep(interval)

    async def check(self) -> list[str]:
        w = self.worker
        keys, args = w.qs.move_stalled_jobs_to_wait(w.settings.max_stalled_count, w.settings.stalled_interval_ms)
        try:
            stalled = await scripts.run(w.client, "moveStalledJobsToWait", keys, args)
        except (RespConnectionError, RespError) as exc:
            w.errors.error("stalled", "stalled-job check on %s failed: %s", w.queue, exc)
            return []
        ids = [s.decode() if isinstance(s, bytes) else str(s) for s in stalled or []]
        for job_id in ids:
            log.warning(
                "job %s of %s stalled (its worker stopped renewing the lock); moved back to wait", job_id, w.queue
            )
            w.emit("stalled", job_id)
        return ids

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None


class LoopWatch:
    """Warn when the event loop was blocked (a sync call inside an async handler),
    naming the jobs active during that tick: those active when the warning is
    written, and those started since the tick before (the culprit may have
    finished by the time the loop runs the watch again).

    The watches of one event loop share one ticker (:class:`_LoopTicker`): a
    process serving 200 queues wakes 4 times a second for all of them, not 800
    times (measured idle: see docs/performance.md#idle-cost-one-process-serving-200-empty-queues-for-10-s)."""

    def __init__(self, threshold: float, active: Callable[[], list[str]]) -> None:
        self.threshold = threshold
        self.tick = min(0.25, threshold / 2)
        self._active = active
        self._recent: set[str] = set()
        self._ticker: _LoopTicker | None = None

    def start(self) -> None:
        if self._ticker is None and self.threshold > 0:
            self._ticker = _LoopTicker.of(asyncio.get_running_loop())
            self._ticker.add(self)

    def note(self, job_id: str) -> None:
        """A job started (recorded only while the watch runs)."""
        if self._ticker is not None:
            self._recent.add(job_id)

    def ticked(self, lag: float) -> None:
        """The loop ran the ticker ``lag`` seconds late."""
        if lag >= self.threshold:
            jobs = sorted({*self._active(), *self._recent}, key=lambda j: (len(j), j))
            log.warning(
                "the event loop was blocked for %.1f s while jobs %s were active: a handler makes a "
                "blocking call; declare it run_in='thread' (or 'process') so locks keep renewing",
                lag,
                ", ".join(jobs) or "(none)",
            )
        self._recent.clear()

    async def stop(self) -> None:
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            await ticker.remove(self)


class _LoopTicker:
    """One task per event loop that measures how late the loop runs it, for every
    :class:`LoopWatch` on that loop (at the shortest tick any of them asks for)."""

    _by_loop: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopTicker]] = weakref.WeakKeyDictionary()

    def __init__(self) -> None:
        self.watches: dict[LoopWatch, None] = {}  # ordered: watches warn in the order they started
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _LoopTicker:
        ticker = cls._by_loop.get(loop)
        if ticker is None:
            ticker = cls._by_loop[loop] = cls()
        return ticker

    def add(self, watch: LoopWatch) -> None:
        self.watches[watch] = None
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._loop())

    async def remove(self, watch: LoopWatch) -> None:
        self.watches.pop(watch, None)
        if not self.watches:
            task, self._task = self._task, None
            await cancel_and_wait(task)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self.watches:
            tick = min(w.tick for w in self.watches)
            before = loop.time()
            await asyncio.sleep(tick)
            lag = loop.time() - before - tick
            for watch in list(self.watches):
                watch.ticked(lag)

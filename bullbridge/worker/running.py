"""Where a handler runs, and what happens when it runs too long.

:class:`HandlerRunner` owns a worker's thread pool and process pool and calls
handlers in them (``run_in``: ``"loop"``, ``"thread"``, ``"process"``). With a
timeout (a handler's ``timeout=``, else the worker's ``handler_timeout``) the
attempt fails with :class:`~bullbridge.errors.HandlerTimeout` (``failedReason``
``TimeoutError: handler 'resize' exceeded 30 s``) and the job's
``attempts``/``backoff`` decide what comes next, as for any failure. Before that,
the job's ``signal`` is set, so a cooperative handler can stop, and then:

* **loop** (``async def``): the handler runs as a task of its own and is
  cancelled. The worker never waits for it: a handler that catches
  ``CancelledError`` and goes on runs on, unsupervised, with a WARNING after
  :data:`ORPHAN_GRACE` seconds; its result is dropped and its progress and log
  writes are refused. Its ``job.run_in_thread``/``run_in_process`` calls still
  running are given up as below.
* **thread**: a thread cannot be killed. It is abandoned with a WARNING: the
  pool starts a replacement (so it keeps its size) and the old thread ends when
  the call returns, if it ever does. Its result is dropped.
* **process**: a pool process cannot be stopped alone, so the pool is replaced:
  new calls go to a fresh pool at once and the old one is terminated. The other
  jobs that had calls running in it lose them through no fault of their own:
  they go back to wait without an attempt counted (``handedBack``), as at a
  forced shutdown. A pool broken by a process that died (``os._exit``, a
  crash) is replaced too; there the culprit is unknown, so every call it had
  fails its attempt with ``BrokenProcessPool``.

Without a timeout, handlers are awaited directly (no task of their own): a
timeout costs ~10 us a job, nothing otherwise.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import math
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from bullbridge.errors import HandlerTimeout
from bullbridge.worker.pools import DaemonThreadPool, process_pool, stop_process_pool

if TYPE_CHECKING:
    from bullbridge.worker.context import ActiveJob
    from bullbridge.worker.handlers import Handler, HandlerRegistry
    from bullbridge.worker.settings import WorkerSettings

log = logging.getLogger("bullbridge.worker")
T = TypeVar("T")

#: Seconds after a cancellation before a handler still running is reported as ignoring it.
ORPHAN_GRACE = 1.0

#: The job whose handler is running in this task (and the tasks it starts): whose
#: ``run_in_thread``/``run_in_process`` calls are whose.
CURRENT_JOB: contextvars.ContextVar[ActiveJob | None] = contextvars.ContextVar("bullbridge_job", default=None)

#: A pool call: the job it is for, and the process pool it runs in (None: the thread pool).
_Call = tuple["ActiveJob | None", "concurrent.futures.ProcessPoolExecutor | None"]


class HandlerRunner:
    """Runs a worker's handlers: on the loop, in its thread pool, in its process pool."""

    def __init__(self, settings: WorkerSettings, queue: str) -> None:
        self.settings = settings
        self.queue = queue
        self.threads: DaemonThreadPool | None = None
        self.processes: concurrent.futures.ProcessPoolExecutor | None = None
        self._calls: dict[concurrent.futures.Future[Any], _Call] = {}
        self._retiring: set[asyncio.Task[bool]] = set()
        self._orphans: set[asyncio.Task[Any]] = set()
        self.replaced_pools = 0

    def prepare(self, registry: HandlerRegistry) -> None:
        """Create the pools the registered handlers need (at start, not on the first job)."""
        if registry.needs_thread_pool:
            self._thread_pool()
        if registry.needs_process_pool:
            self._process_pool()

    def _thread_pool(self) -> DaemonThreadPool:
        if self.threads is None:
            self.threads = DaemonThreadPool(self.settings.thread_pool_size or self.settings.concurrency)
        return self.threads

    def _process_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self.processes is None:
            self.processes = process_pool(self.settings.process_pool_size)
        return self.processes

    def timeout_of(self, handler: Handler) -> float | None:
        """The handler's timeout in seconds, else the worker's; None for none."""
        value = handler.timeout if handler.timeout is not None else self.settings.handler_timeout
        if value is None:
            return None
        seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
        return None if math.isinf(seconds) else seconds

    # -- calling a handler ---------------------------------------------------------------

    async def invoke(self, handler: Handler, job: ActiveJob) -> Any:
        timeout = self.timeout_of(handler)
        if handler.run_in == "loop":
            if timeout is None:
                return await handler.fn(job)
            return await self._loop_with_timeout(handler, job, timeout)
        if handler.run_in == "thread":
            ctx = contextvars.copy_context()
            fut = self._thread_pool().submit(ctx.run, handler.fn, job)
            return await self._await_call(fut, job, None, timeout)
        pool = self._process_pool()
        return await self._await_call(pool.submit(handler.fn, job.snapshot()), job, pool, timeout)

    async def _loop_with_timeout(self, handler: Handler, job: ActiveJob, timeout: float) -> Any:
        task = asyncio.get_running_loop().create_task(handler.fn(job), name=f"bullbridge-{self.queue}-job-{job.id}")
        try:
            done, _ = await asyncio.wait((task,), timeout=timeout)
        except asyncio.CancelledError:  # a forced shutdown: cancel the handler, never wait for it
            task.cancel()
            self._watch_orphan(task, job, "the worker is shutting down")
            raise
        if done:
            return task.result()
        expired = self._expired(job, timeout)
        task.cancel()
        self._watch_orphan(task, job, f"it exceeded its {timeout:g} s timeout")
        self._give_up_calls(job, expired)
        raise expired

    def _expired(self, job: ActiveJob, timeout: float) -> HandlerTimeout:
        reason = f"handler {job.name!r} exceeded {timeout:g} s"
        job.signal.cancel(reason)
        return HandlerTimeout(reason)

    async def _await_call(
        self,
        fut: concurrent.futures.Future[Any],
        job: ActiveJob | None,
        pool: concurrent.futures.ProcessPoolExecutor | None,
        timeout: float | None,
    ) -> Any:
        """Await a call in the thread pool (``pool`` None) or in ``pool`` for ``job``;
        at ``timeout``, give it up (a TimeoutError the call raises itself is the
        call's own failure, not a timeout)."""
        self._calls[fut] = (job, pool)
        wrapped = asyncio.wrap_future(fut)
        try:
            if timeout is None:
                return await wrapped
            try:
                done, _ = await asyncio.wait((wrapped,), timeout=timeout)
            except asyncio.CancelledError:
                wrapped.cancel()
                raise
            if done:
                return wrapped.result()
            wrapped.cancel()  # given up: its late result or error is nobody's (and not "never retrieved")
            expired = self._expired(job, timeout) if job is not None else HandlerTimeout("timed out")
            if job is not None:
                self._give_up(fut, job, pool, expired)
            raise expired
        except BrokenProcessPool:
            if pool is not None:
                self._replace_pool(pool, None, "a process of the worker's pool exited abruptly")
            raise
        finally:
            self._calls.pop(fut, None)

    def _give_up(
        self,
        fut: concurrent.futures.Future[Any],
        job: ActiveJob,
        pool: concurrent.futures.ProcessPoolExecutor | None,
        why: Exception,
    ) -> None:
        if pool is None:
            if self.threads is not None and self.threads.abandon(fut):
                job.over = str(why)
                log.warning(
                    "job %s (%s) of %s: %s; a thread cannot be killed, so it was abandoned and runs on "
                    "(its result will be dropped; %d abandoned thread(s) still running)",
                    job.id,
                    job.name,
                    self.queue,
                    why,
                    self.threads.abandoned,
                )
        elif not fut.cancel() and not fut.done():
            job.over = str(why)
            self._replace_pool(pool, job, f"job {job.id} ({job.name}) of {self.queue}: {why}")

    def _give_up_calls(self, job: ActiveJob, why: Exception) -> None:
        """An async handler timed out: its pool calls still running are given up too."""
        for fut, (owner, pool) in list(self._calls.items()):
            if owner is job and not fut.done():
                self._give_up(fut, job, pool, why)

    # -- work handlers send to the pools themselves (job.run_in_thread / run_in_process) --

    async def run_in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        result: T = await self._await_call(self._thread_pool().submit(fn, *args), CURRENT_JOB.get(), None, None)
        return result

    async def run_in_process(self, fn: Callable[..., T], *args: Any) -> T:
        pool = self._process_pool()
        result: T = await self._await_call(pool.submit(fn, *args), CURRENT_JOB.get(), pool, None)
        return result

    # -- replacing a process pool -------------------------------------------------------

    def _replace_pool(self, pool: concurrent.futures.ProcessPoolExecutor, culprit: ActiveJob | None, why: str) -> None:
        """New calls go to a fresh pool now; the old one is terminated in the
        background. With a culprit, the other jobs with calls in the old pool are
        marked to go back to wait (their attempt is not theirs to lose)."""
        if pool is not self.processes:
            return  # already replaced
        self.processes = process_pool(self.settings.process_pool_size)
        self.replaced_pools += 1
        victims = {
            id(job): job
            for fut, (job, in_pool) in list(self._calls.items())
            if in_pool is pool and job is not None and job is not culprit and not fut.done()
        }
        if culprit is not None:
            for job in victims.values():
                job.requeue = True
                job.signal.cancel("the worker's process pool was replaced")
        stopping = asyncio.ensure_future(stop_process_pool(pool, kill=True))
        self._retiring.add(stopping)
        stopping.add_done_callback(self._retiring.discard)
        log.warning(
            "%s: a pool process cannot be stopped alone, so the process pool was replaced; %d other job(s) "
            "with work in it %s",
            why,
            len(victims),
            "go back to wait, no attempt counted" if culprit is not None else "fail this attempt",
        )

    # -- handlers that ignore their cancellation ----------------------------------------

    def _watch_orphan(self, task: asyncio.Task[Any], job: ActiveJob, why: str) -> None:
        """The worker stopped waiting for ``task``: report it if it ignores its cancellation."""
        job.over = why
        self._orphans.add(task)
        task.add_done_callback(self._orphan_done)
        asyncio.get_running_loop().call_later(ORPHAN_GRACE, self._orphan_check, task, job, why)

    def _orphan_check(self, task: asyncio.Task[Any], job: ActiveJob, why: str) -> None:
        if not task.done():
            log.warning(
                "job %s (%s) of %s: its handler was cancelled (%s) and is still running %g s later: it "
                "catches CancelledError; it runs on unsupervised and its outcome will be dropped",
                job.id,
                job.name,
                self.queue,
                why,
                ORPHAN_GRACE,
            )

    def _orphan_done(self, task: asyncio.Task[Any]) -> None:
        self._orphans.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: an orphan's error is not "never retrieved"

    # -- closing ------------------------------------------------------------------------

    async def stop(self, *, forced: bool) -> None:
        """Stop the pools (gone when this returns: see stop_process_pool) and
        cancel orphaned handler tasks once more, without waiting for them."""
        if self.threads is not None:
            self.threads.shutdown(wait=False)
        if self.processes is not None:
            await stop_process_pool(self.processes, kill=forced)
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
        for task in list(self._orphans):
            task.cancel()
        if self._orphans:
            log.warning(
                "worker on %s closed with %d handler(s) still running after their cancellation",
                self.queue,
                len(self._orphans),
            )

"""What a handler receives: the job, plus the means to act on it while active.

:class:`ActiveJob` is a :class:`~bullbridge.job.Job` with

* ``update_progress`` / ``log`` - safe to call from the event loop *or* from a
  thread handler; they return a future (await it, ``.result()`` it, or ignore
  it: writes go out in order, before the job's completion);
* ``signal`` - a :class:`CancelSignal`, set when the worker force-closes or the
  job's lock is lost. It is an attribute, not guessed from the handler's
  signature (the port hands an AbortSignal to any third positional parameter);
* ``delay_until``, ``rate_limit``, ``wait_for_children`` - Node's
  DelayedError / RateLimitError / WaitingChildrenError moves;
* ``run_in_process`` - CPU-bound work off the loop, between progress updates.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from bullbridge import scripts
from bullbridge.clock import now_ms
from bullbridge.errors import DelayJob, LockLost, RateLimited, UsageError, WaitingChildren
from bullbridge.job import Dependencies, Job, read_dependencies
from bullbridge.options import epoch_ms, to_ms
from bullbridge.worker.host import WorkerHost

T = TypeVar("T")


class Sent:
    """A write on its way to Redis (progress, a log line). Ignore it (writes go
    out in order, before the job finishes), ``await`` it in async code, or call
    ``.result()`` in a thread handler to block until Redis confirmed it."""

    __slots__ = ("_future",)

    def __init__(self, future: asyncio.Future[Any] | concurrent.futures.Future[Any]) -> None:
        self._future = future

    def __await__(self) -> Generator[Any, None, Any]:
        if isinstance(self._future, asyncio.Future):
            return self._future.__await__()
        return asyncio.wrap_future(self._future).__await__()

    def result(self, timeout: float | None = None) -> Any:
        """Block until Redis answered (thread handlers only: on the loop, await instead)."""
        if isinstance(self._future, asyncio.Future):
            raise UsageError("on the event loop, await it instead of calling .result()")
        return self._future.result(timeout)

    def done(self) -> bool:
        return self._future.done()


class CancelSignal:
    """Cooperative cancellation for one job. Readable from any thread."""

    __slots__ = ("_event", "_loop", "cancelled", "reason")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.cancelled = False
        self.reason: str | None = None
        self._event: asyncio.Event | None = None
        self._loop = loop

    def cancel(self, reason: str) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        self.reason = reason
        if self._event is not None:
            self._event.set()

    async def wait(self) -> str:
        """Return (the reason) once cancelled."""
        if self._event is None:
            self._event = asyncio.Event()
            if self.cancelled:
                self._event.set()
        await self._event.wait()
        return self.reason or ""

    def raise_if_cancelled(self) -> None:
        if self.cancelled:
            raise asyncio.CancelledError(self.reason)


@dataclass(frozen=True)
class JobSnapshot:
    """A picklable copy of a job for process-pool handlers."""

    id: str
    name: str
    queue: str
    data: Any
    opts: dict[str, Any]
    attempts_made: int
    attempts_started: int
    timestamp: int


class ActiveJob(Job):
    """A job this worker holds the lock of, handed to the handler.

    The worker keeps the attempt's state on it: ``lock_lost`` (another worker or
    BullMQ's stall recovery owns the job now: this attempt's outcome is dropped),
    ``over`` (why the worker stopped waiting for the handler - a timeout, a
    shutdown - or None: once set, progress and log writes are refused),
    ``requeue`` (its process pool was replaced under it: back to wait) and
    ``finishing`` (the outcome is being written)."""

    __slots__ = ("_loop_thread", "_worker", "finishing", "lock_lost", "over", "requeue", "signal", "token")

    def __init__(self, worker: WorkerHost, job_id: str, fields: dict[bytes, bytes], token: str) -> None:
        super().__init__(worker.queue, job_id, fields, worker.settings.codec)
        self.token = token
        self._worker = worker
        self.signal = CancelSignal(worker.loop)
        self._loop_thread = worker.loop_thread
        self.lock_lost = False
        self.over: str | None = None
        self.requeue = False
        self.finishing = False

    # -- progress and logs ----------------------------------------------------------

    def _submit(self, name: str, keys: list[Any], args: list[Any]) -> Sent:
        if self.over is not None:  # a handler the worker gave up on (timeout, shutdown) writes nothing more
            raise LockLost(f"job {self.id}: this attempt is over ({self.over}), so {name} was not written")
        worker = self._worker
        if threading.get_ident() == self._loop_thread:
            return Sent(asyncio.ensure_future(scripts.run(worker.client, name, keys, args)))
        return Sent(asyncio.run_coroutine_threadsafe(scripts.run(worker.client, name, keys, args), worker.loop))

    def update_progress(self, progress: Any) -> Sent:
        """Report progress (a number or any JSON value); Node sees it at once."""
        payload = self._codec.encode(progress)
        keys, args = self._worker.qs.update_progress(self.id, payload)
        sent = self._submit("updateProgress", keys, args)
        self._worker.note_progress(self, progress)
        return sent

    def log(self, row: str) -> Sent:
        """Append a line to the job's log (``keep_logs`` trims it, as in Node)."""
        keep = self.opts.get("kl") or self.opts.get("keepLogs")
        keys, args = self._worker.qs.add_log(self.id, str(row), int(keep) if keep else None)
        return self._submit("addLog", keys, args)

    # -- moves that end the attempt without completing or failing it -------------------

    async def delay_until(self, when: datetime | int | timedelta) -> None:
        """Move the job back to delayed until ``when`` and stop this attempt
        (Node: ``job.moveToDelayed`` + ``DelayedError``). Does not count an attempt."""
        now = now_ms()
        if isinstance(when, timedelta):
            delay = to_ms(when, "delay")
        else:
            delay = max(0, epoch_ms(when) - now)
        keys, args = self._worker.qs.move_to_delayed(
            job_id=self.id, token=self.token, delay=delay, skip_attempt=True, timestamp=now
        )
        result = await scripts.run(self._worker.client, "moveToDelayed", keys, args)
        scripts.check_code(result, "moveToDelayed", self.id)
        raise DelayJob(f"job {self.id} delayed by {delay} ms")

    async def rate_limit(self, delay: int | timedelta) -> None:
        """Rate-limit the whole queue for ``delay`` and put this job back in wait
        (Node: ``worker.rateLimit(ms)`` + ``RateLimitError``)."""
        ms = to_ms(delay, "rate limit delay", allow_zero=False)
        await self._worker.client.execute("SET", self._worker.keys["limiter"], 2**53 - 1, "PX", ms)
        raise RateLimited(ms)

    async def wait_for_children(self) -> bool:
        """If children are still pending, move to waiting-children and end this
        attempt (raises); returns False when there is nothing to wait for."""
        keys, args = self._worker.qs.move_to_waiting_children(self.id, self.token)
        result = await scripts.run(self._worker.client, "moveToWaitingChildren", keys, args)
        scripts.check_code(result, "moveToWaitingChildren", self.id)
        if result == 0:
            raise WaitingChildren(f"job {self.id} waits for its children")
        return False

    async def children_values(self) -> dict[str, Any]:
        """Return values of completed children, keyed by child job key (Node's getChildrenValues)."""
        return (await self.dependencies()).processed

    async def dependencies(self) -> Dependencies:
        """Children by state: processed, unprocessed, ignored, failed (Node's getDependencies)."""
        return await read_dependencies(self._worker.client, self._worker.keys, self.id, self._codec)

    async def ignored_children_failures(self) -> dict[str, str]:
        """Failure reasons of children that failed with ignore_dependency_on_failure."""
        return (await self.dependencies()).ignored

    async def remove_unprocessed_children(self) -> None:
        """Remove children not yet processed (Node's removeUnprocessedChildren), e.g.
        before completing a parent that continues after a child failed."""
        w = self._worker
        await scripts.run(
            w.client, "removeUnprocessedChildren", [w.keys.job(self.id), w.keys["meta"]], [w.keys.base, self.id]
        )

    # -- heavy work ---------------------------------------------------------------------

    async def run_in_process(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a picklable function in the worker's process pool (CPU-bound work)."""
        return await self._worker.run_in_process(fn, *args)

    async def run_in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking function in the worker's thread pool."""
        return await self._worker.run_in_thread(fn, *args)

    def snapshot(self) -> JobSnapshot:
        return JobSnapshot(
            self.id,
            self.name,
            self.queue,
            self.data,
            self.opts,
            self.attempts_made,
            self.attempts_started,
            self.timestamp,
        )

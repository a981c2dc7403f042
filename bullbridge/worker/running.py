"""Where a handler runs: on the loop, in the worker's thread pool, in its process pool.

:class:`HandlerRunner` owns a worker's pools and calls handlers in them
(``run_in``: ``"loop"``, ``"thread"``, ``"process"``), and runs the work
handlers send to the pools themselves (``job.run_in_thread``/``run_in_process``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from bullbridge.worker.pools import DaemonThreadPool, process_pool, stop_process_pool

if TYPE_CHECKING:
    from bullbridge.worker.context import ActiveJob
    from bullbridge.worker.handlers import Handler, HandlerRegistry
    from bullbridge.worker.settings import WorkerSettings

log = logging.getLogger("bullbridge.worker")
T = TypeVar("T")

#: The job whose handler is running in this task (and the tasks it starts).
CURRENT_JOB: contextvars.ContextVar[ActiveJob | None] = contextvars.ContextVar("bullbridge_job", default=None)


class HandlerRunner:
    """Runs a worker's handlers: on the loop, in its thread pool, in its process pool."""

    def __init__(self, settings: WorkerSettings, queue: str) -> None:
        self.settings = settings
        self.queue = queue
        self.threads: DaemonThreadPool | None = None
        self.processes: concurrent.futures.ProcessPoolExecutor | None = None

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

    async def invoke(self, handler: Handler, job: ActiveJob) -> Any:
        if handler.run_in == "loop":
            return await handler.fn(job)
        if handler.run_in == "thread":
            ctx = contextvars.copy_context()
            return await asyncio.wrap_future(self._thread_pool().submit(ctx.run, handler.fn, job))
        return await asyncio.wrap_future(self._process_pool().submit(handler.fn, job.snapshot()))

    async def run_in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        result: T = await asyncio.wrap_future(self._thread_pool().submit(fn, *args))
        return result

    async def run_in_process(self, fn: Callable[..., T], *args: Any) -> T:
        result: T = await asyncio.wrap_future(self._process_pool().submit(fn, *args))
        return result

    async def stop(self, *, forced: bool) -> None:
        """Stop the pools; the process pool is gone when this returns (see stop_process_pool)."""
        if self.threads is not None:
            self.threads.shutdown(wait=False)
        if self.processes is not None:
            await stop_process_pool(self.processes, kill=forced)

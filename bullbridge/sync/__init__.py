"""Blocking twins of :class:`bullbridge.Queue` and :class:`bullbridge.FlowProducer`,
for code that is not async (Django or Flask views, scripts, Celery tasks)::

    from bullbridge.sync import Queue

    queue = Queue("email", connection="redis://localhost:6379")   # at import time is fine

    def signup_view(request):
        job = queue.add("welcome", {"to": request.form["email"]}, attempts=3)
        return {"job": job.id}

Same class names, same methods, same arguments and results as the async API,
without ``await``; each method *is* the async one, run on one background event
loop per process (:mod:`bullbridge.sync.runtime`) - one connection per object,
shared by every thread, commands pipelined. Every call returns or raises within
the object's ``timeout`` (default 10 s; for ``wait_for``/``result``, that plus
their own ``timeout``). Safe across ``fork``: a child process reconnects on its
own first call and never touches the parent's sockets. Called inside a running
event loop, a method raises :class:`~bullbridge.errors.EventLoopConflict`
(use the async API there). docs/sync.md has the details.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bullbridge import codec as codec_module
from bullbridge import flows
from bullbridge import queue as queue_module
from bullbridge.connection import ConnectionSource
from bullbridge.errors import EventLoopConflict
from bullbridge.keys import QueueKeys
from bullbridge.options import JobOptions
from bullbridge.sync.blocking import Blocking, blocking, same

if TYPE_CHECKING:
    from bullbridge.telemetry import OtelTelemetry

__all__ = ["EventLoopConflict", "FlowProducer", "Queue"]

AsyncQueue = queue_module.Queue
AsyncFlowProducer = flows.FlowProducer


class Queue(Blocking[queue_module.Queue]):
    """One BullMQ queue, shared with Node, for code that is not async: the blocking
    twin of :class:`bullbridge.Queue`, with the same arguments and methods.

    >>> queue = Queue("email", connection="redis://localhost:6379")
    >>> job = queue.add("welcome", {"to": "ada@example.com"}, attempts=3)
    >>> queue.result(job.id, timeout=10)
    """

    _async_api = "bullbridge.Queue"

    def __init__(
        self,
        name: str,
        connection: ConnectionSource | None = None,
        *,
        prefix: str = "bull",
        default_job_options: JobOptions | Mapping[str, Any] | None = None,
        codec: codec_module.JsonCodec = codec_module.DEFAULT,
        timeout: float = 10.0,
        telemetry: OtelTelemetry | None = None,
    ) -> None:
        twin = AsyncQueue(
            name,
            connection,
            prefix=prefix,
            default_job_options=default_job_options,
            codec=codec,
            timeout=timeout,
            telemetry=telemetry,
        )
        super().__init__(twin, twin.timeout, twin.connector.settings.describe())

    def __repr__(self) -> str:
        return f"<bullbridge.sync.Queue {self.prefix}:{self.name}>"

    @property
    def name(self) -> str:
        return self._twin.name

    @property
    def prefix(self) -> str:
        return self._twin.prefix

    @property
    def keys(self) -> QueueKeys:
        return self._twin.keys

    @property
    def codec(self) -> codec_module.JsonCodec:
        return self._twin.codec

    @property
    def telemetry(self) -> OtelTelemetry | None:
        return self._twin.telemetry

    # preparing (no I/O)
    options = same(AsyncQueue.options)
    prepare = same(AsyncQueue.prepare)
    # adding
    add = blocking(AsyncQueue.add)
    add_bulk = blocking(AsyncQueue.add_bulk)
    # reading
    get_job = blocking(AsyncQueue.get_job)
    get_job_state = blocking(AsyncQueue.get_job_state)
    get_job_counts = blocking(AsyncQueue.get_job_counts)
    count = blocking(AsyncQueue.count)
    get_jobs = blocking(AsyncQueue.get_jobs)
    get_dependencies = blocking(AsyncQueue.get_dependencies)
    get_children_values = blocking(AsyncQueue.get_children_values)
    get_ignored_children_failures = blocking(AsyncQueue.get_ignored_children_failures)
    # waiting
    wait_for = blocking(AsyncQueue.wait_for, waits=True)
    result = blocking(AsyncQueue.result, waits=True)
    # administering
    pause = blocking(AsyncQueue.pause)
    resume = blocking(AsyncQueue.resume)
    is_paused = blocking(AsyncQueue.is_paused)
    drain = blocking(AsyncQueue.drain)
    clean = blocking(AsyncQueue.clean)
    obliterate = blocking(AsyncQueue.obliterate)
    retry_jobs = blocking(AsyncQueue.retry_jobs)
    promote_jobs = blocking(AsyncQueue.promote_jobs)
    remove = blocking(AsyncQueue.remove)
    retry_job = blocking(AsyncQueue.retry_job)
    promote_job = blocking(AsyncQueue.promote_job)
    change_priority = blocking(AsyncQueue.change_priority)
    change_delay = blocking(AsyncQueue.change_delay)
    update_data = blocking(AsyncQueue.update_data)
    get_deduplication_job_id = blocking(AsyncQueue.get_deduplication_job_id)
    remove_deduplication_key = blocking(AsyncQueue.remove_deduplication_key)
    set_global_concurrency = blocking(AsyncQueue.set_global_concurrency)
    remove_global_concurrency = blocking(AsyncQueue.remove_global_concurrency)
    set_global_rate_limit = blocking(AsyncQueue.set_global_rate_limit)
    remove_global_rate_limit = blocking(AsyncQueue.remove_global_rate_limit)
    # job schedulers
    upsert_job_scheduler = blocking(AsyncQueue.upsert_job_scheduler)
    get_job_scheduler = blocking(AsyncQueue.get_job_scheduler)
    get_job_schedulers = blocking(AsyncQueue.get_job_schedulers)
    remove_job_scheduler = blocking(AsyncQueue.remove_job_scheduler)
    # closing
    close = blocking(AsyncQueue.close)


class FlowProducer(Blocking[flows.FlowProducer]):
    """Adds flows (trees of jobs across queues) atomically, for code that is not
    async: the blocking twin of :class:`bullbridge.FlowProducer`."""

    _async_api = "bullbridge.FlowProducer"

    def __init__(
        self,
        connection: ConnectionSource | None = None,
        *,
        prefix: str = "bull",
        defaults: Mapping[str, JobOptions | Mapping[str, Any]] | None = None,
        codec: codec_module.JsonCodec = codec_module.DEFAULT,
        timeout: float = 10.0,
        telemetry: OtelTelemetry | None = None,
    ) -> None:
        twin = AsyncFlowProducer(
            connection, prefix=prefix, defaults=defaults, codec=codec, timeout=timeout, telemetry=telemetry
        )
        super().__init__(twin, twin.timeout, twin.connector.settings.describe())

    def __repr__(self) -> str:
        return f"<bullbridge.sync.FlowProducer {self.prefix}>"

    @property
    def prefix(self) -> str:
        return self._twin.prefix

    @property
    def codec(self) -> codec_module.JsonCodec:
        return self._twin.codec

    @property
    def telemetry(self) -> OtelTelemetry | None:
        return self._twin.telemetry

    add = blocking(AsyncFlowProducer.add)
    add_bulk = blocking(AsyncFlowProducer.add_bulk)
    close = blocking(AsyncFlowProducer.close)

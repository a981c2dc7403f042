"""The queue: add jobs, read them back, administer the queue - Node's ``Queue``.

A Node BullMQ user finds here what ``new Queue(name, opts)`` gives them, in
snake_case: ``add``, ``add_bulk``, ``get_job``, ``get_job_state``,
``get_job_counts``, ``get_jobs``, ``count``, ``pause``, ``resume``,
``is_paused``, ``drain``, ``clean``, ``obliterate``, ``retry_jobs``,
``promote_jobs``, ``remove``, the queue-wide limits, the job schedulers - plus what Node spreads
over ``Job`` and ``QueueEvents`` (``retry_job``, ``promote_job``,
``wait_for``/``result``, a parent's children).

* :mod:`~bullbridge.queue.adding` - validating and encoding a job (no I/O);
* :mod:`~bullbridge.queue.admin` - the queue-level writes, BullMQ's scripts;
* :mod:`~bullbridge.queue.reading` - counts and job lists as Node's getters read them;
* :mod:`~bullbridge.queue.link` - the pipelining connection with a deadline on every call.

Adding uses BullMQ's own ``add*Job`` scripts on a pipelining connection, so
many concurrent ``add`` calls share one socket; ``add_bulk`` sends a whole
batch in one write, atomically (``MULTI``/``EXEC``). Every call has a deadline
(``timeout``, default 10 s): while Redis is unreachable a call raises
:class:`~bullbridge.errors.RedisUnavailable` instead of hanging.

A queue may be used from one event loop after another (``asyncio.run`` per
call on a module-level queue): it reconnects on the loop it is called from
(:mod:`~bullbridge.queue.link`). The blocking twin, for code that is not
async, is :class:`bullbridge.sync.Queue`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bullbridge import codec as codec_module
from bullbridge import scripts
from bullbridge.compat import check_queue_versions, introduce
from bullbridge.connection import ConnectionSource, RedisConnector, connect
from bullbridge.connection.resp import Arg, RespClient
from bullbridge.errors import InvalidJobOptions
from bullbridge.events import Outcome, QueueEvents
from bullbridge.job import Dependencies, EnqueuedJob, Job, fields_to_dict, read_dependencies
from bullbridge.keys import QueueKeys
from bullbridge.options import JobOptions, to_ms
from bullbridge.queue import admin, reading
from bullbridge.queue.adding import (
    NO_DATA,
    NO_OPTIONS,
    JobOptionsSource,
    JobSpec,
    PreparedJob,
    bulk_spec,
    check_added,
    prepare_add,
)
from bullbridge.queue.link import RedisLink
from bullbridge.scheduler import store as scheduler_store
from bullbridge.scheduler.records import SchedulerInfo, read_scheduler_page, read_schedulers
from bullbridge.scheduler.schedule import Schedule
from bullbridge.scheduler.store import Upserted

if TYPE_CHECKING:
    from bullbridge.telemetry import OtelTelemetry

__all__ = ["NO_DATA", "JobSpec", "PreparedJob", "Queue"]

BulkJob = JobSpec | tuple[Any, ...] | Mapping[str, Any]


class Queue:
    """One BullMQ queue, shared with Node: add jobs, read them, administer the queue.

    ``default_job_options`` are Node's ``defaultJobOptions``: a job's own
    options override them field by field. ``timeout`` bounds every call while
    Redis is unreachable or slow. ``telemetry`` (an
    :class:`~bullbridge.telemetry.OtelTelemetry`, Node's ``telemetry`` option)
    traces each add and stores its context with the job.

    >>> async with Queue("email", connection="redis://localhost:6379") as queue:
    ...     job = await queue.add("welcome", {"to": "ada@example.com"}, attempts=3)
    ...     print(await queue.result(job.id, timeout=10))
    """

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
        self.name = name
        self.prefix = prefix
        self.codec = codec
        self.timeout = timeout
        self.telemetry = telemetry
        self.keys = QueueKeys(name, prefix)
        self._scripts = scripts.QueueScripts(self.keys)
        connector = connect(connection)
        connector.check_queue(prefix, name)
        self._link = RedisLink(
            connector,
            self.keys.client_name(),
            timeout,
            owns_connector=not isinstance(connection, RedisConnector),
            route_key=self.keys.base,
            owner=f"queue {name!r}",
            on_new_loop=self._new_loop,
        )
        self._defaults = JobOptions.defaults(default_job_options)
        self._events: QueueEvents | None = None
        self._events_lock = asyncio.Lock()
        self._versions_checked = False
        self._introduced = False

    def __repr__(self) -> str:
        return f"<Queue {self.prefix}:{self.name}>"

    async def __aenter__(self) -> Queue:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connector(self) -> RedisConnector:
        """The connector this queue's connection comes from."""
        return self._link.connector

    def _client(self) -> RespClient:
        return self._link.client()

    def _new_loop(self) -> None:
        """Used from another event loop than before (the link noticed): the event
        reader and the lock guarding it belonged to the old loop; start both afresh."""
        events, self._events = self._events, None
        if events is not None:
            events.abandon()
        self._events_lock = asyncio.Lock()

    # -- preparing --------------------------------------------------------------------

    # ``self, /``: methods taking **options keep self positional-only, so that
    # bullbridge.sync can derive their typed blocking twins (ParamSpec/Concatenate).
    def options(self, /, opts: JobOptionsSource = None, **options: Any) -> JobOptions:
        """A job's options merged over the queue defaults (validated, no I/O)."""
        if opts is not None and options:
            raise InvalidJobOptions("give options either as opts=... or as keyword arguments, not both")
        if opts is None and not options:
            # The common case, kept cheap: the queue defaults, validated once.
            return self._defaults if self._defaults is not None else NO_OPTIONS
        return JobOptions.from_mapping(opts if opts is not None else options).merged_over(self._defaults)

    def prepare(self, /, name: str, data: Any = NO_DATA, opts: JobOptionsSource = None, **options: Any) -> PreparedJob:
        """Validate and encode one job (no I/O); raises before anything is sent."""
        return prepare_add(self._scripts, self.codec, name, data, self.options(opts, **options))

    # -- adding -----------------------------------------------------------------------

    async def add(
        self, /, name: str, data: Any = NO_DATA, opts: JobOptionsSource = None, **options: Any
    ) -> EnqueuedJob:
        """Add one job (Node's ``queue.add``). Options as keywords
        (``priority=5, delay=timedelta(seconds=2)``) or ``opts=JobOptions(...)``.
        Returns its id: BullMQ's counter, your ``job_id``, or - for a duplicate
        custom id or a deduplicated job - the id of the job already there (as
        Node returns it)."""
        if self.telemetry is not None:  # a producer span, its context stored in the job (bullbridge.telemetry)
            return await self.telemetry.add(
                self.name,
                name,
                self.options(opts, **options),
                lambda o: self._send(prepare_add(self._scripts, self.codec, name, data, o)),
            )
        return await self._send(self.prepare(name, data, opts, **options))

    async def add_bulk(self, jobs: Iterable[BulkJob]) -> list[EnqueuedJob]:
        """Add many jobs atomically, in one round trip (Node's ``queue.addBulk``;
        ``MULTI`` ... ``EXEC``). A job is a :class:`JobSpec`, a mapping
        ``{"name", "data", "opts"}`` or a ``(name, data, opts)`` tuple.

        Every job is validated and encoded first: one invalid job means none is
        sent. (A script error inside the transaction, such as a missing parent,
        does not undo the others, as in Node's ``addBulk``.)"""
        if self.telemetry is not None:  # one producer span for the batch (bullbridge.telemetry)
            specs = [bulk_spec(spec) for spec in jobs]
            return await self.telemetry.add_bulk(
                self.name,
                [s[0] for s in specs],
                lambda stamp: self._send_bulk(
                    [prepare_add(self._scripts, self.codec, n, d, stamp(self.options(o))) for n, d, o in specs]
                ),
            )
        return await self._send_bulk([self.prepare(*bulk_spec(spec)) for spec in jobs])

    async def _check_versions(self, client: RespClient) -> None:
        """Once: warn if Node wrote a queue version known to misbehave with the port.
        Runs inside the caller's deadline, so trouble is reported as the caller's."""
        if not self._versions_checked:
            await check_queue_versions(client, self.keys)
            self._versions_checked = True

    async def _introduce(self, client: RespClient) -> None:
        """Once, after a first add went through: bullbridge's own ``meta.version``
        where no library wrote one (a refused add writes nothing at all)."""
        self._introduced = True
        await self._link.call(introduce(client, self.keys), f"writing {self.name!r}'s meta.version")

    async def _send(self, job: PreparedJob) -> EnqueuedJob:
        client = self._client()

        async def add() -> Any:
            await self._check_versions(client)
            return await scripts.run(client, job.script, job.keys, job.args)

        result = await self._link.call(add(), f"adding job {job.name!r} to {self.name!r}")
        added = EnqueuedJob(check_added(job, result), job.name, self.name, job.timestamp)
        if not self._introduced:
            await self._introduce(client)
        if job.reschedule_delay is not None:
            await self._reschedule(client, job, added.id)
        return added

    async def _reschedule(self, client: RespClient, job: PreparedJob, job_id: str) -> None:
        assert job.reschedule_delay is not None
        await self._link.call(
            admin.reschedule(client, self.keys, job_id, job.reschedule_delay, job.timestamp),
            f"rescheduling job {job_id!r} of {self.name!r} (deduplication reschedule)",
        )

    async def _send_bulk(self, prepared: list[PreparedJob]) -> list[EnqueuedJob]:
        if not prepared:
            return []
        client = self._client()

        async def add() -> list[Any]:
            await self._check_versions(client)
            return await client.execute_many([j.command() for j in prepared], transaction=True)

        results = await self._link.call(add(), f"adding {len(prepared)} jobs to {self.name!r}")
        added = [
            EnqueuedJob(check_added(job, result), job.name, self.name, job.timestamp)
            for job, result in zip(prepared, results)
        ]
        if not self._introduced:
            await self._introduce(client)
        for job, enqueued in zip(prepared, added):
            if job.reschedule_delay is not None:
                await self._reschedule(client, job, enqueued.id)
        return added

    # -- reading ----------------------------------------------------------------------

    async def get_job(self, job_id: str) -> Job | None:
        """The job hash (decoded lazily), or None when no such job exists (Node's ``Job.fromId``)."""
        flat = await self._link.call(
            self._client().execute("HGETALL", self.keys.job(job_id)), f"reading job {job_id!r} of {self.name!r}"
        )
        if not flat:
            return None
        return Job(self.name, job_id, fields_to_dict(flat), self.codec)

    async def get_job_state(self, job_id: str) -> str:
        """``waiting``, ``active``, ``delayed``, ``prioritized``, ``waiting-children``,
        ``completed``, ``failed`` or ``unknown``, via BullMQ's getStateV2 script."""
        k = self.keys
        keys: list[Arg] = [
            k["completed"],
            k["failed"],
            k["delayed"],
            k["active"],
            k["wait"],
            k["paused"],
            k["waiting-children"],
            k["prioritized"],
        ]
        result = await self._link.call(
            scripts.run(self._client(), "getStateV2", keys, [job_id, k.job(job_id)]),
            f"reading the state of job {job_id!r}",
        )
        return result.decode() if isinstance(result, bytes) else str(result)

    async def get_job_counts(self, *states: str) -> dict[str, int]:
        """Jobs per state (Node's ``getJobCounts``): the given states, or Node 6's
        default set (``active``, ``completed``, ``delayed``, ``failed``,
        ``prioritized``, ``waiting``, ``waiting-children``)."""
        return await self._link.call(
            reading.counts(self._client(), self.keys, reading.job_types(states)), f"counting the jobs of {self.name!r}"
        )

    async def count(self) -> int:
        """Jobs still to run: waiting, delayed, prioritized and waiting-children (Node's ``count``)."""
        return sum((await self.get_job_counts("waiting", "delayed", "prioritized", "waiting-children")).values())

    async def get_jobs(
        self, states: str | Sequence[str] = (), start: int = 0, end: int = -1, asc: bool = False
    ) -> list[Job]:
        """Jobs in the given states, ``start`` to ``end`` of each (Node's ``getJobs``,
        through BullMQ's ``getRanges``): each job once, jobs whose hash is gone left out."""
        names = reading.job_types([states] if isinstance(states, str) else states)
        client = self._client()
        ids = await self._link.call(
            reading.job_ids(client, self.keys, names, start, end, asc), f"listing the jobs of {self.name!r}"
        )
        hashes = await self._link.call(
            client.execute_many([("HGETALL", self.keys.job(i)) for i in ids]),
            f"reading {len(ids)} jobs of {self.name!r}",
        )
        return [Job(self.name, i, fields_to_dict(flat), self.codec) for i, flat in zip(ids, hashes) if flat]

    async def get_dependencies(self, job_id: str) -> Dependencies:
        """A parent's children by state, in one round trip (Node's ``job.getDependencies()``)."""
        return await self._link.call(
            read_dependencies(self._client(), self.keys, job_id, self.codec),
            f"reading the dependencies of job {job_id!r}",
        )

    async def get_children_values(self, job_id: str) -> dict[str, Any]:
        """Return values of a parent's completed children, keyed by child job key
        (``bull:<queue>:<id>``), as Node's ``job.getChildrenValues()``."""
        return (await self.get_dependencies(job_id)).processed

    async def get_ignored_children_failures(self, job_id: str) -> dict[str, str]:
        """Failure reasons of children that failed with ``ignore_dependency_on_failure``
        (Node's ``job.getIgnoredChildrenFailures()``)."""
        return (await self.get_dependencies(job_id)).ignored

    # -- waiting ----------------------------------------------------------------------

    async def _started_events(self) -> QueueEvents:
        """The queue's event reader, started once (concurrent waiters share it)."""
        self._link.follow_loop()
        async with self._events_lock:
            if self._events is None:
                events = QueueEvents(self.name, connection=self._link.connector, prefix=self.prefix)
                try:
                    await self._link.call(events.start(), f"listening to the events of {self.name!r}")
                except BaseException:
                    await events.close()
                    raise
                self._events = events
            return self._events

    async def wait_for(self, job_id: str, timeout: float | None = 30.0) -> Outcome:
        """Wait until a job finishes (completed or failed), whichever language ran it
        (Node's ``job.waitUntilFinished``, without raising on failure).

        :class:`~bullbridge.errors.JobTimeout` after ``timeout`` seconds."""
        events = await self._started_events()
        return await events.wait_for(job_id, timeout)

    async def result(self, job_id: str, timeout: float | None = 30.0) -> Any:
        """The job's return value once it completes; :class:`~bullbridge.errors.JobFailed`
        if it fails, :class:`~bullbridge.errors.JobTimeout` after ``timeout`` seconds."""
        events = await self._started_events()
        return await events.result(job_id, timeout)

    # -- administering ----------------------------------------------------------------

    async def pause(self) -> None:
        """Pause the queue for every worker, of either language (Node's ``pause``)."""
        await self._link.call(admin.pause(self._client(), self.keys), f"pausing {self.name!r}")

    async def resume(self) -> None:
        """Resume a paused queue (Node's ``resume``)."""
        await self._link.call(admin.resume(self._client(), self.keys), f"resuming {self.name!r}")

    async def is_paused(self) -> bool:
        return await self._link.call(admin.is_paused(self._client(), self.keys), f"reading {self.name!r}'s state")

    async def drain(self, delayed: bool = False) -> int:
        """Remove the jobs waiting to run (and the delayed ones with ``delayed``);
        active and finished jobs stay. How many were removed (Node's ``drain``)."""
        return await self._link.call(admin.drain(self._client(), self.keys, delayed=delayed), f"draining {self.name!r}")

    async def clean(self, grace_ms: int, limit: int = 0, state: str = "completed") -> list[str]:
        """Delete jobs of ``state`` finished (or added) more than ``grace_ms`` ago,
        at most ``limit`` (0: all); the deleted ids (Node's ``clean``)."""
        return await self._link.call(
            admin.clean(self._client(), self.keys, grace_ms, limit, state), f"cleaning {state} jobs of {self.name!r}"
        )

    async def obliterate(self, *, force: bool = False, count: int = 1000) -> None:
        """Delete the queue and every job in it (Node's ``obliterate``); refused while
        jobs are active unless ``force``."""
        await self._link.call(
            admin.obliterate(self._client(), self.keys, force=force, count=count), f"obliterating {self.name!r}"
        )

    async def retry_jobs(self, state: str = "failed", *, count: int = 1000, timestamp: int | None = None) -> int:
        """Move failed (or completed) jobs back to wait; how many (Node's ``retryJobs``)."""
        return await self._link.call(
            admin.retry_jobs(self._client(), self.keys, state, count=count, timestamp=timestamp),
            f"retrying {state} jobs of {self.name!r}",
        )

    async def promote_jobs(self, *, count: int = 1000) -> int:
        """Run every delayed job now; how many (Node's ``promoteJobs``)."""
        return await self._link.call(
            admin.promote_jobs(self._client(), self.keys, count=count), f"promoting the delayed jobs of {self.name!r}"
        )

    async def remove(self, job_id: str, *, remove_children: bool = True) -> None:
        """Delete one job that is not active (Node's ``remove``);
        :class:`~bullbridge.errors.QueueError` when it is locked."""
        await self._link.call(
            admin.remove_job(self._client(), self.keys, job_id, remove_children=remove_children),
            f"removing job {job_id!r} of {self.name!r}",
        )

    async def retry_job(self, job_id: str, state: str = "failed") -> None:
        """Retry one finished job (Node's ``job.retry(state)``)."""
        await self._link.call(
            admin.retry_job(self._client(), self.keys, job_id, state), f"retrying job {job_id!r} of {self.name!r}"
        )

    async def promote_job(self, job_id: str) -> None:
        """Run one delayed job now (Node's ``job.promote()``)."""
        await self._link.call(
            admin.promote_job(self._client(), self.keys, job_id), f"promoting job {job_id!r} of {self.name!r}"
        )

    async def change_priority(self, job_id: str, priority: int = 0, *, lifo: bool = False) -> None:
        """Give a job a new priority (0: none; with ``lifo`` a job without priority
        runs next) - Node's ``job.changePriority({priority, lifo})``. A waiting job
        moves at once; a delayed, active or failed one runs with it next time.
        :class:`~bullbridge.errors.JobNotFound` when there is no such job."""
        await self._link.call(
            admin.change_priority(self._client(), self.keys, job_id, priority, lifo),
            f"changing the priority of job {job_id!r} of {self.name!r}",
        )

    async def change_delay(self, job_id: str, delay: int | timedelta) -> None:
        """Run a delayed job ``delay`` (ms or a timedelta) from now instead (Node's
        ``job.changeDelay(delay)``); :class:`~bullbridge.errors.QueueError` when the
        job is not delayed."""
        await self._link.call(
            admin.change_delay(self._client(), self.keys, job_id, to_ms(delay, "delay")),
            f"changing the delay of job {job_id!r} of {self.name!r}",
        )

    async def update_data(self, job_id: str, data: Any) -> None:
        """Replace a job's data (Node's ``job.updateData(data)``), encoded as
        :meth:`add` encodes it; a worker that has not fetched the job yet sees the new data."""
        await self._link.call(
            admin.update_data(self._client(), self.keys, job_id, self.codec.encode(data)),
            f"updating the data of job {job_id!r} of {self.name!r}",
        )

    async def get_deduplication_job_id(self, deduplication_id: str) -> str | None:
        """The id of the job that holds ``deduplication_id`` now, or None (Node's
        ``getDeduplicationJobId``)."""
        raw = await self._link.call(
            self._client().execute("GET", f"{self.keys['de']}:{deduplication_id}"),
            f"reading deduplication id {deduplication_id!r} of {self.name!r}",
        )
        return raw.decode() if isinstance(raw, bytes) else raw

    async def remove_deduplication_key(self, deduplication_id: str) -> bool:
        """Let the next add with ``deduplication_id`` create a job even while the one
        holding it is still there (Node's ``removeDeduplicationKey``); True when a
        key was removed."""
        return bool(
            await self._link.call(
                self._client().execute("DEL", f"{self.keys['de']}:{deduplication_id}"),
                f"removing deduplication id {deduplication_id!r} of {self.name!r}",
            )
        )

    async def set_global_concurrency(self, concurrency: int) -> None:
        """At most ``concurrency`` jobs active at once across every worker, of either language."""
        await self._link.call(
            admin.set_global_concurrency(self._client(), self.keys, concurrency),
            f"setting {self.name!r}'s global concurrency",
        )

    async def remove_global_concurrency(self) -> None:
        await self._link.call(
            admin.remove_global_concurrency(self._client(), self.keys), f"removing {self.name!r}'s global concurrency"
        )

    async def set_global_rate_limit(self, max_jobs: int, duration_ms: int) -> None:
        """At most ``max_jobs`` per ``duration_ms`` across every worker, of either language."""
        await self._link.call(
            admin.set_global_rate_limit(self._client(), self.keys, max_jobs, duration_ms),
            f"setting {self.name!r}'s global rate limit",
        )

    async def remove_global_rate_limit(self) -> None:
        await self._link.call(
            admin.remove_global_rate_limit(self._client(), self.keys), f"removing {self.name!r}'s global rate limit"
        )

    # -- job schedulers -----------------------------------------------------------------

    async def upsert_job_scheduler(self, /, scheduler_id: str, **schedule: Any) -> Upserted | None:
        """Create or replace a job scheduler on this queue (Node's ``upsertJobScheduler``):
        ``pattern=`` (cron, with ``tz=``) or ``every=``, and the job each run adds
        (``name=``, ``data=``, ``opts=``), as the fields of
        :class:`~bullbridge.scheduler.Schedule` - validated, with Node's next-run times.
        Returns the first iteration added (None when the schedule has nothing left to run).
        To keep a set of schedules in step with code, declare them instead
        (:func:`bullbridge.scheduler.sync`)."""
        plan = Schedule(id=scheduler_id, queue=self.name, prefix=self.prefix, **schedule)
        return await self._link.call(
            scheduler_store.upsert(self._client(), self.keys, plan),
            f"upserting job scheduler {scheduler_id!r} of {self.name!r}",
        )

    async def get_job_scheduler(self, scheduler_id: str) -> SchedulerInfo | None:
        """One job scheduler as stored by either language, or None (Node's ``getJobScheduler``)."""
        found = await self._link.call(
            read_schedulers(self._client(), self.keys, [scheduler_id]),
            f"reading job scheduler {scheduler_id!r} of {self.name!r}",
        )
        info = found.get(scheduler_id)
        return info if info is not None and (info.exists or info.legacy) else None

    async def get_job_schedulers(self, start: int = 0, count: int | None = None) -> list[SchedulerInfo]:
        """The job schedulers, soonest next run first (Node's ``getJobSchedulers``)."""
        page = await self._link.call(
            read_scheduler_page(self._client(), self.keys, start, count), f"reading the job schedulers of {self.name!r}"
        )
        return page.schedulers

    async def remove_job_scheduler(self, scheduler_id: str) -> bool:
        """Remove a job scheduler and its next run; True when it existed (Node's ``removeJobScheduler``)."""
        return await self._link.call(
            scheduler_store.remove(self._client(), self.keys, scheduler_id),
            f"removing job scheduler {scheduler_id!r} of {self.name!r}",
        )

    # -- closing ----------------------------------------------------------------------

    async def close(self) -> None:
        """Close the connections this queue opened (Node's ``close``)."""
        self._link.follow_loop()
        if self._events is not None:
            await self._events.close()
            self._events = None
        await self._link.close()

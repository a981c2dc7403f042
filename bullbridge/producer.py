"""The producer: enqueue jobs that Node (or Python) workers read as written.

Options are validated (:mod:`bullbridge.options`) and data encoded
(:mod:`bullbridge.codec`) before anything is sent: an invalid job raises at
the call site and writes nothing. Jobs are added by BullMQ's own ``add*Job``
scripts, chosen as Node chooses them, on a pipelining connection, so many
concurrent ``enqueue`` calls share one socket; ``enqueue_bulk`` sends a whole
batch in one write, atomically (``MULTI``/``EXEC``).

Every call has a deadline (``timeout``, default 10 s): while Redis is
unreachable a call raises :class:`~bullbridge.errors.RedisUnavailable` after
that long, instead of hanging (the port and Node both hang >= 120 s).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from bullbridge import codec as codec_module
from bullbridge import scripts
from bullbridge.clock import now_ms
from bullbridge.connection import ConnectionSource, RedisConnector, connect
from bullbridge.connection.resp import Arg, RespClient, RespConnectionError, RespError
from bullbridge.errors import ConfigurationError, InvalidJobOptions, JobNotFound, RedisUnavailable, ScriptError
from bullbridge.events import Outcome, QueueEvents
from bullbridge.job import Dependencies, EnqueuedJob, Job, fields_to_dict, read_dependencies
from bullbridge.keys import QueueKeys
from bullbridge.options import Deduplication, JobOptions, Parent

if TYPE_CHECKING:
    from bullbridge.telemetry import OtelTelemetry

log = logging.getLogger("bullbridge.producer")
T = TypeVar("T")

#: ``enqueue("name")`` without data stores ``{}``, as Node does for ``undefined``;
#: an explicit ``None`` stores ``null``.
NO_DATA: Any = type("NoData", (), {"__repr__": lambda self: "NO_DATA"})()

JobOptionsSource = JobOptions | Mapping[str, Any] | None


_NO_OPTIONS = JobOptions()


@dataclass(frozen=True)
class JobSpec:
    """One job for :meth:`Producer.enqueue_bulk`."""

    name: str
    data: Any = NO_DATA
    opts: JobOptionsSource = None


@dataclass(frozen=True)
class PreparedJob:
    """A job ready for its script: validated options, encoded data, no I/O yet."""

    name: str
    queue: str
    script: str
    keys: list[Arg]
    args: list[Arg]
    timestamp: int
    job_id: str | None
    parent_key: str | None = None

    def command(self) -> tuple[Arg, ...]:
        """The ``EVALSHA`` command, for pipelines and transactions."""
        return scripts.evalsha_command(self.script, self.keys, self.args)


def prepare_add(qs: scripts.QueueScripts, json_codec: codec_module.JsonCodec, name: str, data: Any,
                opts: JobOptions, *, job_id: str | None = None, as_parent: bool = False,
                flow_node: bool = False) -> PreparedJob:
    """Validate and encode one job for BullMQ's add scripts, as Node's
    ``Job.create`` does: the script (parent > delay > priority > standard),
    its keys, and its arguments. For ``flow_node`` jobs (Node's FlowProducer),
    ``job_id`` is the id without being stored in ``opts``, and ``parent`` is
    stored last, as Node's FlowProducer stores it."""
    if not isinstance(name, str):
        raise InvalidJobOptions(f"job name must be a string, got {type(name).__name__}")
    opts.check_for_add()
    data_json = json_codec.encode({} if data is NO_DATA else data)
    if opts.size_limit is not None and len(data_json) > opts.size_limit:
        raise InvalidJobOptions(
            f"the size of job {name!r} ({len(data_json)} bytes of JSON) exceeds its size_limit of "
            f"{opts.size_limit} bytes (Node: 'The size of job {name} exceeds the limit {opts.size_limit} bytes')")
    timestamp = opts.timestamp if isinstance(opts.timestamp, int) else now_ms()
    encoded = opts.to_bullmq(timestamp, parent_last=flow_node)
    parent = opts.parent if isinstance(opts.parent, Parent) else None
    dedup = opts.deduplication if isinstance(opts.deduplication, Deduplication) else None
    own_id = job_id or opts.job_id
    script, keys, args = qs.add_job(
        job_id=own_id or "",
        name=name,
        timestamp=timestamp,
        data_json=data_json,
        encoded_opts=encoded,
        parent_key=parent.key if parent else None,
        parent=opts.parent_data(),
        dedup_id=dedup.id if dedup else None,
        as_parent=as_parent,
    )
    return PreparedJob(name, qs.k.name, script, keys, args, timestamp, own_id, parent.key if parent else None)


def check_added(job: PreparedJob, result: Any) -> str:
    """The id an add script returned, or a :class:`ScriptError` for its error codes."""
    if isinstance(result, RespError):
        raise ScriptError(f"adding job {job.name!r} to {job.queue!r} failed: {result}")
    scripts.check_code(result, "addJob", job_id=job.job_id or "", parent=job.parent_key or "")
    return result.decode() if isinstance(result, bytes) else str(result)


class RedisLink:
    """A pipelining client whose every call has a deadline.

    While Redis is unreachable, reconnecting is retried for ``timeout``
    seconds and a call then raises :class:`RedisUnavailable`; a server that
    accepts but never answers fails the call after ``timeout`` too."""

    def __init__(self, connector: RedisConnector, name: str, timeout: float, *, owns_connector: bool,
                 route_key: str | None = None) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.connector = connector
        self.name = name
        self.timeout = float(timeout)
        self._owns_connector = owns_connector
        self._route_key = route_key
        self._clients: dict[str, RespClient] = {}

    def client(self, role: str = "producer") -> RespClient:
        """The client for ``role`` (created on first use, scripts preloaded)."""
        client = self._clients.get(role)
        if client is None:
            client = self.connector.fast(f"{self.name}:{role}", retry_for=self.timeout, route_key=self._route_key)
            client.endpoint = replace(client.endpoint, command_timeout=self.timeout)
            client.add_on_connect(scripts.preload)
            self._clients[role] = client
        return client

    async def call(self, awaitable: Awaitable[T], what: str) -> T:
        """Await with the deadline; connection trouble becomes :class:`RedisUnavailable`."""
        try:
            return await asyncio.wait_for(awaitable, self.timeout)
        except (TimeoutError, RespConnectionError) as exc:
            where = self.connector.settings.describe()
            raise RedisUnavailable(
                f"{what}: Redis at {where} did not answer within {self.timeout:g} s ({exc or 'timed out'})") from exc

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()
        if self._owns_connector:
            await self.connector.close()


@dataclass
class Producer:
    """Adds jobs to one queue, and reads them back.

    ``defaults`` are the queue-level job options (Node's ``defaultJobOptions``);
    a job's own options override them field by field. ``timeout`` bounds every
    call while Redis is unreachable. ``telemetry`` (an
    :class:`~bullbridge.telemetry.OtelTelemetry`, Node's ``telemetry`` option)
    traces each add and stores its context with the job.
    """

    queue: str
    connection: ConnectionSource | None = None
    prefix: str = "bull"
    defaults: JobOptions | Mapping[str, Any] | None = None
    codec: codec_module.JsonCodec = codec_module.DEFAULT
    timeout: float = 10.0
    telemetry: OtelTelemetry | None = None
    _link: RedisLink = field(init=False, repr=False)
    _events: QueueEvents | None = field(default=None, init=False, repr=False)
    _defaults: JobOptions | None = field(default=None, init=False, repr=False)
    _events_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)
    _versions_checked: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self.keys = QueueKeys(self.queue, self.prefix)
        self._scripts = scripts.QueueScripts(self.keys)
        connector = connect(self.connection)
        connector.check_queue(self.prefix, self.queue)
        self._link = RedisLink(connector, self.keys.client_name(), self.timeout,
                               owns_connector=not isinstance(self.connection, RedisConnector),
                               route_key=self.keys.base)
        self._defaults = JobOptions.defaults(self.defaults)

    async def __aenter__(self) -> Producer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- preparing --------------------------------------------------------------------

    def options(self, opts: JobOptionsSource = None, **options: Any) -> JobOptions:
        """A job's options merged over the queue defaults (validated, no I/O)."""
        if opts is not None and options:
            raise InvalidJobOptions("give options either as opts=... or as keyword arguments, not both")
        if opts is None and not options:
            # The common case, kept cheap: the queue defaults, validated once.
            return self._defaults if self._defaults is not None else _NO_OPTIONS
        return JobOptions.from_mapping(opts if opts is not None else options).merged_over(self._defaults)

    def prepare(self, name: str, data: Any = NO_DATA, opts: JobOptionsSource = None, **options: Any) -> PreparedJob:
        """Validate and encode one job (no I/O); raises before anything is sent."""
        return prepare_add(self._scripts, self.codec, name, data, self.options(opts, **options))

    # -- adding -----------------------------------------------------------------------

    async def _check_versions(self, client: RespClient) -> None:
        """Once: warn if Node wrote a queue version known to misbehave with the port."""
        from bullbridge.compat import check_queue_versions

        self._versions_checked = True
        await self._link.call(check_queue_versions(client, self.keys), f"reading {self.queue!r}'s Node version")

    async def enqueue(self, name: str, data: Any = NO_DATA, opts: JobOptionsSource = None,
                      **options: Any) -> EnqueuedJob:
        """Add one job. Options as keywords (``priority=5, delay=timedelta(seconds=2)``)
        or ``opts=JobOptions(...)``. Returns its id: BullMQ's counter, your
        ``job_id``, or - for a duplicate custom id or a deduplicated job - the
        id of the job already there (as Node returns it)."""
        if self.telemetry is not None:  # a producer span, its context stored in the job (bullbridge.telemetry)
            return await self.telemetry.add(self.queue, name, self.options(opts, **options),
                                            lambda o: self._send(prepare_add(self._scripts, self.codec, name, data, o)))
        return await self._send(self.prepare(name, data, opts, **options))

    async def enqueue_bulk(self, jobs: Iterable[JobSpec | tuple[Any, ...] | Mapping[str, Any]]) -> list[EnqueuedJob]:
        """Add many jobs atomically, in one round trip (``MULTI`` ... ``EXEC``).

        Every job is validated and encoded first: one invalid job means none is
        sent. (A script error inside the transaction, such as a missing parent,
        does not undo the others, as in Node's ``addBulk``.)"""
        if self.telemetry is not None:  # one producer span for the batch (bullbridge.telemetry)
            specs = [_spec(spec) for spec in jobs]
            return await self.telemetry.add_bulk(self.queue, [s[0] for s in specs], lambda stamp: self._send_bulk(
                [prepare_add(self._scripts, self.codec, n, d, stamp(self.options(o))) for n, d, o in specs]))
        return await self._send_bulk([self.prepare(*_spec(spec)) for spec in jobs])

    async def _send(self, job: PreparedJob) -> EnqueuedJob:
        client = self._link.client()
        if not self._versions_checked:
            await self._check_versions(client)
        result = await self._link.call(scripts.run(client, job.script, job.keys, job.args),
                                       f"adding job {job.name!r} to {self.queue!r}")
        return EnqueuedJob(check_added(job, result), job.name, self.queue, job.timestamp)

    async def _send_bulk(self, prepared: list[PreparedJob]) -> list[EnqueuedJob]:
        if not prepared:
            return []
        client = self._link.client()
        if not self._versions_checked:
            await self._check_versions(client)
        results = await self._link.call(client.execute_many([j.command() for j in prepared], transaction=True),
                                        f"adding {len(prepared)} jobs to {self.queue!r}")
        return [EnqueuedJob(check_added(job, result), job.name, self.queue, job.timestamp)
                for job, result in zip(prepared, results)]

    # -- reading ----------------------------------------------------------------------

    async def get_job(self, job_id: str) -> Job | None:
        """The job hash (decoded lazily), or None when no such job exists."""
        flat = await self._link.call(self._link.client().execute("HGETALL", self.keys.job(job_id)),
                                     f"reading job {job_id!r} of {self.queue!r}")
        if not flat:
            return None
        return Job(self.queue, job_id, fields_to_dict(flat), self.codec)

    async def require_job(self, job_id: str) -> Job:
        """Like :meth:`get_job`, but :class:`JobNotFound` when it does not exist."""
        job = await self.get_job(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id!r} in queue {self.queue!r}")
        return job

    async def get_state(self, job_id: str) -> str:
        """``waiting``, ``active``, ``delayed``, ``prioritized``, ``waiting-children``,
        ``completed``, ``failed`` or ``unknown``, via BullMQ's getStateV2 script."""
        k = self.keys
        keys: list[Arg] = [k["completed"], k["failed"], k["delayed"], k["active"], k["wait"], k["paused"],
                           k["waiting-children"], k["prioritized"]]
        result = await self._link.call(
            scripts.run(self._link.client(), "getStateV2", keys, [job_id, k.job(job_id)]),
            f"reading the state of job {job_id!r}")
        return result.decode() if isinstance(result, bytes) else str(result)

    async def get_children_values(self, job_id: str) -> dict[str, Any]:
        """Return values of a parent's completed children, keyed by child job key
        (``bull:<queue>:<id>``), as Node's ``job.getChildrenValues()``."""
        return (await self.get_dependencies(job_id)).processed

    async def get_ignored_children_failures(self, job_id: str) -> dict[str, str]:
        """Failure reasons of children that failed with ``ignore_dependency_on_failure``
        (Node's ``job.getIgnoredChildrenFailures()``)."""
        return (await self.get_dependencies(job_id)).ignored

    async def get_dependencies(self, job_id: str) -> Dependencies:
        """A parent's children by state, in one round trip."""
        return await self._link.call(read_dependencies(self._link.client(), self.keys, job_id, self.codec),
                                     f"reading the dependencies of job {job_id!r}")

    # -- waiting ----------------------------------------------------------------------

    async def _started_events(self) -> QueueEvents:
        """The queue's event reader, started once (concurrent waiters share it)."""
        async with self._events_lock:
            if self._events is None:
                events = QueueEvents(self.queue, connection=self._link.connector, prefix=self.prefix)
                try:
                    await self._link.call(events.start(), f"listening to the events of {self.queue!r}")
                except BaseException:
                    await events.close()
                    raise
                self._events = events
            return self._events

    async def wait_for(self, job_id: str, timeout: float | None = 30.0) -> Outcome:
        """Wait until a job finishes (completed or failed), whichever language ran it.

        :class:`~bullbridge.errors.JobTimeout` after ``timeout`` seconds."""
        events = await self._started_events()
        return await events.wait_for(job_id, timeout)

    async def result(self, job_id: str, timeout: float | None = 30.0) -> Any:
        """The job's return value once it completes; :class:`~bullbridge.errors.JobFailed`
        if it fails, :class:`~bullbridge.errors.JobTimeout` after ``timeout`` seconds."""
        events = await self._started_events()
        return await events.result(job_id, timeout)

    async def close(self) -> None:
        if self._events is not None:
            await self._events.close()
            self._events = None
        await self._link.close()


def _spec(spec: JobSpec | tuple[Any, ...] | Mapping[str, Any]) -> tuple[str, Any, Any]:
    if isinstance(spec, JobSpec):
        return spec.name, spec.data, spec.opts
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"name", "data", "opts"}
        if unknown:
            raise InvalidJobOptions(f"unknown keys in bulk job {sorted(unknown)} (name, data, opts)")
        if "name" not in spec:
            raise InvalidJobOptions(f"a bulk job needs a name: {dict(spec)!r}")
        return spec["name"], spec.get("data", NO_DATA), spec.get("opts")
    if isinstance(spec, Sequence) and not isinstance(spec, str) and 1 <= len(spec) <= 3:
        padded = (*spec, NO_DATA, None)[:3] if len(spec) == 1 else (*spec, None)[:3]
        return padded[0], padded[1], padded[2]
    raise InvalidJobOptions(f"a bulk job is a JobSpec, a mapping or a (name, data, opts) tuple, got {spec!r}")

"""The producer: enqueue jobs that Node (or Python) workers will read as written.

Options are validated (:mod:`bullbridge.options`) and data encoded
(:mod:`bullbridge.codec`) before anything is sent; jobs are added by BullMQ's
own ``add*Job`` scripts on a pipelining connection, so many concurrent
``enqueue`` calls share one socket, and ``enqueue_bulk`` sends a whole batch in
one write, atomically (``MULTI``/``EXEC``). When Redis cannot be reached a call
fails after ``timeout`` seconds (default 10) instead of hanging (the port and
Node both hang >= 120 s).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bullbridge import codec as codec_module
from bullbridge import scripts
from bullbridge.connection import ConnectionSource, RedisConnector, connect
from bullbridge.errors import InvalidJobOptions, JobNotFound, RedisUnavailable, ScriptError
from bullbridge.events import Outcome, QueueEvents
from bullbridge.job import EnqueuedJob, Job, fields_to_dict
from bullbridge.keys import QueueKeys
from bullbridge.options import JobOptions
from bullbridge.resp import Arg, RespClient, RespConnectionError, RespError

log = logging.getLogger("bullbridge.producer")

#: ``enqueue("name")`` without data stores ``{}``, as Node does for ``undefined``;
#: an explicit ``None`` stores ``null``.
NO_DATA: Any = type("NoData", (), {"__repr__": lambda self: "NO_DATA"})()


@dataclass(frozen=True)
class JobSpec:
    """One job for :meth:`Producer.enqueue_bulk`."""

    name: str
    data: Any = NO_DATA
    opts: JobOptions | Mapping[str, Any] | None = None


@dataclass(frozen=True)
class PreparedJob:
    """A job ready for its script: validated options, encoded data."""

    name: str
    script: str
    keys: list[Arg]
    args: list[Arg]
    timestamp: int
    job_id: str | None
    parent_key: str | None = None


@dataclass
class Producer:
    """Adds jobs to one queue.

    ``defaults`` are the queue-level job options (Node's ``defaultJobOptions``);
    a job's own options override them field by field.
    """

    queue: str
    connection: ConnectionSource | None = None
    prefix: str = "bull"
    defaults: JobOptions | Mapping[str, Any] | None = None
    codec: codec_module.JsonCodec = codec_module.DEFAULT
    timeout: float = 10.0
    _connector: RedisConnector = field(init=False, repr=False)
    _owns_connector: bool = field(init=False, repr=False)
    _client: RespClient | None = field(default=None, init=False, repr=False)
    _events: QueueEvents | None = field(default=None, init=False, repr=False)
    _defaults: JobOptions | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.keys = QueueKeys(self.queue, self.prefix)
        self._scripts = scripts.QueueScripts(self.keys)
        self._owns_connector = not isinstance(self.connection, RedisConnector)
        self._connector = connect(self.connection)
        self._connector.check_queue(self.prefix, self.queue)
        self._defaults = JobOptions.from_mapping(self.defaults) if self.defaults is not None else None

    async def __aenter__(self) -> Producer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- connection -----------------------------------------------------------------

    def _get_client(self) -> RespClient:
        if self._client is None:
            client = self._connector.fast(self.keys.client_name() + ":producer", retry_for=self.timeout)
            client.endpoint = replace(client.endpoint, command_timeout=self.timeout)
            client.add_on_connect(scripts.preload)
            self._client = client
        return self._client

    async def _call(self, coro: Any) -> Any:
        try:
            return await asyncio.wait_for(coro, self.timeout)
        except (TimeoutError, RespConnectionError) as exc:
            raise RedisUnavailable(
                f"could not reach Redis for queue {self.queue!r} within {self.timeout:g} s: {exc}") from exc

    # -- preparing --------------------------------------------------------------------

    def prepare(self, name: str, data: Any = NO_DATA, opts: JobOptions | Mapping[str, Any] | None = None,
                **options: Any) -> PreparedJob:
        """Validate and encode one job (no I/O); raises before anything is sent."""
        if not isinstance(name, str):
            raise InvalidJobOptions(f"job name must be a string, got {type(name).__name__}")
        if opts is not None and options:
            raise InvalidJobOptions("give options either as opts=... or as keyword arguments, not both")
        job_opts = JobOptions.from_mapping(opts if opts is not None else options).merged_over(self._defaults)
        data_json = self.codec.encode({} if data is NO_DATA else data)
        if job_opts.size_limit is not None and len(data_json) > job_opts.size_limit:
            raise InvalidJobOptions(
                f"the size of job {name} ({len(data_json)} bytes of JSON) exceeds its size_limit {job_opts.size_limit}")
        now = scripts.now_ms()
        timestamp = job_opts.timestamp if isinstance(job_opts.timestamp, int) else now
        encoded = job_opts.to_bullmq(now)
        parent = job_opts.parent
        parent_dict: dict[str, Any] | None = None
        if parent is not None:
            parent_dict = {"id": parent.id, "queueKey": parent.queue_key}
            for flag, short in (("fail_parent_on_failure", "fpof"), ("remove_dependency_on_failure", "rdof"),
                                ("ignore_dependency_on_failure", "idof"), ("continue_parent_on_failure", "cpof")):
                if getattr(job_opts, flag):
                    parent_dict[short] = True
        dedup = job_opts.deduplication
        script, keys, args = self._scripts.add_job(
            job_id=job_opts.job_id or "",
            name=name,
            timestamp=timestamp,
            data_json=data_json,
            encoded_opts=encoded,
            parent_key=parent.key if parent else None,
            parent=parent_dict,
            dedup_id=dedup.id if dedup is not None and not isinstance(dedup, Mapping) else None,
        )
        return PreparedJob(name, script, keys, args, timestamp, job_opts.job_id,
                           parent.key if parent else None)

    # -- adding -----------------------------------------------------------------------

    async def enqueue(self, name: str, data: Any = NO_DATA, opts: JobOptions | Mapping[str, Any] | None = None,
                      **options: Any) -> EnqueuedJob:
        """Add one job; returns its id (BullMQ's counter, or your ``job_id``)."""
        job = self.prepare(name, data, opts, **options)
        client = self._get_client()
        result = await self._call(scripts.run(client, job.script, job.keys, job.args))
        scripts.check_code(result, "addJob", parent=job.parent_key or "")
        return EnqueuedJob(_text(result), name, self.queue, job.timestamp)

    async def enqueue_bulk(self, jobs: Iterable[JobSpec | tuple[Any, ...] | Mapping[str, Any]]) -> list[EnqueuedJob]:
        """Add many jobs atomically, in one round trip (``MULTI`` ... ``EXEC``).

        Every job is validated first: one invalid job means none is sent."""
        prepared = [self.prepare(*_spec(spec)) for spec in jobs]
        if not prepared:
            return []
        client = self._get_client()
        commands = [scripts.evalsha_command(j.script, j.keys, j.args) for j in prepared]
        results = await self._call(client.execute_many(commands, transaction=True))
        out = []
        for job, result in zip(prepared, results):
            if isinstance(result, RespError):
                raise ScriptError(f"adding job {job.name!r} failed: {result}")
            scripts.check_code(result, "addJob", parent=job.parent_key or "")
            out.append(EnqueuedJob(_text(result), job.name, self.queue, job.timestamp))
        return out

    # -- reading ----------------------------------------------------------------------

    async def get_job(self, job_id: str) -> Job | None:
        """The job hash, or None when no such job exists."""
        client = self._get_client()
        flat = await self._call(client.execute("HGETALL", self.keys.job(job_id)))
        if not flat:
            return None
        return Job(self.queue, job_id, fields_to_dict(flat), self.codec)

    async def require_job(self, job_id: str) -> Job:
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
        result = await self._call(scripts.run(self._get_client(), "getStateV2", keys, [job_id, k.job(job_id)]))
        return _text(result)

    async def wait_for(self, job_id: str, timeout: float | None = 30.0) -> Outcome:
        """Wait until a job finishes (completed or failed) in either language."""
        if self._events is None:
            self._events = QueueEvents(self.queue, connection=self._connector, prefix=self.prefix)
        return await self._events.wait_for(job_id, timeout)

    async def result(self, job_id: str, timeout: float | None = 30.0) -> Any:
        """The job's return value once it completes; :class:`~bullbridge.errors.JobFailed` if it fails."""
        if self._events is None:
            self._events = QueueEvents(self.queue, connection=self._connector, prefix=self.prefix)
        return await self._events.result(job_id, timeout)

    async def close(self) -> None:
        if self._events is not None:
            await self._events.close()
            self._events = None
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._owns_connector:
            await self._connector.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _spec(spec: JobSpec | tuple[Any, ...] | Mapping[str, Any]) -> tuple[str, Any, Any]:
    if isinstance(spec, JobSpec):
        return spec.name, spec.data, spec.opts
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"name", "data", "opts"}
        if unknown:
            raise InvalidJobOptions(f"unknown keys in bulk job {sorted(unknown)} (name, data, opts)")
        return spec["name"], spec.get("data", NO_DATA), spec.get("opts")
    if isinstance(spec, Sequence) and 1 <= len(spec) <= 3:
        padded = (*spec, NO_DATA, None)[:3] if len(spec) == 1 else (*spec, None)[:3]
        return padded[0], padded[1], padded[2]
    raise InvalidJobOptions(f"a bulk job is a JobSpec, a mapping or a (name, data, opts) tuple, got {spec!r}")

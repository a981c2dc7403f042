"""The monitor: per-queue statistics, jobs, workers and schedulers, read-only.

:class:`Monitor` is the one entry point the CLI, the Prometheus exporter and
the dashboard share. Its reads are bounded whatever the size of the queue:

============================  =================================================================
figure                        how it is read
============================  =================================================================
counts per state              BullMQ's ``getCounts`` script (LLEN / ZCARD), Node 6's states
paused                        ``HGET meta paused``
throughput per minute         BullMQ's ``getMetrics`` + ``ZCOUNT`` per minute (throughput.py)
failure rate, p50/p95/p99     the newest N finished jobs: ZREVRANGE + pipelined HMGET (sample.py)
oldest waiting job            the next 10 jobs of wait, paused and prioritized: HMGET each
workers by language           one ``CLIENT LIST`` for all queues (workers.py)
queues                        ``SCAN`` for ``<prefix>:*:meta`` / ``:id`` (discovery.py)
============================  =================================================================

Everything a queue needs goes out in two pipelined round trips, and the queues
of one :meth:`Monitor.stats` call are read concurrently on one connection.

The monitor never writes, with one exception that is BullMQ's own: its
``getCounts`` and ``getRanges`` scripts drop a deprecated (BullMQ < 5) marker
left at the tail of a wait list, exactly as Node's ``getJobCounts`` does.
Operator actions live apart, in :meth:`Monitor.actions`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bullbridge.clock import now_ms
from bullbridge.connection import ConnectionSource, RedisConnector, connect
from bullbridge.connection.resp import RespError
from bullbridge.errors import ConfigurationError
from bullbridge.keys import QueueKeys
from bullbridge.monitor.actions import QueueActions
from bullbridge.monitor.discovery import discover_queues, queue_exists, require_queue
from bullbridge.monitor.jobs import JobDetail, JobPage, read_job, read_jobs
from bullbridge.monitor.migration import (
    DEFAULT_REPORT_SAMPLE,
    LanguageStats,
    MigrationReport,
    build_report,
    by_language,
)
from bullbridge.monitor.reader import Reader, integer, text
from bullbridge.monitor.sample import (
    DEFAULT_SAMPLE_SIZE,
    FinishedSample,
    Percentiles,
    SampleSummary,
    read_finished,
)
from bullbridge.monitor.throughput import DEFAULT_WINDOW_MINUTES, BullMetrics, Throughput, read_metrics, read_throughput
from bullbridge.monitor.workers import WorkerInfo, count_by_language, read_workers
from bullbridge.queue import reading
from bullbridge.scheduler.records import SchedulerInfo, SchedulerPage, read_scheduler_page, read_schedulers

log = logging.getLogger("bullbridge.monitor")

#: How many of the next jobs to run are probed for the oldest waiting one.
OLDEST_PROBE = 10
#: Queues read at once by :meth:`Monitor.stats` (bounds memory: one sample each).
MAX_CONCURRENT_QUEUES = 16


@dataclass(frozen=True)
class QueueStats:
    """One queue at one instant."""

    queue: str
    prefix: str
    taken_at: int
    counts: dict[str, int]
    paused: bool
    throughput: Throughput
    #: Failed / finished among the sampled jobs (``None`` when nothing finished).
    failure_rate: float | None
    #: The finished jobs ``failure_rate``, ``wait`` and ``processing`` come from.
    sample: SampleSummary
    wait: Percentiles
    processing: Percentiles
    #: Age of the oldest job ready to run (since ``timestamp + delay``), ms.
    oldest_waiting_age_ms: int | None
    workers: dict[str, int]
    languages: dict[str, LanguageStats] = field(default_factory=dict)

    @property
    def total_workers(self) -> int:
        return sum(self.workers.values())


class Monitor:
    """Read-only statistics of the BullMQ queues under one prefix.

    >>> async with Monitor("redis://localhost:6379") as monitor:
    ...     for stats in await monitor.stats():          # every queue, found by SCAN
    ...         print(stats.queue, stats.counts["waiting"], stats.processing.p95)

    ``sample_size`` is how many of the newest finished jobs the latency and
    failure figures come from; ``window_minutes`` the throughput window.
    """

    def __init__(
        self,
        connection: ConnectionSource | None = None,
        *,
        prefix: str = "bull",
        sample_size: int = DEFAULT_SAMPLE_SIZE,
        window_minutes: int = DEFAULT_WINDOW_MINUTES,
        command_timeout: float | None = None,
    ) -> None:
        if window_minutes < 2:
            raise ConfigurationError("window_minutes must be at least 2")
        self.prefix = prefix
        self.sample_size = sample_size
        self.window_minutes = window_minutes
        self._owns_connector = not isinstance(connection, RedisConnector)
        self._connector = connect(connection)
        self.reader = Reader(self._connector, command_timeout=command_timeout)
        self._keys: dict[str, QueueKeys] = {}

    async def __aenter__(self) -> Monitor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.reader.close()
        if self._owns_connector:
            await self._connector.close()

    @property
    def redis_description(self) -> str:
        """Where the monitor reads (``host:port/db``), for headers and logs."""
        return self._connector.settings.describe()

    def keys(self, queue: str) -> QueueKeys:
        keys = self._keys.get(queue)
        if keys is None:
            keys = self._keys[queue] = QueueKeys(queue, self.prefix)
        return keys

    # -- queues and counts -------------------------------------------------------------

    async def queues(self) -> list[str]:
        """Every queue under the prefix (SCAN)."""
        return await discover_queues(self.reader, self.prefix)

    async def exists(self, queue: str) -> bool:
        """Whether the queue has any key under the prefix (its ``meta``, ``id``, a job list...)."""
        return await queue_exists(self.reader, self.keys(queue))

    async def require(self, *queues: str) -> None:
        """:class:`~bullbridge.errors.UnknownQueue` for the first of ``queues`` that does not exist
        (``no queue 'X' under prefix 'bull' (known: ...)``)."""
        for queue in queues:
            await require_queue(self.reader, self.keys(queue))

    async def counts(self, queue: str) -> dict[str, int]:
        """Jobs per state, through BullMQ's ``getCounts``: the keys of Node 6's
        ``getJobCounts()`` (no ``paused``), ``waiting`` including a legacy
        ``paused`` list (:mod:`bullbridge.queue.reading`)."""
        (reply,) = await self.reader.pipeline([reading.counts_command(self.keys(queue), reading.DEFAULT_TYPES)])
        return reading.counts_from_reply(reading.DEFAULT_TYPES, reply)

    async def oldest_waiting_age(self, queue: str, now: int | None = None) -> int | None:
        """Milliseconds since the oldest of the next jobs to run became ready."""
        keys = self.keys(queue)
        now = now if now is not None else now_ms()
        wait_ids, paused_ids, prio_ids = await self.reader.pipeline(
            [
                ("LRANGE", keys["wait"], -OLDEST_PROBE, -1),
                ("LRANGE", keys["paused"], -OLDEST_PROBE, -1),
                ("ZRANGE", keys["prioritized"], 0, OLDEST_PROBE - 1),
            ]
        )
        ids = list(dict.fromkeys(text(i) or "" for i in (*wait_ids, *paused_ids, *prio_ids)))
        rows = await self.reader.pipeline([("HMGET", keys.job(i), "timestamp", "delay") for i in ids])
        ready = [ts + (integer(delay) or 0) for stamp, delay in rows if (ts := integer(stamp)) is not None]
        return max(0, now - min(ready)) if ready else None

    # -- statistics --------------------------------------------------------------------

    async def sample(
        self, queue: str, size: int | None = None, *, since_ms: int | None = None, until_ms: int | None = None
    ) -> FinishedSample:
        """The newest finished jobs (``size`` defaults to ``sample_size``)."""
        return await read_finished(
            self.reader,
            self.keys(queue),
            self.sample_size if size is None else size,
            since_ms=since_ms,
            until_ms=until_ms,
        )

    async def throughput(self, queue: str, *, series_minutes: int | None = None, now: int | None = None) -> Throughput:
        return await read_throughput(
            self.reader,
            self.keys(queue),
            now if now is not None else now_ms(),
            window_minutes=self.window_minutes,
            series_minutes=series_minutes,
        )

    async def metrics(self, queue: str, kind: str, start: int = 0, end: int = -1) -> BullMetrics:
        """Node's ``Queue.getMetrics(kind, start, end)``: BullMQ's per-minute counts."""
        if kind not in ("completed", "failed"):
            raise ConfigurationError("metrics kind is 'completed' or 'failed'")
        return await read_metrics(self.reader, self.keys(queue), kind, start, end)

    async def workers(self, queues: Iterable[str] | None = None) -> dict[str, list[WorkerInfo]]:
        """Worker connections per queue, with their language (one CLIENT LIST)."""
        names = list(queues) if queues is not None else await self.queues()
        return await read_workers(self.reader, names, self.prefix)

    async def queue_stats(
        self, queue: str, *, workers: Sequence[WorkerInfo] | None = None, series_minutes: int | None = None
    ) -> QueueStats:
        """Everything about one queue, in two pipelined round trips (plus CLIENT LIST
        when ``workers`` is not given)."""
        now = now_ms()
        if workers is None:
            workers = (await self.workers([queue]))[queue]
        counts, paused, throughput, sample, oldest = await asyncio.gather(
            self.counts(queue),
            self.reader.execute("HGET", self.keys(queue)["meta"], "paused"),
            self.throughput(queue, series_minutes=series_minutes, now=now),
            self.sample(queue),
            self.oldest_waiting_age(queue, now),
        )
        return QueueStats(
            queue=queue,
            prefix=self.prefix,
            taken_at=now,
            counts=counts,
            paused=paused is not None,
            throughput=throughput,
            failure_rate=sample.failure_rate,
            sample=sample.summary(),
            wait=sample.wait,
            processing=sample.processing,
            oldest_waiting_age_ms=oldest,
            workers=count_by_language(workers),
            languages=by_language(sample),
        )

    async def stats(
        self, queues: Iterable[str] | None = None, *, series_minutes: int | None = None
    ) -> list[QueueStats]:
        """:meth:`queue_stats` of the given queues (default: all found by SCAN), one CLIENT LIST.

        A queue whose keys Redis refuses to read as BullMQ's (``WRONGTYPE``) is
        left out with a warning rather than failing the whole list."""
        names = list(queues) if queues is not None else await self.queues()
        workers = await read_workers(self.reader, names, self.prefix)
        gate = asyncio.Semaphore(MAX_CONCURRENT_QUEUES)

        async def one(name: str) -> QueueStats | None:
            async with gate:
                try:
                    return await self.queue_stats(name, workers=workers[name], series_minutes=series_minutes)
                except RespError as exc:  # e.g. WRONGTYPE: a foreign key where BullMQ expects its own
                    log.warning("queue %s skipped: its keys cannot be read as BullMQ's (%s)", name, exc)
                    return None

        return [s for s in await asyncio.gather(*(one(n) for n in names)) if s is not None]

    # -- jobs and schedulers -----------------------------------------------------------

    async def job(self, queue: str, job_id: str, *, log_lines: int = 100) -> JobDetail | None:
        """One job in full (``None`` when it does not exist)."""
        return await read_job(self.reader, self.keys(queue), job_id, log_lines=log_lines)

    async def jobs(self, queue: str, state: str, start: int = 0, count: int = 20) -> JobPage:
        """A page of the jobs in ``state`` (Node's state names: waiting, active, ...)."""
        return await read_jobs(self.reader, self.keys(queue), state, start, count)

    async def schedulers(self, queue: str, start: int = 0, count: int = 50) -> SchedulerPage:
        """Job schedulers by next run (either language's, with their bullbridge owner)."""
        return await read_scheduler_page(self.reader, self.keys(queue), start, count)

    async def scheduler(self, queue: str, scheduler_id: str) -> SchedulerInfo | None:
        """One job scheduler (``None`` when ``repeat`` does not hold it, as Node's ``getJobScheduler``)."""
        info = (await read_schedulers(self.reader, self.keys(queue), [scheduler_id]))[scheduler_id]
        return info if info.next_run_ms is not None else None

    # -- migration ---------------------------------------------------------------------

    async def migration_report(
        self, queue: str, *, since_ms: int | None = None, sample_size: int = DEFAULT_REPORT_SAMPLE
    ) -> MigrationReport:
        """Python next to Node on ``queue``, over the newest ``sample_size`` jobs finished since ``since_ms``."""
        now = now_ms()
        sample, workers = await asyncio.gather(
            self.sample(queue, sample_size, since_ms=since_ms), self.workers([queue])
        )
        return build_report(
            queue,
            sample,
            generated_at=now,
            since_ms=since_ms,
            sample_limit=sample_size,
            live_workers=count_by_language(workers[queue]),
        )

    # -- actions -----------------------------------------------------------------------

    def actions(self, queue: str) -> QueueActions:
        """The operator actions on ``queue`` (these write, through BullMQ's scripts)."""
        return QueueActions(self.reader.client, self.keys(queue))

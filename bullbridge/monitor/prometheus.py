"""A Prometheus exporter for BullMQ queues, with Node's metric names where Node has them.

Node's ``Queue.exportPrometheusMetrics()`` (``queue-getters.js``) writes:

* ``bullmq_job_count{queue, state}`` - a gauge per state of ``getJobCounts()``
  (active, completed, delayed, failed, prioritized, waiting, waiting-children);
* ``bullmq_job_completed_total{queue}`` / ``bullmq_job_failed_total{queue}`` -
  the ``count`` of BullMQ's metrics keys (0 when no worker records metrics).

This exporter writes the same series with the same labels and values, and adds:

* ``bullbridge_job_wait_seconds`` and ``bullbridge_job_processing_seconds``
  ``{queue, language}`` - histograms of each job that finished since the
  exporter started (plus a short look-back), language from the job's ``pb``;
* ``bullbridge_jobs_finished_total{queue, language, state}`` - the same jobs, counted;
* ``bullbridge_queue_workers{queue, language}`` - worker connections now;
* ``bullbridge_queue_paused{queue}`` and ``bullbridge_queue_oldest_waiting_seconds{queue}``.

The histograms are real cumulative counters: each scrape reads only the jobs
that finished since the previous one (``ZRANGEBYSCORE`` from a watermark on the
``completed``/``failed`` sets, at most ``max_jobs_per_scrape`` per queue and
state; a backlog beyond that is caught up over the next scrapes), so
``rate()`` and ``histogram_quantile()`` work as usual. Jobs removed on
completion before a scrape sees them are not observed.

Mount it in any aiohttp app (:func:`metrics_app`) or ASGI app (:func:`asgi_app`),
or run ``bullbridge metrics --port 9464``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bullbridge.clock import now_ms
from bullbridge.monitor.languages import language_of_job
from bullbridge.monitor.monitor import Monitor
from bullbridge.monitor.reader import integer, text
from bullbridge.monitor.sample import FINISHED_STATES
from bullbridge.monitor.workers import count_by_language

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("bullbridge.monitor.prometheus")

#: The states of Node's ``getJobCounts()`` default, in its order.
NODE_COUNT_STATES = ("active", "completed", "delayed", "failed", "prioritized", "waiting", "waiting-children")
#: Discovered queues exported at most (each costs ~10 series and a few reads per scrape).
DEFAULT_MAX_QUEUES = 100
#: Seconds.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


@dataclass
class _Histogram:
    bounds: Sequence[float]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.bounds)

    def observe(self, value: float) -> None:
        self.total += value
        self.n += 1
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
                break

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(self.bounds, self.counts):
            running += count
            out.append((_le(bound), running))
        out.append(("+Inf", self.n))
        return out


def _le(bound: float) -> str:
    return repr(float(bound))


@dataclass
class _Watermark:
    score: int
    seen: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _QueueSnapshot:
    counts: dict[str, int]
    completed_total: int
    failed_total: int
    paused: bool
    oldest_waiting_ms: int | None
    workers: dict[str, int]


class PrometheusExporter:
    """Collects the queues' figures at scrape time; one instance per exporter process.

    ``queues`` fixes the queues to export; without it they are discovered by
    SCAN every ``rediscover_seconds``. ``lookback_ms`` is how far back the
    histograms start when a queue is first seen.
    """

    def __init__(
        self,
        monitor: Monitor,
        queues: Sequence[str] | None = None,
        *,
        lookback_ms: int = 300_000,
        max_jobs_per_scrape: int = 10_000,
        rediscover_seconds: float = 60.0,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        max_queues: int = DEFAULT_MAX_QUEUES,
    ) -> None:
        self.monitor = monitor
        self._fixed = list(queues) if queues else None
        self._queues: list[str] = list(self._fixed or [])
        self._discovered_at = 0.0
        #: Discovered queues beyond this are not exported (the first ones by name are).
        self.max_queues = max_queues
        #: Queues discovered but left out by ``max_queues`` at the last discovery.
        self.dropped_queues = 0
        self.lookback_ms = lookback_ms
        self.max_jobs_per_scrape = max_jobs_per_scrape
        self.rediscover_seconds = rediscover_seconds
        self.buckets = tuple(sorted(buckets))
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self._lock = asyncio.Lock()
        self._snapshot: dict[str, _QueueSnapshot] = {}
        self._marks: dict[tuple[str, str], _Watermark] = {}
        self._wait: dict[tuple[str, str], _Histogram] = {}
        self._processing: dict[tuple[str, str], _Histogram] = {}
        self._finished: dict[tuple[str, str, str], int] = {}
        self.scrape_seconds = 0.0

    # -- reading --------------------------------------------------------------------

    async def _queue_names(self) -> list[str]:
        if self._fixed is not None:
            return self._fixed
        if not self._discovered_at or time.monotonic() - self._discovered_at >= self.rediscover_seconds:
            found = await self.monitor.queues()
            dropped = max(0, len(found) - self.max_queues)
            if dropped and dropped != self.dropped_queues:
                log.warning(
                    "%d queues under prefix %r; exporting the first %d by name (max_queues / --max-queues)",
                    len(found),
                    self.monitor.prefix,
                    self.max_queues,
                )
            self.dropped_queues = dropped
            self._queues = found[: self.max_queues]
            self._forget_except(set(self._queues))
            self._discovered_at = time.monotonic()
        return self._queues

    def _forget_except(self, keep: set[str]) -> None:
        """Drop every figure of queues that vanished (or were capped), so their series end."""
        self._snapshot = {q: v for q, v in self._snapshot.items() if q in keep}
        self._marks = {k: v for k, v in self._marks.items() if k[0] in keep}
        self._wait = {k: v for k, v in self._wait.items() if k[0] in keep}
        self._processing = {k: v for k, v in self._processing.items() if k[0] in keep}
        self._finished = {k: v for k, v in self._finished.items() if k[0] in keep}

    async def refresh(self) -> None:
        """Read every queue once and observe the jobs finished since the last refresh."""
        async with self._lock:
            started = time.perf_counter()
            names = await self._queue_names()
            now = now_ms()
            workers = await self.monitor.workers(names)
            snapshots = await asyncio.gather(*(self._read_queue(q, now) for q in names))
            self._snapshot = {
                q: _QueueSnapshot(
                    counts=c,
                    completed_total=ct,
                    failed_total=ft,
                    paused=p,
                    oldest_waiting_ms=o,
                    workers=count_by_language(workers.get(q, [])),
                )
                for q, (c, ct, ft, p, o) in zip(names, snapshots)
            }
            await asyncio.gather(*(self._observe(q, s, now) for q in names for s in FINISHED_STATES))
            self.scrape_seconds = time.perf_counter() - started

    async def _read_queue(self, queue: str, now: int) -> tuple[dict[str, int], int, int, bool, int | None]:
        m = self.monitor
        keys = m.keys(queue)
        counts, completed, failed, paused, oldest = await asyncio.gather(
            m.counts(queue),
            m.metrics(queue, "completed", 0, 0),
            m.metrics(queue, "failed", 0, 0),
            m.reader.execute("HGET", keys["meta"], "paused"),
            m.oldest_waiting_age(queue, now),
        )
        return counts, completed.count, failed.count, paused is not None, oldest

    async def _observe(self, queue: str, state: str, now: int) -> None:
        keys = self.monitor.keys(queue)
        mark = self._marks.get((queue, state))
        if mark is None:
            mark = self._marks[(queue, state)] = _Watermark(now - self.lookback_ms)
        reader = self.monitor.reader
        (reply,) = await reader.pipeline(
            [
                (
                    "ZRANGEBYSCORE",
                    keys[state],
                    mark.score,
                    "+inf",
                    "WITHSCORES",
                    "LIMIT",
                    0,
                    self.max_jobs_per_scrape + len(mark.seen),
                )
            ]
        )
        it = iter(reply)
        scored = [(text(member) or "", float(score)) for member, score in zip(it, it)]
        entries = [(i, int(s)) for i, s in scored if math.isfinite(s)]  # an inf score is a foreign writer's
        entries = [(i, s) for i, s in entries if not (s == mark.score and i in mark.seen)]
        entries = entries[: self.max_jobs_per_scrape]
        if not entries:
            return
        rows = await reader.pipeline(
            [("HMGET", keys.job(i), "timestamp", "processedOn", "finishedOn", "pb") for i, _ in entries]
        )
        for (_, score), row in zip(entries, rows):
            timestamp, processed_on, finished_on, pb = (integer(row[0]), integer(row[1]), integer(row[2]), text(row[3]))
            if timestamp is None and processed_on is None:
                continue
            language = language_of_job(pb, processed_on)
            key3 = (queue, language, state)
            self._finished[key3] = self._finished.get(key3, 0) + 1
            if processed_on is not None:
                if timestamp is not None:
                    self._hist(self._wait, queue, language).observe(max(0, processed_on - timestamp) / 1000)
                finished = finished_on if finished_on is not None else score
                self._hist(self._processing, queue, language).observe(max(0, finished - processed_on) / 1000)
        top = entries[-1][1]
        if top != mark.score:
            mark.score, mark.seen = top, set()
        mark.seen.update(i for i, s in entries if s == top)

    def _hist(self, table: dict[tuple[str, str], _Histogram], queue: str, language: str) -> _Histogram:
        hist = table.get((queue, language))
        if hist is None:
            hist = table[(queue, language)] = _Histogram(self.buckets)
        return hist

    # -- exposition -----------------------------------------------------------------

    def collect(self) -> Iterable[Metric]:
        """The prometheus_client collector protocol: the last refresh, as metric families."""
        job_count = GaugeMetricFamily(
            "bullmq_job_count", "Number of jobs in the queue by state", labels=["queue", "state"]
        )
        completed = CounterMetricFamily("bullmq_job_completed", "Total number of completed jobs", labels=["queue"])
        failed = CounterMetricFamily("bullmq_job_failed", "Total number of failed jobs", labels=["queue"])
        workers = GaugeMetricFamily(
            "bullbridge_queue_workers", "Worker connections by language", labels=["queue", "language"]
        )
        paused = GaugeMetricFamily("bullbridge_queue_paused", "1 when the queue is paused", labels=["queue"])
        oldest = GaugeMetricFamily(
            "bullbridge_queue_oldest_waiting_seconds", "Age of the oldest job ready to run", labels=["queue"]
        )
        for queue, snap in self._snapshot.items():
            for state in NODE_COUNT_STATES:
                job_count.add_metric([queue, state], snap.counts.get(state, 0))
            completed.add_metric([queue], snap.completed_total)
            failed.add_metric([queue], snap.failed_total)
            for language, n in snap.workers.items():
                workers.add_metric([queue, language], n)
            paused.add_metric([queue], 1 if snap.paused else 0)
            if snap.oldest_waiting_ms is not None:
                oldest.add_metric([queue], snap.oldest_waiting_ms / 1000)
        dropped = GaugeMetricFamily(
            "bullbridge_exporter_queues_dropped", "Queues found but not exported (over max_queues)"
        )
        dropped.add_metric([], self.dropped_queues)
        yield from (job_count, completed, failed, workers, paused, oldest, dropped)
        finished = CounterMetricFamily(
            "bullbridge_jobs_finished",
            "Finished jobs seen by this exporter, by language of the last attempt",
            labels=["queue", "language", "state"],
        )
        for (queue, language, state), n in sorted(self._finished.items()):
            finished.add_metric([queue, language, state], n)
        yield finished
        for name, doc, table in (
            ("bullbridge_job_wait_seconds", "Time from creation to the start of the last attempt", self._wait),
            ("bullbridge_job_processing_seconds", "Duration of the last attempt", self._processing),
        ):
            family = HistogramMetricFamily(name, doc, labels=["queue", "language"])
            for (queue, language), hist in sorted(table.items()):
                family.add_metric([queue, language], hist.cumulative(), hist.total)
            yield family

    def latest(self) -> bytes:
        """The text exposition of the last refresh."""
        return generate_latest(self.registry)

    async def render(self) -> bytes:
        """Refresh, then the text exposition format (``CONTENT_TYPE`` is its content type)."""
        await self.refresh()
        return self.latest()


CONTENT_TYPE = CONTENT_TYPE_LATEST


# --- mounting --------------------------------------------------------------------------


def metrics_app(exporter: PrometheusExporter, path: str = "/metrics") -> web.Application:
    """An aiohttp application serving the exporter at ``path`` (``add_subapp`` it anywhere)."""
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        try:
            body = await exporter.render()
        except Exception as exc:  # Redis down: say so with a 503, keep serving
            log.warning("scrape failed: %s", exc)
            return web.Response(status=503, text=f"bullbridge exporter: cannot read Redis: {exc}\n")
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def index(request: web.Request) -> web.Response:
        return web.Response(
            text=f'<html><body><a href="{path.lstrip("/")}">metrics</a></body></html>', content_type="text/html"
        )

    app = web.Application()
    app.router.add_get(path, handle)
    if path != "/":
        app.router.add_get("/", index)
    return app


ASGIReceive = Callable[[], Awaitable[MutableMapping[str, Any]]]
ASGISend = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def asgi_app(
    exporter: PrometheusExporter,
) -> Callable[[MutableMapping[str, Any], ASGIReceive, ASGISend], Awaitable[None]]:
    """A plain ASGI application (Starlette ``Mount("/metrics", app=...)``, FastAPI, uvicorn...)."""

    async def app(scope: MutableMapping[str, Any], receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await exporter.monitor.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope.get("method", "GET") not in ("GET", "HEAD"):
            status, body, ctype = 405, b"method not allowed\n", "text/plain; charset=utf-8"
        else:
            try:
                status, body, ctype = 200, await exporter.render(), CONTENT_TYPE
            except Exception as exc:
                log.warning("scrape failed: %s", exc)
                status, body, ctype = 503, f"cannot read Redis: {exc}\n".encode(), "text/plain; charset=utf-8"
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body if scope.get("method") != "HEAD" else b""})

    return app

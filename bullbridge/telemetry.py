"""OpenTelemetry through the queue: one trace across Node and Python.

Node BullMQ traces through its ``telemetry`` option (``new Queue(name,
{telemetry: new BullMQOtel('api')})``, npm ``bullmq-otel``). bullbridge does
the same, with the same span names, kinds, attributes, events and metrics, and
- what joins the languages - the same context stored with the job::

    from bullbridge.telemetry import OtelTelemetry

    telemetry = OtelTelemetry()                 # the global tracer provider, like BullMQOtel
    producer = Queue("email", connection=url, telemetry=telemetry)
    worker = Worker("email", connection=url, telemetry=telemetry)
    flows = FlowProducer(url, telemetry=telemetry)

:class:`OtelTelemetry` is the *instrumentation* (Node's ``BullMQOtel``);
:class:`bullbridge.options.Telemetry` stays what it is in Node's job options:
the per-job ``telemetry: {metadata, omitContext}`` (stored ``tm``/``omc``).

**Where the context goes.** A producer span's context is written, as Node's
``BullMQOtel`` writes it, into the job's stored options: ``opts.tm`` is a
string holding the JSON of the carrier the global text-map propagator fills -
``JSON.stringify`` of ``{"traceparent": "00-<trace id>-<span id>-<flags>"}``
with W3C trace context, plus ``"tracestate"`` / ``"baggage"`` when there are
any, in the propagators' order. The consumer span reads ``opts.tm`` back and
continues it. bullbridge writes the same bytes (compact JSON, keys in
injection order) through the same kind of propagator (Python's default is W3C
trace context + baggage; in Node, register one - ``NodeSDK`` does - or
``bullmq-otel`` writes ``"{}"``).

**What is traced**, as Node BullMQ 6.7 does (span name ``<operation>
<destination>``; attributes ``bullmq.queue.name`` and
``bullmq.queue.operation`` on every span):

============================  ========  ==========================================
span                          kind      written by
============================  ========  ==========================================
``add <queue>.<job name>``    PRODUCER  ``Queue.enqueue`` (Node ``Queue.add``);
                                        + ``bullmq.job.name``, ``bullmq.job.id``
``addBulk <queue>``           PRODUCER  ``Queue.add_bulk``; + ``bullmq.job.bulk.names``,
                                        ``bullmq.job.bulk.count``
``addFlow <root queue>``      PRODUCER  ``FlowProducer.add``; + ``bullmq.flow.name``
``addBulkFlows``              PRODUCER  ``FlowProducer.add_bulk``; bulk names (comma-joined) and count
``addNode <queue>``           PRODUCER  each flow node, nested as the tree is; + job name and id
``process <queue>``           CONSUMER  each attempt of a job in ``Worker``, a child of the context
                                        in ``tm``; + ``bullmq.worker.id``, ``bullmq.worker.name``,
                                        job id and name; events ``job completed``
                                        (``bullmq.job.result``) / ``job failed``
                                        (``bullmq.job.failed.reason``);
                                        ``bullmq.job.attempts.made``,
                                        ``bullmq.job.attempt_finished_timestamp``,
                                        ``bullmq.job.processed.timestamp``
``complete|fail|retry|delay   INTERNAL  finishing the attempt (Node's ``moveToCompleted`` /
<queue>``                               ``moveToFailed``), a child of ``process``
============================  ========  ==========================================

The handler runs with the consumer span current, so spans it starts (an HTTP
client, a database driver) join the trace; ``run_in="thread"`` handlers too
(``run_in="process"`` ones get a picklable snapshot and no context). Every
attempt continues the context the producer stored, so retries are sibling
``process`` spans under the producer's span, as in Node.

``omit_context`` (Node ``omitContext``) keeps a job's context out of ``tm``,
with Node's rules: ``add`` stores the span's context unless
``omit_context`` (replacing any ``metadata`` given), ``add_bulk`` and
flow nodes keep a ``metadata`` given and store the span's context otherwise.

Where bullbridge deliberately differs from Node 6.7: a flow node's context is
stored whatever its options (Node stores it only for nodes given ``opts``);
with ``omit_context`` in a bulk or flow, Node also stores ``"tm":false`` (read
by nobody), bullbridge stores no ``tm``; a retried attempt does not write the
``tm`` *hash field* Node's ``moveToFailed`` writes (no reader uses it);
``bullmq.worker.name`` is the name the worker writes as ``processedBy``
(``bullbridge:<name>``). Baggage crosses too, with one upstream caveat:
opentelemetry-python's W3C baggage propagator writes a space as ``+``
(opentelemetry-python#5566), which JS reads back as a literal ``+``.

**Metrics** (``meter_provider=...`` or ``enable_metrics=True``), as Node's
``Job.recordJobMetrics``: counters ``bullmq.jobs.completed``, ``.failed``,
``.delayed``, ``.retried``, ``.waiting``, ``.waiting_children`` and the
histogram ``bullmq.job.duration`` (ms since ``processedOn``), each with
``bullmq.queue.name``, ``bullmq.job.name`` and ``bullmq.job.state``; the gauge
``bullmq.queue.jobs`` through :meth:`OtelTelemetry.record_job_counts`. They sit
beside the monitor's Prometheus exporter (:mod:`bullbridge.monitor.prometheus`),
which reads Redis; these count what this process did.

**Cost.** Nothing here imports ``opentelemetry`` until an
:class:`OtelTelemetry` is made, and without one a Queue, FlowProducer or
Worker does one ``is None`` test per call: no span, no context, no listener.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from bullbridge import codec as codec_module
from bullbridge.clock import now_ms
from bullbridge.errors import (
    ConfigurationError,
    CorruptJob,
    DelayJob,
    LockLost,
    NotJsonSafe,
    RateLimited,
    WaitingChildren,
)
from bullbridge.options import JobOptions
from bullbridge.options import Telemetry as JobTelemetry

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.metrics import Counter, Histogram, Meter, MeterProvider
    from opentelemetry.propagators.textmap import TextMapPropagator
    from opentelemetry.trace import Span, SpanKind, Tracer, TracerProvider
    from opentelemetry.util.types import AttributeValue

    from bullbridge.job import EnqueuedJob
    from bullbridge.worker.context import ActiveJob
    from bullbridge.worker.host import WorkerHost

log = logging.getLogger("bullbridge.telemetry")
T = TypeVar("T")


class TelemetryAttributes:
    """Node BullMQ's ``TelemetryAttributes`` (``enums/telemetry-attributes``), the ones bullbridge writes."""

    QUEUE_NAME = "bullmq.queue.name"
    QUEUE_OPERATION = "bullmq.queue.operation"
    BULK_COUNT = "bullmq.job.bulk.count"
    BULK_NAMES = "bullmq.job.bulk.names"
    JOB_NAME = "bullmq.job.name"
    JOB_ID = "bullmq.job.id"
    JOB_ATTEMPTS_MADE = "bullmq.job.attempts.made"
    JOB_ATTEMPT_FINISHED_TIMESTAMP = "bullmq.job.attempt_finished_timestamp"
    JOB_PROCESSED_TIMESTAMP = "bullmq.job.processed.timestamp"
    JOB_RESULT = "bullmq.job.result"
    JOB_FAILED_REASON = "bullmq.job.failed.reason"
    JOB_STATE = "bullmq.job.state"
    QUEUE_JOBS_STATE = "bullmq.queue.jobs.state"
    FLOW_NAME = "bullmq.flow.name"
    WORKER_NAME = "bullmq.worker.name"
    WORKER_ID = "bullmq.worker.id"


class MetricNames:
    """Node BullMQ's ``MetricNames``."""

    QUEUE_JOBS_COUNT = "bullmq.queue.jobs"
    JOBS_COMPLETED = "bullmq.jobs.completed"
    JOBS_FAILED = "bullmq.jobs.failed"
    JOBS_DELAYED = "bullmq.jobs.delayed"
    JOBS_RETRIED = "bullmq.jobs.retried"
    JOBS_WAITING = "bullmq.jobs.waiting"
    JOBS_WAITING_CHILDREN = "bullmq.jobs.waiting_children"
    JOB_DURATION = "bullmq.job.duration"


#: Job state -> its counter (Node's ``stateToCounterName``).
STATE_COUNTERS = {
    "completed": MetricNames.JOBS_COMPLETED,
    "failed": MetricNames.JOBS_FAILED,
    "delayed": MetricNames.JOBS_DELAYED,
    "retried": MetricNames.JOBS_RETRIED,
    "waiting": MetricNames.JOBS_WAITING,
    "waiting-children": MetricNames.JOBS_WAITING_CHILDREN,
}

A = TelemetryAttributes
_JSON = codec_module.DEFAULT


def encode_metadata(carrier: Mapping[str, str]) -> str:
    """What ``bullmq-otel`` stores as ``tm``: ``JSON.stringify`` of the propagation carrier."""
    return _JSON.encode(dict(carrier)).decode()


def decode_metadata(metadata: Any) -> dict[str, str] | None:
    """The carrier in a stored ``tm`` (None when there is none or it is not a JSON object)."""
    if not isinstance(metadata, str) or not metadata:
        return None
    try:
        value = _JSON.decode(metadata.encode())
    except CorruptJob:
        return None
    if not isinstance(value, dict):
        return None
    return {str(k): v for k, v in value.items() if isinstance(v, str)}


def stamp_add(opts: JobOptions, metadata: str) -> JobOptions:
    """Node's ``Queue.add``: the span's context replaces the job's telemetry, unless ``omitContext``."""
    given = opts.telemetry if isinstance(opts.telemetry, JobTelemetry) else None
    if given is not None and given.omit_context:
        return opts
    return replace(opts, telemetry=JobTelemetry(metadata=metadata))


def stamp_bulk(opts: JobOptions, metadata: str) -> JobOptions:
    """Node's ``Queue.addBulk`` and ``FlowProducer.addNode``: a ``metadata`` given is
    kept, else the span's context is stored unless ``omitContext``.

    (Node then stores ``"tm":false`` beside ``"omc":true``, a falsy placeholder
    every reader ignores; bullbridge stores no ``tm`` there.)"""
    given = opts.telemetry if isinstance(opts.telemetry, JobTelemetry) else None
    omit = given.omit_context if given is not None else None
    chosen = (given.metadata if given is not None else None) or (None if omit else metadata)
    if not chosen and not omit:
        return opts
    return replace(opts, telemetry=JobTelemetry(metadata=chosen, omit_context=omit))


Stamp = Callable[[JobOptions], JobOptions]


class OtelTelemetry:
    """Trace (and measure) Producers, FlowProducers and Workers through OpenTelemetry,
    as Node's ``new BullMQOtel(...)`` does for Queue, FlowProducer and Worker.

    ``tracer_provider`` / ``meter_provider``: the providers to use (default: the
    global ones, as ``bullmq-otel``); ``name``/``version``: the instrumentation
    scope (``bullmq-otel``'s ``tracerName``/``meterName``, ``"bullmq"``).
    Metrics are recorded when ``enable_metrics`` is true, which it is by default
    exactly when a ``meter_provider`` is given. ``propagator`` writes and reads
    the ``tm`` carrier (default: the global text-map propagator at each call).
    Share one instance between producers and workers freely.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        *,
        name: str = "bullmq",
        version: str | None = None,
        enable_metrics: bool | None = None,
        propagator: TextMapPropagator | None = None,
    ) -> None:
        try:
            from opentelemetry import metrics, trace
        except ImportError as exc:
            raise ConfigurationError(
                "OpenTelemetry is not installed: pip install 'bullbridge[otel]' (opentelemetry-api), plus an SDK "
                "(opentelemetry-sdk) to export anything"
            ) from exc
        self.tracer: Tracer = trace.get_tracer(name, version, tracer_provider)
        self.propagator = propagator
        if enable_metrics is None:
            enable_metrics = meter_provider is not None
        self.meter: Meter | None = metrics.get_meter(name, version or "", meter_provider) if enable_metrics else None
        self._counters: dict[str, Counter] = {}
        self._duration: Histogram | None = None
        self._gauge: Any = None

    def __repr__(self) -> str:
        return f"<OtelTelemetry metrics={'on' if self.meter is not None else 'off'}>"

    # -- context ------------------------------------------------------------------------

    def inject(self, ctx: Context) -> str:
        """The ``tm`` metadata for ``ctx`` (``bullmq-otel``'s ``getMetadata``)."""
        carrier: dict[str, str] = {}
        if self.propagator is not None:
            self.propagator.inject(carrier, context=ctx)
        else:
            from opentelemetry import propagate

            propagate.inject(carrier, context=ctx)
        return encode_metadata(carrier)

    def extract(self, metadata: Any, ctx: Context | None = None) -> Context | None:
        """The context stored as ``tm`` (``bullmq-otel``'s ``fromMetadata``), or
        None when there is none; a malformed one is ignored (and logged)."""
        carrier = decode_metadata(metadata)
        if carrier is None:
            if metadata is not None and metadata is not False:
                log.debug("ignoring a job's telemetry metadata that is not a JSON object: %.80r", metadata)
            return None
        if self.propagator is not None:
            return self.propagator.extract(carrier, context=ctx)
        from opentelemetry import propagate

        return propagate.extract(carrier, context=ctx)

    def _start(
        self, kind: SpanKind, queue: str, operation: str, destination: str, parent: Context | None = None
    ) -> tuple[Span, Context]:
        """Node's ``trace()``: span ``"<operation> <destination>"`` with the queue
        name and operation, and the context that carries it."""
        from opentelemetry import context, trace

        base = parent if parent is not None else context.get_current()
        span = self.tracer.start_span(
            f"{operation} {destination}" if destination else operation,
            context=base,
            kind=kind,
            attributes={A.QUEUE_NAME: queue, A.QUEUE_OPERATION: operation},
        )
        return span, trace.set_span_in_context(span, base)

    # -- producing ------------------------------------------------------------------------

    async def produce(
        self,
        queue: str,
        operation: str,
        destination: str,
        attributes: Mapping[str, AttributeValue],
        fn: Callable[[str, Span], Awaitable[T]],
    ) -> T:
        """Run ``fn(metadata, span)`` inside a PRODUCER span made current;
        ``metadata`` is the span's context as ``tm`` stores it."""
        from opentelemetry import context
        from opentelemetry.trace import SpanKind

        span, ctx = self._start(SpanKind.PRODUCER, queue, operation, destination)
        token = context.attach(ctx)
        try:
            if attributes:
                span.set_attributes(attributes)
            return await fn(self.inject(ctx), span)
        except BaseException as exc:
            span.record_exception(exc)
            raise
        finally:
            context.detach(token)
            span.end()

    async def add(
        self, queue: str, name: str, opts: JobOptions, send: Callable[[JobOptions], Awaitable[EnqueuedJob]]
    ) -> EnqueuedJob:
        """``Queue.enqueue`` (Node ``Queue.add``): span ``add <queue>.<name>``."""

        async def run(metadata: str, span: Span) -> EnqueuedJob:
            enqueued = await send(stamp_add(opts, metadata))
            span.set_attributes({A.JOB_NAME: name, A.JOB_ID: enqueued.id})
            return enqueued

        return await self.produce(queue, "add", f"{queue}.{name}", {}, run)

    async def add_bulk(self, queue: str, names: Sequence[Any], send: Callable[[Stamp], Awaitable[T]]) -> T:
        """``Queue.add_bulk`` (Node ``Queue.addBulk``): span ``addBulk <queue>``."""
        attributes: dict[str, AttributeValue] = {A.BULK_COUNT: len(names)}
        if all(isinstance(n, str) for n in names):
            attributes[A.BULK_NAMES] = list(names)
        return await self.produce(
            queue, "addBulk", queue, attributes, lambda metadata, _span: send(lambda opts: stamp_bulk(opts, metadata))
        )

    async def add_flow(self, queue: str, name: str, send: Callable[[], Awaitable[T]]) -> T:
        """``FlowProducer.add``: span ``addFlow <root queue>``; its nodes nest under it."""
        return await self.produce(queue, "addFlow", queue, {A.FLOW_NAME: name}, lambda _metadata, _span: send())

    async def add_flows(self, names: Sequence[str], send: Callable[[], Awaitable[T]]) -> T:
        """``FlowProducer.add_bulk``: span ``addBulkFlows`` (Node leaves its queue name empty)."""
        attributes: dict[str, AttributeValue] = {A.BULK_COUNT: len(names), A.BULK_NAMES: ",".join(names)}
        return await self.produce("", "addBulkFlows", "", attributes, lambda _metadata, _span: send())

    def add_node(self, queue: str, name: str, build: Callable[[Callable[[JobOptions, str], JobOptions]], T]) -> T:
        """One flow node (Node ``FlowProducer.addNode``): span ``addNode <queue>``,
        current while ``build`` prepares the node and its children, so theirs nest
        under it. ``build`` gets ``stamp(opts, job_id)``: the node's options with
        this span's context, the job id recorded on the span."""
        from opentelemetry import context
        from opentelemetry.trace import SpanKind

        span, ctx = self._start(SpanKind.PRODUCER, queue, "addNode", queue)
        token = context.attach(ctx)
        try:
            metadata = self.inject(ctx)

            def stamp(opts: JobOptions, job_id: str) -> JobOptions:
                span.set_attributes({A.JOB_NAME: name, A.JOB_ID: job_id})
                return stamp_bulk(opts, metadata)

            return build(stamp)
        except BaseException as exc:
            span.record_exception(exc)
            raise
        finally:
            context.detach(token)
            span.end()

    # -- consuming ----------------------------------------------------------------------

    def for_worker(self, worker: WorkerHost) -> WorkerTelemetry:
        """The per-worker side (consumer spans, job metrics); a Worker calls this."""
        return WorkerTelemetry(self, worker)

    # -- metrics ------------------------------------------------------------------------

    def record_job(self, queue: str, name: str, state: str, processed_on: int | None) -> None:
        """Node's ``Job.recordJobMetrics(state)``: the state's counter, and the
        duration since ``processed_on`` (epoch ms) when known."""
        meter = self.meter
        if meter is None:
            return
        attributes = {A.QUEUE_NAME: queue, A.JOB_NAME: name, A.JOB_STATE: state}
        counter = self._counters.get(state)
        if counter is None:
            counter = self._counters[state] = meter.create_counter(
                STATE_COUNTERS[state], unit="1", description=f"Number of jobs {state}"
            )
        counter.add(1, attributes)
        if processed_on:
            if self._duration is None:
                self._duration = meter.create_histogram(
                    MetricNames.JOB_DURATION, unit="ms", description="Job processing duration"
                )
            self._duration.record(max(0, now_ms() - processed_on), attributes)

    def record_job_counts(self, queue: str, counts: Mapping[str, int]) -> None:
        """Node's ``Queue.recordJobCountsMetric``: the gauge ``bullmq.queue.jobs``
        per state, from counts you read (e.g. the monitor's ``job_counts``)."""
        meter = self.meter
        if meter is None:
            return
        if self._gauge is None:
            self._gauge = meter.create_gauge(
                MetricNames.QUEUE_JOBS_COUNT, unit="{jobs}", description="Number of jobs in the queue by state"
            )
        for state, count in counts.items():
            self._gauge.set(count, {A.QUEUE_NAME: queue, A.QUEUE_JOBS_STATE: state})


class WorkerTelemetry:
    """A worker's consumer spans: one :class:`Attempt` per job it runs.

    The outcome (completed, failed, retried) is read from the worker's own
    ``completed`` / ``failed`` / ``retrying`` events, which it emits
    synchronously while the attempt is still open, and only once Redis recorded
    the outcome. An outcome Redis did not record (``finishFailed``) or a lost
    lock (``lockLost``) adds the error to the consumer span, as Node's worker
    records the exception its finishing call threw, and counts no job metric."""

    def __init__(self, telemetry: OtelTelemetry, worker: WorkerHost) -> None:
        self.telemetry = telemetry
        self.worker = worker
        self._attempts: dict[int, Attempt] = {}
        worker.on("completed", self._completed)
        worker.on("retrying", self._retrying)
        worker.on("failed", self._failed)
        worker.on("finishFailed", self._not_recorded)
        worker.on("lockLost", self._lock_lost)

    def start(self, job: ActiveJob) -> Attempt | None:
        """Start the CONSUMER span ``process <queue>`` of one attempt, continuing
        the job's stored context, and make it current for the handler. Never
        raises: a telemetry failure must not cost the job (None then)."""
        try:
            attempt = Attempt(self, job)
        except Exception as exc:
            log.warning("no consumer span for job %s of %s: %s", job.id, self.worker.queue, exc, exc_info=exc)
            return None
        self._attempts[id(job)] = attempt
        return attempt

    def _completed(self, job: ActiveJob, result: Any) -> None:
        attempt = self._attempts.get(id(job))
        if attempt is None:
            return
        try:
            encoded: str | None = self.worker.settings.codec.encode(result).decode()
        except NotJsonSafe:  # pragma: no cover - the worker encoded it already
            encoded = None
        attempt.finish("complete", "completed", "job completed", {A.JOB_RESULT: encoded} if encoded is not None else {})

    def _retrying(self, job: ActiveJob, exc: BaseException, delay: int) -> None:
        from bullbridge.worker.failures import failure_reason

        attempt = self._attempts.get(id(job))
        if attempt is not None:
            attempt.finish(
                "delay" if delay else "retry",
                "delayed" if delay else "retried",
                "job failed",
                {A.JOB_FAILED_REASON: failure_reason(exc)},
            )

    def _failed(self, job: ActiveJob, exc: BaseException, reason: str) -> None:
        attempt = self._attempts.get(id(job))
        if attempt is not None:
            attempt.finish("fail", "failed", "job failed", {A.JOB_FAILED_REASON: reason})

    def _not_recorded(self, job: ActiveJob, exc: BaseException) -> None:
        attempt = self._attempts.get(id(job))
        if attempt is not None:
            attempt.span.record_exception(exc)

    def _lock_lost(self, job: ActiveJob) -> None:
        attempt = self._attempts.get(id(job))
        if attempt is not None:
            attempt.span.record_exception(LockLost(f"the lock of job {job.id} was lost"))


class Attempt:
    """One attempt of one job: its CONSUMER span, current while the handler runs.

    The worker calls :meth:`run` around the handler and :meth:`end` when the
    attempt is over (in the same task: the context is attached in between)."""

    __slots__ = ("_handler_done", "_token", "context", "job", "owner", "span")

    def __init__(self, owner: WorkerTelemetry, job: ActiveJob) -> None:
        from opentelemetry import context
        from opentelemetry.trace import SpanKind

        self.owner = owner
        self.job = job
        worker = owner.worker
        telemetry = owner.telemetry
        parent = telemetry.extract(job.safe_opts().get("tm"), context.get_current())
        self.span, self.context = telemetry._start(SpanKind.CONSUMER, worker.queue, "process", worker.queue, parent)
        self.span.set_attributes(
            {A.WORKER_ID: worker.id, A.WORKER_NAME: worker.settings.wire_name, A.JOB_ID: job.id, A.JOB_NAME: job.name}
        )
        self._handler_done = time.time_ns()
        self._token = context.attach(self.context)

    async def run(self, handler: Awaitable[T]) -> T:
        """Await the handler, noting when it ended; the moves a handler makes
        itself (delay, rate limit, wait for children) are counted as Node counts them."""
        try:
            return await handler
        except DelayJob:
            self._metric("delayed")
            raise
        except RateLimited:
            self._metric("waiting")
            raise
        except WaitingChildren:
            self._metric("waiting-children")
            raise
        finally:
            self._handler_done = time.time_ns()

    def finish(self, operation: str, state: str, event: str, attributes: Mapping[str, AttributeValue]) -> None:
        """The attempt's outcome: an INTERNAL ``<operation> <queue>`` span for
        finishing it (from the handler's end until now), Node's event and
        ``attemptsMade`` on the consumer span, and the job metrics."""
        from opentelemetry.trace import SpanKind

        queue = self.owner.worker.queue
        job = self.job
        inner = self.owner.telemetry.tracer.start_span(
            f"{operation} {queue}",
            context=self.context,
            kind=SpanKind.INTERNAL,
            start_time=self._handler_done,
            attributes={A.QUEUE_NAME: queue, A.QUEUE_OPERATION: operation, A.JOB_NAME: job.name, A.JOB_ID: job.id},
        )
        inner.end()
        self.span.add_event(event, attributes)
        self.span.set_attribute(A.JOB_ATTEMPTS_MADE, job.safe_attempts()[0] + 1)
        self._metric(state)

    def _metric(self, state: str) -> None:
        telemetry = self.owner.telemetry
        if telemetry.meter is None:
            return
        try:
            processed_on = self.job.processed_on
        except CorruptJob:
            processed_on = None
        telemetry.record_job(self.owner.worker.queue, self.job.name, state, processed_on)

    def end(self) -> None:
        """End the attempt: Node's finishing timestamps, the span, the context."""
        from opentelemetry import context

        self.owner._attempts.pop(id(self.job), None)
        attributes: dict[str, AttributeValue] = {A.JOB_ATTEMPT_FINISHED_TIMESTAMP: now_ms()}
        try:
            processed_on = self.job.processed_on
        except CorruptJob:
            processed_on = None
        if processed_on is not None:
            attributes[A.JOB_PROCESSED_TIMESTAMP] = processed_on
        self.span.set_attributes(attributes)
        self.span.end()
        try:
            context.detach(self._token)
        except Exception:  # pragma: no cover - a handler that left a context attached
            log.debug("could not detach the consumer span's context of job %s", self.job.id)


__all__ = [
    "Attempt",
    "MetricNames",
    "OtelTelemetry",
    "TelemetryAttributes",
    "WorkerTelemetry",
    "decode_metadata",
    "encode_metadata",
    "stamp_add",
    "stamp_bulk",
]

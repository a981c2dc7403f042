"""The worker: fetch, run, finish - on BullMQ's scripts, faster and safer than the port.

Shape of the engine (see docs/worker.md#the-engine):

* ``concurrency`` long-lived *slot* tasks. A slot fetches a job
  (``moveToActive``), runs its handler, and finishes it with BullMQ's fused
  ``moveToFinished(..., fetchNext)`` which hands back the next job in the same
  script call - one script call per job, as in Node (the port makes two);
* all slots share one pipelining connection (:mod:`bullbridge.connection.resp`); one
  more connection blocks on the queue's marker for the whole worker
  (:mod:`bullbridge.worker.gate`);
* lock renewal, stalled-job recovery and a loop-block watch run beside them
  (:mod:`bullbridge.worker.maintenance`).

What it gets right where the port does not (docs/port-differences.md, one
section each): limits resume when their window opens; idle pickup and sub-second
timers are exact; a corrupt or vanished job fails with a reason instead of
cycling or "completing" with ``data={}``; unknown backoff types fail clearly;
``KeyboardInterrupt``/``SystemExit``/``CancelledError``/``GeneratorExit`` from
user code fail the job and the worker keeps running; sync handlers run in
threads so locks keep renewing; the cancellation signal is explicit; lost
connections are logged and pickup resumes at once after a reconnect.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from bullbridge import scripts
from bullbridge.compat import check_queue_versions
from bullbridge.connection import MAX_BLOCK_SECONDS, ConnectionSource, RedisConnector, connect
from bullbridge.connection.resp import RespClient, RespConnection, RespConnectionError, RespError
from bullbridge.emitter import Emitter
from bullbridge.errors import (
    CorruptJob,
    DeferredFailure,
    DelayJob,
    LockLost,
    NotJsonSafe,
    RateLimited,
    ScriptError,
    UnknownJobName,
    UnrecoverableError,
    UsageError,
    WaitingChildren,
)
from bullbridge.job import Job, fields_to_dict
from bullbridge.keys import QueueKeys
from bullbridge.worker.context import ActiveJob
from bullbridge.worker.events import WORKER_EVENTS, WorkerEvent
from bullbridge.worker.failures import (
    UnknownBackoff,
    backoff_delay,
    failure_reason,
    log_fields,
    short,
    stacktrace_list,
)
from bullbridge.worker.gate import FetchGate
from bullbridge.worker.handlers import Handler, HandlerFn, HandlerRegistry, RunIn
from bullbridge.worker.maintenance import LockRenewer, LoopWatch, RateLimitedLog, StalledChecker
from bullbridge.worker.pools import DaemonThreadPool, process_pool, stop_process_pool
from bullbridge.worker.settings import WorkerSettings

if TYPE_CHECKING:  # annotations only; the OpenTelemetry API is imported only when an OtelTelemetry is created
    from bullbridge.telemetry import OtelTelemetry, WorkerTelemetry

log = logging.getLogger("bullbridge.worker")
T = TypeVar("T")

# Raised by user code, these end the attempt like any exception (the port lets
# them kill the process or silently stop its run loop).
_USER_BASE_EXCEPTIONS = (KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError)
# Errors that mean "this job cannot succeed by retrying".
_PERMANENT = (UnrecoverableError, CorruptJob, UnknownJobName, UnknownBackoff, NotJsonSafe)

Next = tuple[dict[bytes, bytes], str, str]  # fields, job id, token


class _Recovered:
    """A finishing script failed after fetching a broken job, which we recovered."""

    __slots__ = ("next",)

    def __init__(self, next_job: Next) -> None:
        self.next = next_job


@dataclass(frozen=True, slots=True)
class _Running:
    """What a worker has only once :meth:`Worker.start` has run: its two
    connections, its fetch gate, and the loop (and thread) it runs on."""

    client: RespClient
    bclient: RespClient
    gate: FetchGate
    loop: asyncio.AbstractEventLoop
    loop_thread: int


class Worker(Emitter[WorkerEvent]):
    """Process jobs of one queue with handlers registered per job name.

    >>> worker = Worker("email", connection="redis://localhost:6379")
    >>> @worker.handler("welcome")
    ... async def welcome(job):
    ...     await job.update_progress(50)
    ...     return {"sent": True}
    >>> await worker.run()          # until close() / a signal via WorkerManager
    """

    EVENTS = WORKER_EVENTS

    def __init__(
        self,
        queue: str,
        handlers: Mapping[str, HandlerFn | Handler] | HandlerFn | None = None,
        *,
        connection: ConnectionSource | None = None,
        prefix: str = "bull",
        telemetry: OtelTelemetry | None = None,
        **settings: Any,
    ) -> None:
        """``handlers`` maps job names to handlers, or is one function for every
        name (Node's processor); ``settings`` are :class:`WorkerSettings` fields
        (``concurrency=5``, ``limiter=RateLimit(...)``...), validated here."""
        super().__init__()
        self.settings = WorkerSettings.from_kwargs(settings)
        self.queue = queue
        self.prefix = prefix
        self.keys = QueueKeys(queue, prefix)
        self.qs = scripts.QueueScripts(self.keys)
        self.registry = HandlerRegistry()
        self.registry.update(handlers)
        self._owns_connector = not isinstance(connection, RedisConnector)
        self._connector = connect(connection)
        self._connector.check_queue(prefix, queue)
        self.id = uuid.uuid4().hex
        self.errors = RateLimitedLog(log)
        self.locks = LockRenewer(self)
        self.stalled = StalledChecker(self)
        self._watch = LoopWatch(self.settings.loop_block_warning, lambda: list(self.locks.active))
        self._slots: list[asyncio.Task[None]] = []
        self._tokens = 0
        self._threads: DaemonThreadPool | None = None
        self._processes: concurrent.futures.ProcessPoolExecutor | None = None
        self._blocking_id: int | None = None
        self._closed = asyncio.Event()
        self._started = False
        self._close_task: asyncio.Future[bool] | None = None
        self._forced = False
        self._handing_back: set[asyncio.Future[None]] = set()
        self.handed_back = 0
        self.abandoned = 0
        self.closing = False
        self.closed = False
        self.completed = 0
        self.failed = 0
        self._running: _Running | None = None
        self._clients: list[RespClient] = []
        self.last_activity = time.time()
        # --- telemetry (bullbridge.telemetry): consumer spans and job metrics; None costs nothing.
        self.telemetry = telemetry
        self._telemetry: WorkerTelemetry | None = telemetry.for_worker(self) if telemetry is not None else None

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("running" if self._started else "not started")
        return f"<Worker {self.prefix}:{self.queue} {state} on Redis {self._connector.settings.describe()}>"

    # -- registration ----------------------------------------------------------------

    def handler(self, name: str, *, run_in: RunIn | None = None) -> Callable[[HandlerFn], HandlerFn]:
        """Decorator: handle jobs called ``name``."""

        def decorator(fn: HandlerFn) -> HandlerFn:
            self.registry.register(name, fn, run_in)
            return fn

        return decorator

    def fallback(self, fn: HandlerFn | None = None, *, run_in: RunIn | None = None) -> Any:
        """Decorator (``@worker.fallback`` or ``@worker.fallback(run_in=...)``):
        handle every job name that has no handler of its own."""

        def decorator(f: HandlerFn) -> HandlerFn:
            self.registry.register(None, f, run_in)
            return f

        return decorator(fn) if fn is not None else decorator

    # -- lifecycle --------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._started and not self.closed

    @property
    def connector(self) -> RedisConnector:
        """The connector this worker's connections come from (share it with a manager)."""
        return self._connector

    def _live(self) -> _Running:
        if self._running is None:
            raise UsageError(f"the worker of {self.queue!r} is not started: await worker.start() first")
        return self._running

    @property
    def client(self) -> RespClient:
        """The pipelining connection every script call of this worker goes through."""
        return self._live().client

    @property
    def bclient(self) -> RespClient:
        """The connection that blocks on the queue's marker."""
        return self._live().bclient

    @property
    def gate(self) -> FetchGate:
        return self._live().gate

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._live().loop

    @property
    def loop_thread(self) -> int:
        return self._live().loop_thread

    @property
    def connected(self) -> bool:
        """Whether the worker runs and its command connection is up."""
        return self._running is not None and self._running.client.connected

    @property
    def drained(self) -> bool:
        """Whether the worker runs and found its queue empty on its last fetch."""
        return self._running is not None and self._running.gate.drained

    @property
    def active_count(self) -> int:
        return len(self.locks.active)

    async def start(self) -> None:
        """Connect, check the server, and start the slots. Returns at once."""
        if self._started:
            return
        if not self.registry:
            raise UnknownJobName(
                f"worker for {self.queue!r} has no handlers: register one with "
                "@worker.handler(name) or @worker.fallback"
            )
        s = self.settings
        client = self._connector.fast(None, route_key=self.keys.base)
        client.add_on_connect(scripts.preload)
        bclient = self._connector.blocking(self.keys.client_name(s.wire_name), route_key=self.keys.base)
        bclient.add_on_connect(self._remember_blocking_id)
        self._clients = [bclient, client]
        self._connector.events.on_lost.append(self._on_connection_lost)
        self._connector.events.on_connected.append(self._on_connected)
        info = await self._connector.server_info(client)
        await asyncio.gather(client.connection(), bclient.connection())
        await check_queue_versions(client, self.keys)
        gate = FetchGate(
            drain_delay=s.drain_delay,
            max_block=MAX_BLOCK_SECONDS,
            min_block=info.minimum_block_timeout,
            fractional=info.fractional_block_timeouts,
            max_rate_limit_delay=s.max_rate_limit_delay_ms,
            wait_marker=self._wait_marker,
            unblock=self._unblock,
        )
        self._running = _Running(client, bclient, gate, asyncio.get_running_loop(), threading.get_ident())
        if self.registry.needs_thread_pool:
            self._threads = DaemonThreadPool(s.thread_pool_size or s.concurrency)
        if self.registry.needs_process_pool:
            self._processes = process_pool(s.process_pool_size)
        self._started = True
        if not s.skip_lock_renewal:
            self.locks.start()
        if not s.skip_stalled_check:
            self.stalled.start()
        self._watch.start()
        self._slots = [
            asyncio.create_task(self._slot(i), name=f"bullbridge-{self.queue}-slot-{i}") for i in range(s.concurrency)
        ]
        log.info(
            "worker %s on queue %s started (concurrency %d, Redis %s)",
            s.wire_name,
            self.queue,
            s.concurrency,
            info.version_text,
        )

    async def run(self) -> None:
        """Start and wait until the worker is closed."""
        await self.start()
        await self.wait_closed()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def stop_fetching(self) -> None:
        """Take no new job from now on (active jobs go on). Idempotent."""
        if self.closing:
            return
        self.closing = True
        self.emit("closing")
        log.info("worker %s on %s stops fetching (%d active)", self.settings.wire_name, self.queue, self.active_count)
        if self._started:
            self.gate.close()

    def force(self) -> None:
        """Cancel running handlers now; their jobs go back to wait at once."""
        self.stop_fetching()
        if self._forced:
            return
        self._forced = True
        for job in list(self.locks.active.values()):
            job.signal.cancel("worker is shutting down")
        for task in self._slots:
            if not task.done():
                task.cancel()

    async def close(self, timeout: float | None = None, *, force: bool = False) -> bool:
        """Stop fetching, let active jobs finish, and disconnect.

        With ``timeout`` (seconds), jobs still running then are cancelled and
        handed back to wait at once, for any worker of either language, without
        a stall counted against them. ``force`` does that immediately. Returns
        True when every active job finished on its own. Safe to call again (a
        later ``force=True`` call cuts a graceful close short)."""
        if self._close_task is None:
            self._close_task = asyncio.ensure_future(self._close(timeout))
        if force:
            self.force()
        return await asyncio.shield(self._close_task)

    async def _close(self, timeout: float | None) -> bool:
        self.stop_fetching()
        if self._started:
            pending = [t for t in self._slots if not t.done()]
            if pending:
                _, still = await asyncio.wait(pending, timeout=timeout)
                if still:
                    self.force()
                    await asyncio.wait(still, timeout=2.0)
            if self._handing_back:
                await asyncio.wait(list(self._handing_back), timeout=1.5)
            await asyncio.gather(self.locks.stop(), self.stalled.stop(), self._watch.stop(), self.gate.stop())
            if self._threads is not None:
                self._threads.shutdown(wait=False)
            if self._processes is not None:  # gone when close() returns: see stop_process_pool
                await stop_process_pool(self._processes, kill=self._forced)
            await self.wait_listeners(timeout=1.0)
        if self._on_connection_lost in self._connector.events.on_lost:
            self._connector.events.on_lost.remove(self._on_connection_lost)
            self._connector.events.on_connected.remove(self._on_connected)
        for client in self._clients:
            await client.close()
        if self._owns_connector:
            await self._connector.close()
        self.closed = True
        self._closed.set()
        clean = self.handed_back == 0 and self.abandoned == 0
        self.emit("closed")
        log.info(
            "worker %s on %s closed (%s)",
            self.settings.wire_name,
            self.queue,
            "clean" if clean else f"{self.handed_back} job(s) handed back, {self.abandoned} left to stall recovery",
        )
        return clean

    async def pause(self, wait_active: bool = True) -> None:
        """Stop fetching at once (this worker only); optionally wait for active jobs."""
        if not self._started or self.gate.paused:
            return
        self.gate.pause()
        if wait_active:
            while self.locks.active:
                await asyncio.sleep(0.01)
        self.emit("paused")

    def resume(self) -> None:
        if self._started and self.gate.paused:
            self.gate.resume()
            self.emit("resumed")

    def cancel_job(self, job_id: str, reason: str = "cancelled") -> bool:
        """Set the cancellation signal of an active job (cooperative)."""
        job = self.locks.active.get(job_id)
        if job is None:
            return False
        job.signal.cancel(reason)
        return True

    def cancel_all(self, reason: str = "cancelled") -> None:
        for job in list(self.locks.active.values()):
            job.signal.cancel(reason)

    # -- connection events --------------------------------------------------------------

    async def _remember_blocking_id(self, conn: RespConnection) -> None:
        self._blocking_id = await conn.execute("CLIENT", "ID")

    def _on_connection_lost(self, name: str, exc: Exception | None) -> None:
        if not self.closing:
            self.emit("connectionLost", name, exc)

    def _on_connected(self, name: str, reconnect: bool) -> None:
        if reconnect and self._started and not self.closing:
            self.emit("reconnected", name)
            if name == (self.client.name or "") and self.bclient.connected:
                # The command connection moved (failover, resharding): the blocking
                # one may still sit on the old node, waiting for markers that now
                # land elsewhere. Make it resolve again too.
                self.bclient.drop()
            self.gate.connection_restored()

    async def _wait_marker(self, timeout: float) -> Any:
        return await self.bclient.execute("BZPOPMIN", self.keys["marker"], timeout, timeout=timeout + 10.0)

    async def _unblock(self) -> None:
        if self._blocking_id is not None and self.client.connected:
            await self.client.execute("CLIENT", "UNBLOCK", self._blocking_id)

    # -- the slot loop ------------------------------------------------------------------

    def _token(self) -> str:
        self._tokens += 1
        return f"{self.id}:{self._tokens}"

    async def _slot(self, index: int) -> None:
        gate = self.gate
        next_job: Next | None = None
        error_delay = 0.05
        while True:
            if next_job is None:
                if not await gate.ready():
                    return
                token = self._token()
                keys, args = self.qs.move_to_active(
                    token, self.settings.lock_duration_ms, self.settings.limiter_opts, self.settings.wire_name
                )
                try:
                    raw = await scripts.run(self.client, "moveToActive", keys, args)
                    error_delay = 0.05
                except (RespConnectionError, RespError) as exc:
                    if self.closing:
                        return
                    self.errors.error("fetch", "fetching from %s failed: %s", self.queue, exc)
                    if isinstance(exc, RespError):
                        next_job = await self._recover_half_fetched(token, exc)
                        if next_job is not None:
                            continue
                    gate.on_error()
                    await asyncio.sleep(error_delay)
                    error_delay = min(error_delay * 2, 2.0)
                    continue
                next_job = self._next_from(raw, token)
                if next_job is None:
                    continue
            fields, job_id, token = next_job
            try:
                next_job = await self._process(fields, job_id, token)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug of ours: never let it kill the slot
                next_job = None
                log.exception(
                    "internal error processing job %s of %s (it will be recovered as stalled): %s",
                    job_id,
                    self.queue,
                    exc,
                )
                self.emit("error", exc)

    async def _recover_half_fetched(self, token: str, exc: RespError) -> Next | None:
        """A fetch script failed half way (Redis scripts are not rolled back): a job
        whose counter fields are corrupt is left active under our token. Find it
        (its lock holds our token) so it can be failed with a reason, instead of
        cycling through stall recovery forever."""
        try:
            ids = await self.client.execute("LRANGE", self.keys["active"], 0, 49)
            for raw_id in ids or []:
                job_id = raw_id.decode()
                if await self.client.execute("GET", self.keys.lock(job_id)) == token.encode():
                    flat = await self.client.execute("HGETALL", self.keys.job(job_id))
                    log.warning("job %s of %s broke BullMQ's fetch script (%s); failing it", job_id, self.queue, exc)
                    return fields_to_dict(flat or []), job_id, token
        except (RespConnectionError, RespError) as err:
            log.debug("could not look for a half-fetched job: %s", err)
        return None

    def _next_from(self, raw: Any, token: str) -> Next | None:
        fields, job_id, limit, delay_until = scripts.parse_next_job(raw)
        found = fields is not None and job_id is not None
        was_drained = self.gate.drained
        self.gate.on_fetch(found, limit, delay_until)
        if not found:
            if self.gate.drained and not was_drained:
                self.emit("drained")
            return None
        assert fields is not None and job_id is not None
        return fields_to_dict(fields), job_id, token

    # -- one job ------------------------------------------------------------------------

    async def _process(self, fields: dict[bytes, bytes], job_id: str, token: str) -> Next | None:
        job = ActiveJob(self, job_id, fields, token)
        self.last_activity = time.time()
        self.locks.track(job)
        attempt = self._telemetry.start(job) if self._telemetry is not None else None
        try:
            try:
                handler = self._prepare(job)
            except Exception as exc:  # corrupt, unknown name...: whatever stops it, it fails for good
                return await self._fail(job, exc, permanent=True)
            if job.repeat_job_key:
                await self._next_iteration(job)
            self.emit("active", job)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("job %s (%s) of %s active", job.id, job.name, self.queue)
            try:
                if attempt is None:
                    result = await self._invoke(handler, job)
                else:  # telemetry: the handler runs inside the consumer span
                    result = await attempt.run(self._invoke(handler, job))
            except asyncio.CancelledError as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    handing = asyncio.ensure_future(self._hand_back(job))
                    self._handing_back.add(handing)
                    handing.add_done_callback(self._handing_back.discard)
                    raise
                return await self._fail(job, exc)
            except (DelayJob, WaitingChildren):
                return None
            except RateLimited as exc:
                return await self._back_to_wait(job, exc.delay_ms)
            except (Exception, *_USER_BASE_EXCEPTIONS) as exc:
                return await self._fail(job, exc)
            if job.signal.reason == "lock lost":
                log.warning("job %s of %s finished after its lock was lost; result dropped", job.id, self.queue)
                return None
            try:
                value = self.settings.codec.encode(result)
            except NotJsonSafe as exc:
                return await self._fail(job, NotJsonSafe(f"return value is not JSON-safe: {exc}"), permanent=True)
            return await self._complete(job, result, value)
        finally:
            self.locks.untrack(job)
            if attempt is not None:
                attempt.end()

    async def _next_iteration(self, job: ActiveJob) -> None:
        """A job made by a job scheduler: add its next iteration first, as Node's
        worker does, with Node's next-run times (bullbridge.scheduler). On error
        the job still runs; only that next iteration is lost, and it is logged
        (Node instead leaves the job to come back through stall recovery)."""
        from bullbridge.scheduler.errors import SchedulerError
        from bullbridge.scheduler.iteration import schedule_next_iteration

        try:
            await schedule_next_iteration(self.client, self.keys, job)
        except (SchedulerError, RespError, RespConnectionError) as exc:
            self.errors.error(
                "scheduler",
                "next iteration of scheduler %s (job %s of %s) not added: %s",
                job.repeat_job_key,
                job.id,
                self.queue,
                exc,
            )
            self.emit("error", exc)

    def _prepare(self, job: ActiveJob) -> Handler:
        job.check()
        if job.deferred_failure:
            raise DeferredFailure(job.deferred_failure)
        limit = self.settings.max_started_attempts
        if limit and job.attempts_started > limit:
            raise DeferredFailure("job started more than allowable limit")
        handler = self.registry.resolve(job.name)
        if handler is None:
            raise UnknownJobName(
                f"no handler for job name {short(repr(job.name), 200)} on queue {self.queue!r} "
                f"(handlers: {', '.join(self.registry.names) or 'none'}); register one or a fallback"
            )
        return handler

    async def _invoke(self, handler: Handler, job: ActiveJob) -> Any:
        if handler.run_in == "loop":
            return await handler.fn(job)
        if handler.run_in == "thread":
            assert self._threads is not None
            ctx = contextvars.copy_context()
            return await asyncio.wrap_future(self._threads.submit(ctx.run, handler.fn, job))
        assert self._processes is not None
        return await self.loop.run_in_executor(self._processes, handler.fn, job.snapshot())

    async def run_in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        if self._threads is None:
            self._threads = DaemonThreadPool(self.settings.thread_pool_size or self.settings.concurrency)
        return await asyncio.wrap_future(self._threads.submit(fn, *args))

    async def run_in_process(self, fn: Callable[..., T], *args: Any) -> T:
        if self._processes is None:
            self._processes = process_pool(self.settings.process_pool_size)
        return await self.loop.run_in_executor(self._processes, fn, *args)

    def note_progress(self, job: Job, progress: Any) -> None:
        if not self.has_listeners("progress"):
            return
        if threading.get_ident() == self.loop_thread:
            self.emit("progress", job, progress)
        else:
            self.loop.call_soon_threadsafe(self.emit, "progress", job, progress)

    # -- finishing ---------------------------------------------------------------------

    def _keep(self, job: ActiveJob, target: str) -> dict[str, Any]:
        option = "removeOnComplete" if target == "completed" else "removeOnFail"
        opts = job.safe_opts()
        if option in opts:
            return scripts.keep_jobs(opts[option])
        worker_default = self.settings.remove_on_complete if target == "completed" else self.settings.remove_on_fail
        if worker_default is None:
            return {"count": -1}
        if hasattr(worker_default, "to_bullmq"):
            return worker_default.to_bullmq()
        return scripts.keep_jobs(worker_default)

    def _parent_flags(self, job: ActiveJob) -> tuple[bool, bool, bool, bool]:
        o = job.safe_opts()
        return (bool(o.get("fpof")), bool(o.get("cpof")), bool(o.get("idof")), bool(o.get("rdof")))

    async def _finish(
        self, job: ActiveJob, target: str, value: bytes | str, fields_to_update: dict[str, Any] | None = None
    ) -> Next | None:
        s = self.settings
        fetch_next = self.gate.can_fetch_next()
        attempts_made, attempts = job.safe_attempts()
        keys, args = self.qs.move_to_finished(
            job_id=job.id,
            token=job.token,
            target=target,
            value=value,
            keep=self._keep(job, target),
            attempts=attempts,
            attempts_made=attempts_made,
            lock_duration=s.lock_duration_ms,
            limiter=s.limiter_opts,
            fetch_next=fetch_next,
            max_metrics_size=s.metrics_max_data_points or "",
            parent_flags=self._parent_flags(job),
            worker_name=s.wire_name,
            fields_to_update=fields_to_update,
        )
        raw = await self._run_finishing("moveToFinished", keys, args, job)
        if raw is None:
            return None
        if isinstance(raw, _Recovered):
            return raw.next
        if type(raw) is int:
            if raw < 0:
                self._finish_error(job, raw, target)
            return None
        return self._next_from(raw, job.token)

    async def _run_finishing(self, name: str, keys: list[Any], args: list[Any], job: ActiveJob) -> Any:
        """Run a finishing script, retrying across a reconnect (a repeat after a
        lost reply answers "not active", which we take as done)."""
        retried = False
        delay = 0.1
        while True:
            try:
                result = await scripts.run(self.client, name, keys, args)
            except RespConnectionError as exc:
                if self.closing and retried:
                    log.warning(
                        "could not finish job %s of %s before closing: %s (it will be recovered as stalled)",
                        job.id,
                        self.queue,
                        exc,
                    )
                    return None
                self.errors.error("finish", "finishing job %s of %s: %s; retrying", job.id, self.queue, exc)
                retried = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            except RespError as exc:
                self.errors.error("finish-script", "finishing job %s of %s failed: %s", job.id, self.queue, exc)
                recovered = await self._recover_half_fetched(job.token, exc)
                return _Recovered(recovered) if recovered else None
            if retried and type(result) is int and result in (-1, -2, -3, -6):
                log.info("job %s of %s was already finished before the connection dropped", job.id, self.queue)
                return None
            return result

    def _finish_error(self, job: ActiveJob, code: int, target: str) -> None:
        try:
            scripts.check_code(code, "moveToFinished", job.id)
        except LockLost as exc:
            log.warning("job %s of %s: %s - another worker owns it now; result dropped", job.id, self.queue, exc)
            self.emit("lockLost", job)
        except ScriptError as exc:
            self.errors.error(f"finish{code}", "could not move job %s of %s to %s: %s", job.id, self.queue, target, exc)
            self.emit("error", exc)

    async def _complete(self, job: ActiveJob, result: Any, value: bytes) -> Next | None:
        next_job = await self._finish(job, "completed", value)
        self.completed += 1
        self.emit("completed", job, result)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("job %s (%s) of %s completed", job.id, job.name, self.queue)
        return next_job

    async def _fail(self, job: ActiveJob, exc: BaseException, *, permanent: bool = False) -> Next | None:
        """Fail an attempt: retry the job (with its backoff) or fail it for good. Whatever goes
        wrong on the way (an option nothing can read, a strategy that misbehaves, a bug of
        ours), the job still ends in ``failed`` with a reason: never left active to stall,
        never run again."""
        try:
            return await self._fail_attempt(job, exc, permanent=permanent)
        except Exception as err:
            return await self._fail_anyway(job, exc, err)

    async def _fail_anyway(self, job: ActiveJob, exc: BaseException, err: Exception) -> Next | None:
        reason = f"{failure_reason(exc)} (not retried: failing the attempt raised {failure_reason(err)})"
        try:  # err alone: its context is the user's exception, which may not even format
            detail = "".join(traceback.format_exception(err, chain=False)).rstrip()
            log.error("failing job %s of %s raised; failing it for good:\n%s", job.id, self.queue, detail)
        except Exception:  # a handler that cannot report (its own error chains to the user's) must not stop this
            pass
        try:
            fields: dict[str, Any] = {"failedReason": reason, **job.numeric_repairs()}
            next_job = await self._finish(job, "failed", reason, fields)
        except Exception as again:  # nothing more to do here: stall recovery fails it, with its reason
            log.exception("could not fail job %s of %s either: %s", job.id, self.queue, again)
            return None
        self.failed += 1
        self.emit("failed", job, exc, reason)
        log.warning(
            "job %s (%s) of %s failed for good: %s",
            job.id,
            short(job.name),
            self.queue,
            short(reason),
            extra=log_fields(self.queue, job, job.safe_attempts()[0] + 1),
        )
        return next_job

    def _retry_delay(self, job: ActiveJob, exc: BaseException, attempt: int) -> tuple[int | None, str | None]:
        """The delay before the next attempt (``None``: at once), or why there is none."""
        try:
            delay = backoff_delay(job.safe_opts().get("backoff"), attempt, exc, job, self.settings.backoff_strategies)
        except UnknownBackoff as err:
            return None, str(err)
        except Exception as err:  # a custom strategy that raised
            return None, f"backoff strategy raised {failure_reason(err)}"
        if delay == -1:  # Node: a strategy's -1 means "do not retry"; other negatives retry at once
            return None, "the backoff strategy returned -1"
        return delay, None

    async def _fail_attempt(self, job: ActiveJob, exc: BaseException, *, permanent: bool = False) -> Next | None:
        reason = failure_reason(exc)
        if isinstance(exc, CorruptJob):
            reason = f"corrupt job: {exc}"
        elif isinstance(exc, DeferredFailure):
            reason = str(exc)
        opts = job.safe_opts()
        try:
            previous = job.stacktrace
        except CorruptJob:
            previous = []
        stack = stacktrace_list(previous, exc, opts.get("stackTraceLimit"))
        fields: dict[str, Any] = {"failedReason": reason, "stacktrace": self.settings.codec.encode(stack).decode()}
        if isinstance(exc, CorruptJob):
            fields.update(job.numeric_repairs())
        permanent = permanent or isinstance(exc, _PERMANENT)
        attempts_made, attempts = job.safe_attempts()
        next_job: Next | None = None
        retry_delay: int | None = None
        if not permanent and attempts_made + 1 < attempts:
            retry_delay, not_retried = self._retry_delay(job, exc, attempts_made + 1)
            if not_retried is not None:
                reason = f"{reason} (not retried: {not_retried})"
                fields["failedReason"] = reason
                permanent = True
        if not permanent and attempts_made + 1 < attempts:
            if retry_delay:
                s = self.settings
                fetch_next = self.gate.can_fetch_next()
                keys, args = self.qs.move_to_delayed(
                    job_id=job.id,
                    token=job.token,
                    delay=retry_delay,
                    fields_to_update=fields,
                    fetch_next=fetch_next,
                    lock_duration=s.lock_duration_ms,
                    limiter=s.limiter_opts,
                    worker_name=s.wire_name,
                )
                raw = await self._run_finishing("moveToDelayed", keys, args, job)
                if isinstance(raw, _Recovered):
                    next_job = raw.next
                elif type(raw) is list:
                    next_job = self._next_from(raw, job.token)
                elif type(raw) is int and raw < 0:
                    self._finish_error(job, raw, "delayed")
            else:
                keys, args = self.qs.retry_job(
                    job_id=job.id, token=job.token, lifo=bool(opts.get("lifo")), fields_to_update=fields
                )
                raw = await self._run_finishing("retryJob", keys, args, job)
                if type(raw) is int and raw < 0:
                    self._finish_error(job, raw, "wait")
            self.emit("retrying", job, exc, retry_delay or 0)
            log.info(
                "job %s (%s) of %s failed attempt %d of %d (%s); retrying%s",
                job.id,
                short(job.name),
                self.queue,
                attempts_made + 1,
                attempts,
                short(reason),
                f" in {retry_delay} ms" if retry_delay and retry_delay > 0 else " at once",
                extra=log_fields(self.queue, job, attempts_made + 1),
            )
            return next_job
        next_job = await self._finish(job, "failed", reason, fields)
        self.failed += 1
        self.emit("failed", job, exc, reason)
        log.warning(
            "job %s (%s) of %s failed for good after attempt %d: %s",
            job.id,
            short(job.name),
            self.queue,
            attempts_made + 1,
            short(reason),
            extra=log_fields(self.queue, job, attempts_made + 1),
        )
        return next_job

    async def _back_to_wait(self, job: ActiveJob, delay_ms: int) -> Next | None:
        keys, args = self.qs.move_job_from_active_to_wait(job.id, job.token)
        raw = await self._run_finishing("moveJobFromActiveToWait", keys, args, job)
        if type(raw) is int and raw < 0:
            self._finish_error(job, raw, "wait")
        self.gate.on_fetch(False, delay_ms, 0)
        return None

    async def _hand_back(self, job: ActiveJob) -> None:
        """At a forced shutdown: put the job back in wait now, lock released,
        so another worker takes it at once (not after lock expiry + stall check)."""
        keys, args = self.qs.move_job_from_active_to_wait(job.id, job.token)
        try:
            result = await asyncio.wait_for(scripts.run(self.client, "moveJobFromActiveToWait", keys, args), 1.0)
            if type(result) is int and result < 0:
                self.abandoned += 1
                log.warning("could not hand back job %s of %s (code %d)", job.id, self.queue, result)
            else:
                self.handed_back += 1
                log.info("handed job %s of %s back to wait", job.id, self.queue)
                self.emit("handedBack", job)
        except (TimeoutError, RespConnectionError, RespError) as exc:
            self.abandoned += 1
            log.warning(
                "could not hand back job %s of %s: %s; it will be recovered as stalled",
                job.id,
                self.queue,
                exc or type(exc).__name__,
            )

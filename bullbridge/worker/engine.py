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

Outcomes are reported as Redis recorded them (docs/worker.md#outcomes):
``completed``, ``failed`` and ``retrying`` fire, and count, only once the
finishing script's reply says the job moved; a lock found lost is ``lockLost``
and nothing else; a finish Redis did not record is ``finishFailed``, and makes
``close()`` report an unclean shutdown.
"""

from __future__ import annotations

import asyncio
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
from bullbridge.connection.resp import RespClient, RespConnection, RespConnectionError, RespError, is_redirect
from bullbridge.emitter import Emitter
from bullbridge.errors import (
    CorruptJob,
    DeferredFailure,
    DelayJob,
    FinishNotRecorded,
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
from bullbridge.worker.running import CURRENT_JOB, HandlerRunner
from bullbridge.worker.settings import WorkerSettings

if TYPE_CHECKING:  # annotations only; the OpenTelemetry API is imported only when an OtelTelemetry is created
    from bullbridge.telemetry import Attempt, OtelTelemetry, WorkerTelemetry

log = logging.getLogger("bullbridge.worker")
T = TypeVar("T")

# Raised by user code, these end the attempt like any exception (the port lets
# them kill the process or silently stop its run loop).
_USER_BASE_EXCEPTIONS = (KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError)
# Errors that mean "this job cannot succeed by retrying".
_PERMANENT = (UnrecoverableError, CorruptJob, UnknownJobName, UnknownBackoff, NotJsonSafe)

Next = tuple[dict[bytes, bytes], str, str]  # fields, job id, token

#: Seconds one finishing write may wait for Redis once the worker is closing.
CLOSING_WRITE_TIMEOUT = 1.0
#: Seconds a forced close waits for cancelled handlers to end and hand their jobs back.
FORCE_GRACE = 2.0
#: ``ActiveJob.over`` once the worker gave the job up at close: its outcome is not the worker's to write.
_HANDED_BACK = "handed back"
_LEFT_BEHIND = "the worker closed without it"
_GIVEN_UP = (_HANDED_BACK, _LEFT_BEHIND)
_NO_PARENT_FLAGS = (False, False, False, False)
#: Where a job is when its outcome was not recorded (_where), and what that means.
_RECORDED, _OURS, _ASTRAY, _UNKNOWN = "recorded", "ours", "astray", "unknown"
_AFTERMATH = {
    _OURS: "it stays active under its expiring lock until BullMQ's stall recovery moves it back to wait",
    _ASTRAY: "its lock is gone but Redis holds no outcome for it: the script stopped part way (Redis does not "
    "roll a script back) or another worker took the job; look at the job's state",
    _UNKNOWN: "if Redis did not record it either, BullMQ's stall recovery will run it again",
}
#: What each finishing target is called in logs and ``FinishNotRecorded.outcome``.
_OUTCOMES = {
    "completed": "completed",
    "failed": "failed",
    "delayed": "delayed for a retry",
    "retried": "back in wait for a retry",
    "wait": "back in wait (rate limited)",
    "requeued": "back in wait (its process pool was replaced)",
}


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
        self.runner = HandlerRunner(self.settings, queue)
        self._slots: list[asyncio.Task[None]] = []
        self._current: dict[asyncio.Task[Any], ActiveJob] = {}  # slot -> the job it runs
        self._tokens = 0
        self._blocking_id: int | None = None
        self._closed = asyncio.Event()
        self._started = False
        self._close_task: asyncio.Future[bool] | None = None
        self._forced = False
        self._handing_back: set[asyncio.Future[None]] = set()
        self.closing = False
        self.closed = False
        # --- outcomes, each counted once Redis answered (docs/worker.md#outcomes)
        self.completed = 0  # recorded as completed
        self.failed = 0  # recorded as failed (the final attempt)
        self.retried = 0  # recorded as delayed or waiting for another attempt
        self.finish_failed = 0  # an outcome Redis did not record (finishFailed)
        self.lost_locks = 0  # attempts whose lock was lost (lockLost)
        self.handed_back = 0  # put back in wait with no attempt counted (handedBack)
        self.abandoned = 0  # left to BullMQ's stall recovery at close
        self._unclean = 0  # what makes close() return False: see _close
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

    def handler(
        self, name: str, *, run_in: RunIn | None = None, timeout: Any = None
    ) -> Callable[[HandlerFn], HandlerFn]:
        """Decorator: handle jobs called ``name``; ``timeout`` in seconds (or a
        ``timedelta``) overrides the worker's ``handler_timeout``."""

        def decorator(fn: HandlerFn) -> HandlerFn:
            self.registry.register(name, fn, run_in, timeout)
            return fn

        return decorator

    def fallback(self, fn: HandlerFn | None = None, *, run_in: RunIn | None = None, timeout: Any = None) -> Any:
        """Decorator (``@worker.fallback`` or ``@worker.fallback(run_in=..., timeout=...)``):
        handle every job name that has no handler of its own."""

        def decorator(f: HandlerFn) -> HandlerFn:
            self.registry.register(None, f, run_in, timeout)
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
        self.runner.settings = s  # a manager may have replaced the settings since __init__
        self.runner.prepare(self.registry)
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
        """Cancel running handlers now; their jobs go back to wait at once. A slot
        writing an outcome is left to finish it (bounded: CLOSING_WRITE_TIMEOUT)."""
        self.stop_fetching()
        if self._forced:
            return
        self._forced = True
        for job in list(self.locks.active.values()):
            job.signal.cancel("worker is shutting down")
        for task in self._slots:
            held = self._current.get(task)
            if not task.done() and not (held is not None and held.finishing):
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
                    _, stuck = await asyncio.wait(still, timeout=FORCE_GRACE)
                    if stuck:
                        await self._leave_behind(stuck)
            if self._handing_back:
                await asyncio.wait(list(self._handing_back), timeout=1.5)
            await asyncio.gather(self.locks.stop(), self.stalled.stop(), self._watch.stop(), self.gate.stop())
            await self.runner.stop(forced=self._forced)  # the process pool is gone when this returns
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
        clean = self._unclean == 0
        self.emit("closed")
        log.info("worker %s on %s closed (%s)", self.settings.wire_name, self.queue, self.shutdown_summary())
        return clean

    def shutdown_summary(self) -> str:
        """``clean``, or what made the worker's run unclean (close() returned False)."""
        if self._unclean == 0:
            return "clean"
        parts = [
            f"{self.handed_back} job(s) handed back",
            f"{self.abandoned} left to stall recovery",
            f"{self.finish_failed} outcome(s) not recorded",
            f"{self.lost_locks} lock(s) lost",
        ]
        return "not clean: " + ", ".join(p for p in parts if not p.startswith("0 "))

    async def _leave_behind(self, stuck: set[asyncio.Task[None]]) -> None:
        """Slots still running after a forced close's grace: a handler that
        ignores its cancellation (it catches CancelledError), or a finish still
        waiting on Redis. The worker does not wait for them: a handler's job is
        handed back now (its late outcome will be dropped); an unfinished write
        is left to BullMQ's stall recovery."""
        for task in stuck:
            job = self._current.get(task)
            if job is None:
                continue
            if job.finishing:
                self.abandoned += 1
                self._unclean += 1
                log.warning(
                    "job %s of %s: its outcome was still being written at close; if Redis did not record it, "
                    "BullMQ's stall recovery will run it again",
                    job.id,
                    self.queue,
                )
                continue
            log.warning(
                "job %s (%s) of %s: its handler ignored its cancellation for %.0f s (it catches "
                "CancelledError); not waiting for it: the job goes back to wait and its outcome will be dropped",
                job.id,
                job.name,
                self.queue,
                FORCE_GRACE,
            )
            job.over = _LEFT_BEHIND
            await self._hand_back(job)

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
            here, there = self.client.current, self.bclient.current
            elsewhere = (here.host, here.port) != (there.host, there.port)
            if name == (self.client.name or "") and self.bclient.connected and elsewhere:
                # The command connection moved (failover, resharding): the blocking
                # one may still sit on the old node, waiting for markers that now
                # land elsewhere. Make it resolve again too.
                self.bclient.drop()
            self.gate.connection_restored()

    async def _wait_marker(self, timeout: float) -> Any:
        return await self.bclient.execute(
            "BZPOPMIN", self.keys["marker"], timeout, timeout=timeout + self.bclient.block_margin
        )

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
                    if isinstance(exc, RespError) and not is_redirect(exc):  # a refused script did not run
                        next_job = await self._find_ours(token, f"was left active for us by a fetch that broke ({exc})")
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
            if self._forced:  # fetched by a finish sent before the forced close: not ours to start now
                next_job = None
                await self._hand_back(ActiveJob(self, job_id, fields, token))
                continue
            try:
                next_job = await self._process(fields, job_id, token)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug of ours: never let it kill the slot
                next_job = None
                self._unclean += 1  # the job's outcome is not recorded: it will stall
                log.exception(
                    "internal error processing job %s of %s (it will be recovered as stalled): %s",
                    job_id,
                    self.queue,
                    exc,
                )
                self.emit("error", exc)

    async def _find_ours(self, token: str, found: str, exclude: str | None = None) -> Next | None:
        """The job a script fetched for us when we did not get its reply: a fetch
        that failed half way (Redis scripts are not rolled back) leaves a job whose
        counter fields are corrupt active under our token - found, it is failed
        with a reason instead of cycling through stall recovery forever; a finish
        whose reply was lost may have fetched a healthy next job - found, it runs.
        ``found`` is logged; ``exclude``: the job being finished, whose lock still
        holds the token when its own write failed."""
        try:
            ids = await self.client.execute("LRANGE", self.keys["active"], 0, 49)
            for raw_id in ids or []:
                job_id = raw_id.decode()
                if job_id == exclude:
                    continue
                if await self.client.execute("GET", self.keys.lock(job_id)) == token.encode():
                    flat = await self.client.execute("HGETALL", self.keys.job(job_id))
                    log.warning("job %s of %s %s; taking it over", job_id, self.queue, found)
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
        self._watch.note(job_id)
        task = asyncio.current_task()
        if task is not None:
            self._current[task] = job
        attempt = self._telemetry.start(job) if self._telemetry is not None else None
        CURRENT_JOB.set(job)
        try:
            return await self._attempt(job, attempt)
        finally:
            CURRENT_JOB.set(None)  # not reset(token): a task left at exit is closed outside its context
            self.locks.untrack(job)
            if task is not None:
                self._current.pop(task, None)
            if attempt is not None:
                attempt.end()

    async def _attempt(self, job: ActiveJob, attempt: Attempt | None) -> Next | None:
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
                result = await self.runner.invoke(handler, job)
            else:  # telemetry: the handler runs inside the consumer span
                result = await attempt.run(self.runner.invoke(handler, job))
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # a forced shutdown
                if not job.lock_lost and job.over not in _GIVEN_UP:
                    handing = asyncio.ensure_future(self._hand_back(job))
                    self._handing_back.add(handing)
                    handing.add_done_callback(self._handing_back.discard)
                raise
            return await self._ended_by(job, exc)
        except (DelayJob, WaitingChildren):
            return None
        except RateLimited as exc:
            return await self._back_to_wait(job, exc.delay_ms)
        except (Exception, *_USER_BASE_EXCEPTIONS) as exc:
            return await self._ended_by(job, exc)
        if not self._still_ours(job):
            return None
        return await self._complete(job, result)

    def _still_ours(self, job: ActiveJob) -> bool:
        """Whether this attempt's outcome is still this worker's to write: not
        when its lock was lost (reported once, as ``lockLost``), nor when the
        worker gave up on the handler at close (handed back, or left behind)."""
        if job.lock_lost or job.over in _GIVEN_UP:
            log.info(
                "job %s (%s) of %s: its handler ended after %s; its outcome is dropped",
                job.id,
                job.name,
                self.queue,
                "the lock was lost" if job.lock_lost else "the worker gave the job up",
            )
            return False
        return True

    async def _ended_by(self, job: ActiveJob, exc: BaseException) -> Next | None:
        """The handler raised: fail the attempt - or, when its process pool was
        replaced under it (another job's timeout), put it back in wait."""
        if not self._still_ours(job):
            return None
        if job.requeue:
            return await self._requeue(job)
        return await self._fail(job, exc)

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

    async def run_in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.runner.run_in_thread(fn, *args)

    async def run_in_process(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.runner.run_in_process(fn, *args)

    def note_progress(self, job: Job, progress: Any) -> None:
        if not self.has_listeners("progress"):
            return
        if threading.get_ident() == self.loop_thread:
            self.emit("progress", job, progress)
        else:
            self.loop.call_soon_threadsafe(self.emit, "progress", job, progress)

    # -- outcomes that were not recorded --------------------------------------------------

    def lock_lost(self, job: ActiveJob, why: str) -> None:
        """The job's lock is not ours any more: report it once per attempt
        (``lockLost``); nothing else is reported or written for this attempt."""
        if job.lock_lost or job.over == _HANDED_BACK:
            return
        job.lock_lost = True
        job.signal.cancel("lock lost")
        self.lost_locks += 1
        self._unclean += 1
        log.warning(
            "job %s (%s) of %s lost its lock (%s): this attempt's outcome is dropped; the worker that took "
            "the job, or BullMQ's stall recovery, runs it again",
            job.id,
            job.name,
            self.queue,
            why,
        )
        self.emit("lockLost", job)

    def _not_recorded(self, job: ActiveJob, target: str, cause: BaseException, where: str = _UNKNOWN) -> None:
        """``finishFailed``: Redis did not record the outcome; ``where`` the job is (see _where)."""
        outcome = _OUTCOMES[target]
        exc = FinishNotRecorded(
            f"job {job.id} of {self.queue} could not be recorded as {outcome}: "
            f"{str(cause).rstrip('.') or type(cause).__name__}",
            outcome,
        )
        exc.__cause__ = cause
        self.finish_failed += 1
        self._unclean += 1
        log.error("%s; %s", exc, _AFTERMATH[where])
        self.emit("finishFailed", job, exc)

    def _refused(self, job: ActiveJob, code: int, script: str, target: str) -> None:
        """A finishing script answered with one of BullMQ's error codes."""
        try:
            scripts.check_code(code, script, job.id)
        except LockLost as exc:
            self.lock_lost(job, str(exc))
        except ScriptError as exc:  # -4/-9: pending or failed children refuse it before anything moves
            self._not_recorded(job, target, exc, _OURS if code in (-4, -9) else _ASTRAY)

    # -- finishing ---------------------------------------------------------------------

    def _keep(self, job: ActiveJob, target: str, opts: dict[str, Any] | None = None) -> dict[str, Any]:
        option = "removeOnComplete" if target == "completed" else "removeOnFail"
        if opts is None:
            opts = job.safe_opts()
        if option in opts:
            return scripts.keep_jobs(opts[option])
        worker_default = self.settings.remove_on_complete if target == "completed" else self.settings.remove_on_fail
        if worker_default is None:
            return {"count": -1}
        if hasattr(worker_default, "to_bullmq"):
            return worker_default.to_bullmq()
        return scripts.keep_jobs(worker_default)

    def _parent_flags(self, job: ActiveJob, opts: dict[str, Any] | None = None) -> tuple[bool, bool, bool, bool]:
        o = job.safe_opts() if opts is None else opts
        if not o:
            return _NO_PARENT_FLAGS
        return (bool(o.get("fpof")), bool(o.get("cpof")), bool(o.get("idof")), bool(o.get("rdof")))

    async def _finish(
        self, job: ActiveJob, target: str, value: bytes | str, fields_to_update: dict[str, Any] | None = None
    ) -> tuple[bool, Next | None]:
        s = self.settings
        attempts_made, attempts = job.safe_attempts()
        opts = job.safe_opts()
        keys, args = self.qs.move_to_finished(
            job_id=job.id,
            token=job.token,
            target=target,
            value=value,
            keep=self._keep(job, target, opts),
            attempts=attempts,
            attempts_made=attempts_made,
            lock_duration=s.lock_duration_ms,
            limiter=s.limiter_opts,
            fetch_next=self.gate.can_fetch_next(),
            max_metrics_size=s.metrics_max_data_points or "",
            parent_flags=self._parent_flags(job, opts),
            worker_name=s.wire_name,
            fields_to_update=fields_to_update,
        )
        return await self._settle(job, "moveToFinished", keys, args, target)

    async def _settle(
        self, job: ActiveJob, script: str, keys: list[Any], args: list[Any], target: str
    ) -> tuple[bool, Next | None]:
        """Run the script that ends the attempt and report what Redis recorded:
        ``(True, next job)`` once it did; otherwise ``(False, None)`` after
        reporting ``lockLost`` or ``finishFailed`` (the caller emits nothing)."""
        job.finishing = True  # a forced close does not cancel this slot now (see force)
        try:
            return await self._written(job, script, keys, args, target)
        except asyncio.CancelledError as exc:  # the loop is going away: nothing can tell what Redis did
            self._not_recorded(job, target, exc)
            raise
        finally:
            job.finishing = False

    async def _written(
        self, job: ActiveJob, script: str, keys: list[Any], args: list[Any], target: str
    ) -> tuple[bool, Next | None]:
        try:
            raw, retried = await self._run_finishing(script, keys, args, job)
        except RespError as exc:  # refused, or failed part way: Redis does not roll a script back
            return await self._after_script_error(job, target, exc)
        except RespConnectionError as exc:
            self._not_recorded(job, target, exc)
            return False, None
        if type(raw) is int and raw < 0:
            if retried and await self._where(job, target) == _RECORDED:  # the first call ran; its reply was lost
                log.info("job %s of %s: recorded as %s before the connection dropped", job.id, self.queue, target)
                return True, await self._find_ours(
                    job.token, "was fetched by the call whose reply was lost; running it", exclude=job.id
                )
            self._refused(job, raw, script, target)
            return False, None
        return True, (self._next_from(raw, job.token) if type(raw) is list else None)

    async def _run_finishing(self, script: str, keys: list[Any], args: list[Any], job: ActiveJob) -> tuple[Any, bool]:
        """The script's reply, and whether it took more than one call: a finishing
        write is retried across a reconnect until the worker closes (then it
        waits CLOSING_WRITE_TIMEOUT a call and gives up after a second failure)."""
        retried = False
        delay = 0.1
        while True:
            try:
                if self.closing:
                    call = scripts.run(self.client, script, keys, args)
                    return await asyncio.wait_for(call, CLOSING_WRITE_TIMEOUT), retried
                return await scripts.run(self.client, script, keys, args), retried
            except (RespConnectionError, TimeoutError, RespError) as exc:
                if isinstance(exc, RespError) and not is_redirect(exc):
                    raise  # refused for good, or failed part way: the caller finds out what was written
                if self.closing and retried:
                    raise RespConnectionError(
                        f"Redis did not take the write before the worker closed ({exc or 'no reply'})"
                    ) from exc
                self.errors.error("finish", "finishing job %s of %s: %s; retrying", job.id, self.queue, exc)
                retried = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _after_script_error(self, job: ActiveJob, target: str, exc: RespError) -> tuple[bool, Next | None]:
        """A finishing script answered with an error. When it failed while
        fetching the next job (a corrupt hash), the finish itself was recorded
        and that job is ours to fail; when it was refused (OOM), nothing was."""
        self.errors.error("finish-script", "finishing job %s of %s failed: %s", job.id, self.queue, exc)
        next_job = await self._find_ours(
            job.token, f"was left active for us by a finish whose fetch broke ({exc})", exclude=job.id
        )
        where = _RECORDED if next_job is not None else await self._where(job, target)
        if where == _RECORDED:
            return True, next_job
        self._not_recorded(job, target, exc, where)
        return False, None

    async def _where(self, job: ActiveJob, target: str) -> str:
        """Where the job is, when the script's own reply cannot say (it was lost,
        or it is an error): ``recorded`` when the lock is not ours any more,
        nobody started or stall-recovered the job since, and its attempt counter
        moved as the script moves it (back to wait: it left active); ``ours``
        when its lock still holds our token (nothing was written); ``astray``
        otherwise; ``unknown`` when Redis cannot be asked."""
        client, key = self.client, self.keys.job(job.id)
        try:
            lock, counters, exists = await asyncio.gather(
                client.execute("GET", self.keys.lock(job.id)),
                client.execute("HMGET", key, "atm", "ats", "stc"),
                client.execute("EXISTS", key),
            )
            if lock == job.token.encode():
                return _OURS
            if not exists:  # removeOnComplete/removeOnFail deleted it with the move
                return _RECORDED if target in ("completed", "failed") else _ASTRAY
            atm, ats, stc = counters
            before = job.fields
            if ats != before.get(b"ats") or stc != before.get(b"stc"):
                return _ASTRAY
            if target in ("wait", "requeued"):
                active = await scripts.run(client, "isJobInList", [self.keys["active"]], [job.id])
                moved = atm == before.get(b"atm") and not active
            else:
                moved = _counter(atm) == _counter(before.get(b"atm")) + 1
            return _RECORDED if moved else _ASTRAY
        except (RespConnectionError, RespError, ValueError):
            return _UNKNOWN

    async def _complete(self, job: ActiveJob, result: Any) -> Next | None:
        try:
            value = self.settings.codec.encode(result)
        except Exception as exc:  # NotJsonSafe, or whatever a codec of the user's raised
            return await self._unstorable(job, exc)
        recorded, next_job = await self._finish(job, "completed", value)
        if recorded:
            self.completed += 1
            self.emit("completed", job, result)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("job %s (%s) of %s completed", job.id, job.name, self.queue)
        return next_job

    async def _unstorable(self, job: ActiveJob, exc: Exception) -> Next | None:
        """The handler did its work but returned what the codec refuses: the job
        fails without a retry (a retry would redo the work and fail the same way)."""
        if isinstance(exc, NotJsonSafe):
            what = str(exc).removesuffix(f" at {exc.path}")
            error = NotJsonSafe(f"return value is not JSON-safe: {what}", exc.path)
        else:
            error = NotJsonSafe(f"return value could not be encoded: {failure_reason(exc)}")
        log.warning(
            "job %s (%s) of %s: its handler finished but returned a value that cannot be stored (%s); the job "
            "fails without a retry, so the work is not done twice: return JSON-safe data",
            job.id,
            job.name,
            self.queue,
            error,
        )
        return await self._fail(job, error, permanent=True)

    def _failure(self, job: ActiveJob, exc: BaseException) -> tuple[str, dict[str, Any]]:
        """``failedReason`` and the fields the failing script writes."""
        reason = failure_reason(exc)
        if isinstance(exc, CorruptJob):
            reason = f"corrupt job: {exc}"
        elif isinstance(exc, DeferredFailure):
            reason = str(exc)
        try:
            previous = job.stacktrace
        except CorruptJob:
            previous = []
        stack = stacktrace_list(previous, exc, job.safe_opts().get("stackTraceLimit"))
        fields: dict[str, Any] = {"failedReason": reason, "stacktrace": self.settings.codec.encode(stack).decode()}
        if isinstance(exc, CorruptJob):
            fields.update(job.numeric_repairs())
        return reason, fields

    def _retry_delay(self, job: ActiveJob, exc: BaseException, attempt: int) -> tuple[int, str | None]:
        """Node's ``shouldRetryJob``: the backoff before attempt ``attempt + 1`` (0: at
        once), or why there is none. A strategy's -1 means "do not retry"; other
        negatives retry at once, as in Node."""
        try:
            delay = backoff_delay(job.safe_opts().get("backoff"), attempt, exc, job, self.settings.backoff_strategies)
        except UnknownBackoff as err:
            return 0, str(err)
        except Exception as err:  # a custom strategy that raised
            return 0, f"backoff strategy raised {failure_reason(err)}"
        if delay == -1:
            return 0, "the backoff strategy returned -1"
        return max(delay or 0, 0), None

    async def _fail(self, job: ActiveJob, exc: BaseException, *, permanent: bool = False) -> Next | None:
        """Fail an attempt: retry the job (with its backoff) or fail it for good. Whatever goes
        wrong on the way (an option nothing can read, a strategy that misbehaves, a bug of
        ours), the job still ends in ``failed`` with a reason: never left active to stall,
        never run again."""
        try:
            return await self._fail_attempt(job, exc, permanent=permanent)
        except Exception as err:
            return await self._fail_anyway(job, exc, err)

    async def _fail_attempt(self, job: ActiveJob, exc: BaseException, *, permanent: bool = False) -> Next | None:
        reason, fields = self._failure(job, exc)
        attempts_made, attempts = job.safe_attempts()
        if not (permanent or isinstance(exc, _PERMANENT)) and attempts_made + 1 < attempts:
            delay, not_retried = self._retry_delay(job, exc, attempts_made + 1)
            if not_retried is None:
                return await self._retry(job, exc, fields, delay)
            fields["failedReason"] = f"{reason} (not retried: {not_retried})"
        return await self._fail_for_good(job, exc, fields["failedReason"], fields)

    async def _fail_anyway(self, job: ActiveJob, exc: BaseException, err: Exception) -> Next | None:
        """Failing the attempt raised: fail the job for good, with both reasons."""
        reason = f"{failure_reason(exc)} (not retried: failing the attempt raised {failure_reason(err)})"
        try:  # err alone: its context is the user's exception, which may not even format
            detail = "".join(traceback.format_exception(err, chain=False)).rstrip()
            log.error("failing job %s of %s raised; failing it for good:\n%s", job.id, self.queue, detail)
        except Exception:  # a handler that cannot report (its own error chains to the user's) must not stop this
            pass
        try:
            return await self._fail_for_good(job, exc, reason, {"failedReason": reason, **job.numeric_repairs()})
        except Exception as again:  # nothing more to do here: stall recovery fails it, with its reason
            log.exception("could not fail job %s of %s either: %s", job.id, self.queue, again)
            return None

    async def _fail_for_good(
        self, job: ActiveJob, exc: BaseException, reason: str, fields: dict[str, Any]
    ) -> Next | None:
        recorded, next_job = await self._finish(job, "failed", reason, fields)
        if recorded:
            self.failed += 1
            self.emit("failed", job, exc, reason)
            log.warning(
                "job %s (%s) of %s failed for good after attempt %d: %s",
                job.id,
                short(job.name),
                self.queue,
                job.safe_attempts()[0] + 1,
                short(reason),
                extra=log_fields(self.queue, job, job.safe_attempts()[0] + 1),
            )
        return next_job

    async def _retry(self, job: ActiveJob, exc: BaseException, fields: dict[str, Any], delay: int) -> Next | None:
        """Another attempt: delayed by the backoff, or back in wait at once."""
        attempts_made, attempts = job.safe_attempts()
        if delay:
            s = self.settings
            keys, args = self.qs.move_to_delayed(
                job_id=job.id,
                token=job.token,
                delay=delay,
                fields_to_update=fields,
                fetch_next=self.gate.can_fetch_next(),
                lock_duration=s.lock_duration_ms,
                limiter=s.limiter_opts,
                worker_name=s.wire_name,
            )
            recorded, next_job = await self._settle(job, "moveToDelayed", keys, args, "delayed")
        else:
            lifo = bool(job.safe_opts().get("lifo"))
            keys, args = self.qs.retry_job(job_id=job.id, token=job.token, lifo=lifo, fields_to_update=fields)
            recorded, next_job = await self._settle(job, "retryJob", keys, args, "retried")
        if recorded:
            self.retried += 1
            self.emit("retrying", job, exc, delay)
            log.info(
                "job %s (%s) of %s failed attempt %d of %d (%s); retrying%s",
                job.id,
                short(job.name),
                self.queue,
                attempts_made + 1,
                attempts,
                short(fields["failedReason"]),
                f" in {delay} ms" if delay else " at once",
                extra=log_fields(self.queue, job, attempts_made + 1),
            )
        return next_job

    async def _back_to_wait(self, job: ActiveJob, delay_ms: int) -> Next | None:
        """``job.rate_limit``: the job back to wait, and no fetch until the window opens."""
        keys, args = self.qs.move_job_from_active_to_wait(job.id, job.token)
        await self._settle(job, "moveJobFromActiveToWait", keys, args, "wait")
        self.gate.on_fetch(False, delay_ms, 0)
        return None

    async def _requeue(self, job: ActiveJob) -> Next | None:
        """Its process pool was replaced under it (another job's timeout): back to
        wait with no attempt counted, as at a forced shutdown."""
        keys, args = self.qs.move_job_from_active_to_wait(job.id, job.token)
        recorded, _ = await self._settle(job, "moveJobFromActiveToWait", keys, args, "requeued")
        if recorded:
            self.handed_back += 1
            log.info("job %s of %s back in wait: its process pool was replaced", job.id, self.queue)
            self.emit("handedBack", job)
        return None

    async def _hand_back(self, job: ActiveJob) -> None:
        """At a forced shutdown: put the job back in wait now, lock released,
        so another worker takes it at once (not after lock expiry + stall check)."""
        if job.lock_lost:
            return
        keys, args = self.qs.move_job_from_active_to_wait(job.id, job.token)
        self._unclean += 1
        try:
            result = await asyncio.wait_for(scripts.run(self.client, "moveJobFromActiveToWait", keys, args), 1.0)
        except (TimeoutError, RespConnectionError, RespError) as exc:
            self.abandoned += 1
            log.warning(
                "could not hand back job %s of %s: %s; it will be recovered as stalled",
                job.id,
                self.queue,
                exc or type(exc).__name__,
            )
            return
        if type(result) is int and result in (-2, -6):
            self._unclean -= 1  # counted by lock_lost instead
            self._refused(job, result, "moveJobFromActiveToWait", "wait")
        elif type(result) is int and result < 0:
            self.abandoned += 1
            log.warning("could not hand back job %s of %s (code %d)", job.id, self.queue, result)
        else:
            job.over = _HANDED_BACK
            self.handed_back += 1
            log.info("handed job %s of %s back to wait", job.id, self.queue)
            self.emit("handedBack", job)


def _counter(raw: bytes | None) -> int:
    """A job hash counter (``atm``) as an int; absent is 0."""
    return int(raw) if raw else 0

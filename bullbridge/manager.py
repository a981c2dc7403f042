"""The worker manager: several workers (and startup tasks such as schedule sync)
in one process, started together and shut down cleanly.

>>> manager = WorkerManager(connection="redis://localhost:6379")
>>> email = manager.worker("email", {"welcome": send_welcome}, concurrency=5)
>>> exit_code = await manager.run()   # until SIGTERM/SIGINT (see bullbridge.shutdown)

Inside an existing asyncio app (FastAPI lifespan, aiohttp on_startup) use
``async with manager:`` with ``handle_signals=False`` and let the app's own
shutdown close it. ``run()`` returns the process exit code: 0 when every job
the workers took ended with its outcome recorded in Redis, 1 when one did not:
jobs handed back at the drain deadline, left to stall recovery because Redis was
unreachable, an outcome Redis did not record (``finishFailed``), a lost lock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from bullbridge.aio import cancel_and_wait
from bullbridge.connection import ConnectionSource, RedisConnector, connect
from bullbridge.errors import ConfigurationError
from bullbridge.health import HealthReport, HealthServer, Heartbeat
from bullbridge.shutdown import GracefulShutdown
from bullbridge.worker import Worker
from bullbridge.worker.handlers import Handler, HandlerFn

log = logging.getLogger("bullbridge.manager")

StartupHook = Callable[[RedisConnector], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class ManagerSettings:
    """Process-level settings; ``from_env()`` reads ``BULLBRIDGE_<NAME>`` variables."""

    name: str | None = None
    prefix: str = "bull"
    #: Seconds active jobs get after the first signal (below Kubernetes' 30 s grace).
    drain_timeout: float = 25.0
    handle_signals: bool = True
    heartbeat_interval: float = 5.0
    health_port: int | None = None
    #: Where the health endpoint listens: loopback unless told (``0.0.0.0`` in a Kubernetes pod).
    health_host: str = "127.0.0.1"
    summary_interval: float = 60.0
    #: Exit once the queues are empty and nothing is running.
    burst: bool = False
    #: In burst mode, exit 0 even when jobs failed for good (by default ``run()`` then returns 1).
    burst_allow_failures: bool = False

    def __post_init__(self) -> None:
        if self.drain_timeout < 0:
            raise ConfigurationError("drain_timeout must be >= 0 seconds")
        if self.heartbeat_interval <= 0:
            raise ConfigurationError("heartbeat_interval must be > 0 seconds")

    @property
    def process_name(self) -> str:
        return self.name or f"{socket.gethostname()}-{os.getpid()}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ManagerSettings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"BULLBRIDGE_{f.name.upper()}")
            if raw is None:
                continue
            kind = str(f.type)
            try:
                if "bool" in kind:
                    values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
                elif "float" in kind:
                    values[f.name] = float(raw)
                elif "int" in kind:
                    values[f.name] = int(raw)
                else:
                    values[f.name] = raw
            except ValueError:
                raise ConfigurationError(f"BULLBRIDGE_{f.name.upper()}={raw!r} is not a valid {kind}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


class _ScheduleKeeper:
    """Syncs a declaration at start, and again after any of the manager's connections
    reconnects: a Redis that came back empty (restarted without persistence) gets its
    schedulers back within a second of the reconnect (docs/faults.md#an-empty-redis).
    The sync is idempotent, so a reconnect to a Redis that kept its data changes nothing."""

    def __init__(self, declaration: Any) -> None:
        from bullbridge.scheduler import Declaration

        if not isinstance(declaration, Declaration):
            raise ConfigurationError(
                f"schedules must be a bullbridge.scheduler.Declaration, got {type(declaration).__name__}"
            )
        self.declaration = declaration
        self._connector: RedisConnector | None = None
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self.resyncs = 0

    async def __call__(self, connector: RedisConnector) -> None:
        from bullbridge.scheduler import sync

        report = await sync(self.declaration, connector)
        log.info("schedules %r synced: %s", self.declaration.name, report)
        if self._connector is None:
            self._connector = connector
            connector.events.on_connected.append(self._reconnected)

    def _reconnected(self, name: str, reconnect: bool) -> None:
        if not reconnect or self._connector is None:
            return
        if self._task is not None and not self._task.done():
            self._again = True  # several clients reconnect together: one more pass at most
            return
        self._task = asyncio.ensure_future(self._resync(self._connector))

    async def _resync(self, connector: RedisConnector) -> None:
        from bullbridge.scheduler import sync

        while True:
            self._again = False
            try:
                report = await sync(self.declaration, connector)
                self.resyncs += 1
                if report.changed:
                    log.warning(
                        "schedules %r re-synced after a reconnect (Redis lost them: restarted empty?): %s",
                        self.declaration.name,
                        report,
                    )
            except Exception as exc:  # the next reconnect tries again
                log.warning("schedules %r could not be re-synced after a reconnect: %s", self.declaration.name, exc)
            if not self._again:
                return

    async def stop(self) -> None:
        if self._connector is not None and self._reconnected in self._connector.events.on_connected:
            self._connector.events.on_connected.remove(self._reconnected)
        await cancel_and_wait(self._task)


class WorkerManager:
    """Owns workers, their shared connection, health reporting and shutdown."""

    def __init__(
        self,
        workers: Iterable[Worker] = (),
        *,
        connection: ConnectionSource | None = None,
        settings: ManagerSettings | None = None,
        on_startup: Iterable[StartupHook] = (),
        schedules: Any = None,
    ) -> None:
        """``schedules``: a :class:`bullbridge.scheduler.Declaration` synced to Redis
        at start (every instance may sync the same declaration: it is idempotent)."""
        self.settings = settings or ManagerSettings()
        self.connector = connect(connection)
        self.workers: list[Worker] = list(workers)
        self.on_startup: list[StartupHook] = list(on_startup)
        self._schedules = _ScheduleKeeper(schedules) if schedules is not None else None
        if self._schedules is not None:
            self.on_startup.insert(0, self._schedules)
        self.state = "created"
        self.exit_code: int | None = None
        self._shutdown: GracefulShutdown | None = None
        self._heartbeat: Heartbeat | None = None
        self._health: HealthServer | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopped = asyncio.Event()
        self._closing: asyncio.Task[bool] | None = None
        self.retried = 0

    # -- building ---------------------------------------------------------------------

    def worker(
        self, queue: str, handlers: Mapping[str, HandlerFn | Handler] | HandlerFn | None = None, **settings: Any
    ) -> Worker:
        """Create a worker on the manager's connection and prefix and manage it
        (``settings`` as for :class:`~bullbridge.worker.Worker`)."""
        worker = Worker(queue, handlers, connection=self.connector, prefix=self.settings.prefix, **settings)
        self.workers.append(worker)
        return worker

    def add(self, worker: Worker) -> Worker:
        self.workers.append(worker)
        return worker

    def set_concurrency(self, concurrency: int) -> None:
        """Override every (not yet started) worker's concurrency, e.g. from the CLI."""
        for worker in self.workers:
            worker.settings = replace(worker.settings, concurrency=concurrency)

    # -- health -----------------------------------------------------------------------

    def report(self) -> HealthReport:
        return HealthReport(
            name=self.settings.process_name,
            state=self.state,
            pid=os.getpid(),
            host=socket.gethostname(),
            queues=[w.queue for w in self.workers],
            active=sum(w.active_count for w in self.workers),
            completed=sum(w.completed for w in self.workers),
            failed=sum(w.failed for w in self.workers),
            finish_failed=sum(w.finish_failed for w in self.workers),
            lost_locks=sum(w.lost_locks for w in self.workers),
            redis_connected=all(w.connected or not w.running for w in self.workers),
        )

    @property
    def ready(self) -> bool:
        return self.state == "running" and all(w.connected for w in self.workers)

    # -- lifecycle --------------------------------------------------------------------

    async def __aenter__(self) -> WorkerManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        if self.state != "created":
            return
        if not self.workers and not self.on_startup:
            raise ConfigurationError("the manager has no workers: add some with manager.worker(...)")
        self.state = "starting"
        s = self.settings
        if s.health_port is not None:  # first: a port in use fails the start before any job is taken
            self._health = HealthServer(self.report, lambda: self.ready, s.health_host, s.health_port)
            await self._health.start()
        if s.handle_signals:
            self._shutdown = GracefulShutdown(s.drain_timeout, on_drain=self._begin_drain, on_force=self._force)
            self._shutdown.install()
        for hook in self.on_startup:
            await hook(self.connector)
        for worker in self.workers:
            worker.on("retrying", self._count_retry)
        await asyncio.gather(*(w.start() for w in self.workers))
        from bullbridge.health import health_key

        key = health_key(s.prefix, s.process_name)
        client = self.connector.fast(f"{s.prefix}:bullbridge:manager", route_key=key)
        self._heartbeat = Heartbeat(client, s.prefix, s.process_name, self.report, s.heartbeat_interval)
        self._heartbeat.start()
        if s.summary_interval > 0:
            self._tasks.append(asyncio.ensure_future(self._summaries()))
        if s.burst:
            self._tasks.append(asyncio.ensure_future(self._burst_watch()))
        self.state = "running"
        log.info("%s", await self._start_line())

    def _count_retry(self, *_: Any) -> None:
        self.retried += 1

    async def _start_line(self) -> str:
        """What the process runs, where, and with which versions: the first line an operator reads."""
        from importlib.metadata import PackageNotFoundError, version

        def installed(package: str) -> str:
            try:
                return version(package)
            except PackageNotFoundError:  # pragma: no cover - run from a source tree
                return "?"

        try:
            redis = (await self.connector.server_info()).version_text
        except Exception:  # the line must not fail the start
            redis = "?"
        workers = "; ".join(
            f"{w.queue} x{w.settings.concurrency} "
            f"({', '.join([*w.registry.names, *(['* (fallback)'] if w.registry.fallback else [])])})"
            for w in self.workers
        )
        mode = ", burst" if self.settings.burst else ""
        return (
            f"{self.settings.process_name} running {len(self.workers)} worker(s){mode} on "
            f"{self.connector.settings.masked_url()} (prefix {self.settings.prefix!r}): {workers}; "
            f"bullbridge {installed('bullbridge')}, port bullmq {installed('bullmq')}, Redis {redis}"
        )

    async def run(self) -> int:
        """Start, serve until shutdown is requested (signal, burst end, ``close``), return the exit code."""
        await self.start()
        await self._stopped.wait()
        assert self._closing is not None
        clean = await self._closing
        if not clean:
            return 1
        if self.settings.burst and not self.settings.burst_allow_failures and self.failed:
            return 1
        return 0

    @property
    def completed(self) -> int:
        """Jobs this process completed."""
        return sum(w.completed for w in self.workers)

    @property
    def failed(self) -> int:
        """Jobs this process failed for good (retries not counted)."""
        return sum(w.failed for w in self.workers)

    def request_shutdown(self, reason: str = "requested") -> None:
        """Begin a graceful shutdown from code (a second call forces it)."""
        if self._shutdown is not None:
            self._shutdown.trigger(reason)
        elif self._closing is None:
            self._begin_drain(reason)
        else:
            self._force(reason)

    def _begin_drain(self, reason: str) -> None:
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close(self.settings.drain_timeout))

    def _force(self, reason: str) -> None:
        for worker in self.workers:
            worker.force()

    async def close(self, timeout: float | None = None) -> bool:
        """Drain (up to ``timeout``, default the drain timeout) and stop everything."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(
                self._close(self.settings.drain_timeout if timeout is None else timeout)
            )
        return await asyncio.shield(self._closing)

    async def _close(self, timeout: float) -> bool:
        self.state = "draining"
        for worker in self.workers:
            worker.stop_fetching()
        if self._heartbeat is not None:  # report "draining" without waiting on Redis
            self._tasks.append(asyncio.ensure_future(self._heartbeat.beat()))
        started = time.monotonic()
        results = await asyncio.gather(*(w.close(timeout=timeout) for w in self.workers), return_exceptions=True)
        clean = all(r is True for r in results)
        for worker, r in zip(self.workers, results):
            if isinstance(r, BaseException):
                log.error("closing the worker of %s failed: %s", worker.queue, r)
            elif r is not True:
                log.warning("worker of %s: %s", worker.queue, worker.shutdown_summary())
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._schedules is not None:
            await self._schedules.stop()
        if self._health is not None:
            await self._health.stop()
        if self._heartbeat is not None:
            await self._heartbeat.stop()
        if self._shutdown is not None:
            self._shutdown.uninstall()
        await self.connector.close()
        self.state = "stopped"
        self.exit_code = 0 if clean else 1
        log.log(
            logging.WARNING if self.failed or not clean else logging.INFO,
            "%s stopped in %.1f s: %d completed, %d failed, %d retried (%s)",
            self.settings.process_name,
            time.monotonic() - started,
            self.completed,
            self.failed,
            self.retried,
            "every job's outcome recorded" if clean else "exit code 1: not every job's outcome was recorded",
        )
        self._stopped.set()
        return clean

    # -- background duties ------------------------------------------------------------

    async def _summaries(self) -> None:
        last = {id(w): (w.completed, w.failed, w.finish_failed + w.lost_locks) for w in self.workers}
        while True:
            await asyncio.sleep(self.settings.summary_interval)
            for w in self.workers:
                done, failed, lost = last[id(w)]
                last[id(w)] = (w.completed, w.failed, w.finish_failed + w.lost_locks)
                log.info(
                    "queue %s: %d completed, %d failed, %d not recorded in the last %.0f s; %d active",
                    w.queue,
                    w.completed - done,
                    w.failed - failed,
                    w.finish_failed + w.lost_locks - lost,
                    self.settings.summary_interval,
                    w.active_count,
                )

    async def _burst_watch(self) -> None:
        """Burst mode: shut down once every worker found its queue empty, twice in a row."""
        idle_checks = 0
        while True:
            await asyncio.sleep(0.1)
            idle = all(w.drained and w.active_count == 0 for w in self.workers)
            idle_checks = idle_checks + 1 if idle else 0
            if idle_checks >= 3:
                log.info("burst: queues empty, stopping")
                self.request_shutdown("burst complete")
                return

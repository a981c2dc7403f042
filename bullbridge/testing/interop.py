"""One interop test's world: a Redis prefix of its own, Python and Node sides on it.

:class:`Interop` is what the pytest plugin's ``bullbridge_interop`` fixture
gives each test (and what any asyncio code can use directly)::

    async with Interop(redis_url) as interop:
        worker = await interop.node_worker("email", "node/processor.js")
        job = await interop.python_producer("email").add("welcome", {"to": "ada@example.com"})
        view = await interop.wait_for("email", job.id)
        view.assert_completed({"sent": True})
        assert worker.received[0].data == {"to": "ada@example.com"}

Isolation is by key prefix, not queue name: every producer, worker and Node
command of one :class:`Interop` uses its ``prefix`` (``bbt-<random>``), so
tests use the real queue names their services use, and :meth:`Interop.close`
deletes every key under the prefix (``SCAN`` + ``UNLINK`` of its own keys
only: safe on a shared Redis). It deletes only what it created: a prefix of
your choosing must be empty when the harness starts (it is refused otherwise,
unless ``keep_keys``), and one it never saw empty is never cleaned.

The Node side is one ``node`` process per :class:`Interop`, started on first
use, loading ``bullmq`` from ``node_modules`` (the user's project): a worker
whose processor is a user's module (:meth:`Interop.node_worker`), a producer
function of theirs (:meth:`Interop.node_producer`), or any
:class:`~bullbridge.testing.node.NodeDriver` command (:meth:`Interop.node_driver`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bullbridge.connection import RedisConnector, connect
from bullbridge.connection.resp import RespClient
from bullbridge.errors import ConfigurationError, JobTimeout
from bullbridge.events import Outcome
from bullbridge.keys import Executes, prefix_pattern, scan
from bullbridge.queue import Queue
from bullbridge.redact import redact
from bullbridge.testing.contracts import ConsumedJob, Contract, RecordedJob, Results, record, shape_of, write_jobs
from bullbridge.testing.node import NodeDriver, NodeEvent, NodeSetupError
from bullbridge.testing.views import JobView, Received, view_from_node
from bullbridge.worker import ActiveJob, Worker

log = logging.getLogger("bullbridge.testing.interop")

SeenBy = Literal["python", "node"]


def new_prefix(kind: str = "bbt") -> str:
    """A fresh key prefix: ``<kind>-<12 hex digits>``."""
    return f"{kind}-{uuid.uuid4().hex[:12]}"


async def delete_prefix(client: Executes, prefix: str) -> int:
    """Delete every key named ``<prefix>:...`` (SCAN + UNLINK: only those keys);
    returns how many."""
    deleted = 0
    async for keys in scan(client, prefix_pattern(prefix)):
        deleted += int(await client.execute("UNLINK", *keys))
    return deleted


async def count_prefix(client: Executes, prefix: str) -> int:
    """How many keys are named ``<prefix>:...``."""
    return sum([len(keys) async for keys in scan(client, prefix_pattern(prefix))])


async def eventually(
    predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition", interval: float = 0.02
) -> Any:
    """Poll ``predicate`` (sync or async) until it returns something truthy, and
    return that; ``AssertionError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = predicate()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached within {timeout:g} s (last: {last!r})")
        await asyncio.sleep(interval)


# --- the two sides' workers and the Node producer -------------------------------------


class _Received:
    """A list of :class:`Received` that can be awaited."""

    def __init__(self) -> None:
        self.items: list[Received] = []
        self._changed = asyncio.Event()

    def add(self, item: Received) -> None:
        self.items.append(item)
        self._changed.set()

    async def wait(self, count: int, timeout: float, what: str) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.items) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{what}: {len(self.items)} of {count} job(s) received within {timeout:g} s")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass
        return list(self.items)


@dataclass
class PythonWorker:
    """A started bullbridge :class:`~bullbridge.Worker`, recording what its handlers got."""

    worker: Worker
    queue: str
    errors: list[tuple[str, BaseException]] = field(default_factory=list)
    _received: _Received = field(default_factory=_Received)

    def __post_init__(self) -> None:
        self.worker.on("active", self._on_active)
        self.worker.on("failed", self._on_failed)

    def _on_active(self, job: ActiveJob) -> None:
        self._received.add(
            Received("python", self.queue, str(job.id), job.name, job.data, dict(job.safe_opts()), job.attempts_made)
        )

    def _on_failed(self, job: ActiveJob, exc: BaseException, reason: str) -> None:
        self.errors.append((str(job.id), exc))

    @property
    def received(self) -> list[Received]:
        """Each job a handler was called with, in order (one per attempt)."""
        return list(self._received.items)

    async def wait_received(self, count: int = 1, timeout: float = 10.0) -> list[Received]:
        return await self._received.wait(count, timeout, f"Python worker on {self.queue!r}")

    async def close(self, timeout: float = 5.0) -> None:
        await self.worker.close(timeout=timeout)


@dataclass
class NodeWorker:
    """A Node BullMQ Worker in the driver; ``received`` is what its processor got."""

    driver: NodeDriver = field(repr=False)
    handle: str
    queue: str
    module: Path | None = None

    @property
    def events(self) -> list[NodeEvent]:
        """Everything the worker emitted: active, received, progress, completed, failed, stalled, error."""
        return list(self.driver.events[self.handle])

    @property
    def received(self) -> list[Received]:
        return [_received_from_node(self.queue, e) for e in self.driver.events[self.handle] if e.event == "received"]

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The worker's ``error`` events (a processor module that fails to load, Redis trouble...)."""
        return [e.data.get("error") or {} for e in self.driver.events[self.handle] if e.event == "error"]

    async def wait_received(self, count: int = 1, timeout: float = 10.0) -> list[Received]:
        await self.driver.wait_event(self.handle, "received", timeout=timeout, count=count)
        return self.received

    async def wait_event(self, event: str, count: int = 1, timeout: float = 10.0) -> list[NodeEvent]:
        return await self.driver.wait_event(self.handle, event, timeout=timeout, count=count)

    async def close(self, force: bool = False) -> None:
        await self.driver.close_worker(self.handle, force=force)


def _received_from_node(queue: str, event: NodeEvent) -> Received:
    d = event.data
    return Received(
        "node",
        queue,
        str(d.get("jobId")),
        str(d.get("name", "")),
        d.get("data"),
        dict(d.get("opts") or {}),
        int(d.get("attemptsMade") or 0),
    )


@dataclass(frozen=True)
class Produced:
    """What a Node producer function returned: ``value`` as returned (Jobs as
    ``{id, name, queue, data, opts}``), and every job found in it."""

    value: Any
    jobs: tuple[dict[str, Any], ...]

    @property
    def ids(self) -> list[str]:
        return [str(j["id"]) for j in self.jobs]

    @property
    def id(self) -> str:
        """The one job's id (an error unless exactly one job was returned)."""
        if len(self.jobs) != 1:
            raise AssertionError(f"the producer returned {len(self.jobs)} jobs, not one: {self.value!r}")
        return str(self.jobs[0]["id"])


def _jobs_in(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, list):
        return [job for item in value for job in _jobs_in(item)]
    if isinstance(value, dict) and {"id", "name", "queue"} <= set(value):
        children = value.get("children") or []
        return [{k: v for k, v in value.items() if k != "children"}, *_jobs_in(children)]
    return []


@dataclass
class NodeProducer:
    """A user's Node producer function: ``await producer("email", {"to": ...})``
    calls ``fn(queue, args, ctx)`` in the driver (see ``driver.js``)."""

    interop: Interop = field(repr=False)
    module: Path
    export: str | None = None

    async def __call__(self, queue: str | None = None, args: Any = None, *, timeout: float | None = None) -> Produced:
        driver = await self.interop.node_driver()
        value = await driver.call_producer(
            self.module,
            queue,
            args,
            export=self.export,
            prefix=self.interop.prefix,
            timeout=timeout or self.interop.timeout,
        )
        return Produced(value, tuple(_jobs_in(value)))


@dataclass
class Replay:
    """The outcome of replaying a contract: one view per recorded job, in order,
    and what the consumer's processor received."""

    jobs: list[tuple[RecordedJob, JobView]]
    received: list[Received]
    #: Who consumed the jobs: "python" (``replay``) or "node" (``replay_to_node``).
    consumer: str = ""

    @property
    def views(self) -> list[JobView]:
        return [view for _, view in self.jobs]

    def results(self, *, shape: bool = False) -> Results:
        """What the consumer returned for each job (or why it failed), to pin with
        ``bullbridge_contracts.check(replay.results(shape=True), "email-from-node.results")``;
        ``shape`` keeps only each return value's keys and JSON types."""
        return Results(
            tuple(
                ConsumedJob(
                    job.queue,
                    job.name,
                    view.state,
                    shape_of(view.returnvalue) if shape else view.returnvalue,
                    view.failed_reason if view.state == "failed" else None,
                )
                for job, view in self.jobs
            ),
            self.consumer,
            shape,
        )

    def assert_all_completed(self) -> None:
        """Fail listing every recorded job the consumer did not complete."""
        __tracebackhide__ = True
        bad = [(job, view) for job, view in self.jobs if view.state != "completed"]
        if bad:
            lines = [f"- {job.queue}/{job.name} data={job.data!r}: {view.describe()}" for job, view in bad]
            raise AssertionError(
                f"{len(bad)} of {len(self.jobs)} recorded job(s) not completed by the consumer:\n" + "\n".join(lines)
            )


# --- the harness ----------------------------------------------------------------------


@dataclass
class Interop:
    """Python and Node sides of one test on one Redis, under a prefix of their own.

    ``node_modules``: the Node project's ``node_modules`` (or project folder)
    to load ``bullmq`` from; None lets the driver resolve it (``$NODE_PATH``,
    then bullbridge's own checkout). ``timeout``: the default for every wait.
    ``node``: share an already started driver (not closed here) instead of
    starting one. ``keep_keys``: leave the keys in Redis after :meth:`close`.
    ``base``: where relative module paths start (the plugin passes the ini file's folder).
    """

    redis_url: str
    #: Empty: a fresh ``bbt-<random>`` prefix. One of yours must hold no key when the harness starts.
    prefix: str = ""
    node_modules: str | Path | None = None
    timeout: float = 10.0
    node: NodeDriver | None = None
    keep_keys: bool = False
    #: Defaults for every Python worker this harness starts (WorkerSettings fields).
    worker_defaults: dict[str, Any] = field(default_factory=dict)
    #: The folder relative module paths start from (the pytest plugin: the ini file's folder);
    #: None: the current directory.
    base: Path | None = None
    #: Why the Node side cannot run (the plugin found no Node bullmq of the project): raised by
    #: :meth:`node_driver`, so tests that use only the Python side still run.
    node_unavailable: str = ""
    _owns_node: bool = field(default=False, init=False)
    _node_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _connector: RedisConnector | None = field(default=None, init=False)
    _client: RespClient | None = field(default=None, init=False)
    _producers: dict[str, Queue] = field(default_factory=dict, init=False)
    _extra_producers: list[Queue] = field(default_factory=list, init=False)
    _workers: list[PythonWorker] = field(default_factory=list, init=False)
    _node_workers: list[NodeWorker] = field(default_factory=list, init=False)
    _closed: bool = field(default=False, init=False)
    #: Whether every key under the prefix is this harness's: a prefix it made, or one it saw empty.
    _owns_prefix: bool = field(default=False, init=False)
    _claim_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    def __post_init__(self) -> None:
        if not self.prefix:
            self.prefix = new_prefix()
            self._owns_prefix = True
        self._claimed = self._owns_prefix

    def __repr__(self) -> str:
        node = f", node bullmq {self.node.bullmq_version}" if self.node is not None else ""
        return f"<Interop prefix={self.prefix!r} redis={redact(self.redis_url)!r}{node}>"

    async def __aenter__(self) -> Interop:
        try:
            await self.claim_prefix()
        except BaseException:
            await self.close()  # nothing is deleted: the prefix was not this harness's
            raise
        return self

    async def claim_prefix(self) -> None:
        """Refuse a prefix of the user's that already holds keys: :meth:`close` deletes every key
        under the prefix, and must delete only what this harness created. (``keep_keys``: nothing is
        deleted, so any prefix is accepted.) Called on entry and before the first worker or Node process."""
        async with self._claim_lock:
            if self._claimed:
                return
            held = await count_prefix(self.redis(), self.prefix)
            if held and not self.keep_keys:
                raise ConfigurationError(
                    f"the prefix {self.prefix!r} already holds {held} key(s) on {redact(self.redis_url)}: "
                    "Interop deletes every key under its prefix when it closes, so it refuses a prefix in use; "
                    "leave prefix unset (a fresh bbt-... prefix each time) or pass keep_keys=True"
                )
            self._owns_prefix = not held
            self._claimed = True

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- Redis -------------------------------------------------------------------------

    def redis(self) -> RespClient:
        """A plain client on the test's Redis (for raw reads)."""
        if self._client is None:
            self._connector = connect(self.redis_url)
            self._client = self._connector.fast("bullbridge-testing")
        return self._client

    # -- Python side -------------------------------------------------------------------

    def python_producer(self, queue: str, **options: Any) -> Queue:
        """A bullbridge :class:`~bullbridge.Queue` on ``queue`` under the test's
        prefix (one per queue; with ``options`` - ``defaults=...`` - a new one)."""
        if options:
            producer = Queue(queue, connection=self.redis_url, prefix=self.prefix, **options)
            self._extra_producers.append(producer)
            return producer
        if queue not in self._producers:
            self._producers[queue] = Queue(queue, connection=self.redis_url, prefix=self.prefix)
        return self._producers[queue]

    async def python_worker(
        self, queue: str, handlers: Any = None, *, start: bool = True, **settings: Any
    ) -> PythonWorker:
        """A bullbridge :class:`~bullbridge.Worker` on ``queue`` with ``handlers``
        (a ``{name: fn}`` mapping or one function for every name), started unless
        ``start=False``; ``settings`` are :class:`~bullbridge.worker.WorkerSettings` fields."""
        await self.claim_prefix()
        merged = {**self.worker_defaults, **settings, "prefix": self.prefix}
        worker = Worker(queue, handlers, connection=self.redis_url, **merged)
        wrapped = PythonWorker(worker, queue)
        self._workers.append(wrapped)
        if start:
            await worker.start()
        return wrapped

    # -- Node side ---------------------------------------------------------------------

    async def node_driver(self) -> NodeDriver:
        """The Node process (started on first use), defaulting to the test's prefix."""
        await self.claim_prefix()
        async with self._node_lock:
            if self.node is None and self.node_unavailable:
                raise NodeSetupError(self.node_unavailable)
            if self.node is None:
                driver = NodeDriver(
                    self.redis_url,
                    node_modules=self.node_modules,
                    prefix=self.prefix,
                    call_timeout=max(self.timeout, 20.0),
                )
                await driver.start()
                self.node = driver
                self._owns_node = True
            return self.node

    async def node_worker(
        self,
        queue: str,
        module: str | Path | None = None,
        *,
        export: str | None = None,
        processor: str | None = None,
        sandboxed: bool = False,
        **opts: Any,
    ) -> NodeWorker:
        """A Node BullMQ Worker on ``queue`` whose processor is the function
        ``module`` exports (``module.exports = async job => ...``; ``export`` names
        another export) - or, without a module, the JS source ``processor``.
        ``sandboxed`` runs the module as BullMQ's sandboxed processor (a child
        process). ``opts`` are BullMQ WorkerOptions (``concurrency``, ``limiter``...)."""
        driver = await self.node_driver()
        if module is not None:
            path = self.module_path(module)
            if not path.exists():
                raise FileNotFoundError(f"no Node processor module at {path}{self._relative_to(module)}")
            handle = await driver.start_module_worker(
                queue, path, export=export, sandboxed=sandboxed, prefix=self.prefix, **opts
            )
        else:
            path = None
            handle = await driver.start_worker(
                queue, processor or "async job => job.data", prefix=self.prefix, report=True, **opts
            )
        worker = NodeWorker(driver, handle, queue, path)
        self._node_workers.append(worker)
        return worker

    def node_producer(self, module: str | Path, *, export: str | None = None) -> NodeProducer:
        """A user's producer module: ``module.exports = async (queue, args, ctx) => queue.add(...)``
        (``export`` names another export). Call it: ``await producer("email", args)``."""
        path = self.module_path(module)
        if not path.exists():
            raise FileNotFoundError(f"no Node producer module at {path}{self._relative_to(module)}")
        return NodeProducer(self, path, export)

    def module_path(self, module: str | Path) -> Path:
        """``module`` as an absolute path: a relative one starts from :attr:`base`."""
        path = Path(module).expanduser()
        return (path if path.is_absolute() else (self.base or Path.cwd()) / path).resolve()

    def _relative_to(self, module: str | Path) -> str:
        if Path(module).expanduser().is_absolute():
            return ""
        return f" ({str(module)!r} is relative to {self.base or Path.cwd()}" + (
            ", the ini file's folder)" if self.base else ", the current directory)"
        )

    async def node_add(self, queue: str, name: str, data: Any = None, opts: dict[str, Any] | None = None) -> str:
        """Add a job with Node's ``Queue.add`` (BullMQ option names); returns its id."""
        return await (await self.node_driver()).add(queue, name, data, opts, prefix=self.prefix)

    # -- outcomes ----------------------------------------------------------------------

    async def view(self, queue: str, job_id: str, *, seen_by: SeenBy = "python") -> JobView | None:
        """The job as one side reads it now (None when there is no such job)."""
        if seen_by == "node":
            raw = await (await self.node_driver()).job_view(queue, job_id, prefix=self.prefix)
            return None if raw is None else view_from_node(queue, job_id, raw)
        producer = self.python_producer(queue)
        job = await producer.get_job(job_id)
        if job is None:
            return None
        state = await producer.get_job_state(job_id)
        logs = await self.redis().execute("LRANGE", producer.keys.logs(job_id), 0, -1)
        return JobView(
            side="python",
            queue=queue,
            id=job_id,
            state=state,
            name=job.name,
            data=job.data,
            opts=dict(job.opts),
            returnvalue=job.returnvalue,
            failed_reason=job.failed_reason,
            stacktrace=tuple(job.stacktrace),
            progress=job.progress,
            logs=tuple(x.decode("utf-8", "replace") for x in logs or ()),
            attempts_made=job.attempts_made,
            timestamp=job.timestamp,
            processed_on=job.processed_on,
            finished_on=job.finished_on,
        )

    async def wait_for(
        self, queue: str, job_id: str, *, timeout: float | None = None, seen_by: SeenBy = "python"
    ) -> JobView:
        """Wait until the job completes or fails - whichever language runs it -
        and return it as ``seen_by`` reads it. ``AssertionError`` after
        ``timeout`` (default: the harness's), saying where the job is."""
        __tracebackhide__ = True
        limit = self.timeout if timeout is None else timeout
        try:
            outcome = await self.python_producer(queue).wait_for(job_id, timeout=limit)
        except JobTimeout:
            raise AssertionError(await self._not_finished(queue, job_id, limit, seen_by)) from None
        view = await self.view(queue, job_id, seen_by=seen_by)
        if view is None or view.state not in ("completed", "failed"):
            return _view_from_outcome(seen_by, queue, job_id, outcome)
        return view

    async def wait_state(
        self, queue: str, job_id: str, state: str, *, timeout: float | None = None, seen_by: SeenBy = "python"
    ) -> JobView:
        """Wait until the job is in ``state`` (``delayed``, ``waiting-children``...) as ``seen_by`` reads it."""

        async def check() -> JobView | None:
            view = await self.view(queue, job_id, seen_by=seen_by)
            return view if view is not None and view.state == state else None

        limit = self.timeout if timeout is None else timeout
        try:
            return await eventually(check, limit, f"job {queue}:{job_id} in state {state!r}")  # type: ignore[no-any-return]
        except AssertionError:
            view = await self.view(queue, job_id, seen_by=seen_by)
            found = view.describe() if view else "it does not exist"
            raise AssertionError(f"job {queue}:{job_id} not {state!r} within {limit:g} s: {found}") from None

    async def result(self, queue: str, job_id: str, *, timeout: float | None = None) -> Any:
        """The job's return value once it completes; ``AssertionError`` (with the
        other side's failure reason and stack) if it fails or does not finish."""
        __tracebackhide__ = True
        return (await self.wait_for(queue, job_id, timeout=timeout)).assert_completed()

    async def _not_finished(self, queue: str, job_id: str, timeout: float, seen_by: SeenBy = "python") -> str:
        view = await self.view(queue, job_id, seen_by=seen_by)
        where = view.describe() if view else "no such job (wrong queue, or removed?)"
        text = f"job {queue}:{job_id} did not finish within {timeout:g} s: {where}"
        node_workers = [w for w in self._node_workers if w.queue == queue]
        py_workers = [w for w in self._workers if w.queue == queue and w.worker.running]
        if not node_workers and not py_workers:
            text += f"\n(no worker of this test serves {queue!r} under prefix {self.prefix!r})"
        for w in node_workers:
            for error in w.errors[-3:]:
                text += f"\nNode worker {w.handle} error: {error.get('message')}"
        if node_workers and self.node is not None and self.node.stderr_lines:
            text += "\nNode stderr:\n" + self.node.stderr_tail(10)
        return text

    # -- contracts ---------------------------------------------------------------------

    async def record(self, *queues: str, producer: str = "") -> Contract:
        """The jobs now in ``queues`` (this test's prefix) as BullMQ stored them,
        in the order added. ``producer`` labels who wrote them ("node", "python")."""
        if not queues:
            raise ValueError("name the queue(s) to record")
        versions: dict[str, str] = {}
        if producer == "node" and self.node is not None:
            versions["bullmq"] = self.node.bullmq_version
        if producer == "python":
            from bullbridge import __version__

            versions["bullbridge"] = __version__
        return await record(self.redis(), queues, prefix=self.prefix, producer=producer, recorded_with=versions)

    async def replay(
        self, contract: Contract, handlers: Any, *, timeout: float | None = None, **settings: Any
    ) -> Replay:
        """Write the contract's jobs (stored options as recorded) and run them
        through Python ``handlers`` (a ``{name: fn}`` mapping or one function);
        returns every job's outcome."""
        added = await write_jobs(self.redis(), contract.jobs, prefix=self.prefix)
        workers = [await self.python_worker(q, handlers, **settings) for q in contract.queues]
        return await self._replayed(added, timeout, workers=workers, consumer="python")

    async def replay_to_node(
        self,
        contract: Contract,
        module: str | Path,
        *,
        export: str | None = None,
        timeout: float | None = None,
        **opts: Any,
    ) -> Replay:
        """Write the contract's jobs and run them through a Node processor module."""
        added = await write_jobs(self.redis(), contract.jobs, prefix=self.prefix)
        node_workers = [await self.node_worker(q, module, export=export, **opts) for q in contract.queues]
        return await self._replayed(added, timeout, node_workers=node_workers, consumer="node")

    async def _replayed(
        self,
        added: list[tuple[RecordedJob, str]],
        timeout: float | None,
        *,
        workers: Iterable[PythonWorker] = (),
        node_workers: Iterable[NodeWorker] = (),
        consumer: str = "",
    ) -> Replay:
        views = await asyncio.gather(*(self.wait_for(job.queue, job_id, timeout=timeout) for job, job_id in added))
        got = [r for w in workers for r in w.received] + [r for w in node_workers for r in w.received]
        return Replay(list(zip((job for job, _ in added), views)), got, consumer)

    # -- closing -----------------------------------------------------------------------

    async def close(self) -> None:
        """Stop every worker and producer of this harness, stop the Node process it
        started, and delete the keys under its prefix (unless ``keep_keys``)."""
        if self._closed:
            return
        self._closed = True
        await _quietly([w.close(timeout=5) for w in self._workers])
        if self.node is not None:
            if self._owns_node:
                await _quietly([self.node.close()])
            else:
                await _quietly([w.close(force=True) for w in self._node_workers])
        await _quietly([p.close() for p in [*self._producers.values(), *self._extra_producers]])
        try:
            if not self.keep_keys and self._owns_prefix:
                deleted = await delete_prefix(self.redis(), self.prefix)
                log.debug("deleted %d keys under %s", deleted, self.prefix)
            elif not self.keep_keys:
                log.warning(
                    "keys under the prefix %r were left in Redis: this harness never saw the prefix empty, "
                    "so it cannot tell its keys from yours",
                    self.prefix,
                )
        finally:
            if self._connector is not None:
                await self._connector.close()
            self._client = self._connector = None


async def _quietly(closing: list[Awaitable[Any]]) -> None:
    for result in await asyncio.gather(*closing, return_exceptions=True):
        if isinstance(result, BaseException):
            log.debug("while closing: %r", result)


def _view_from_outcome(side: SeenBy, queue: str, job_id: str, outcome: Outcome) -> JobView:
    return JobView(
        side=side,
        queue=queue,
        id=job_id,
        state=outcome.state,
        returnvalue=outcome.returnvalue,
        failed_reason=outcome.failed_reason,
        exists=False,
    )

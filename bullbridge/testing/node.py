"""Drive a real Node BullMQ process from Python tests.

:class:`NodeDriver` starts ``driver.js`` (shipped beside this module;
``interop/driver.js`` in a checkout links to it) with ``node`` and the real npm
``bullmq``, and talks to it in JSON lines. Every call has a timeout, so a hung
Node process fails the test instead of hanging the run; events pushed by Node
workers and QueueEvents are kept per handle and can be awaited with
:meth:`NodeDriver.wait_event`.

Which ``bullmq`` runs: ``node_modules`` (a ``node_modules`` folder or a project
folder holding one: the user's own install), else each folder of ``node_path``
/ ``$NODE_PATH``, else the driver's own resolution (bullbridge's checkout).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bullbridge.errors import BullbridgeError, MissingDependency
from bullbridge.redact import redact

log = logging.getLogger("bullbridge.testing.node")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DRIVER = Path(__file__).resolve().with_name("driver.js")


class NodeError(BullbridgeError):
    """The Node side answered with an error (its message and JS stack)."""

    def __init__(self, message: str, stack: str | None = None) -> None:
        super().__init__(message)
        self.stack = stack


class NodeSetupError(NodeError, MissingDependency):
    """The Node side cannot start: no ``node`` on the PATH, or no npm ``bullmq`` where it looks."""


class NodeTimeout(BullbridgeError, TimeoutError):
    """The Node side did not answer in time."""


@dataclass
class NodeEvent:
    handle: str
    event: str
    data: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


@dataclass
class NodeDriver:
    """One Node process running ``driver.js`` against ``redis_url``."""

    redis_url: str
    driver: Path = DEFAULT_DRIVER
    node_path: str | None = None
    call_timeout: float = 20.0
    process: asyncio.subprocess.Process | None = None
    events: dict[str, list[NodeEvent]] = field(default_factory=lambda: defaultdict(list))
    bullmq_version: str = ""
    _pending: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    _next_id: int = 0
    _reader: asyncio.Task[None] | None = None
    _changed: asyncio.Condition | None = None
    _ready: asyncio.Future[str] | None = None
    _stderr_task: asyncio.Task[None] | None = None
    stderr_lines: list[str] = field(default_factory=list)
    #: The user's ``node_modules`` (or project folder) to load ``bullmq`` from.
    node_modules: str | Path | None = None
    #: Where the loaded ``bullmq`` lives, and the Node.js version (set by :meth:`start`).
    bullmq_path: str = ""
    node_version: str = ""
    #: The key prefix of every command that does not name one (``None``: BullMQ's ``bull``).
    prefix: str | None = None
    _fatal: str | None = None

    def __repr__(self) -> str:
        state = f"pid {self.process.pid}" if self.process is not None else "not started"
        return f"<NodeDriver bullmq {self.bullmq_version or '?'} {state} redis={redact(self.redis_url)!r}>"

    async def start(self, timeout: float = 20.0) -> NodeDriver:
        node = shutil.which("node")
        if node is None:
            raise NodeSetupError("node is not on the PATH: install Node.js 20+ (https://nodejs.org)")
        env = dict(os.environ, BULLBRIDGE_REDIS_URL=self.redis_url)
        if self.node_path:
            env["NODE_PATH"] = self.node_path
        if self.node_modules:
            env["BULLBRIDGE_NODE_MODULES"] = str(self.node_modules)
        self._changed = asyncio.Condition()
        self._ready = asyncio.get_running_loop().create_future()
        self.process = await asyncio.create_subprocess_exec(
            node,
            str(self.driver),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            limit=64 * 1024 * 1024,
        )
        self._reader = asyncio.create_task(self._read())
        self._stderr_task = asyncio.create_task(self._read_stderr())
        try:
            self.bullmq_version = await asyncio.wait_for(self._ready, timeout)
        except TimeoutError:
            await self.kill()
            raise NodeTimeout(f"node driver did not start in {timeout} s: {self.stderr_tail()}") from None
        except BaseException:
            # A driver that could not start (no bullmq, a crash): reap the process and close its
            # pipes here, on this loop, or asyncio warns about them from a closed loop at exit.
            await self.kill()
            raise
        return self

    async def __aenter__(self) -> NodeDriver:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stderr_tail(self, n: int = 20) -> str:
        return "\n".join(self.stderr_lines[-n:])

    async def _read_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        while True:
            line = await self.process.stderr.readline()
            if not line:
                return
            text = line.decode(errors="replace").rstrip()
            self.stderr_lines.append(text)
            del self.stderr_lines[:-500]
            log.debug("node: %s", text)

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while True:
            line = await self.process.stdout.readline()
            if not line:
                break
            try:
                msg = json.loads(line)
            except ValueError:
                log.warning("node driver wrote a non-JSON line: %r", line[:200])
                continue
            if "push" in msg:
                await self._on_push(msg)
                continue
            fut = self._pending.pop(msg.get("id"), None)
            if fut is None or fut.done():
                continue
            if msg.get("ok"):
                fut.set_result(msg.get("result"))
            else:
                fut.set_exception(NodeError(msg.get("error", "unknown error"), msg.get("stack")))
        error = NodeSetupError(self._fatal) if self._fatal else NodeError(f"node driver exited: {self.stderr_tail()}")
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(error)
        self._pending.clear()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)

    async def _on_push(self, msg: dict[str, Any]) -> None:
        kind = msg.pop("push")
        if kind == "ready":
            self.bullmq_path = msg.get("bullmqPath", "")
            self.node_version = msg.get("node", "")
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(msg.get("bullmq", ""))
            return
        if kind == "fatal":
            self._fatal = str(msg.get("error", "the driver could not start"))
            return
        handle = msg.pop("handle", kind)
        event = msg.pop("event", kind)
        assert self._changed is not None
        async with self._changed:
            self.events[handle].append(NodeEvent(handle, event, msg))
            self._changed.notify_all()

    async def call(self, cmd: str, timeout: float | None = None, **args: Any) -> Any:
        """Send one command and return its result (NodeError / NodeTimeout otherwise)."""
        if self.process is None or self.process.stdin is None or self.process.returncode is not None:
            raise NodeError(f"node driver is not running: {self.stderr_tail()}")
        if self.prefix is not None and "prefix" not in args:
            args["prefix"] = self.prefix
        self._next_id += 1
        msg_id = self._next_id
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        self.process.stdin.write(json.dumps({"id": msg_id, "cmd": cmd, **args}).encode() + b"\n")
        await self.process.stdin.drain()
        try:
            return await asyncio.wait_for(fut, timeout or self.call_timeout)
        except TimeoutError:
            self._pending.pop(msg_id, None)
            raise NodeTimeout(f"node driver did not answer {cmd} within {timeout or self.call_timeout} s") from None

    # -- shortcuts --------------------------------------------------------------------

    async def add(
        self, queue: str, name: str, data: Any = None, opts: dict[str, Any] | None = None, **extra: Any
    ) -> str:
        result = await self.call(
            "queue.add", queue=queue, name=name, data=data if data is not None else {}, opts=opts or {}, **extra
        )
        return str(result["id"])

    async def get_job(self, queue: str, job_id: str, **extra: Any) -> dict[str, Any] | None:
        result = await self.call("job.get", queue=queue, jobId=job_id, **extra)
        return result  # type: ignore[no-any-return]

    async def queue_call(self, queue: str, method: str, *args: Any, **extra: Any) -> Any:
        return await self.call("queue.call", queue=queue, method=method, args=list(args), **extra)

    async def start_worker(self, queue: str, processor: str = "async job => job.data", **opts: Any) -> str:
        extra = {k: opts.pop(k) for k in ("prefix", "backoffStrategy", "handle", "report") if k in opts}
        result = await self.call("worker.start", queue=queue, processor=processor, opts=opts, **extra)
        return str(result["handle"])

    async def start_module_worker(
        self,
        queue: str,
        module: str | Path,
        *,
        export: str | None = None,
        sandboxed: bool = False,
        report: bool = True,
        prefix: str | None = None,
        handle: str | None = None,
        **opts: Any,
    ) -> str:
        """A worker whose processor is the function a user's module exports
        (``module.exports = async job => ...``, as BullMQ's sandboxed processors);
        ``sandboxed`` runs the file in BullMQ's own child process instead.
        With ``report``, each job the processor gets is pushed as a ``received``
        event (data, opts, attempts). ``opts`` are BullMQ WorkerOptions."""
        extra: dict[str, Any] = {"handle": handle} if handle else {}
        if prefix is not None:
            extra["prefix"] = prefix
        result = await self.call(
            "worker.start",
            queue=queue,
            module=str(Path(module).resolve()),
            export=export,
            sandboxed=sandboxed,
            report=report,
            opts=opts,
            **extra,
        )
        return str(result["handle"])

    async def call_producer(
        self,
        module: str | Path,
        queue: str | None,
        args: Any = None,
        *,
        export: str | None = None,
        prefix: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Call a user's producer function ``fn(queue, args, ctx)`` (see driver.js);
        returns what it returned, Jobs as ``{id, name, queue, data, opts}``."""
        extra: dict[str, Any] = {} if prefix is None else {"prefix": prefix}
        return await self.call(
            "producer.call",
            timeout=timeout,
            module=str(Path(module).resolve()),
            export=export,
            queue=queue,
            args=args,
            **extra,
        )

    async def job_view(self, queue: str, job_id: str, prefix: str | None = None) -> dict[str, Any] | None:
        """Node's view of a job: ``job.get`` plus ``logs``, ``parsedOpts`` and ``parsedData``."""
        extra: dict[str, Any] = {} if prefix is None else {"prefix": prefix}
        result = await self.call("job.view", queue=queue, jobId=job_id, **extra)
        return result  # type: ignore[no-any-return]

    async def close_worker(self, handle: str, force: bool = False, timeout: float = 30.0) -> None:
        await self.call("worker.close", handle=handle, force=force, timeout=timeout)

    async def subscribe(self, queue: str, **extra: Any) -> str:
        result = await self.call("events.subscribe", queue=queue, **extra)
        return str(result["handle"])

    async def eval(self, code: str, timeout: float | None = None, **args: Any) -> Any:
        return await self.call("eval", code=code, args=args, timeout=timeout)

    async def wait_event(
        self, handle: str, predicate: Callable[[NodeEvent], bool] | str, timeout: float = 10.0, count: int = 1
    ) -> list[NodeEvent]:
        """Wait until ``count`` events of ``handle`` match (an event name or a predicate)."""
        match: Callable[[NodeEvent], bool] = (
            (lambda e: e.event == predicate) if isinstance(predicate, str) else predicate
        )
        assert self._changed is not None

        def found() -> list[NodeEvent]:
            return [e for e in self.events[handle] if match(e)]

        async def wait() -> list[NodeEvent]:
            assert self._changed is not None
            async with self._changed:
                await self._changed.wait_for(lambda: len(found()) >= count)
            return found()

        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            seen = [f"{e.event}:{e.data.get('jobId')}" for e in self.events[handle][-20:]]
            raise NodeTimeout(
                f"{count} matching event(s) on {handle} not seen within {timeout} s; last events: {seen}"
            ) from None

    async def close(self) -> None:
        if self.process is None:
            return
        if self.process.returncode is None:
            try:
                await self.call("close", timeout=10)
            except (NodeError, NodeTimeout, ConnectionError):
                pass
            if self.process.stdin is not None:
                self.process.stdin.close()
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.process.pid, signal.SIGKILL)
                await self.process.wait()
        await self._stop_readers()

    async def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the Node process (SIGKILL by default: a crash)."""
        if self.process is not None and self.process.returncode is None:
            # os.kill, not Process.send_signal: the latter polls (reaps) a child that has just exited
            # under asyncio's child watcher, which then logs "Unknown child process pid".
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, sig)
            await self.process.wait()
        await self._stop_readers()

    async def _stop_readers(self) -> None:
        for task in (self._reader, self._stderr_task):
            if task is not None and not task.done():
                try:
                    await asyncio.wait_for(task, 2)
                except (TimeoutError, asyncio.CancelledError):
                    task.cancel()

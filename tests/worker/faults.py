"""Helpers for tests that make a worker's writes fail: what it reported, a handler
held until released, and a TCP proxy in front of Redis that loses a reply.

The proxy is a real network fault, not a mock: the command reaches Redis and
runs; its reply is thrown away and both connections are cut, so the client
sees a dropped connection and cannot know whether the command ran - the case a
finishing write must resolve by reading Redis back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlparse

import hiredis

from bullbridge import Worker
from tests.worker.impls import wait_until

#: The events that say how an attempt ended (docs/worker.md#outcomes).
OUTCOME_EVENTS = ("completed", "failed", "retrying", "lockLost", "finishFailed", "handedBack")


class Outcomes:
    """Every outcome event of a worker, in order: ``[(event, job id)]``."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.seen: list[tuple[str, str]] = []
        self.args: dict[str, list[tuple[Any, ...]]] = {e: [] for e in OUTCOME_EVENTS}
        for event in OUTCOME_EVENTS:
            worker.on(event, functools.partial(self._note, event))  # type: ignore[arg-type]

    def _note(self, event: str, job: Any, *args: Any) -> None:
        self.seen.append((event, job.id))
        self.args[event].append(args)

    async def wait(self, count: int = 1, timeout: float = 10.0) -> list[tuple[str, str]]:
        """The events once there are ``count`` (a failure detector: generous). Wait on
        this, not on the queue: Redis records an outcome before the worker has read
        the script's reply and emitted it."""
        assert await wait_until(lambda: len(self.seen) >= count, timeout), f"only {self.seen} after {timeout} s"
        return self.seen

    def counters(self) -> dict[str, int]:
        w = self.worker
        names = ("completed", "failed", "retried", "finish_failed", "lost_locks", "handed_back", "abandoned")
        return {name: getattr(w, name) for name in names if getattr(w, name)}


class Held:
    """A handler that runs until the test releases it, then does ``then(job)``."""

    def __init__(self, then: Callable[[Any], Awaitable[Any]] | None = None) -> None:
        self.runs: list[str] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.then = then

    async def __call__(self, job: Any) -> Any:
        self.runs.append(job.id)
        self.started.set()
        await self.release.wait()
        return await self.then(job) if self.then is not None else "done"

    async def wait_started(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self.started.wait(), timeout)


class LosingProxy:
    """A TCP proxy to Redis that, once armed with a marker, forwards the next
    command containing it, waits until Redis answered it, and then drops that
    reply and cuts the connection (replies pipelined behind it are dropped too) -
    or, with ``hold_reply_to``, holds the reply back until :meth:`let_go`."""

    def __init__(self, redis_url: str) -> None:
        parsed = urlparse(redis_url)
        self.target = (parsed.hostname or "127.0.0.1", parsed.port or 6379)
        self.db = parsed.path or "/0"
        self.cuts = 0
        self._marker: bytes | None = None
        self._hold = False
        self.holding = asyncio.Event()  # a held reply has arrived from Redis
        self._let_go = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> LosingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}{self.db}"

    def lose_reply_to(self, marker: bytes) -> None:
        self._marker, self._hold = marker, False

    def hold_reply_to(self, marker: bytes) -> None:
        self._marker, self._hold = marker, True

    def let_go(self) -> None:
        self._let_go.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        doomed: list[tuple[int, bool]] = []  # the 1-based index of the command whose reply is lost/held

        async def upstream() -> None:
            parser, sent = hiredis.Reader(), 0
            while data := await reader.read(65536):
                parser.feed(data)
                while (command := parser.gets()) is not False:
                    sent += 1
                    if self._marker is not None and any(self._marker in part for part in command):
                        self._marker = None
                        doomed.append((sent, self._hold))
                up_writer.write(data)
                await up_writer.drain()

        async def downstream() -> None:
            parser, answered = hiredis.Reader(), 0
            while data := await up_reader.read(65536):
                parser.feed(data)
                while parser.gets() is not False:
                    answered += 1
                if doomed and answered >= doomed[0][0] and doomed[0][1]:  # Redis answered: hold the answer back
                    self.holding.set()
                    await self._let_go.wait()
                    doomed.clear()
                elif doomed and answered >= doomed[0][0]:  # Redis ran it and answered: lose that answer
                    self.cuts += 1
                    return
                writer.write(data)
                await writer.drain()

        pumps = [asyncio.ensure_future(_quietly(upstream())), asyncio.ensure_future(_quietly(downstream()))]
        for task in pumps:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        _, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        writer.transport.abort()  # one side ended (or a reply was lost): cut both
        up_writer.transport.abort()
        for task in pending:
            task.cancel()


async def _quietly(pump: Awaitable[None]) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        await pump

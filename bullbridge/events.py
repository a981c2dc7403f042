"""Queue events: BullMQ's per-queue Redis stream, read with ``XREAD BLOCK``.

Every state change BullMQ makes (added, active, progress, completed, failed,
delayed, stalled, ...) is appended to ``<prefix>:<queue>:events`` by the Lua
scripts, whichever language ran them. :class:`QueueEvents` tails that stream
on its own blocking connection and

* yields :class:`QueueEvent` objects to ``async for`` consumers (each with its
  own buffer, so a slow consumer never delays another);
* resolves :meth:`QueueEvents.wait_for` - the cross-language
  ``waitUntilFinished`` the port lacks - without a race: the stream position
  is taken *before* the job's state is checked, so a job finishing in between
  is still seen.

Used from another event loop than before (``asyncio.run`` after
``asyncio.run``, a forked child), it lets go of the old loop's reader and
connections without touching that loop and starts again on the new one, from
the stream's end at that moment.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, get_args

from bullbridge import codec
from bullbridge.aio import LoopAffinity
from bullbridge.connection import ConnectionSource, RedisConnector, connect
from bullbridge.connection.resp import RespClient, RespConnectionError
from bullbridge.errors import JobFailed, JobTimeout
from bullbridge.keys import QueueKeys

log = logging.getLogger("bullbridge.events")

#: The events BullMQ's scripts write to a queue's stream (Node 6.7 and the port),
#: spelled as Node's ``QueueEvents`` emits them.
QueueEventName = Literal[
    "active",
    "added",
    "cleaned",
    "completed",
    "debounced",
    "deduplicated",
    "delayed",
    "drained",
    "duplicated",
    "failed",
    "paused",
    "progress",
    "removed",
    "resumed",
    "retries-exhausted",
    "stalled",
    "waiting",
    "waiting-children",
]
QUEUE_EVENTS: tuple[str, ...] = get_args(QueueEventName)


@dataclass(frozen=True)
class QueueEvent:
    """One stream entry: ``event`` (one of :data:`QueueEventName` - kept a plain
    ``str`` because another writer may add its own), ``job_id`` and the raw fields."""

    event: str
    job_id: str | None
    fields: dict[str, str]
    stream_id: str

    @property
    def returnvalue(self) -> Any:
        raw = self.fields.get("returnvalue")
        return codec.decode(raw) if raw is not None else None

    @property
    def failed_reason(self) -> str | None:
        return self.fields.get("failedReason")

    @property
    def progress(self) -> Any:
        raw = self.fields.get("data")
        return codec.decode(raw) if raw is not None else None


@dataclass(frozen=True)
class Outcome:
    """How a job finished: ``state`` is ``completed`` or ``failed``."""

    state: str
    returnvalue: Any = None
    failed_reason: str | None = None


class QueueEvents:
    """Tail one queue's event stream. Use as ``async with``; iterate or ``wait_for``."""

    def __init__(
        self, queue: str, *, connection: ConnectionSource | None = None, prefix: str = "bull", block_ms: int = 5000
    ) -> None:
        self.keys = QueueKeys(queue, prefix)
        self._connector: RedisConnector = connect(connection)
        self._owns_connector = not isinstance(connection, RedisConnector)
        self._block_ms = block_ms
        self._client: RespClient | None = None
        self._commands: RespClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_id = "$"
        self._subscribers: list[asyncio.Queue[QueueEvent]] = []
        self._waiters: dict[str, list[asyncio.Future[Outcome]]] = {}
        self._start_lock = asyncio.Lock()
        self._closed = False
        self._affinity = LoopAffinity(f"QueueEvents for {queue!r}")

    async def __aenter__(self) -> QueueEvents:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self, from_id: str | None = None) -> None:
        """Start reading after the stream's current end (or after ``from_id``)."""
        self._follow_loop()
        async with self._start_lock:
            if self._task is not None:
                return
            self._commands = self._connector.fast(self.keys.client_name() + ":qe-cmd", route_key=self.keys.base)
            self._client = self._connector.blocking(self.keys.client_name() + ":qe", route_key=self.keys.base)
            self._last_id = from_id or await self._stream_end()
            self._task = asyncio.create_task(self._read_loop(self._client), name=f"bullbridge-events-{self.keys.name}")

    def _follow_loop(self) -> None:
        """On another event loop than before, let go of the old one's reader and connections."""
        if self._affinity.moved():
            self._let_go()

    def _let_go(self) -> None:
        """Forget the reader, connections, waiters and subscribers of the loop this
        was used on, without calling into it (it is closed, or a forked parent's);
        its reader task stops by itself if that loop ever runs again."""
        self._task = None
        for client in (self._client, self._commands):
            if client is not None:
                self._connector.abandon(client)
        self._client = self._commands = None
        self._start_lock = asyncio.Lock()
        self._waiters = {}
        self._subscribers = []
        self._last_id = "$"

    def abandon(self) -> None:
        """Close for good without the event loop this was used on (its owner moved to
        another loop); nothing is sent through, or scheduled on, that loop."""
        self._closed = True
        self._let_go()

    async def _stream_end(self) -> str:
        assert self._commands is not None
        last = await self._commands.execute("XREVRANGE", self.keys["events"], "+", "-", "COUNT", 1)
        return last[0][0].decode() if last else "0-0"

    async def _read_loop(self, client: RespClient) -> None:
        key = self.keys["events"]
        timeout = self._block_ms / 1000 + client.block_margin  # a black-holed link: noticed within 7.25 s
        delay = 0.05
        while not self._closed and self._client is client:
            try:
                reply = await client.execute(
                    "XREAD", "BLOCK", self._block_ms, "COUNT", 1000, "STREAMS", key, self._last_id, timeout=timeout
                )
                delay = 0.05
            except RespConnectionError as exc:
                if self._closed or self._client is not client:
                    return
                log.warning("queue events for %s: %s; retrying", self.keys.name, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if not reply:
                continue
            for _stream, entries in reply:
                for entry_id, flat in entries:
                    self._last_id = entry_id.decode()
                    self._dispatch(self._last_id, flat)

    def _dispatch(self, entry_id: str, flat: list[bytes]) -> None:
        it = iter(flat)
        fields = {k.decode(): v.decode("utf-8", "replace") for k, v in zip(it, it)}
        event = QueueEvent(fields.get("event", ""), fields.get("jobId"), fields, entry_id)
        for q in self._subscribers:
            q.put_nowait(event)
        if event.job_id and event.event in ("completed", "failed"):
            for fut in self._waiters.pop(event.job_id, []):
                if not fut.done():
                    fut.set_result(
                        Outcome(
                            event.event, event.returnvalue if event.event == "completed" else None, event.failed_reason
                        )
                    )

    async def __aiter__(self) -> AsyncIterator[QueueEvent]:
        q: asyncio.Queue[QueueEvent] = asyncio.Queue()
        self._subscribers.append(q)
        try:
            while True:
                yield await q.get()
        finally:
            self._subscribers.remove(q)

    async def wait_for(self, job_id: str, timeout: float | None = 30.0) -> Outcome:
        """Wait until the job completes or fails, in either language.

        Raises :class:`JobTimeout` after ``timeout`` seconds."""
        await self.start()
        assert self._commands is not None
        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(job_id, []).append(fut)
        # The reader already reads from a position taken before this check.
        done = await self._finished_state(job_id)
        if done is not None and not fut.done():
            fut.set_result(done)
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise JobTimeout(f"job {job_id} of queue {self.keys.name} did not finish within {timeout} s") from None
        finally:
            waiters = self._waiters.get(job_id)
            if waiters and fut in waiters:
                waiters.remove(fut)
                if not waiters:
                    del self._waiters[job_id]

    async def result(self, job_id: str, timeout: float | None = 30.0) -> Any:
        """The job's return value; :class:`JobFailed` if it failed."""
        outcome = await self.wait_for(job_id, timeout)
        if outcome.state == "failed":
            raise JobFailed(job_id, outcome.failed_reason or "")
        return outcome.returnvalue

    async def _finished_state(self, job_id: str) -> Outcome | None:
        assert self._commands is not None
        k = self.keys
        completed, failed, values = await self._commands.execute_many(
            [
                ("ZSCORE", k["completed"], job_id),
                ("ZSCORE", k["failed"], job_id),
                ("HMGET", k.job(job_id), "returnvalue", "failedReason"),
            ]
        )
        if completed is not None:
            return Outcome("completed", codec.decode(values[0]) if values[0] is not None else None)
        if failed is not None:
            return Outcome("failed", failed_reason=values[1].decode("utf-8", "replace") if values[1] else "")
        if await self._commands.execute("EXISTS", k.job(job_id)):
            return None
        # No hash: removed on completion (removeOnComplete/Fail) before we looked.
        # Its outcome is still in the recent events.
        return await self._outcome_from_stream(job_id)

    async def _outcome_from_stream(self, job_id: str, depth: int = 5000) -> Outcome | None:
        assert self._commands is not None
        entries = await self._commands.execute("XREVRANGE", self.keys["events"], "+", "-", "COUNT", depth)
        wanted = job_id.encode()
        for _entry_id, flat in entries or []:
            it = iter(flat)
            fields = dict(zip(it, it))
            if fields.get(b"jobId") == wanted and fields.get(b"event") in (b"completed", b"failed"):
                event = fields[b"event"].decode()
                if event == "completed":
                    raw = fields.get(b"returnvalue")
                    return Outcome("completed", codec.decode(raw) if raw is not None else None)
                return Outcome("failed", failed_reason=fields.get(b"failedReason", b"").decode("utf-8", "replace"))
        return None

    async def close(self) -> None:
        self._follow_loop()
        self._closed = True
        task, self._task = self._task, None
        if self._client is not None:
            await self._client.close()
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        for waiters in self._waiters.values():
            for fut in waiters:
                if not fut.done():
                    fut.cancel()
        self._waiters.clear()
        for client in (self._client, self._commands):
            if client is not None:
                await client.close()
        if self._owns_connector:
            await self._connector.close()

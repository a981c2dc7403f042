"""Health: a heartbeat in Redis, liveness/readiness over HTTP, and ``bullbridge check``.

* :class:`Heartbeat` writes ``<prefix>:bullbridge:health:<name>`` every few
  seconds with a TTL of three intervals: a JSON report (state, queues, active
  and finished counts). A process that stops writing it disappears from Redis.
* :class:`HealthServer` answers ``GET /livez`` (the event loop is running),
  ``GET /readyz`` (running and connected, not draining) and ``GET /health``
  (the report as JSON) - Kubernetes probes without any web framework.
* :func:`check` reads the heartbeats, like ``arq --check``: the CLI exits
  non-zero when a named process (or every process) is missing or stale.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from bullbridge.aio import cancel_and_wait
from bullbridge.clock import now_ms
from bullbridge.connection import RedisConnector
from bullbridge.connection.resp import RespClient, RespConnectionError, RespError
from bullbridge.errors import CannotListen
from bullbridge.jsonapi import camel, to_json
from bullbridge.keys import glob_escape, scan

log = logging.getLogger("bullbridge.health")


def health_key(prefix: str, name: str = "") -> str:
    return f"{prefix}:bullbridge:health:{name}"


@dataclass
class HealthReport:
    """What one worker process says about itself."""

    name: str
    state: str
    pid: int
    host: str
    queues: list[str]
    active: int = 0
    #: Outcomes Redis recorded (the worker counts an outcome only once it is in Redis).
    completed: int = 0
    failed: int = 0
    #: Outcomes Redis did not record (``finishFailed``) and locks lost (``lockLost``):
    #: each job will run again through BullMQ's stall recovery.
    finish_failed: int = 0
    lost_locks: int = 0
    ts: int = 0
    redis_connected: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def age(self) -> float:
        return max(0.0, time.time() - self.ts / 1000)

    def to_json(self) -> str:
        """The report as bullbridge's JSON API spells it (camelCase: ``redisConnected``)."""
        return json.dumps(to_json(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> HealthReport:
        data = json.loads(raw)
        # Rolling upgrade: workers released before the JSON API became camelCase still
        # write snake_case keys (``redis_connected``) into Redis, and ``bullbridge check``
        # must keep reading them while both versions run. The camelCase key wins.
        values = {}
        for f in fields(cls):
            for key in (camel(f.name), f.name):
                if key in data:
                    values[f.name] = data[key]
                    break
        return cls(**values)


class Heartbeat:
    """Writes the report returned by ``report()`` every ``interval`` seconds."""

    def __init__(
        self, client: RespClient, prefix: str, name: str, report: Callable[[], HealthReport], interval: float = 5.0
    ) -> None:
        self.client = client
        self.key = health_key(prefix, name)
        self.report = report
        self.interval = interval
        self.last_ok = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._loop())

    async def beat(self) -> bool:
        if not self.client.connected and self.last_ok:
            # Redis is away: do not queue behind the reconnect (the next beat retries).
            self.client.connection_soon()
            return False
        report = self.report()
        report.ts = now_ms()
        try:
            await asyncio.wait_for(
                self.client.execute("SET", self.key, report.to_json(), "PX", int(self.interval * 3000)), self.interval
            )
        except (RespConnectionError, RespError, TimeoutError) as exc:
            log.debug("heartbeat not written: %s", exc)
            return False
        self.last_ok = time.monotonic()
        return True

    async def _loop(self) -> None:
        while True:
            await self.beat()
            await asyncio.sleep(self.interval)

    async def stop(self, final_state: str | None = "stopped") -> None:
        await cancel_and_wait(self._task)
        self._task = None
        if final_state and self.client.connected:
            try:
                await asyncio.wait_for(self.client.execute("DEL", self.key), 0.5)
            except (RespConnectionError, RespError, TimeoutError):
                pass
        await self.client.close()


async def read_reports(connector: RedisConnector, prefix: str = "bull") -> list[HealthReport]:
    """Every heartbeat currently in Redis (SCAN, never KEYS)."""
    client = connector.fast("bullbridge-check", retry_for=min(5.0, connector.settings.retry_for))
    try:
        reports: list[HealthReport] = []
        async for keys in scan(client, health_key(glob_escape(prefix), "*")):
            values = await client.execute("MGET", *keys)
            reports.extend(HealthReport.from_json(v) for v in values if v)
        return sorted(reports, key=lambda r: r.name)
    finally:
        await client.close()


async def check(
    connector: RedisConnector, *, name: str | None = None, prefix: str = "bull", max_age: float = 30.0
) -> tuple[bool, list[HealthReport]]:
    """``(healthy, reports)``: healthy when the named process (or at least one,
    with no name) has a heartbeat younger than ``max_age`` and is not stopped."""
    reports = await read_reports(connector, prefix)
    if name is not None:
        reports = [r for r in reports if r.name == name]
    fresh = [r for r in reports if r.age <= max_age and r.state in ("running", "starting", "draining")]
    return (bool(fresh) and len(fresh) == len(reports)), reports


#: The whole request head must arrive within this many seconds (a slow client cannot hold a probe slot).
REQUEST_DEADLINE = 2.0
#: Longest request line or header line; longer ones get ``431`` and the connection is closed.
MAX_LINE = 8192
#: Most header lines read from one request.
MAX_HEADERS = 64
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


class HealthServer:
    """A tiny HTTP/1.1 server for probes (no framework needed).

    Binds ``127.0.0.1`` unless told otherwise (``--health-host 0.0.0.0`` in a
    Kubernetes pod, where the kubelet probes the pod's IP); the report names the
    host, pid and queues, so it is not for the open network. Each request must
    send its head within :data:`REQUEST_DEADLINE` seconds in lines of at most
    :data:`MAX_LINE` bytes."""

    def __init__(
        self, report: Callable[[], HealthReport], ready: Callable[[], bool], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.report = report
        self.ready = ready
        self.host = host
        self.port = port
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self.port, limit=MAX_LINE)
        except OSError as exc:
            raise CannotListen(
                f"the health endpoint cannot listen on {self.host}:{self.port} ({exc.strerror or exc}): "
                "choose another --health-port, or stop what uses it"
            ) from None
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("health endpoint on http://%s:%d (/livez, /readyz, /health)", self.host, self.port)
        return self.port

    async def _read_path(self, reader: asyncio.StreamReader) -> str:
        """The request's path, after reading (and ignoring) its headers."""
        request = await reader.readline()
        for _ in range(MAX_HEADERS):
            if (await reader.readline()) in (b"\r\n", b"\n", b""):
                break
        parts = request.decode("latin-1").split()
        return parts[1] if len(parts) > 1 else "/"

    def _answer(self, path: str) -> tuple[int, str]:
        if path == "/livez":
            return 200, "ok\n"
        if path == "/readyz":
            return (200, "ready\n") if self.ready() else (503, "not ready\n")
        if path in ("/health", "/"):
            return 200, self.report().to_json() + "\n"
        return 404, "not found\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                path = await asyncio.wait_for(self._read_path(reader), REQUEST_DEADLINE)
                status, body = self._answer(path)
            except TimeoutError:
                status, body = 408, "request head not received in time\n"
            except (ValueError, asyncio.LimitOverrunError, asyncio.IncompleteReadError):
                status, body = 431, "request line or header too long\n"
            payload = body.encode()
            kind = "application/json" if body.startswith("{") else "text/plain"
            writer.write(
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {kind}\r\nContent-Length: {len(payload)}"
                "\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await asyncio.wait_for(writer.drain(), REQUEST_DEADLINE)
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

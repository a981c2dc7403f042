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
    client = connector.fast("bullbridge-check", retry_for=5.0)
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


class HealthServer:
    """A tiny HTTP/1.1 server for probes (no framework needed)."""

    def __init__(
        self, report: Callable[[], HealthReport], ready: Callable[[], bool], host: str = "0.0.0.0", port: int = 0
    ) -> None:
        self.report = report
        self.ready = ready
        self.host = host
        self.port = port
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("health endpoint on http://%s:%d (/livez, /readyz, /health)", self.host, self.port)
        return self.port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request.decode("latin-1").split()
            path = parts[1] if len(parts) > 1 else "/"
            if path == "/livez":
                status, body = 200, "ok\n"
            elif path == "/readyz":
                ok = self.ready()
                status, body = (200, "ready\n") if ok else (503, "not ready\n")
            elif path in ("/health", "/"):
                status, body = 200, self.report().to_json() + "\n"
            else:
                status, body = 404, "not found\n"
            payload = body.encode()
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            kind = "application/json" if body.startswith("{") else "text/plain"
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {len(payload)}"
                "\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

"""The monitor's one Redis client: pipelined reads and BullMQ's read scripts.

Every read of the monitor goes through :class:`Reader`, a thin layer over the
pipelining :class:`~bullbridge.connection.resp.RespClient`. Commands issued by concurrent
tasks in the same loop tick leave in one write, so gathering the reads of
several concerns (counts, sample, throughput...) of several queues costs a
couple of round trips, not hundreds.

BullMQ's own scripts (``getCounts``, ``getMetrics``, ``getRanges``,
``getStateV2``...) are loaded on every new
connection, so they can sit inside a pipeline; a ``NOSCRIPT`` reply (a
``SCRIPT FLUSH`` or a server restart since) reloads them and re-sends once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from bullbridge import scripts
from bullbridge.connection import RedisConnector, parse_info, parse_version
from bullbridge.connection.resp import Arg, RespClient, RespConnection, RespError
from bullbridge.errors import BullbridgeError

log = logging.getLogger("bullbridge.monitor.reader")

#: Scripts the monitor runs; loaded once per connection.
READ_SCRIPTS = ("getCounts", "getMetrics", "getRanges", "getStateV2", "getState")
#: Scripts of the operator actions (loaded on first use, through :func:`scripts.run`).
ACTION_SCRIPTS = ("moveJobsToWait", "cleanJobsInSet", "pause", "drain", "promote", "reprocessJob", "removeJob")

#: CLIENT SETNAME of the monitor's connection: matches no worker pattern of
#: Node's ``getWorkers()`` nor of the monitor's own classification.
CLIENT_NAME = "bullbridge-monitor"


class MonitorError(BullbridgeError):
    """A monitor read or action failed (bad queue layout, refused action...)."""


class Reader:
    """Pipelined reads on one connection, with BullMQ's read scripts preloaded."""

    def __init__(self, connector: RedisConnector, *, command_timeout: float | None = None) -> None:
        self._connector = connector
        self._client: RespClient | None = None
        self._command_timeout = command_timeout
        self._version: tuple[int, int, int] | None = None

    @property
    def client(self) -> RespClient:
        """The pipelining client (created on first use; connects lazily)."""
        if self._client is None:
            client = self._connector.fast(CLIENT_NAME)
            client.add_on_connect(self._preload)
            self._client = client
        return self._client

    @staticmethod
    async def _preload(conn: RespConnection) -> None:
        await scripts.preload(conn, READ_SCRIPTS)

    async def execute(self, *args: Arg) -> Any:
        """One command; an error reply raises :class:`~bullbridge.connection.resp.RespError`."""
        return (await self.pipeline([args]))[0]

    async def pipeline(self, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        """Send all commands in one write and return their replies in order.

        An error reply raises (the first one); ``NOSCRIPT`` reloads the scripts and
        re-sends the commands once."""
        if not commands:
            return []
        replies = await self._send(commands)
        if any(isinstance(r, RespError) and r.prefix == "NOSCRIPT" for r in replies):
            log.info("scripts were flushed from Redis; reconnecting to load them again")
            self.client.drop()  # the on-connect hook preloads them on every node
            replies = await self._send(commands)
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return replies

    #: The :class:`~bullbridge.keys.Pipelines` name of :meth:`pipeline` (RespClient's), so the
    #: library's reads that take a client (schedulers, a parent's children) take a Reader too.
    execute_many = pipeline

    async def _send(self, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        return await self.client.execute_many(commands, timeout=self._command_timeout, return_exceptions=True)

    def script(self, name: str, keys: Sequence[Arg], args: Sequence[Arg]) -> tuple[Arg, ...]:
        """The EVALSHA command of a preloaded script, for :meth:`pipeline`."""
        return scripts.evalsha_command(name, keys, args)

    async def run_script(self, name: str, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        """Run any BullMQ script (loading it when Redis does not know it yet)."""
        return await scripts.run(self.client, name, keys, args, timeout=self._command_timeout)

    async def server_version(self) -> tuple[int, int, int]:
        """The Redis version (asked once): decides getStateV2 (LPOS, >= 6.0.6) or getState."""
        if self._version is None:
            info = parse_info(await self.execute("INFO", "server"))
            self._version = parse_version(info.get("redis_version") or info.get("valkey_version") or "0.0.0")
        return self._version

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()


def text(raw: Any) -> str | None:
    """A reply as ``str`` (bulk strings are ``bytes``); ``None`` stays ``None``."""
    if raw is None:
        return None
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace")
    return str(raw)


def integer(raw: Any) -> int | None:
    """A numeric reply or field as ``int`` (``None`` when missing or not a number)."""
    if raw is None or raw == b"":
        return None
    if type(raw) is int:
        return raw
    try:
        return int(raw)
    except (TypeError, ValueError):
        try:
            return int(float(raw))
        except (TypeError, ValueError, OverflowError):  # not a number, NaN, or 1e400 (Infinity)
            return None

"""A pipelining client whose every call has a deadline.

Every :class:`~bullbridge.queue.Queue` and
:class:`~bullbridge.flows.FlowProducer` call goes through one: while Redis is
unreachable, reconnecting is retried for ``timeout`` seconds and the call then
raises :class:`~bullbridge.errors.RedisUnavailable`, instead of hanging (the
port and Node both hang for minutes, docs/port-differences.md).

A link follows the event loop it is used from: called on another loop than
before (a module-level queue used by one ``asyncio.run(...)`` after another, a
forked child), it lets go of the old loop's connections without touching that
loop (:meth:`RespClient.abandon`) and connects again on the current one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

from bullbridge import scripts
from bullbridge.aio import LoopAffinity
from bullbridge.connection import RedisConnector
from bullbridge.connection.replies import explain
from bullbridge.connection.resp import RespClient, RespConnectionError, RespError
from bullbridge.errors import (
    ConfigurationError,
    RedisAuthError,
    RedisRefused,
    RedisRefusing,
    RedisTlsError,
    RedisUnavailable,
    RedisUnknownHost,
    RedisWriteUncertain,
)
from bullbridge.redact import redact

T = TypeVar("T")


class RedisLink:
    """A pipelining client whose every call has a deadline.

    While Redis is unreachable, reconnecting is retried for ``timeout``
    seconds and a call then raises :class:`RedisUnavailable`; a server that
    accepts but never answers fails the call after ``timeout`` too."""

    def __init__(
        self,
        connector: RedisConnector,
        name: str,
        timeout: float,
        *,
        owns_connector: bool,
        route_key: str | None = None,
        owner: str = "this queue",
        on_new_loop: Callable[[], None] | None = None,
    ) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.connector = connector
        self.name = name
        self.timeout = float(timeout)
        self._owns_connector = owns_connector
        self._route_key = route_key
        self._clients: dict[str, RespClient] = {}
        self._affinity = LoopAffinity(owner)
        self._on_new_loop = on_new_loop

    def follow_loop(self) -> None:
        """Make sure this link's state belongs to the running event loop: on a new
        one, let go of the old loop's clients and tell the owner (which drops its
        own loop-bound state), so the next call connects afresh. Raises
        :class:`~bullbridge.errors.EventLoopConflict` when the old loop is still
        running in another thread."""
        if not self._affinity.moved():
            return
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            self.connector.abandon(client)
        if self._on_new_loop is not None:
            self._on_new_loop()

    def client(self, role: str = "producer") -> RespClient:
        """The client for ``role`` on the running loop (created on first use, scripts preloaded)."""
        self.follow_loop()
        client = self._clients.get(role)
        if client is None:
            client = self.connector.fast(f"{self.name}:{role}", retry_for=self.timeout, route_key=self._route_key)
            client.endpoint = replace(client.endpoint, command_timeout=self.timeout)
            client.add_on_connect(scripts.preload)
            self._clients[role] = client
        return client

    async def call(self, awaitable: Awaitable[T], what: str) -> T:
        """Await with the deadline. Connection trouble becomes :class:`RedisUnavailable`
        (the precise subclass when the cause is known: refused, authentication, TLS, a
        refusal that outlasted its retries, a write a failover left uncertain) saying what
        happened and after how long; an error reply becomes the
        :func:`~bullbridge.connection.replies.explain`-ed error."""
        where = self.connector.settings.describe()
        started = time.monotonic()
        try:
            return await asyncio.wait_for(awaitable, self.timeout)
        except (RedisAuthError, RedisTlsError, RedisRefused, RedisUnknownHost) as exc:
            raise type(exc)(f"{what}: {exc}") from exc
        except RedisRefusing as exc:
            raise RedisRefusing(f"{what}: {exc}", exc.code) from exc
        except RedisWriteUncertain as exc:
            raise RedisWriteUncertain(f"{what}: {exc}") from exc
        except TimeoutError as exc:
            now = time.monotonic()
            refusing = next(
                (c.refusing for c in self._clients.values() if c.refusing and now - c.refused_at < 1.0), None
            )
            if refusing:
                raise RedisRefusing(
                    f"{what}: Redis at {where} refused the command with {refusing}, until the call's "
                    f"{self.timeout:g} s timeout (it did not run)",
                    refusing.split()[0],
                ) from exc
            cause = str(exc) or next((c.last_error for c in self._clients.values() if c.last_error), None)
            raise RedisUnavailable(
                f"{what}: Redis at {where} did not answer within {self.timeout:g} s ({redact(cause or 'no reply')})"
            ) from exc
        except RespConnectionError as exc:
            raise RedisUnavailable(
                f"{what}: {redact(exc)}, after {time.monotonic() - started:.3g} s"
                f"{'; it may or may not have been done' if _was_sent(exc) else ''}"
            ) from exc
        except RespError as exc:
            raise explain(exc, where, what) from exc

    async def close(self) -> None:
        self.follow_loop()
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()
        if self._owns_connector:
            await self.connector.close()


def _was_sent(exc: RespConnectionError) -> bool:
    """Whether the command may have reached Redis before the connection broke (a lost
    connection, a missed deadline), as opposed to never leaving (no connection at all)."""
    return "not connected" not in str(exc) and "no connection to Redis" not in str(exc)

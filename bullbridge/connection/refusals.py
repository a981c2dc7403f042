"""Refusals and failovers, for the pipelining client: which error replies mean "the command
did not run, try again (elsewhere)", what a dropped connection means in words, and the
fence that holds a demoted master's replies until a replica confirms them.

Kept apart from :mod:`bullbridge.connection.resp` so that module's hot path stays small.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from bullbridge.errors import RedisWriteUncertain, RespConnectionError, RespError

log = logging.getLogger("bullbridge.connection")

#: Error replies meaning "not here, or not now": the command did not run. With a resolver
#: (Sentinel, Cluster) they are retried with backoff, on the node it names, for ``refusal_retry_for``.
REDIRECTS = frozenset({"MOVED", "ASK", "READONLY", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS", "LOADING", "MASTERDOWN"})
#: Refusals that pass on the same node (a master loading, without enough replicas, failing
#: over): retried even without a resolver.
PASSING_HERE = frozenset({"LOADING", "NOREPLICAS", "MASTERDOWN", "TRYAGAIN"})
#: A retried refusal is logged once per cause per this many seconds, for all clients together.
SAY_EVERY = 5.0
_said: dict[str, float] = {}


def refusal_code(exc: BaseException) -> str | None:
    """Redis's word when ``exc`` is an error reply meaning "not here, or not now" (see
    :data:`REDIRECTS`), else None. Inside a Lua script Redis < 7 wraps it:
    ``ERR Error running script ...: -NOREPLICAS Not enough good replicas``."""
    if not isinstance(exc, RespError):
        return None
    if exc.prefix in REDIRECTS:
        return exc.prefix
    text = str(exc)
    if text.startswith("ERR"):
        return next((code for code in REDIRECTS if f"-{code} " in text), None)
    return None


def is_redirect(exc: BaseException) -> bool:
    """An error reply meaning "ask another node, or again later": the command did not run."""
    return refusal_code(exc) is not None


def say_once(key: str, message: str, *args: Any, level: int = logging.WARNING) -> None:
    """Log ``message`` unless the same ``key`` was logged in the last :data:`SAY_EVERY` seconds."""
    now = time.monotonic()
    if now - _said.get(key, -SAY_EVERY) >= SAY_EVERY:
        _said[key] = now
        log.log(level, message, *args)


def lost_error(exc: Exception | None, where: str, *, dropped: bool = False) -> RespConnectionError:
    """What a dropped connection means, in words: reset, closed by the server, closed by this
    client (``dropped``: it moved to another node, or was closed), or another cause."""
    if dropped and exc is None:
        return RespConnectionError(f"the connection to Redis at {where} was closed by this client (moved or closed)")
    if exc is None:
        return RespConnectionError(f"the connection to Redis at {where} was closed by the server")
    if isinstance(exc, ConnectionResetError):
        return RespConnectionError(f"the connection to Redis at {where} was reset (the server went away)")
    return RespConnectionError(f"the connection to Redis at {where} broke: {exc}")


async def confirm_in_flight(conn: Any, wait_ms: int, name: str) -> None:
    """Fence a connection to a master that is being demoted: hold the replies of the commands
    still in flight on it until ``WAIT 1 wait_ms`` says whether a replica has their writes.
    Confirmed, they are delivered; otherwise each fails with :class:`RedisWriteUncertain` (it
    may or may not have been applied), never an acknowledgement the new master may not have.
    ``conn`` is a :class:`~bullbridge.connection.resp.RespConnection` (not imported: no cycle)."""
    pending = conn._protocol.pending
    held: list[tuple[asyncio.Future[Any], asyncio.Future[Any]]] = []
    for i, (fut, deadline) in enumerate(pending):
        inner: asyncio.Future[Any] = conn._loop.create_future()
        pending[i] = (inner, deadline)
        held.append((fut, inner))
    acked = 0
    if held:
        try:
            acked = int(await conn.execute("WAIT", 1, wait_ms, timeout=wait_ms / 1000 + 1.0))
        except (RespError, RespConnectionError):
            acked = 0
    where = conn.endpoint.describe()
    for fut, inner in held:
        error = inner.exception() if inner.done() else lost_error(None, where)
        if fut.done():
            continue
        if error is not None:
            fut.set_exception(error)
        elif acked >= 1:
            fut.set_result(inner.result())
        else:
            fut.set_exception(
                RedisWriteUncertain(
                    f"Redis at {where} was handing over to a new master when this command ran and no replica "
                    f"confirmed it within {wait_ms} ms: it may or may not have been applied ({name or 'unnamed'})"
                )
            )
    if held:
        log.info(
            "fenced %s at %s: %d command(s) in flight, %s",
            name,
            where,
            len(held),
            "confirmed" if acked else "uncertain",
        )
    conn.close()


async def close_when_idle(conn: Any, limit: float = 10.0) -> None:
    """Close a connection this client moved away from once the replies still due on it have
    arrived (other callers' commands, which a redirect answers one by one), or after ``limit``
    seconds: aborting it would fail them as if the connection had broken."""
    deadline = time.monotonic() + limit
    while conn.connected and conn._protocol.pending and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    conn.close()

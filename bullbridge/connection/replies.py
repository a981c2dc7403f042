"""Error replies from Redis, explained: :func:`explain` turns a raw ``RespError`` into a
sentence that keeps Redis's own words and says what to do.

The RESP client raises error replies as they come (``OOM command not allowed...``,
``MOVED 9263 10.0.0.5:6379``); the API boundaries (``Queue``, ``FlowProducer``,
the CLI, the dashboard) pass them through :func:`explain`, so a caller sees
:class:`~bullbridge.errors.RedisOutOfMemory`, :class:`~bullbridge.errors.RedisReadOnly`,
:class:`~bullbridge.errors.RedisClusterRedirect`, :class:`~bullbridge.errors.RedisAuthError`...
- each still a ``RespError`` (or, for authentication, a ``ConnectionError``) with
``reply`` and ``prefix`` as Redis sent them.
"""

from __future__ import annotations

import re

from bullbridge.errors import (
    BullbridgeError,
    RedisAuthError,
    RedisClusterRedirect,
    RedisCommandError,
    RedisNoPermission,
    RedisOutOfMemory,
    RedisReadOnly,
    RespError,
)
from bullbridge.redact import redact

#: Inside a Lua script, Redis < 7 wraps a command's error: ``ERR Error running script ...: -OOM ...``.
_WRAPPED = re.compile(r"(?:^|: |\s)-([A-Z]{3,}) ")
_CLUSTER = ("MOVED", "ASK", "CLUSTERDOWN", "TRYAGAIN", "CROSSSLOT")


def reply_code(exc: RespError) -> str:
    """Redis's error code (``OOM``, ``READONLY``...), looking inside a script's wrapped error."""
    prefix = exc.prefix
    if prefix not in ("ERR", "") and prefix.isupper():
        return prefix
    wrapped = _WRAPPED.search(exc.reply)
    return wrapped.group(1) if wrapped else prefix


def explain(exc: RespError, where: str | None = None, doing: str | None = None) -> BullbridgeError:
    """The error to raise instead of ``exc``: a sentence with Redis's words (``reply``) and a fix.
    ``where`` names the server (``host:port/db``), ``doing`` what was being done."""
    if isinstance(exc, RedisCommandError):
        return exc
    code, said = reply_code(exc), redact(exc.reply)
    head = f"{doing}: " if doing else ""
    server = f"Redis at {where}" if where else "Redis"
    if code == "OOM":
        return RedisOutOfMemory(
            exc.reply,
            f"{head}{server} is out of memory and refuses writes ({said}): raise maxmemory, or remove "
            "finished jobs (remove_on_complete / queue clean); keep maxmemory-policy noeviction",
        )
    if code == "READONLY":
        return RedisReadOnly(
            exc.reply,
            f"{head}{server} is a read-only replica ({said}): point the URL at the master, "
            "or use redis+sentinel:// to follow it",
        )
    if code in _CLUSTER:
        return RedisClusterRedirect(
            exc.reply,
            f"{head}{server} is a Redis Cluster node ({said}): connect with redis+cluster://HOST:PORT "
            "and put a hash tag in the queue name or prefix (docs/connection.md)",
        )
    if code in ("NOAUTH", "WRONGPASS"):
        return RedisAuthError(f"{head}{server} refused the command ({said}): put the right password in the URL")
    if code == "NOPERM":
        return RedisNoPermission(
            exc.reply,
            f"{head}the Redis user may not do this ({said}): allow it BullMQ's commands and keys "
            "(e.g. ACL SETUSER <user> +@all ~<prefix>:*)",
        )
    if code == "MISCONF":
        return RedisCommandError(
            exc.reply, f"{head}{server} cannot save to disk and refuses writes ({said}): fix its persistence"
        )
    if code in ("LOADING", "BUSY", "MASTERDOWN"):
        return RedisCommandError(exc.reply, f"{head}{server} is not ready ({said}): retry in a moment")
    return RedisCommandError(exc.reply, f"{head}{server} answered an error: {said}")

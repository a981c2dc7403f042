"""A small RESP2 client for the hot paths: many commands in flight on one socket.

Why not redis-py here: the port runs every command through redis-py's asyncio
path on one connection, serialised behind a lock, and its worker stays at
2,700-3,100 jobs/s whatever its concurrency, at 250-310 µs of client CPU per job
(docs/port-differences.md#speed). This layer keeps every command pipelined:

* an ``asyncio.Protocol`` (no stream reader/writer objects per command);
* hiredis's C reader parses replies, ``hiredis.pack_command`` encodes commands;
* a command is written the moment it is issued (a pipeline in one write);
* replies resolve futures in FIFO order, so any number of tasks share one
  connection without a lock.

Replies are raw: bulk strings are ``bytes``, integers ``int``, arrays ``list``,
nil ``None``; an error reply is raised as :class:`RespError`. Decoding is the
caller's business (job hashes are decoded lazily, field by field).

:class:`RespClient` adds reconnection with backoff, one watchdog per connection
(a hung server fails commands instead of hanging them; an idle connection is
PINGed and a silent one dropped, so a black-holed link is noticed: docs/faults.md), and hooks that
run on every (re)connect (AUTH, SELECT, CLIENT SETNAME, SCRIPT LOAD).
Commands in flight when a connection drops fail with
:class:`RespConnectionError`; they are not re-sent blindly, since a BullMQ
script may have run before the reply was lost. Callers decide.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import socket
import ssl as ssl_module
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import hiredis

from bullbridge.connection.refusals import (
    PASSING_HERE,
    SAY_EVERY,
    close_when_idle,
    confirm_in_flight,
    is_redirect,
    lost_error,
    refusal_code,
    say_once,
)
from bullbridge.connection.replies import explain
from bullbridge.errors import (
    RedisAuthError,
    RedisCommandError,
    RedisRefused,
    RedisRefusing,
    RedisTlsError,
    RedisUnknownHost,
    RespConnectionError,
    RespError,
    RespTimeoutError,
)
from bullbridge.redact import redact

__all__ = [
    "BLOCK_MARGIN",
    "Arg",
    "ConnectionEvents",
    "Endpoint",
    "RedisAuthError",
    "RedisRefused",
    "RedisTlsError",
    "RedisUnknownHost",
    "RespClient",
    "RespConnection",
    "RespConnectionError",
    "RespError",
    "RespTimeoutError",
    "is_redirect",
]

log = logging.getLogger("bullbridge.connection.resp")

Arg = bytes | str | int | float
_pack = hiredis.pack_command
#: How often each connection's one watchdog looks at its deadlines and liveness (seconds).
WATCHDOG_TICK = 0.25
#: What a blocking command's deadline adds to its block time (reply latency, a loaded host).
BLOCK_MARGIN = 2.0


@dataclass(frozen=True)
class Endpoint:
    """Where and how to connect. Built by :mod:`bullbridge.connection`."""

    host: str = "127.0.0.1"
    port: int = 6379
    unix_path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl: ssl_module.SSLContext | None = None
    connect_timeout: float = 5.0
    command_timeout: float | None = 10.0
    #: Liveness (docs/faults.md): a connection with nothing in flight for ``idle_ping`` s sends a
    #: PING; one whose oldest command got no reply for ``stall_timeout`` s is dropped (on a
    #: client without a ``command_timeout``, a blocking one, only each command's own deadline counts).
    idle_ping: float | None = 2.0
    stall_timeout: float | None = 5.0
    #: Refuse the connection unless ``ROLE`` says master (Sentinel: a node that was
    #: just demoted still answers, but markers and writes now land elsewhere).
    require_master: bool = False

    def describe(self) -> str:
        return self.unix_path or f"{self.host}:{self.port}/{self.db}"


class _Protocol(asyncio.Protocol):
    """Parses replies and resolves the futures of the commands, in order."""

    __slots__ = ("_loop", "_on_lost", "_reader", "closed", "dropped", "pending", "transport", "where")

    def __init__(self, loop: asyncio.AbstractEventLoop, on_lost: Callable[[Exception | None], None]) -> None:
        self._loop = loop
        self._reader = hiredis.Reader(replyError=RespError)
        self.pending: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = loop.create_future()
        self._on_lost = on_lost
        self.where = "?"
        #: Set when this side closes the connection (a move, a close): not the server's doing.
        self.dropped = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; same interface.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        pending = self.pending
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:  # pragma: no cover - corrupt stream
                log.error("RESP protocol error, dropping connection: %s", exc)
                if self.transport is not None:
                    self.transport.abort()
                return
            if reply is False:
                return
            if not pending:  # pragma: no cover - a reply nobody asked for
                log.warning("unexpected reply from Redis: %r", reply)
                continue
            fut = pending.popleft()[0]
            if fut.done():
                continue
            if isinstance(reply, RespError):
                fut.set_exception(reply)
            else:
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        error = lost_error(exc, self.where, dropped=self.dropped)
        while self.pending:
            fut = self.pending.popleft()[0]
            if not fut.done():
                fut.set_exception(error)
        if not self.closed.done():
            self.closed.set_result(None)
        self._on_lost(exc)


class RespConnection:
    """One connection; ``execute`` pipelines, a loop tick's commands go out in one write."""

    def __init__(self, endpoint: Endpoint, on_lost: Callable[[Exception | None], None] | None = None) -> None:
        self.endpoint = endpoint
        self._loop = asyncio.get_running_loop()
        self._protocol = _Protocol(self._loop, on_lost or (lambda exc: None))
        self._protocol.where = endpoint.describe()
        self._watchdog: asyncio.TimerHandle | None = None
        self._head: asyncio.Future[Any] | None = None
        self._head_since = self._loop.time()
        #: The watchdog sleeps until its next event is due instead of ticking when nothing it
        #: watches can change on its own (see _doze); the next command sent wakes it.
        self._dozing = False
        #: Set once the client's setup (AUTH, SELECT, hooks) ran: a timeout before that is a failed
        #: connection attempt, which the reconnect loop reports once, not a dropped connection.
        self.established = False

    async def open(self) -> None:
        ep = self.endpoint
        if ep.unix_path:
            coro = self._loop.create_unix_connection(lambda: self._protocol, ep.unix_path)
        else:
            coro = self._loop.create_connection(
                lambda: self._protocol,
                ep.host,
                ep.port,
                ssl=ep.ssl,
                server_hostname=ep.host if ep.ssl else None,
                # A plain-text server never answers a ClientHello: say so as a TLS error, not a timeout.
                ssl_handshake_timeout=ep.connect_timeout if ep.ssl else None,
            )
        try:
            await asyncio.wait_for(coro, ep.connect_timeout + (1.0 if ep.ssl else 0.0))
        except (TimeoutError, OSError) as exc:
            raise connect_error(exc, ep) from exc
        transport = self._protocol.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None and not ep.unix_path:
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:  # pragma: no cover
                    pass
        self._arm_watchdog()

    @property
    def connected(self) -> bool:
        return self._protocol.transport is not None

    def execute(self, *args: Arg, timeout: float | None = None) -> asyncio.Future[Any]:
        """Send one command; the future resolves with its reply.

        Written at once (not coalesced per loop tick): with several tasks in
        flight, spreading commands lets Redis work while the client handles the
        previous replies - measured 0.82x -> 1.38x Node's drain rate at
        concurrency 10. ``timeout`` overrides the endpoint's command deadline
        (blocking commands pass their block time plus a margin)."""
        fut: asyncio.Future[Any] = self._loop.create_future()
        protocol = self._protocol
        transport = protocol.transport
        if transport is None:
            fut.set_exception(RespConnectionError(f"not connected to Redis at {self.endpoint.describe()}"))
            return fut
        deadline_in = timeout if timeout is not None else self.endpoint.command_timeout
        deadline = self._loop.time() + deadline_in if deadline_in else float("inf")
        protocol.pending.append((fut, deadline))
        transport.write(_pack(args))  # type: ignore[arg-type]
        if self._dozing:
            self._wake()
        return fut

    def execute_many(
        self, commands: Sequence[Sequence[Arg]], timeout: float | None = None
    ) -> list[asyncio.Future[Any]]:
        """Send several commands back to back in one write (a pipeline, or MULTI ... EXEC)."""
        protocol = self._protocol
        transport = protocol.transport
        if transport is None:
            error = RespConnectionError(f"not connected to Redis at {self.endpoint.describe()}")
            failed = []
            for _ in commands:
                fut: asyncio.Future[Any] = self._loop.create_future()
                fut.set_exception(error)
                failed.append(fut)
            return failed
        deadline_in = timeout if timeout is not None else self.endpoint.command_timeout
        deadline = self._loop.time() + deadline_in if deadline_in else float("inf")
        futures = []
        for _ in commands:
            fut = self._loop.create_future()
            protocol.pending.append((fut, deadline))
            futures.append(fut)
        transport.write(b"".join(_pack(tuple(cmd)) for cmd in commands))  # type: ignore[arg-type]
        if self._dozing:
            self._wake()
        return futures

    def _arm_watchdog(self) -> None:
        self._watchdog = self._loop.call_later(WATCHDOG_TICK, self._check_deadlines)

    def _wake(self) -> None:
        """A command was sent while the watchdog dozed: tick again (at most once per doze,
        never per command: a busy connection's watchdog does not doze)."""
        self._dozing = False
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._arm_watchdog()

    def _doze(self, now: float) -> bool:
        """Sleep until the next thing the watchdog could act on, when nothing can change
        before it but a command being sent (which wakes it, see _wake): with nothing in
        flight, the idle PING; with only commands the stall rule does not cover (a blocking
        connection's ``BZPOPMIN``), their earliest deadline. 200 idle queues' 400
        connections otherwise wake the loop 1,600 times a second to find nothing to do."""
        pending = self._protocol.pending
        ep = self.endpoint
        if pending:
            if ep.stall_timeout is not None and ep.command_timeout is not None:
                return False  # the stall rule needs to see progress tick by tick
            wake_at = min(deadline for _, deadline in pending)
            if ep.idle_ping is not None:  # a reply may come meanwhile: the idle PING is late by < idle_ping
                wake_at = min(wake_at, now + ep.idle_ping)
        elif ep.idle_ping is not None:
            wake_at = self._head_since + ep.idle_ping
        else:
            wake_at = float("inf")
        if wake_at - now <= WATCHDOG_TICK:
            return False
        self._dozing = True
        self._watchdog = self._loop.call_at(wake_at, self._check_deadlines) if wake_at < float("inf") else None
        return True

    def _check_deadlines(self) -> None:
        self._dozing = False  # awake: a PING sent below must not arm a second timer (see _wake)
        pending = self._protocol.pending
        if self._protocol.transport is None:
            return
        now = self._loop.time()
        if pending and pending[0][1] < now:
            where = self.endpoint.describe()
            self._give_up(RespTimeoutError(f"Redis at {where} did not answer in time; the connection was dropped"))
            return
        stalled = self._check_liveness(now)
        if stalled is not None:
            self._give_up(stalled)
            return
        if not self._doze(now):
            self._arm_watchdog()

    def _check_liveness(self, now: float) -> RespTimeoutError | None:
        """Notice a dead link (a black-holed connection sends no RST, no FIN) from the
        watchdog alone, nothing on the hot path: progress is the oldest command in
        flight changing. Idle for ``idle_ping`` s: send a PING, so a dead link shows
        as a stall; a command waiting ``stall_timeout`` s with no reply: the error."""
        pending = self._protocol.pending
        head = pending[0][0] if pending else None
        if head is not self._head:
            self._head, self._head_since = head, now
            return None
        ep = self.endpoint
        quiet = now - self._head_since
        if head is None:
            if ep.idle_ping is not None and quiet >= ep.idle_ping:
                self.execute("PING", timeout=ep.stall_timeout or 2 * ep.idle_ping).add_done_callback(_consume_outcome)
                # The quiet spell starts again: a PING answered before the next tick leaves
                # the head as it was (nothing), and must not make every tick send another.
                self._head_since = now
            return None
        if ep.stall_timeout is None or ep.command_timeout is None or quiet < ep.stall_timeout:
            return None
        return RespTimeoutError(
            f"Redis at {ep.describe()} sent no reply for {quiet:.1f} s while a command waited "
            "(a dead or black-holed link); the connection was dropped"
        )

    def _give_up(self, error: RespTimeoutError) -> None:
        log.log(logging.WARNING if self.established else logging.DEBUG, "%s", error)
        pending = self._protocol.pending
        while pending:
            fut = pending.popleft()[0]
            if not fut.done():
                fut.set_exception(error)
        if self._protocol.transport is not None:
            self._protocol.transport.abort()

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        transport = self._protocol.transport
        if transport is not None:
            self._protocol.dropped = True
            transport.close()

    def abort(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._protocol.dropped = True
        transport = self._protocol.transport
        if transport is not None:
            transport.abort()

    async def wait_closed(self) -> None:
        await self._protocol.closed

    def release(self) -> None:
        """Let go of the socket without its event loop (see :func:`release_fd`):
        for a connection whose loop has closed, or that a forked child inherited.
        Nothing is sent, and the loop is not called."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        transport = self._protocol.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            release_fd(sock.fileno())


def release_fd(fd: int) -> None:
    """Point the descriptor ``fd`` at ``/dev/null``.

    The kernel then drops this process's hold on the socket (or epoll set) that
    was there: the connection closes when no other process holds it (a forked
    parent still does, and keeps using it undisturbed), a stray write goes
    nowhere, and the number stays taken, so whatever object still owns it closes
    /dev/null later instead of a descriptor opened meanwhile. Only for a
    descriptor this process has open (``fd`` < 0 is ignored)."""
    if fd < 0:
        return
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        os.dup2(null, fd, inheritable=False)
    finally:
        os.close(null)


def _consume_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


OnConnect = Callable[["RespConnection"], Awaitable[None]]
#: A client that never connected reports "connection refused" after this long (a
#: server starting at the same moment gets that much grace); one that was connected
#: keeps retrying for its ``connect_retry_for`` (a restart is expected to end).
REFUSED_GRACE = 0.5
_AUTH_PREFIXES = ("WRONGPASS", "NOAUTH", "NOPERM")
#: Error replies during a connection's setup that a retry may fix (a server loading, failing over).
_TRANSIENT_REPLIES = frozenset({"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"})
_ERRNO = re.compile(r"\[Errno (\d+)\]")


def _retrieve(task: asyncio.Task[Any]) -> None:
    """A reconnect task nobody awaited: its error was recorded; do not log it again."""
    if not task.cancelled():
        task.exception()


def connect_error(exc: BaseException, ep: Endpoint) -> RespConnectionError:
    """What a failed socket connect means, as the exception that says it."""
    where = ep.describe()
    if ep.ssl is not None and isinstance(exc, ConnectionAbortedError) and "handshake" in str(exc).lower():
        return RedisTlsError(
            f"the TLS handshake with Redis at {where} did not complete within {ep.connect_timeout:g} s: "
            "is the server serving TLS? (rediss:// is for TLS, redis:// for a plain server)"
        )
    if isinstance(exc, ssl_module.SSLError):
        reason = getattr(exc, "reason", None) or exc
        return RedisTlsError(
            f"the TLS handshake with Redis at {where} failed ({reason}): check rediss:// against the "
            "server's TLS setup, its certificate, and ssl_cert_reqs"
        )
    if isinstance(exc, TimeoutError):
        return RespTimeoutError(f"Redis at {where} did not accept a connection within {ep.connect_timeout:g} s")
    if isinstance(exc, socket.gaierror):
        return RedisUnknownHost(
            f"the Redis host {ep.host!r} does not resolve ({exc.strerror or exc}): fix the host name in the URL"
        )
    numbers = {int(n) for n in _ERRNO.findall(str(exc))} or {getattr(exc, "errno", None) or 0}
    if (
        numbers == {errno.ECONNREFUSED}
        or isinstance(exc, ConnectionRefusedError)
        or (isinstance(exc, FileNotFoundError) and ep.unix_path)
    ):
        return refused(ep)
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
    return RespConnectionError(f"cannot connect to Redis at {where}: {detail}")


def refused(ep: Endpoint, waited: float | None = None) -> RedisRefused:
    """Nothing listens at ``ep`` (for ``waited`` seconds, when retried)."""
    during = f" for {waited:.1f} s" if waited is not None else ""
    if ep.unix_path:
        return RedisRefused(
            f"no Redis listens on the socket {ep.unix_path}{during}: start Redis, or fix the unix:// path"
        )
    return RedisRefused(
        f"Redis at {ep.describe()} refused every connection{during} (nothing is listening there): "
        "start Redis, or fix the URL"
    )


def is_auth_error(exc: RespError) -> bool:
    """Redis refused the credentials (or demands some)."""
    if exc.prefix in _AUTH_PREFIXES[:2]:
        return True
    text = exc.reply
    return text.startswith(("ERR invalid password", "ERR AUTH")) or "without any password configured" in text


def auth_error(exc: RespError, ep: Endpoint) -> RedisAuthError:
    """The sentence for an authentication failure (never retried: the password will not change)."""
    where, said = ep.describe(), redact(exc.reply)
    if exc.prefix == "NOAUTH":
        todo = "put the password in the URL (redis://:PASSWORD@host, or redis://USER:PASSWORD@host)"
        return RedisAuthError(f"Redis at {where} requires a password ({said}): {todo}")
    if "without any password configured" in exc.reply:
        return RedisAuthError(
            f"Redis at {where} has no password, but the URL gives one ({said}): remove it from the URL"
        )
    return RedisAuthError(
        f"Redis at {where} refused the credentials ({said}): fix the user/password in the URL or BULLBRIDGE_REDIS_URL"
    )


#: Longest pause between reconnection attempts while Redis is away.
MAX_RECONNECT_DELAY = 0.25
AddressResolver = Callable[[], Awaitable[Endpoint]]


@dataclass
class ConnectionEvents:
    """Listeners for connection health; each gets the client's name."""

    on_lost: list[Callable[[str, Exception | None], None]] = field(default_factory=list)
    on_connected: list[Callable[[str, bool], None]] = field(default_factory=list)


class RespClient:
    """A reconnecting :class:`RespConnection`.

    * ``execute`` while disconnected first (re)connects, retrying with backoff
      for up to ``connect_retry_for`` seconds, then raises
      :class:`RespConnectionError`.
    * ``on_connect`` hooks run on every new connection before any command.
    * ``events`` report losses and reconnections (the worker logs them).
    """

    #: What a blocking command's deadline adds to its block time (docs/faults.md).
    block_margin = BLOCK_MARGIN

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        name: str | None = None,
        connect_retry_for: float = 10.0,
        resolver: AddressResolver | None = None,
        events: ConnectionEvents | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.name = name
        self.connect_retry_for = connect_retry_for
        self._resolver = resolver
        self.events = events or ConnectionEvents()
        self._conn: RespConnection | None = None
        self._connecting: asyncio.Task[RespConnection] | None = None
        self._hooks: list[OnConnect] = []
        self._closed = False
        self._ever_connected = False
        self._last_error: Exception | None = None
        self.current: Endpoint = endpoint
        self._attempted: Endpoint = endpoint
        self.reconnects = 0
        #: How long a command refused with a passing reason (:data:`REDIRECTS`) is retried.
        self.refusal_retry_for = connect_retry_for
        #: How many times a failover fenced this client's connection.
        self.fenced = 0
        #: While a refused command is being retried: Redis's word and for how long ("NOREPLICAS for 2.1 s").
        self.refusing: str | None = None
        self.refused_at = 0.0
        self._fencing: asyncio.Task[None] | None = None
        self._retiring: asyncio.Task[None] | None = None

    def add_on_connect(self, hook: OnConnect) -> None:
        self._hooks.append(hook)

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.connected

    @property
    def closed(self) -> bool:
        return self._closed

    def set_name(self, name: str) -> None:
        self.name = name

    @property
    def last_error(self) -> BaseException | None:
        """Why the last connection attempt failed (``None`` once connected)."""
        return self._last_error

    async def connection(self) -> RespConnection:
        """The live connection, (re)connecting first when there is none.

        Gives up at once when retrying cannot help (authentication, TLS, an unknown
        host; a refused connection after :data:`REFUSED_GRACE` when this client
        never connected), else after ``connect_retry_for`` seconds."""
        conn = self._conn
        if conn is not None and conn.connected:
            return conn
        if self._closed:
            raise RespConnectionError("client is closed")
        task = self._ensure_reconnecting()
        started = time.monotonic()
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.connect_retry_for)
        except TimeoutError:
            last = self._last_error
            kind = type(last) if isinstance(last, RespConnectionError) else RespConnectionError
            raise kind(
                f"no connection to Redis at {self.endpoint.describe()} after {time.monotonic() - started:.1f} s "
                f"of retrying: {last or 'no answer'}"
            ) from None

    def connection_soon(self) -> None:
        """Start (re)connecting in the background without waiting for it."""
        if not self._closed and not self.connected:
            self._ensure_reconnecting()

    def _ensure_reconnecting(self) -> asyncio.Task[RespConnection]:
        if self._connecting is None or self._connecting.done():
            # Named for the client and its server, so a task left behind says whose it is.
            self._connecting = asyncio.ensure_future(self._reconnect_loop())
            self._connecting.set_name(f"bullbridge reconnect {self.name or '-'} to {self.endpoint.describe()}")
            self._connecting.add_done_callback(_retrieve)
        return self._connecting

    async def _reconnect_loop(self) -> RespConnection:
        """Try until connected (or closed, or an error retrying cannot fix). Runs in the
        background from the moment a connection drops, so service resumes as soon as
        Redis is back, not when the next command happens to be tried. Transient
        failures (timeouts, resets) are retried with backoff and said once."""
        delay = 0.02
        started = time.monotonic()
        said = False
        while True:
            if self._closed:
                raise RespConnectionError("client is closed")
            try:
                return await self._connect_once()
            except (RedisAuthError, RedisTlsError, RedisCommandError) as exc:
                self._last_error = exc
                raise
            except (RedisRefused, RedisUnknownHost) as exc:
                self._last_error = exc
                waited = time.monotonic() - started
                if not self._ever_connected and isinstance(exc, RedisUnknownHost):
                    raise
                if not self._ever_connected and waited >= REFUSED_GRACE:
                    if isinstance(exc, RedisRefused):
                        raise refused(self._attempted, waited) from None
                    raise
            except (RespConnectionError, RespError, OSError) as exc:
                self._last_error = exc
                if not said and not self._ever_connected:
                    said = True
                    log.info(
                        "cannot connect to Redis at %s yet (%s); retrying for up to %g s",
                        self.endpoint.describe(),
                        redact(exc),
                        self.connect_retry_for,
                    )
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RECONNECT_DELAY)

    async def _connect_once(self) -> RespConnection:
        endpoint = await self._resolver() if self._resolver else self.endpoint
        self._attempted = endpoint
        conn = RespConnection(endpoint, on_lost=lambda exc: self._lost(exc, conn) if self._conn is conn else None)
        await conn.open()
        try:
            setup: list[tuple[Arg, ...]] = []
            if endpoint.password is not None:
                if endpoint.username:
                    setup.append(("AUTH", endpoint.username, endpoint.password))
                else:
                    setup.append(("AUTH", endpoint.password))
            if endpoint.db:
                setup.append(("SELECT", endpoint.db))
            if self.name:
                setup.append(("CLIENT", "SETNAME", self.name))
            if setup:
                await asyncio.gather(*conn.execute_many(setup))
            if endpoint.require_master:
                role = await conn.execute("ROLE")
                if not role or role[0] != b"master":
                    raise RespConnectionError(f"{endpoint.describe()} is not a master (any more)")
            for hook in self._hooks:
                await hook(conn)
        except RespError as exc:
            conn.abort()
            if is_auth_error(exc):
                raise auth_error(exc, endpoint) from None
            if exc.prefix in _TRANSIENT_REPLIES:
                raise
            # Redis is up and refuses the setup (SELECT on a cluster, an ACL, ...): retrying will not help.
            raise explain(exc, endpoint.describe(), "setting up the connection") from None
        except BaseException:
            conn.abort()
            raise
        self._last_error = None
        conn.established = True
        reconnect = self._ever_connected
        self._ever_connected = True
        if reconnect:
            self.reconnects += 1
            log.info("reconnected to Redis at %s (%s)", endpoint.describe(), self.name or "unnamed")
        self._conn = conn
        self.current = endpoint
        for listener in self.events.on_connected:
            listener(self.name or "", reconnect)
        return conn

    def _lost(self, exc: Exception | None, conn: RespConnection | None = None) -> None:
        if self._closed:
            return
        where = self.current.describe()
        dropped = conn is not None and conn._protocol.dropped
        cause = lost_error(exc, where, dropped=dropped)
        say_once(
            f"lost:{cause}",
            "%s (%s; said once per %g s for every client)",
            cause,
            self.name or "unnamed",
            SAY_EVERY,
            level=logging.INFO if dropped else logging.WARNING,
        )
        for listener in self.events.on_lost:
            listener(self.name or "", exc)
        self._ensure_reconnecting()

    async def execute(self, *args: Arg, timeout: float | None = None) -> Any:
        conn = self._conn
        if conn is None or not conn.connected:
            conn = await self.connection()
        try:
            return await conn.execute(*args, timeout=timeout)
        except RespError as exc:
            if not self._retries(exc):
                raise
            return await self._redirected(exc, lambda c: c.execute(*args, timeout=timeout))

    def _retries(self, exc: BaseException) -> bool:
        """Whether a refusal is retried here: any of :data:`REDIRECTS` with a resolver (it
        names the right node), only those that pass on the same node without one (a plain
        URL at a cluster node or a replica is a configuration error, said at once)."""
        code = refusal_code(exc)
        return code is not None and (self._resolver is not None or code in PASSING_HERE)

    async def _redirected(self, exc: RespError, again: Callable[[RespConnection], Awaitable[Any]]) -> Any:
        """A refusal that passes (:data:`REDIRECTS`: a slot moving, a master failing over or
        loading): the command did not run. Retry it with backoff for ``refusal_retry_for`` seconds,
        on the node the resolver names - reconnecting only when that is another node, so a
        refusing master is not hammered with reconnects - then raise :class:`RedisRefusing`."""
        started = time.monotonic()
        delay = 0.02
        while True:
            code = refusal_code(exc) or exc.prefix
            waited = time.monotonic() - started
            self.refusing, self.refused_at = f"{code} for {waited:.1f} s", time.monotonic()
            if waited >= self.refusal_retry_for:
                self.refusing = None
                raise RedisRefusing(
                    f"Redis at {self.current.describe()} refused the command with {code} for {waited:.1f} s "
                    f"(it did not run): {redact(exc)}",
                    code,
                ) from None
            say_once(
                f"refusal:{code}",
                "Redis answered %s (%s); retrying on %s for up to %g s (said once per %g s)",
                code,
                redact(exc),
                "the node it names" if self._resolver is not None else "the same node",
                self.refusal_retry_for,
                SAY_EVERY,
                level=logging.INFO,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
            conn = await self._conn_for_retry()
            try:
                result = await again(conn)
            except RespError as err:
                if not self._retries(err):
                    raise
                exc = err
                self.refusing = f"{refusal_code(err)} for {time.monotonic() - started:.1f} s"
                self.refused_at = time.monotonic()
            else:
                self.refusing = None
                return result

    async def _conn_for_retry(self) -> RespConnection:
        """The connection to retry a refused command on: the current one while the resolver
        still names its node, else a new one to the node it names now."""
        conn = self._conn
        if conn is not None and conn.connected and self._resolver is None:
            return conn
        if conn is not None and conn.connected and self._resolver is not None:
            try:
                there = await self._resolver()
            except (RespConnectionError, OSError):
                there = None
            if there is None or (there.host, there.port) == (self.current.host, self.current.port):
                return conn  # still the right node (or nobody can say otherwise now)
        if conn is not None:  # moved on purpose: the replies still due on it are delivered first
            self._conn = None
            self._retiring = asyncio.ensure_future(close_when_idle(conn))
        return await self.connection()

    def fence(self, confirm_ms: int | None) -> asyncio.Task[None] | None:
        """Stop using the current connection at once (its master is being demoted): new
        commands wait for a connection to wherever the resolver names next. With
        ``confirm_ms``, replies still in flight are held until a replica confirms them
        (:func:`confirm_in_flight`); without, the connection is dropped (a blocking one)."""
        conn, self._conn = self._conn, None
        if conn is None or not conn.connected:
            return None
        self.fenced += 1
        if confirm_ms is None:
            conn.abort()
            return None
        task = asyncio.ensure_future(confirm_in_flight(conn, confirm_ms, self.name or "unnamed"))
        self._fencing = task  # a task nobody references may be collected before it ends
        return task

    def execute_nowait(self, *args: Arg) -> asyncio.Future[Any] | None:
        """Send on the live connection without a coroutine; None when disconnected."""
        conn = self._conn
        if conn is None or not conn.connected:
            return None
        return conn.execute(*args)

    async def execute_many(
        self,
        commands: Sequence[Sequence[Arg]],
        *,
        transaction: bool = False,
        timeout: float | None = None,
        return_exceptions: bool = False,
    ) -> list[Any]:
        """A pipeline in one write; with ``transaction`` wrapped in MULTI/EXEC and
        the EXEC reply returned (an error reply inside it comes back as a
        :class:`RespError` value, not raised). ``return_exceptions`` returns a
        plain pipeline's error replies as values too."""
        conn = self._conn
        if conn is None or not conn.connected:
            conn = await self.connection()
        if transaction:
            futs = conn.execute_many([("MULTI",), *commands, ("EXEC",)], timeout=timeout)
            results = await asyncio.gather(*futs, return_exceptions=True)
            for r in results[:-1]:
                if isinstance(r, RespConnectionError):
                    raise r
                if isinstance(r, RespError) and self._retries(r):
                    # Nothing ran (EXEC aborts): retry the whole transaction on the right node.
                    retried: list[Any] = await self._redirected(r, lambda c: self._transaction_on(c, commands, timeout))
                    return retried
            exec_reply = results[-1]
            if isinstance(exec_reply, BaseException):
                # EXECABORT only says an earlier command was refused when queued: raise that one.
                raise next((r for r in results[:-1] if isinstance(r, RespError)), exec_reply)
            if exec_reply is None:  # pragma: no cover - WATCH not used
                raise RespError("EXECABORT transaction aborted")
            return list(exec_reply)
        return list(
            await asyncio.gather(*conn.execute_many(commands, timeout=timeout), return_exceptions=return_exceptions)
        )

    async def _transaction_on(
        self, conn: RespConnection, commands: Sequence[Sequence[Arg]], timeout: float | None
    ) -> list[Any]:
        futs = conn.execute_many([("MULTI",), *commands, ("EXEC",)], timeout=timeout)
        results = await asyncio.gather(*futs, return_exceptions=True)
        for r in results[:-1]:
            if is_redirect(r):
                raise r
        if isinstance(results[-1], BaseException):
            raise next((r for r in results[:-1] if isinstance(r, RespError)), results[-1])
        return list(results[-1] or [])

    def abandon(self) -> None:
        """Close for good without the event loop the connection lives on: its loop
        has closed, or belongs to a parent process (after ``fork``). The socket is
        released (:meth:`RespConnection.release`), never written to or closed
        through that loop; commands still waiting there are left to it."""
        self._closed = True
        self._let_go_of_connecting(cancel=False)
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.release()

    def _let_go_of_connecting(self, *, cancel: bool) -> None:
        """The background reconnection ends once the client is closed, with "client
        is closed" when its cancellation was lost (3.11's ``wait_for`` can swallow one
        as a connect fails at that instant): nobody awaits it any more, so its
        outcome is consumed instead of logged as "never retrieved"."""
        task, self._connecting = self._connecting, None
        if task is None or task.done():
            return
        task.add_done_callback(_consume_outcome)
        if cancel:
            task.cancel()

    def drop(self) -> None:
        """Abort the current connection (used after a stuck blocking command)."""
        if self._conn is not None:
            self._conn.abort()

    async def close(self) -> None:
        self._closed = True
        self._let_go_of_connecting(cancel=True)
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            try:
                await asyncio.wait_for(conn.wait_closed(), 1.0)
            except (TimeoutError, asyncio.CancelledError):
                conn.abort()

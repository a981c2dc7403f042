"""The exceptions bullbridge raises.

One small hierarchy so callers can catch ``BullbridgeError`` for anything of
ours, or a precise subclass. Every message says what was wrong and, where there
is one, what to do about it.
"""

from __future__ import annotations


class BullbridgeError(Exception):
    """Base class of every error raised by bullbridge itself."""


# --- configuration and connection -------------------------------------------------


class ConfigurationError(BullbridgeError, ValueError):
    """A setting or argument cannot work (bad URL, bad option value...)."""


class UsageError(BullbridgeError, RuntimeError):
    """The API was called in a way that cannot work (a worker not started yet, a blocking
    call made on the event loop); the message says what to call instead."""


class ConnectionSetupError(BullbridgeError):
    """A Redis connection was refused before use: wrong client settings, too old
    a server, or a key layout that a cluster cannot serve."""


class RedisVersionError(ConnectionSetupError):
    """The Redis server is older than BullMQ supports (5.0.0)."""


class CrossSlotError(ConnectionSetupError):
    """On Redis Cluster a queue's keys would land in different hash slots."""


class RedisUnavailable(BullbridgeError, ConnectionError):
    """Redis could not be reached within the configured timeout, or the connection broke."""


# --- the connection to Redis, from the bottom up --------------------------------------
# Raised by the RESP client (bullbridge.connection.resp re-exports them) and caught by
# every layer above as the ConnectionError they are; the ones that say "retrying will
# not help" (refused for good, unknown host, authentication, TLS) are raised at once.


class RespConnectionError(RedisUnavailable):
    """The connection is gone (or never came up); a command's fate is unknown."""


class RespTimeoutError(RespConnectionError, TimeoutError):
    """A command got no reply within its deadline; the connection was dropped."""


class RedisWriteUncertain(RespConnectionError):
    """The master failed over while a command was in flight and no replica confirmed it:
    it may or may not have been applied (an added job may or may not exist)."""


class RedisRefusing(RespConnectionError):
    """Redis kept refusing a command for a reason that passes (``NOREPLICAS``, ``READONLY``,
    ``TRYAGAIN``, ``MOVED``, ``ASK``, ``LOADING``, ``MASTERDOWN``, ``CLUSTERDOWN``) for longer
    than the client retries it; the command did not run. ``code`` is Redis's word."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class RedisRefused(RespConnectionError):
    """Nothing accepts connections at the address (``ECONNREFUSED``)."""


class RedisUnknownHost(RespConnectionError):
    """The host name in the URL does not resolve."""


class RedisAuthError(RespConnectionError, ConnectionSetupError):
    """Redis refused the credentials (``WRONGPASS``, ``NOAUTH``, no password configured...)."""


class RedisTlsError(RespConnectionError, ConnectionSetupError):
    """The TLS handshake failed (certificate, protocol, or a plain-text server)."""


class RespError(BullbridgeError):
    """An error reply from Redis (``-ERR ...``, ``-NOSCRIPT ...``, ``-OOM ...``).

    ``reply`` is Redis's text as sent; ``prefix`` its first word (``OOM``, ``MOVED``)."""

    @property
    def reply(self) -> str:
        return str(self.args[0]) if self.args else ""

    @property
    def prefix(self) -> str:
        text = self.reply
        return text.split(" ", 1)[0] if text else ""


class RedisCommandError(RespError):
    """An error reply explained: the message is a sentence naming Redis's own words
    (``reply``) and what to do; ``prefix`` is still Redis's first word."""

    def __init__(self, reply: str, message: str) -> None:
        super().__init__(reply)
        self.message = message

    def __str__(self) -> str:
        return self.message


class RedisOutOfMemory(RedisCommandError):
    """``OOM``: Redis reached ``maxmemory`` and refuses writes."""


class RedisReadOnly(RedisCommandError):
    """``READONLY``: the URL points at a replica."""


class RedisClusterRedirect(RedisCommandError):
    """``MOVED``/``ASK``/``CLUSTERDOWN`` through a URL that is not ``redis+cluster://``."""


class RedisNoPermission(RedisCommandError):
    """``NOPERM``: the ACL user may not run a command or touch a key BullMQ needs."""


class EventLoopConflict(BullbridgeError, RuntimeError):
    """A call on the wrong event loop: a blocking ``bullbridge.sync`` call made
    inside a running loop (it would stall that loop), or one async object used
    by two event loops running at the same time."""


# --- data and options -------------------------------------------------------------


class InvalidJobOptions(BullbridgeError, ValueError):
    """Job options that Node BullMQ would reject or silently misread."""


class NotJsonSafe(BullbridgeError, ValueError):
    """Data that Node's ``JSON.parse`` would not read back as written.

    ``path`` names the place inside the data, e.g. ``$.items[3].price``.
    """

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(f"{message} at {path}")
        self.path = path


class JobNotFound(BullbridgeError, LookupError):
    """No job hash exists for the given id."""


class QueueError(BullbridgeError):
    """A queue operation BullMQ refused (the job is locked, not delayed, the queue
    has active jobs...); the message says which and what to do."""


class CorruptJob(BullbridgeError):
    """A job hash written by a foreign writer cannot be decoded."""


class ScriptError(BullbridgeError):
    """A BullMQ Lua script returned an error code."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class LockLost(ScriptError):
    """The worker no longer owns the job's lock (another worker took it over)."""


class FinishNotRecorded(BullbridgeError):
    """The write that ends an attempt (complete, fail, retry, back to wait) was not
    recorded by Redis; the job stays active until BullMQ's stall recovery.
    ``outcome`` is what the worker meant to record; ``__cause__`` the error."""

    def __init__(self, message: str, outcome: str) -> None:
        super().__init__(message)
        self.outcome = outcome


class JobTimeout(BullbridgeError, TimeoutError):
    """Waiting for a job to finish took longer than the given timeout."""


class HandlerTimeout(BullbridgeError, TimeoutError):
    """A handler ran longer than its ``timeout``; the attempt fails with it, and the
    job's ``failedReason`` reads ``TimeoutError: handler 'resize' exceeded 30 s``."""

    #: The class name ``failedReason`` shows (Node's readers know ``TimeoutError``).
    failure_name = "TimeoutError"


class JobFailed(BullbridgeError):
    """The awaited job ended in ``failed``; ``reason`` is its ``failedReason``."""

    def __init__(self, job_id: str, reason: str) -> None:
        super().__init__(f"job {job_id} failed: {reason}")
        self.job_id = job_id
        self.reason = reason


# --- errors a handler raises on purpose --------------------------------------------


class UnrecoverableError(BullbridgeError):
    """Raise from a handler to fail the job at once, without further attempts
    (Node: ``UnrecoverableError``)."""


class DeferredFailure(UnrecoverableError):
    """A failure BullMQ decided before the job ran (a child failed under
    ``failParentOnFailure``, too many stalls or starts). Stored with its text
    unchanged, as Node stores it."""


class DelayJob(BullbridgeError):
    """Raised by ``ActiveJob.delay_until`` after it moved the job back to
    delayed; let it propagate, so the worker neither completes nor fails the job
    (Node: ``DelayedError``)."""


class RateLimited(BullbridgeError):
    """Raised by ``ActiveJob.rate_limit``: the worker puts the job back in wait
    and pauses fetching for the given time (Node: ``RateLimitError``)."""

    def __init__(self, delay_ms: int) -> None:
        super().__init__(f"rate limited for {delay_ms} ms")
        self.delay_ms = delay_ms


class WaitingChildren(BullbridgeError):
    """Raised by ``ActiveJob.wait_for_children`` after it moved the job to
    waiting-children (Node: ``WaitingChildrenError``)."""


class UnknownJobName(BullbridgeError):
    """A worker received a job whose name has no handler and no fallback."""


class PortVersionError(ConfigurationError):
    """The installed Python port (PyPI ``bullmq``) is not the one bullbridge runs:
    its Lua scripts have another key layout."""


# --- running things: what the CLI and the tools report -------------------------------


class UnknownQueue(BullbridgeError, LookupError):
    """No queue of that name under the prefix (no ``meta``, ``id`` or job list key):
    reading it would show zeros and acting on it would create keys."""

    def __init__(self, queue: str, prefix: str, known: list[str] | None = None) -> None:
        shown = ", ".join(repr(q) for q in (known or [])[:10])
        more = f" and {len(known or []) - 10} more" if len(known or []) > 10 else ""
        listing = f"known: {shown}{more}" if known else "there is no queue under it"
        super().__init__(f"no queue {queue!r} under prefix {prefix!r} ({listing}): check the queue name and the prefix")
        self.queue = queue
        self.prefix = prefix
        self.known = list(known or [])


class CannotListen(BullbridgeError, OSError):
    """A server of ours (health endpoint, dashboard, metrics) cannot bind its address."""


class UserCodeError(BullbridgeError):
    """The user's ``MODULE:ATTR`` could not be loaded: it does not exist, or importing it raised.
    ``where`` is the user's line that raised (``path:line``), when there is one."""

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(message)
        self.where = where


class MissingDependency(BullbridgeError):
    """Something a command needs is not installed (Node.js, npm ``bullmq``, an extra)."""

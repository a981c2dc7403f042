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


class ConnectionSetupError(BullbridgeError):
    """A Redis connection was refused before use: wrong client settings, too old
    a server, or a key layout that a cluster cannot serve."""


class RedisVersionError(ConnectionSetupError):
    """The Redis server is older than BullMQ supports (5.0.0)."""


class CrossSlotError(ConnectionSetupError):
    """On Redis Cluster a queue's keys would land in different hash slots."""


class RedisUnavailable(BullbridgeError, ConnectionError):
    """Redis could not be reached within the configured timeout."""


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

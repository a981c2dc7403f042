"""Worker settings: one frozen dataclass, validated, with BullMQ's defaults."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any

from bullbridge import codec
from bullbridge.errors import ConfigurationError, InvalidJobOptions
from bullbridge.keys import PY_MARKER
from bullbridge.options import Keep, KeepJobs, RateLimit, int_at_least, to_ms
from bullbridge.worker.handlers import handler_timeout

#: ``(attempts_made, type, error, job) -> delay ms`` (``-1`` fails the job), as in Node.
BackoffStrategy = Callable[[int, str, BaseException, Any], int]


def default_worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, kw_only=True)
class WorkerSettings:
    """How a worker fetches, locks, retries and reports.

    Times are milliseconds or ``timedelta`` (``drain_delay`` is seconds, as in
    BullMQ). Defaults are Node BullMQ's.
    """

    concurrency: int = 1
    #: Shown by Node's ``getWorkers()`` and stored as each job's ``pb``;
    #: prefixed with ``bullbridge:`` on the wire.
    name: str | None = None
    lock_duration: int | timedelta = 30_000
    lock_renew_time: int | timedelta | None = None
    stalled_interval: int | timedelta = 30_000
    max_stalled_count: int = 1
    max_started_attempts: int | None = None
    drain_delay: float = 5.0
    max_rate_limit_delay: int | timedelta = 30_000
    limiter: RateLimit | None = None
    remove_on_complete: Keep | None = None
    remove_on_fail: Keep | None = None
    #: Record BullMQ's per-minute metrics (``maxDataPoints``; a week is 10,080).
    metrics_max_data_points: int | None = None
    backoff_strategies: Mapping[str, BackoffStrategy] = field(default_factory=dict)
    thread_pool_size: int | None = None
    process_pool_size: int | None = None
    skip_stalled_check: bool = False
    skip_lock_renewal: bool = False
    codec: codec.JsonCodec = codec.DEFAULT
    #: Warn when a handler blocks the event loop longer than this (seconds).
    loop_block_warning: float = 1.0
    #: Seconds (or a ``timedelta``) any handler may run before its attempt fails with
    #: ``TimeoutError``; a handler's own ``timeout=`` wins. None: no limit (Node's way).
    handler_timeout: float | timedelta | None = None
    _wire_name: str = field(default="", init=False, repr=False, compare=False)
    _limiter_opts: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_kwargs(cls, values: Mapping[str, Any]) -> WorkerSettings:
        """Settings from keyword arguments; an unknown name is a :class:`ConfigurationError`
        listing the known ones (not a bare ``TypeError``)."""
        known = {f.name for f in fields(cls) if f.init}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigurationError(
                f"unknown worker setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        return cls(**values)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not int_at_least(self.concurrency, 1):
            raise ConfigurationError(f"concurrency must be an int >= 1, got {self.concurrency!r}")
        try:
            for name in ("lock_duration", "stalled_interval", "max_rate_limit_delay"):
                set_(self, name, to_ms(getattr(self, name), name, allow_zero=False))
            # None stays None: derived from lock_duration when read, as Node derives it at construction
            # (``lockRenewTime || lockDuration / 2``), so a copy with another lock_duration derives again.
            if self.lock_renew_time is not None:
                set_(self, "lock_renew_time", to_ms(self.lock_renew_time, "lock_renew_time", allow_zero=False))
        except InvalidJobOptions as exc:
            raise ConfigurationError(str(exc)) from None
        if self.lock_renew_ms >= self.lock_duration_ms:
            raise ConfigurationError("lock_renew_time must be shorter than lock_duration, or locks expire first")
        if not isinstance(self.max_stalled_count, int) or self.max_stalled_count < 0:
            raise ConfigurationError("max_stalled_count must be an int >= 0")
        if not isinstance(self.drain_delay, (int, float)) or self.drain_delay <= 0:
            raise ConfigurationError("drain_delay must be > 0 seconds")
        set_(self, "handler_timeout", handler_timeout(self.handler_timeout, "handler_timeout"))
        if self.name is not None and (not self.name or any(c.isspace() for c in self.name)):
            raise ConfigurationError(f"worker name {self.name!r} must be non-empty without spaces (CLIENT SETNAME)")
        for name in ("remove_on_complete", "remove_on_fail"):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                set_(self, name, KeepJobs(**value))
        # Read on every job: computed once (the default name costs a gethostname call).
        set_(self, "_wire_name", f"{PY_MARKER}:{self.name or default_worker_name()}")
        set_(self, "_limiter_opts", self.limiter.to_bullmq() if self.limiter else None)

    # Normalised milliseconds (the fields accept ms or timedelta; __post_init__ stored ints).

    @property
    def lock_duration_ms(self) -> int:
        return self.lock_duration if type(self.lock_duration) is int else to_ms(self.lock_duration, "lock_duration")

    @property
    def lock_renew_ms(self) -> int:
        """``lock_renew_time``, or half of ``lock_duration`` when not set (Node's default)."""
        value = self.lock_renew_time
        if value is None:
            return self.lock_duration_ms // 2
        return value if type(value) is int else to_ms(value, "lock_renew_time")

    @property
    def stalled_interval_ms(self) -> int:
        value = self.stalled_interval
        return value if type(value) is int else to_ms(value, "stalled_interval")

    @property
    def max_rate_limit_delay_ms(self) -> int:
        value = self.max_rate_limit_delay
        return value if type(value) is int else to_ms(value, "max_rate_limit_delay")

    @property
    def wire_name(self) -> str:
        """``bullbridge:<name>``: the worker's name as Redis and Node see it."""
        return self._wire_name

    @property
    def limiter_opts(self) -> dict[str, Any] | None:
        return self._limiter_opts

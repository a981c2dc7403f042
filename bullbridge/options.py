"""Typed, validated job options, and the one mapping to BullMQ's camelCase.

Every option Node BullMQ 6 accepts on ``Queue.add`` has a snake_case field
here. Invalid values raise :class:`~bullbridge.errors.InvalidJobOptions` when
the options are built, before anything reaches Redis; what Node would reject
is rejected here too (integer-like custom ids, ids with ``:``, float or
out-of-range priorities, a deduplication without id or beside a parent...),
and what the port silently ignores (``job_id`` spelled as a dict key it does
not know) is an error instead of a lost option.

:meth:`JobOptions.to_bullmq` is the single place our names become BullMQ's
stored names (``failParentOnFailure`` -> ``fpof``, ``deduplication`` -> ``de``,
``telemetry`` -> ``tm``/``omc``), exactly as Node's ``optsAsJSON`` does.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bullbridge.errors import InvalidJobOptions

PRIORITY_LIMIT = 2**21 - 1
MAX_DELAY_MS = 2**53 - 1

Millis = int | float | timedelta


def to_ms(value: Millis, what: str, *, allow_zero: bool = True) -> int:
    """Milliseconds from an int/float (ms) or a timedelta; negative is an error."""
    if isinstance(value, bool):
        raise InvalidJobOptions(f"{what} must be milliseconds or a timedelta, not a bool")
    if isinstance(value, timedelta):
        ms = value.total_seconds() * 1000
    elif isinstance(value, (int, float)):
        ms = value
    else:
        raise InvalidJobOptions(f"{what} must be milliseconds (int) or a timedelta, not {type(value).__name__}")
    if isinstance(ms, float) and not math.isfinite(ms):
        raise InvalidJobOptions(f"{what} must be finite, got {ms}")
    if ms < 0 or (ms == 0 and not allow_zero):
        raise InvalidJobOptions(f"{what} must be {'>= 0' if allow_zero else '> 0'} ms, got {ms:g}")
    if ms > MAX_DELAY_MS:
        raise InvalidJobOptions(f"{what} of {ms:g} ms is beyond what Node can represent")
    return round(ms)


def int_at_least(value: Any, minimum: int) -> bool:
    """An int (not a bool) >= minimum."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def epoch_ms(value: int | datetime) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidJobOptions("give the datetime a tzinfo: a naive datetime is ambiguous between hosts")
        return round(value.timestamp() * 1000)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidJobOptions(f"timestamps are epoch milliseconds (int >= 0) or aware datetimes, got {value!r}")
    return value


# --- value objects -------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """How long to wait between attempts.

    ``Backoff.fixed(1000)``, ``Backoff.exponential(200, jitter=0.5)``, or a
    custom type registered on the workers (``Backoff.custom("linear", 100)``).
    """

    type: str
    delay: int | None = None
    jitter: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not self.type:
            raise InvalidJobOptions("backoff type must be a non-empty string ('fixed', 'exponential' or custom)")
        if self.delay is not None:
            object.__setattr__(self, "delay", to_ms(self.delay, "backoff delay"))
        elif self.type in ("fixed", "exponential"):
            raise InvalidJobOptions(f"a {self.type} backoff needs a delay")
        jitter = self.jitter
        if jitter is not None and (isinstance(jitter, bool) or not isinstance(jitter, (int, float))
                                   or not 0 <= jitter <= 1):
            raise InvalidJobOptions(f"backoff jitter must be between 0 and 1, got {self.jitter!r}")

    @classmethod
    def fixed(cls, delay: Millis, *, jitter: float | None = None) -> Backoff:
        return cls("fixed", to_ms(delay, "backoff delay"), jitter)

    @classmethod
    def exponential(cls, delay: Millis, *, jitter: float | None = None) -> Backoff:
        return cls("exponential", to_ms(delay, "backoff delay"), jitter)

    @classmethod
    def custom(cls, type: str, delay: Millis | None = None) -> Backoff:
        return cls(type, None if delay is None else to_ms(delay, "backoff delay"))

    def to_bullmq(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.delay is not None:
            out["delay"] = self.delay
        if self.jitter is not None:
            out["jitter"] = self.jitter
        return out

    @classmethod
    def parse(cls, value: Any) -> Backoff:
        if isinstance(value, Backoff):
            return value
        if isinstance(value, (int, float, timedelta)) and not isinstance(value, bool):
            return cls.fixed(value)
        if isinstance(value, Mapping):
            unknown = set(value) - {"type", "delay", "jitter"}
            if unknown:
                raise InvalidJobOptions(f"unknown backoff keys {sorted(unknown)} (type, delay, jitter)")
            return cls(value.get("type", ""), value.get("delay"), value.get("jitter"))
        raise InvalidJobOptions(f"backoff must be ms, a timedelta, a Backoff or a mapping, got {type(value).__name__}")


@dataclass(frozen=True)
class KeepJobs:
    """Which finished jobs to keep: the newest ``count`` and/or those younger
    than ``age`` (seconds, or a timedelta), removing at most ``limit`` per call."""

    count: int | None = None
    age: int | timedelta | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.count is None and self.age is None:
            raise InvalidJobOptions("KeepJobs needs a count or an age")
        if self.count is not None and not int_at_least(self.count, 0):
            raise InvalidJobOptions(f"KeepJobs count must be an int >= 0, got {self.count!r}")
        if isinstance(self.age, timedelta):
            object.__setattr__(self, "age", int(self.age.total_seconds()))
        if self.age is not None and not int_at_least(self.age, 0):
            raise InvalidJobOptions(f"KeepJobs age is in seconds (int >= 0) or a timedelta, got {self.age!r}")
        if self.limit is not None and not int_at_least(self.limit, 1):
            raise InvalidJobOptions(f"KeepJobs limit must be an int >= 1, got {self.limit!r}")

    def to_bullmq(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.count is not None:
            out["count"] = self.count
        if self.age is not None:
            out["age"] = self.age
        if self.limit is not None:
            out["limit"] = self.limit
        return out


Keep = bool | int | KeepJobs


def _keep(value: Any, what: str) -> Keep:
    if isinstance(value, (bool, KeepJobs)):
        return value
    if isinstance(value, int):
        if value < 0:
            raise InvalidJobOptions(f"{what} as a count must be >= 0, got {value}")
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {"count", "age", "limit"}
        if unknown:
            raise InvalidJobOptions(f"unknown {what} keys {sorted(unknown)} (count, age, limit)")
        return KeepJobs(**value)
    raise InvalidJobOptions(f"{what} must be a bool, a count, or KeepJobs, got {type(value).__name__}")


def _keep_to_bullmq(value: Keep) -> Any:
    return value.to_bullmq() if isinstance(value, KeepJobs) else value


@dataclass(frozen=True)
class Parent:
    """The parent of a flow child: its id and queue (plain name + prefix)."""

    id: str
    queue: str
    prefix: str = "bull"

    @property
    def queue_key(self) -> str:
        """BullMQ's ``parent.queue``: the qualified name ``<prefix>:<queue>``."""
        return f"{self.prefix}:{self.queue}"

    @property
    def key(self) -> str:
        return f"{self.queue_key}:{self.id}"


@dataclass(frozen=True)
class Deduplication:
    """At most one job per ``id`` while it is not finished (or for ``ttl``)."""

    id: str
    ttl: int | timedelta | None = None
    extend: bool = False
    replace: bool = False
    keep_last_if_active: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise InvalidJobOptions(
                "deduplication id must be a non-empty string (Node: 'Deduplication id must be provided')")
        if self.ttl is not None:
            object.__setattr__(self, "ttl", to_ms(self.ttl, "deduplication ttl", allow_zero=False))
        if (self.extend or self.replace) and self.ttl is None:
            raise InvalidJobOptions("deduplication extend/replace only make sense with a ttl")

    def to_bullmq(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        if self.ttl is not None:
            out["ttl"] = self.ttl
        if self.extend:
            out["extend"] = True
        if self.replace:
            out["replace"] = True
        if self.keep_last_if_active:
            out["keepLastIfActive"] = True
        return out


@dataclass(frozen=True)
class Telemetry:
    """OpenTelemetry propagation metadata stored with the job (Node: ``tm``/``omc``)."""

    metadata: str | None = None
    omit_context: bool | None = None


# --- the options ---------------------------------------------------------------------

_UNSET: Any = None


@dataclass(frozen=True, kw_only=True)
class JobOptions:
    """Options of one job; ``None`` means "not set" (the queue default or BullMQ's).

    Times accept milliseconds or ``timedelta``; ``run_at`` (an aware datetime)
    is converted into a delay when the job is added.
    """

    job_id: str | None = _UNSET
    priority: int | None = _UNSET
    delay: Millis | None = _UNSET
    run_at: datetime | None = _UNSET
    attempts: int | None = _UNSET
    backoff: Backoff | Millis | Mapping[str, Any] | None = _UNSET
    lifo: bool | None = _UNSET
    remove_on_complete: Keep | Mapping[str, Any] | None = _UNSET
    remove_on_fail: Keep | Mapping[str, Any] | None = _UNSET
    keep_logs: int | None = _UNSET
    stack_trace_limit: int | None = _UNSET
    size_limit: int | None = _UNSET
    timestamp: int | datetime | None = _UNSET
    parent: Parent | None = _UNSET
    deduplication: Deduplication | Mapping[str, Any] | None = _UNSET
    fail_parent_on_failure: bool | None = _UNSET
    continue_parent_on_failure: bool | None = _UNSET
    ignore_dependency_on_failure: bool | None = _UNSET
    remove_dependency_on_failure: bool | None = _UNSET
    telemetry: Telemetry | None = _UNSET

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.job_id is not None:
            validate_job_id(self.job_id)
        if self.priority is not None:
            if isinstance(self.priority, bool) or not isinstance(self.priority, int):
                raise InvalidJobOptions(
                    f"priority must be an int (Node: 'Priority should not be float'), got {self.priority!r}")
            if not 0 <= self.priority <= PRIORITY_LIMIT:
                raise InvalidJobOptions(f"priority must be between 0 and {PRIORITY_LIMIT}, got {self.priority}")
        if self.delay is not None:
            set_(self, "delay", to_ms(self.delay, "delay"))
        if self.run_at is not None:
            if not isinstance(self.run_at, datetime) or self.run_at.tzinfo is None:
                raise InvalidJobOptions("run_at must be a timezone-aware datetime")
            if self.delay is not None:
                raise InvalidJobOptions("give delay or run_at, not both")
        if self.attempts is not None and not int_at_least(self.attempts, 1):
            raise InvalidJobOptions(f"attempts must be an int >= 1, got {self.attempts!r}")
        if self.backoff is not None:
            set_(self, "backoff", Backoff.parse(self.backoff))
        for name in ("remove_on_complete", "remove_on_fail"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, _keep(value, name))
        for name in ("keep_logs", "stack_trace_limit", "size_limit"):
            value = getattr(self, name)
            if value is not None and not int_at_least(value, 0):
                raise InvalidJobOptions(f"{name} must be an int >= 0, got {value!r}")
        if self.timestamp is not None:
            set_(self, "timestamp", epoch_ms(self.timestamp))
        if self.parent is not None and not isinstance(self.parent, Parent):
            if isinstance(self.parent, Mapping):
                set_(self, "parent", Parent(**self.parent))
            else:
                raise InvalidJobOptions(f"parent must be a Parent(id, queue), got {type(self.parent).__name__}")
        if self.deduplication is not None and not isinstance(self.deduplication, Deduplication):
            if isinstance(self.deduplication, Mapping):
                set_(self, "deduplication", Deduplication(**self.deduplication))
            else:
                raise InvalidJobOptions("deduplication must be Deduplication(id, ...) or a mapping")
        if self.deduplication is not None and self.parent is not None:
            raise InvalidJobOptions("deduplication and parent cannot be used together (Node rejects it too)")
        exclusive = [n for n in ("fail_parent_on_failure", "continue_parent_on_failure",
                                 "ignore_dependency_on_failure", "remove_dependency_on_failure") if getattr(self, n)]
        if len(exclusive) > 1:
            raise InvalidJobOptions(f"the following options cannot be used together: {', '.join(exclusive)}")

    # -- building -------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | JobOptions | None) -> JobOptions:
        """Options from a dict of snake_case names; unknown names are an error
        with a suggestion (``jobId`` -> did you mean ``job_id``?)."""
        if data is None:
            return cls()
        if isinstance(data, JobOptions):
            return data
        known = {f.name for f in fields(cls)}
        unknown = [k for k in data if k not in known]
        if unknown:
            hints = []
            for name in unknown:
                snake = "".join("_" + c.lower() if c.isupper() else c for c in str(name))
                guess = snake if snake in known else next(iter(difflib.get_close_matches(str(name), known, 1)), None)
                hints.append(f"{name!r}" + (f" (did you mean {guess!r}?)" if guess else ""))
            raise InvalidJobOptions(f"unknown job option {', '.join(hints)}; known: {', '.join(sorted(known))}")
        return cls(**data)

    def merged_over(self, defaults: JobOptions | None) -> JobOptions:
        """These options with unset fields taken from ``defaults`` (queue defaults)."""
        if defaults is None:
            return self
        changes = {f.name: getattr(defaults, f.name) for f in fields(self)
                   if getattr(self, f.name) is None and getattr(defaults, f.name) is not None}
        if "delay" in changes and self.run_at is not None:
            del changes["delay"]
        return replace(self, **changes) if changes else self

    def effective_delay(self, now_ms: int) -> int:
        if self.run_at is not None:
            return max(0, epoch_ms(self.run_at) - now_ms)
        return int(self.delay or 0)  # type: ignore[arg-type]

    def to_bullmq(self, now_ms: int | None = None) -> dict[str, Any]:
        """BullMQ's stored opts (camelCase, compressed keys), as Node's ``optsAsJSON``."""
        out: dict[str, Any] = {"attempts": self.attempts if self.attempts is not None else 0}
        delay = self.effective_delay(now_ms or 0) if (self.run_at is not None or self.delay) else None
        if delay:
            out["delay"] = delay
        if self.priority:
            out["priority"] = self.priority
        if self.backoff is not None:
            assert isinstance(self.backoff, Backoff)
            out["backoff"] = self.backoff.to_bullmq()
        if self.lifo:
            out["lifo"] = True
        if self.remove_on_complete is not None:
            out["removeOnComplete"] = _keep_to_bullmq(self.remove_on_complete)  # type: ignore[arg-type]
        if self.remove_on_fail is not None:
            out["removeOnFail"] = _keep_to_bullmq(self.remove_on_fail)  # type: ignore[arg-type]
        if self.keep_logs is not None:
            out["kl"] = self.keep_logs
        if self.stack_trace_limit is not None:
            out["stackTraceLimit"] = self.stack_trace_limit
        if self.size_limit is not None:
            out["sizeLimit"] = self.size_limit
        if self.job_id is not None:
            out["jobId"] = self.job_id
        if self.timestamp is not None:
            out["timestamp"] = self.timestamp
        if self.parent is not None:
            out["parent"] = {"id": self.parent.id, "queue": self.parent.queue_key}
        if self.deduplication is not None:
            assert isinstance(self.deduplication, Deduplication)
            out["de"] = self.deduplication.to_bullmq()
        if self.fail_parent_on_failure:
            out["fpof"] = True
        if self.continue_parent_on_failure:
            out["cpof"] = True
        if self.ignore_dependency_on_failure:
            out["idof"] = True
        if self.remove_dependency_on_failure:
            out["rdof"] = True
        if self.telemetry is not None:
            if self.telemetry.metadata is not None:
                out["tm"] = self.telemetry.metadata
            if self.telemetry.omit_context is not None:
                out["omc"] = self.telemetry.omit_context
        return out


def validate_job_id(job_id: Any) -> str:
    """Node's custom id rules: a non-empty string, not integer-like, no ``:``
    (except BullMQ's own 3-part repeat ids), not ``0`` or ``0:...``."""
    if not isinstance(job_id, str):
        raise InvalidJobOptions(f"job_id must be a string, got {type(job_id).__name__}")
    if not job_id:
        raise InvalidJobOptions("job_id must not be empty")
    if job_id == "0" or job_id.startswith("0:"):
        raise InvalidJobOptions("job_id cannot be '0' or start with '0:' (Node rejects it)")
    try:
        as_int = int(job_id, 10)
    except ValueError:
        as_int = None
    if as_int is not None and str(as_int) == job_id:
        raise InvalidJobOptions(
            f"job_id {job_id!r} is integer-like, which Node rejects ('Custom Id cannot be integers'): "
            "BullMQ's own ids are integers, so yours could collide; add a prefix such as 'order-'")
    if ":" in job_id and len(job_id.split(":")) != 3:
        raise InvalidJobOptions(f"job_id {job_id!r} contains ':', which BullMQ uses as its key separator")
    return job_id


@dataclass(frozen=True)
class RateLimit:
    """At most ``max`` jobs per ``duration`` (ms or timedelta), across all workers
    of the queue that use the same limiter (BullMQ's ``limiter``)."""

    max: int
    duration: Millis

    def __post_init__(self) -> None:
        if not int_at_least(self.max, 1):
            raise InvalidJobOptions(f"rate limit max must be an int >= 1, got {self.max!r}")
        object.__setattr__(self, "duration", to_ms(self.duration, "rate limit duration", allow_zero=False))

    def to_bullmq(self) -> dict[str, Any]:
        return {"max": self.max, "duration": self.duration}


def now_utc() -> datetime:
    return datetime.now(UTC)


__all__ = [
    "PRIORITY_LIMIT",
    "Backoff",
    "Deduplication",
    "JobOptions",
    "KeepJobs",
    "Parent",
    "RateLimit",
    "Telemetry",
    "to_ms",
    "validate_job_id",
]

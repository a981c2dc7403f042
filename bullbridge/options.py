"""Typed, validated job options, and the one mapping to BullMQ's camelCase.

Every option Node BullMQ 6.7 accepts on ``Queue.add`` (``JobsOptions``:
``DefaultJobOptions`` + ``BaseJobOptions`` + ``CompressableJobOptions``) has a
snake_case field on :class:`JobOptions`; BullMQ's internal ones
(``repeatJobKey``, ``prevMillis``) and the removed ones (``repeat`` on add,
``debounce``) do not.

Invalid values raise :class:`~bullbridge.errors.InvalidJobOptions` when the
options are built, before anything reaches Redis. What Node's
``Job.validateOptions``/``Queue.addJob`` reject is rejected here too
(integer-like custom ids, ``0``, float or out-of-range priorities, jitter
outside 0..1, several parent-failure policies at once, a deduplication without
id or beside a parent, a data payload over ``size_limit``); and so is what
Node accepts but then silently misreads or ignores: unknown option names (the
port drops ``job_id`` spelled as a dict key), negative delays and priorities,
``attempts < 1``, negative keep-job counts, ``:`` in custom ids (except Node's
three-part ids), a parent-failure policy without a parent, and ``extend``
without a ``ttl``. Deduplication ``reschedule`` (Node 6.7) is done with
``changeDelay`` after the add.

``timedelta`` is accepted wherever milliseconds (or, for ``KeepJobs.age``,
seconds) are expected, and an aware ``datetime`` for ``delay`` (run at that
instant) and ``timestamp``.

:meth:`JobOptions.to_bullmq` is the single place our names become BullMQ's
stored names, exactly as Node's ``optsAsJSON`` writes them
(``deduplication`` -> ``de``, ``keepLogs`` -> ``kl``,
``failParentOnFailure`` -> ``fpof``, ``telemetry`` -> ``tm``/``omc``...), in
a fixed key order so the ``opts`` field Lua stores is byte-identical to the
one Node stores for options given in that order.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from bullbridge.clock import datetime_ms, now_ms
from bullbridge.errors import InvalidJobOptions

#: Node's ``PRIORITY_LIMIT``: priorities are 0 (none) .. 2**21 - 1.
PRIORITY_LIMIT = 2**21 - 1
#: Node numbers are exact up to 2**53 - 1; longer times are nonsense anyway.
MAX_DELAY_MS = 2**53 - 1

Millis = int | float | timedelta


def to_ms(value: Millis, what: str, *, allow_zero: bool = True) -> int:
    """Milliseconds from an int/float (ms) or a timedelta; negative is an error."""
    if isinstance(value, bool):
        raise InvalidJobOptions(f"{what} must be milliseconds or a timedelta, not a bool")
    if isinstance(value, timedelta):
        ms: int | float = value.total_seconds() * 1000
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
    """Epoch milliseconds from an int (ms) or an aware datetime."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidJobOptions("give the datetime a tzinfo: a naive datetime is ambiguous between hosts")
        return datetime_ms(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidJobOptions(f"timestamps are epoch milliseconds (int >= 0) or aware datetimes, got {value!r}")
    return value


def now_utc() -> datetime:
    return datetime.now(UTC)


def _flag(value: Any, what: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise InvalidJobOptions(f"{what} must be True or False, got {value!r}")


def _unknown_keys(data: Mapping[str, Any], known: tuple[str, ...], what: str) -> None:
    unknown = [k for k in data if k not in known]
    if unknown:
        raise InvalidJobOptions(f"unknown {what} key(s) {', '.join(map(repr, unknown))} (known: {', '.join(known)})")


def _snake_keys(
    value: Mapping[Any, Any], camel: Mapping[str, str], known: tuple[str, ...], what: str
) -> dict[str, Any]:
    """A mapping given in Node's spelling or ours, as our field names; unknown keys refused."""
    data = {camel.get(str(k), str(k)): v for k, v in value.items()}
    _unknown_keys(data, known, what)
    return data


# --- value objects -------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """How long to wait between attempts.

    ``Backoff.fixed(1000)``, ``Backoff.exponential(200, jitter=0.5)``, or a
    custom type the workers know (Python: ``Worker(..., backoff_strategies=
    {"linear": fn})``; Node: ``settings.backoffStrategy``):
    ``Backoff.custom("linear", 100)``.
    """

    type: str
    delay: int | None = None
    jitter: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not self.type:
            raise InvalidJobOptions(
                f"backoff type must be a non-empty string ('fixed', 'exponential' or custom), got {self.type!r}"
            )
        if self.delay is not None:
            object.__setattr__(self, "delay", to_ms(self.delay, "backoff delay"))
        elif self.type in ("fixed", "exponential"):
            raise InvalidJobOptions(f"a {self.type} backoff needs a delay (ms or timedelta)")
        jitter = self.jitter
        if jitter is not None and (
            isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or not 0 <= jitter <= 1
        ):
            raise InvalidJobOptions(
                f"backoff jitter must be between 0 and 1 (Node: 'Jitter should be between 0 and 1'), got {jitter!r}"
            )

    @classmethod
    def fixed(cls, delay: Millis, *, jitter: float | None = None) -> Backoff:
        """The same ``delay`` before every retry."""
        return cls("fixed", to_ms(delay, "backoff delay"), jitter)

    @classmethod
    def exponential(cls, delay: Millis, *, jitter: float | None = None) -> Backoff:
        """``delay * 2**(attempts_made - 1)`` before each retry."""
        return cls("exponential", to_ms(delay, "backoff delay"), jitter)

    @classmethod
    def custom(cls, type: str, delay: Millis | None = None, *, jitter: float | None = None) -> Backoff:
        """A strategy registered on the workers under ``type``."""
        return cls(type, None if delay is None else to_ms(delay, "backoff delay"), jitter)

    def to_bullmq(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.delay is not None:
            out["delay"] = self.delay
        if self.jitter is not None:
            out["jitter"] = self.jitter
        return out

    @classmethod
    def parse(cls, value: Any) -> Backoff:
        """A Backoff from itself, ms / timedelta (fixed, as Node's ``backoff: 1000``),
        or a mapping ``{"type", "delay", "jitter"}``."""
        if isinstance(value, Backoff):
            return value
        if isinstance(value, (int, float, timedelta)) and not isinstance(value, bool):
            return cls.fixed(value)
        if isinstance(value, Mapping):
            _unknown_keys(value, ("type", "delay", "jitter"), "backoff")
            return cls(value.get("type", ""), value.get("delay"), value.get("jitter"))
        raise InvalidJobOptions(f"backoff must be ms, a timedelta, a Backoff or a mapping, got {type(value).__name__}")


@dataclass(frozen=True)
class KeepJobs:
    """Which finished jobs to keep: the newest ``count`` and/or those younger
    than ``age`` (seconds, or a timedelta), removing at most ``limit`` per
    finished job (``limit`` applies to ``age`` only, as in BullMQ)."""

    count: int | None = None
    age: int | float | timedelta | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.count is None and self.age is None:
            raise InvalidJobOptions("KeepJobs needs a count or an age")
        if self.count is not None and not int_at_least(self.count, 0):
            raise InvalidJobOptions(f"KeepJobs count must be an int >= 0, got {self.count!r}")
        age = self.age
        if isinstance(age, timedelta):
            seconds = age.total_seconds()
            age = int(seconds) if seconds.is_integer() else seconds
            object.__setattr__(self, "age", age)
        if age is not None and (
            isinstance(age, bool) or not isinstance(age, (int, float)) or not math.isfinite(age) or age < 0
        ):
            raise InvalidJobOptions(f"KeepJobs age is seconds (>= 0) or a timedelta, got {self.age!r}")
        if self.limit is not None:
            if not int_at_least(self.limit, 1):
                raise InvalidJobOptions(f"KeepJobs limit must be an int >= 1, got {self.limit!r}")
            if age is None:
                raise InvalidJobOptions("KeepJobs limit only applies with an age (BullMQ ignores it otherwise)")

    def to_bullmq(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.count is not None:
            out["count"] = self.count
        if self.age is not None:
            out["age"] = self.age
        if self.limit is not None:
            out["limit"] = self.limit
        return out

    @classmethod
    def parse(cls, value: Any, what: str = "keep-jobs option") -> Keep:
        """``True`` (remove at once), ``False`` (keep all), a count to keep,
        ``KeepJobs``, or a mapping ``{"count", "age", "limit"}``."""
        if isinstance(value, (bool, KeepJobs)):
            return value
        if isinstance(value, int):
            if value < 0:
                raise InvalidJobOptions(f"{what} as a count of jobs to keep must be >= 0, got {value}")
            return value
        if isinstance(value, Mapping):
            _unknown_keys(value, ("count", "age", "limit"), what)
            return cls(**value)
        raise InvalidJobOptions(
            f"{what} must be True/False, a count, KeepJobs or {{count, age, limit}}, got {type(value).__name__}"
        )


Keep = bool | int | KeepJobs


def keep_to_bullmq(value: Keep) -> Any:
    return value.to_bullmq() if isinstance(value, KeepJobs) else value


@dataclass(frozen=True)
class Parent:
    """The parent of a job: its id, its queue's plain name, and the prefix.

    BullMQ stores the parent's queue qualified (``<prefix>:<queue>``);
    :meth:`parse` also accepts Node's form ``{"id": ..., "queue": "bull:q"}``.
    """

    id: str
    queue: str
    prefix: str = "bull"

    def __post_init__(self) -> None:
        if isinstance(self.id, int) and not isinstance(self.id, bool):
            object.__setattr__(self, "id", str(self.id))
        if not isinstance(self.id, str) or not self.id or ":" in self.id:
            raise InvalidJobOptions(f"parent id must be a non-empty string without ':', got {self.id!r}")
        if not isinstance(self.queue, str) or not self.queue or ":" in self.queue:
            raise InvalidJobOptions(f"parent queue must be a plain queue name (no ':'), got {self.queue!r}")
        if not isinstance(self.prefix, str) or not self.prefix:
            raise InvalidJobOptions(f"parent prefix must be a non-empty string, got {self.prefix!r}")

    @property
    def queue_key(self) -> str:
        """BullMQ's ``parent.queue``: the qualified name ``<prefix>:<queue>``."""
        return f"{self.prefix}:{self.queue}"

    @property
    def key(self) -> str:
        """The parent's job hash key."""
        return f"{self.queue_key}:{self.id}"

    @classmethod
    def parse(cls, value: Any) -> Parent:
        if isinstance(value, Parent):
            return value
        if isinstance(value, Mapping):
            _unknown_keys(value, ("id", "queue", "prefix"), "parent")
            queue = value.get("queue", "")
            prefix = value.get("prefix")
            if prefix is None and isinstance(queue, str) and ":" in queue:
                prefix, queue = queue.rsplit(":", 1)
            return cls(value.get("id", ""), queue, prefix or "bull")
        raise InvalidJobOptions(f"parent must be Parent(id, queue) or a mapping, got {type(value).__name__}")


@dataclass(frozen=True)
class Deduplication:
    """At most one job per ``id`` until that job finishes (or ``ttl`` expires).

    ``extend`` renews the ttl on every duplicate; ``replace`` swaps a still
    delayed job for the newest one; ``keep_last_if_active`` keeps the newest
    duplicate's data for one more run after an active job finishes.
    ``reschedule`` (Node 6.7) moves a still delayed existing job to the new
    job's delay, counted from the new job's timestamp, keeping its id and data
    (ignored with ``replace``). The port's scripts predate it, so
    :class:`~bullbridge.queue.Queue` runs BullMQ's ``changeDelay`` on the
    existing job right after the add: the same outcome, in two steps.
    """

    id: str
    ttl: int | timedelta | None = None
    extend: bool = False
    replace: bool = False
    keep_last_if_active: bool = False
    reschedule: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise InvalidJobOptions(
                f"deduplication id must be a non-empty string (Node: 'Deduplication id must be provided'), "
                f"got {self.id!r}"
            )
        if self.ttl is not None:
            object.__setattr__(self, "ttl", to_ms(self.ttl, "deduplication ttl", allow_zero=False))
        for name in ("extend", "replace", "keep_last_if_active", "reschedule"):
            _flag(getattr(self, name), f"deduplication {name}")
        if self.extend and self.ttl is None:
            raise InvalidJobOptions("deduplication extend renews a ttl: give a ttl too (BullMQ ignores it otherwise)")

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
        if self.reschedule:
            out["reschedule"] = True
        return out

    @classmethod
    def parse(cls, value: Any) -> Deduplication:
        if isinstance(value, Deduplication):
            return value
        if isinstance(value, Mapping):
            data = _snake_keys(
                value,
                {"keepLastIfActive": "keep_last_if_active"},
                ("id", "ttl", "extend", "replace", "keep_last_if_active", "reschedule"),
                "deduplication",
            )
            return cls(**{"id": "", **data})
        if isinstance(value, str):
            return cls(value)
        raise InvalidJobOptions(
            f"deduplication must be Deduplication(id, ...), a mapping or an id string, got {type(value).__name__}"
        )


@dataclass(frozen=True)
class Telemetry:
    """OpenTelemetry propagation metadata stored with the job (Node: ``tm``/``omc``)."""

    metadata: str | None = None
    omit_context: bool | None = None

    def __post_init__(self) -> None:
        if self.metadata is not None and not isinstance(self.metadata, str):
            raise InvalidJobOptions(f"telemetry metadata must be a string, got {type(self.metadata).__name__}")
        _flag(self.omit_context, "telemetry omit_context")

    @classmethod
    def parse(cls, value: Any) -> Telemetry:
        if isinstance(value, Telemetry):
            return value
        if isinstance(value, Mapping):
            data = _snake_keys(value, {"omitContext": "omit_context"}, ("metadata", "omit_context"), "telemetry")
            return cls(**data)
        raise InvalidJobOptions(f"telemetry must be Telemetry(...) or a mapping, got {type(value).__name__}")


# --- the options ---------------------------------------------------------------------

#: BullMQ's name for each option (before ``optsAsJSON`` compresses some).
NODE_NAMES: dict[str, str] = {
    "job_id": "jobId",
    "priority": "priority",
    "delay": "delay",
    "attempts": "attempts",
    "backoff": "backoff",
    "lifo": "lifo",
    "remove_on_complete": "removeOnComplete",
    "remove_on_fail": "removeOnFail",
    "keep_logs": "keepLogs",
    "stack_trace_limit": "stackTraceLimit",
    "size_limit": "sizeLimit",
    "timestamp": "timestamp",
    "parent": "parent",
    "deduplication": "deduplication",
    "fail_parent_on_failure": "failParentOnFailure",
    "continue_parent_on_failure": "continueParentOnFailure",
    "ignore_dependency_on_failure": "ignoreDependencyOnFailure",
    "remove_dependency_on_failure": "removeDependencyOnFailure",
    "telemetry": "telemetry",
}

#: Options a queue may default (Node's ``DefaultJobOptions``).
DEFAULTABLE = (
    "timestamp",
    "priority",
    "delay",
    "attempts",
    "backoff",
    "lifo",
    "remove_on_complete",
    "remove_on_fail",
    "keep_logs",
    "stack_trace_limit",
    "size_limit",
)

PARENT_POLICIES = (
    "fail_parent_on_failure",
    "continue_parent_on_failure",
    "ignore_dependency_on_failure",
    "remove_dependency_on_failure",
)

_NOT_OPTIONS = {
    "repeat": "'repeat' is not an option of add() since BullMQ 5.16: use a job scheduler",
    "debounce": "'debounce' was removed from BullMQ (Node throws): use deduplication=Deduplication(id, ttl=...)",
    "repeatJobKey": "'repeatJobKey' is internal to BullMQ's job schedulers",
    "prevMillis": "'prevMillis' is internal to BullMQ's job schedulers",
}
_COMPRESSED = {
    "de": "deduplication",
    "kl": "keep_logs",
    "fpof": "fail_parent_on_failure",
    "cpof": "continue_parent_on_failure",
    "idof": "ignore_dependency_on_failure",
    "rdof": "remove_dependency_on_failure",
    "tm": "telemetry",
    "omc": "telemetry",
}


#: The parent policies and the short keys BullMQ stores them under, in Node's order.
_POLICY_KEYS = (
    ("fail_parent_on_failure", "fpof"),
    ("continue_parent_on_failure", "cpof"),
    ("ignore_dependency_on_failure", "idof"),
    ("remove_dependency_on_failure", "rdof"),
)


@dataclass(frozen=True, kw_only=True)
class JobOptions:
    """Options of one job; ``None`` means "not set" (the queue default, then BullMQ's).

    Times accept milliseconds or ``timedelta``; ``delay`` (or ``run_at``) may be
    an aware ``datetime``: the job runs at that instant (it becomes a delay
    relative to the job's timestamp when the job is added).
    """

    job_id: str | None = None
    priority: int | None = None
    delay: Millis | datetime | None = None
    run_at: datetime | None = None
    attempts: int | None = None
    backoff: Backoff | Millis | Mapping[str, Any] | None = None
    lifo: bool | None = None
    remove_on_complete: Keep | Mapping[str, Any] | None = None
    remove_on_fail: Keep | Mapping[str, Any] | None = None
    keep_logs: int | None = None
    stack_trace_limit: int | None = None
    size_limit: int | None = None
    timestamp: int | datetime | None = None
    parent: Parent | Mapping[str, Any] | None = None
    deduplication: Deduplication | Mapping[str, Any] | str | None = None
    fail_parent_on_failure: bool | None = None
    continue_parent_on_failure: bool | None = None
    ignore_dependency_on_failure: bool | None = None
    remove_dependency_on_failure: bool | None = None
    telemetry: Telemetry | Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.job_id is not None:
            validate_job_id(self.job_id)
        self._check_priority()
        self._normalise_timing()
        self._normalise_nested()
        self._check_counts()
        self._check_combinations()

    def _check_priority(self) -> None:
        if self.priority is None:
            return
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise InvalidJobOptions(
                f"priority must be an int (Node: 'Priority should not be float'), got {self.priority!r}"
            )
        if not 0 <= self.priority <= PRIORITY_LIMIT:
            raise InvalidJobOptions(
                f"priority must be between 0 and {PRIORITY_LIMIT} (Node: 'Priority should be between 0 and "
                f"{PRIORITY_LIMIT}'), got {self.priority}"
            )

    def _normalise_timing(self) -> None:
        """``delay`` as ms (a datetime given as delay becomes ``run_at``), ``run_at``
        aware, ``timestamp`` as epoch ms."""
        set_ = object.__setattr__
        if isinstance(self.delay, datetime):
            if self.run_at is not None:
                raise InvalidJobOptions("give delay or run_at, not both")
            set_(self, "run_at", self.delay)
            set_(self, "delay", None)
        elif self.delay is not None:
            set_(self, "delay", to_ms(self.delay, "delay"))
        if self.run_at is not None:
            if not isinstance(self.run_at, datetime) or self.run_at.tzinfo is None or self.run_at.utcoffset() is None:
                raise InvalidJobOptions(f"run_at must be a timezone-aware datetime, got {self.run_at!r}")
            if self.delay is not None:
                raise InvalidJobOptions("give delay or run_at, not both")
        if self.timestamp is not None:
            set_(self, "timestamp", epoch_ms(self.timestamp))

    def _normalise_nested(self) -> None:
        """Sub-options given as mappings or shorthands become their dataclasses."""
        set_ = object.__setattr__
        if self.backoff is not None:
            set_(self, "backoff", Backoff.parse(self.backoff))
        for name in ("remove_on_complete", "remove_on_fail"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, KeepJobs.parse(value, name))
        parsers: tuple[tuple[str, Callable[[Any], Any]], ...] = (
            ("parent", Parent.parse),
            ("deduplication", Deduplication.parse),
            ("telemetry", Telemetry.parse),
        )
        for name, parse in parsers:
            value = getattr(self, name)
            if value is not None:
                set_(self, name, parse(value))

    def _check_counts(self) -> None:
        if self.attempts is not None and not int_at_least(self.attempts, 1):
            raise InvalidJobOptions(f"attempts must be an int >= 1, got {self.attempts!r}")
        for name, minimum in (("keep_logs", 0), ("stack_trace_limit", 0), ("size_limit", 1)):
            value = getattr(self, name)
            if value is not None and not int_at_least(value, minimum):
                raise InvalidJobOptions(f"{name} must be an int >= {minimum}, got {value!r}")
        for name in ("lifo", *PARENT_POLICIES):
            _flag(getattr(self, name), name)

    def _check_combinations(self) -> None:
        if self.deduplication is not None and self.parent is not None:
            raise InvalidJobOptions(
                "deduplication and parent cannot be used together "
                "(Node: 'Deduplication and parent options cannot be used together')"
            )
        policies = [n for n in PARENT_POLICIES if getattr(self, n)]
        if len(policies) > 1:
            raise InvalidJobOptions(
                f"the following options cannot be used together: {', '.join(policies)} (pick one policy)"
            )

    # -- building -------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | JobOptions | None) -> JobOptions:
        """Options from a dict of snake_case names; an unknown name is an error
        with a suggestion (``jobId`` -> did you mean ``job_id``?)."""
        if data is None:
            return cls()
        if isinstance(data, JobOptions):
            return data
        if not isinstance(data, Mapping):
            raise InvalidJobOptions(f"job options must be JobOptions or a mapping, got {type(data).__name__}")
        known = [f.name for f in fields(cls)]
        problems = [_unknown_option(str(name), known) for name in data if name not in known]
        if problems:
            raise InvalidJobOptions("; ".join(problems))
        return cls(**data)

    @classmethod
    def defaults(cls, data: Mapping[str, Any] | JobOptions | None) -> JobOptions | None:
        """Queue-level defaults (Node's ``defaultJobOptions``): only the options
        Node's ``DefaultJobOptions`` allows, as a job id, parent or
        deduplication shared by every job makes no sense."""
        if data is None:
            return None
        options = cls.from_mapping(data)
        extra = [f.name for f in fields(cls) if f.name not in DEFAULTABLE and getattr(options, f.name) is not None]
        if extra:
            raise InvalidJobOptions(
                f"{', '.join(extra)} cannot be queue defaults (defaults may set: {', '.join(DEFAULTABLE)})"
            )
        return options

    def merged_over(self, defaults: JobOptions | None) -> JobOptions:
        """These options with unset fields taken from ``defaults`` (Node:
        ``{...defaultJobOptions, ...opts}``)."""
        if defaults is None:
            return self
        changes = {
            f.name: getattr(defaults, f.name)
            for f in fields(self)
            if getattr(self, f.name) is None and getattr(defaults, f.name) is not None
        }
        if self.run_at is not None:
            changes.pop("delay", None)
        return replace(self, **changes) if changes else self

    def check_for_add(self) -> JobOptions:
        """Checks that need the final options of a job about to be added: a
        parent-failure policy only means something for a job with a parent."""
        policies = [n for n in PARENT_POLICIES if getattr(self, n)]
        if policies and self.parent is None:
            raise InvalidJobOptions(
                f"{policies[0]} only applies to a job with a parent (give parent=..., or "
                "add the job as a child in a flow)"
            )
        return self

    # -- reading --------------------------------------------------------------------

    def delay_ms(self, reference_ms: int | None = None) -> int | None:
        """The delay BullMQ stores: ``delay``, or ``run_at`` minus the job's
        timestamp (``reference_ms``, default now; never negative)."""
        if self.run_at is not None:
            reference = now_ms() if reference_ms is None else reference_ms
            return max(0, epoch_ms(self.run_at) - reference)
        return cast("int | None", self.delay)

    def to_bullmq(self, reference_ms: int | None = None, *, parent_last: bool = False) -> dict[str, Any]:
        """BullMQ's stored opts (camelCase, compressed keys), as Node's ``optsAsJSON``.

        Set options are written (even ``0``/``False``, as Node writes what it is
        given); unset ones are left out, except ``attempts``, which Node always
        writes (``0`` = one attempt). Key order: ``attempts``, then
        ``DefaultJobOptions``, ``BaseJobOptions`` and ``CompressableJobOptions``
        in their declaration order; ``parent_last`` moves ``parent`` to the end,
        where Node's FlowProducer puts it (``{...opts, parent}``)."""
        parent = cast("Parent | None", self.parent)
        parent_json = {"id": parent.id, "queue": parent.queue_key} if parent is not None else None
        backoff = cast("Backoff | None", self.backoff)
        telemetry = cast("Telemetry | None", self.telemetry)
        keep = (
            keep_to_bullmq(cast(Keep, self.remove_on_complete)) if self.remove_on_complete is not None else None,
            keep_to_bullmq(cast(Keep, self.remove_on_fail)) if self.remove_on_fail is not None else None,
        )
        entries: list[tuple[str, Any]] = [
            ("timestamp", self.timestamp),
            ("priority", self.priority),
            ("delay", self.delay_ms(reference_ms)),
            ("backoff", backoff.to_bullmq() if backoff is not None else None),
            ("lifo", self.lifo),
            ("removeOnComplete", keep[0]),
            ("removeOnFail", keep[1]),
            ("kl", self.keep_logs),
            ("stackTraceLimit", self.stack_trace_limit),
            ("sizeLimit", self.size_limit),
            ("jobId", self.job_id),
            ("parent", None if parent_last else parent_json),
            ("de", cast(Deduplication, self.deduplication).to_bullmq() if self.deduplication is not None else None),
            *((short, getattr(self, name)) for name, short in _POLICY_KEYS),
            ("tm", telemetry.metadata if telemetry is not None else None),
            ("omc", telemetry.omit_context if telemetry is not None else None),
            ("parent", parent_json if parent_last else None),
        ]
        out: dict[str, Any] = {"attempts": self.attempts if self.attempts is not None else 0}
        out.update((key, value) for key, value in entries if value is not None)
        return out

    def parent_data(self) -> dict[str, Any] | None:
        """The job hash's ``parent`` field, as Node's Job constructor builds it:
        ``{id, queueKey}`` plus the policy flag that is set."""
        if self.parent is None:
            return None
        parent = cast(Parent, self.parent)
        data: dict[str, Any] = {"id": parent.id, "queueKey": parent.queue_key}
        for name, short in (
            ("fail_parent_on_failure", "fpof"),
            ("remove_dependency_on_failure", "rdof"),
            ("ignore_dependency_on_failure", "idof"),
            ("continue_parent_on_failure", "cpof"),
        ):
            if getattr(self, name):
                data[short] = True
        return data


def _unknown_option(name: str, known: list[str]) -> str:
    if name in _NOT_OPTIONS:
        return _NOT_OPTIONS[name]
    snake = re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()
    guess = {v: k for k, v in NODE_NAMES.items()}.get(name) or _COMPRESSED.get(name)
    if guess is None and snake in known:
        guess = snake
    if guess is None:
        guess = next(iter(difflib.get_close_matches(snake, known, 1)), None)
    hint = f" (did you mean {guess!r}?)" if guess else f" (known: {', '.join(known)})"
    return f"unknown job option {name!r}{hint}"


_INTEGER_LIKE = re.compile(r"0|-?[1-9][0-9]*")


def validate_job_id(job_id: Any) -> str:
    """A custom job id Node accepts and every BullMQ tool can parse back.

    Node rejects ``0``/``0:...``, and ids its check ``${parseInt(id, 10)}` === id``
    reads as integers (``123``, ``-5``, and ``NaN``), because BullMQ's own ids
    are integers from a counter and could collide. An id with ``:`` is
    refused unless it has exactly three ``:``-separated parts (``a:b:c``):
    Node's own rule (``jobId.split(':').length !== 3``), kept for the ids of
    legacy repeatable jobs (``repeat:<key>:<millis>``). A job id a Node
    producer may use, a Python producer may use too (the ``custom_id_parts``
    conformance scenario)."""
    if not isinstance(job_id, str):
        raise InvalidJobOptions(f"job_id must be a string, got {type(job_id).__name__} {job_id!r}")
    if not job_id:
        raise InvalidJobOptions("job_id must not be empty (leave it unset for an automatic id)")
    if job_id == "0" or job_id.startswith("0:"):
        raise InvalidJobOptions(
            "job_id cannot be '0' or start with '0:' (Node: \"JobId cannot be '0' or start with '0:'\")"
        )
    if _INTEGER_LIKE.fullmatch(job_id) or job_id == "NaN":
        raise InvalidJobOptions(
            f"job_id {job_id!r} reads as an integer, which Node rejects ('Custom Id cannot be integers'): "
            "BullMQ's own ids are integers, so yours could collide; add a prefix such as 'order-'"
        )
    if ":" in job_id and job_id.count(":") != 2:
        raise InvalidJobOptions(
            f"job_id {job_id!r} contains ':', BullMQ's key separator, and is not three ':'-separated parts "
            "(Node: 'Custom Id cannot contain :'); use another separator such as '-'"
        )
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


__all__ = [
    "DEFAULTABLE",
    "NODE_NAMES",
    "PRIORITY_LIMIT",
    "Backoff",
    "Deduplication",
    "JobOptions",
    "Keep",
    "KeepJobs",
    "Parent",
    "RateLimit",
    "Telemetry",
    "epoch_ms",
    "int_at_least",
    "keep_to_bullmq",
    "to_ms",
    "validate_job_id",
]

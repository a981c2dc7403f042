"""A schedule declared in Python: what one BullMQ job scheduler should be.

:class:`Schedule` is plain, validated data. Everything Node BullMQ would
reject is rejected when the object is built (both or neither of ``pattern`` /
``every``, ``immediately`` with ``start_date``, a pattern cron-parser refuses,
an unknown time zone, job options a scheduler template cannot carry), so a
declaration that loads is one Node reads as meant. :meth:`Schedule.repeat`,
:meth:`Schedule.template_opts` and :meth:`Schedule.scheduler_opts` are the one
mapping to BullMQ's stored names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bullbridge import codec
from bullbridge.errors import InvalidJobOptions
from bullbridge.keys import QueueKeys
from bullbridge.options import JobOptions, epoch_ms, to_ms
from bullbridge.scheduler.cron import parse
from bullbridge.scheduler.errors import InvalidSchedule
from bullbridge.scheduler.timing import Repeat
from bullbridge.scheduler.zoned import get_zone

#: JobOptions a scheduler template cannot carry: BullMQ sets them per
#: iteration (Node's ``JobSchedulerTemplateOptions`` omits jobId, delay,
#: deduplication; a fixed timestamp or a flow parent make no sense per run).
_NOT_IN_TEMPLATE = ("job_id", "delay", "run_at", "deduplication", "timestamp", "parent")

Instant = datetime | int


def _instant(value: Instant | None, what: str) -> int | None:
    if value is None:
        return None
    try:
        return epoch_ms(value)
    except InvalidJobOptions as exc:
        raise InvalidSchedule(f"{what}: {exc}") from None


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """One job scheduler: which job to add to which queue, and when.

    Give exactly one of ``pattern`` (cron, 5 fields or 6 with seconds *first*,
    as Node's cron-parser reads them; see :mod:`bullbridge.scheduler.cron`) and
    ``every`` (milliseconds or a timedelta).

    ``tz`` is an IANA zone for ``pattern``. Without one the pattern runs in
    UTC, and :func:`~bullbridge.scheduler.sync.sync` stores ``tz="UTC"`` so
    that Node processes (which would use their own local zone) agree.

    ``name`` is the job name (default: ``id``, as in Node); ``data`` the job
    data (default ``{}``); ``opts`` the job options every iteration gets.
    ``start_date``/``end_date`` bound the schedule (aware datetimes or epoch
    ms), ``limit`` caps the number of runs, ``immediately`` makes a pattern
    schedule also run once when it is created, ``offset`` shifts an ``every``
    schedule inside its period.
    """

    id: str
    queue: str
    pattern: str | None = None
    every: int | timedelta | None = None
    tz: str | None = None
    name: str | None = None
    data: Any = field(default_factory=dict)
    opts: JobOptions | Mapping[str, Any] | None = None
    start_date: Instant | None = None
    end_date: Instant | None = None
    limit: int | None = None
    immediately: bool = False
    offset: int | timedelta | None = None
    prefix: str = "bull"

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise InvalidSchedule("a schedule needs a non-empty string id")
        where = f"schedule {self.id!r}"
        try:
            QueueKeys(self.queue, self.prefix)
        except Exception as exc:
            raise InvalidSchedule(f"{where}: {exc}") from None
        if self.pattern is not None and self.every is not None:
            raise InvalidSchedule(
                f"{where}: Both .pattern and .every options are defined for this repeatable job; give one"
            )
        if self.pattern is None and self.every is None:
            raise InvalidSchedule(f"{where}: give a cron pattern or an every interval")
        if self.pattern is not None:
            self._check_pattern(where)
        else:
            self._check_every(where)
        self._check_window(where)
        self._check_template(where)

    def _check_pattern(self, where: str) -> None:
        if not isinstance(self.pattern, str) or not self.pattern.strip():
            raise InvalidSchedule(f"{where}: pattern must be a non-empty string")
        try:
            parse(self.pattern)
        except InvalidSchedule as exc:
            raise type(exc)(f"{where}: pattern {self.pattern!r}: {exc}") from None
        if self.offset is not None:
            raise InvalidSchedule(f"{where}: offset only applies to every schedules (BullMQ ignores it)")
        if self.tz is not None:
            if not isinstance(self.tz, str):
                raise InvalidSchedule(f"{where}: tz must be a zone name")
            try:
                get_zone(self.tz)
            except InvalidSchedule as exc:
                raise InvalidSchedule(f"{where}: {exc}") from None

    def _check_every(self, where: str) -> None:
        set_ = object.__setattr__
        try:
            set_(self, "every", to_ms(self.every, "every", allow_zero=False))  # type: ignore[arg-type]
            if self.offset is not None:
                set_(self, "offset", to_ms(self.offset, "offset"))
        except InvalidJobOptions as exc:
            raise InvalidSchedule(f"{where}: {exc}") from None
        if self.immediately:
            raise InvalidSchedule(f"{where}: immediately has no effect on an every schedule (it starts at once)")
        if self.tz is not None:
            raise InvalidSchedule(f"{where}: tz only applies to cron patterns")

    def _check_window(self, where: str) -> None:
        """``start_date``/``end_date`` as epoch ms, in order; ``limit`` a positive int."""
        set_ = object.__setattr__
        if self.immediately and self.start_date is not None:
            raise InvalidSchedule(
                f"{where}: Both .immediately and .startDate options are defined for this repeatable job"
            )
        set_(self, "start_date", _instant(self.start_date, f"{where} start_date"))
        set_(self, "end_date", _instant(self.end_date, f"{where} end_date"))
        if self.start_ms and self.end_ms and self.end_ms <= self.start_ms:
            raise InvalidSchedule(f"{where}: end_date must be after start_date")
        if self.limit is not None and (
            isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1
        ):
            raise InvalidSchedule(f"{where}: limit must be an int >= 1, got {self.limit!r}")

    def _check_template(self, where: str) -> None:
        """The job each iteration adds: its name, options and data."""
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise InvalidSchedule(f"{where}: name must be a non-empty string")
        try:
            opts = JobOptions.from_mapping(self.opts)
        except InvalidJobOptions as exc:
            raise InvalidSchedule(f"{where}: {exc}") from None
        banned = [n for n in _NOT_IN_TEMPLATE if getattr(opts, n) is not None]
        if banned:
            raise InvalidSchedule(
                f"{where}: {', '.join(banned)} cannot be part of a scheduler's job options "
                "(BullMQ sets the id, delay and timestamp of every iteration itself)"
            )
        object.__setattr__(self, "opts", opts)
        try:
            codec.encode(self.data)
        except Exception as exc:
            raise InvalidSchedule(f"{where}: data is not JSON-safe: {exc}") from None

    # -- BullMQ's view ------------------------------------------------------------------

    @property
    def start_ms(self) -> int | None:
        """``start_date`` in epoch ms."""
        assert self.start_date is None or isinstance(self.start_date, int)
        return self.start_date

    @property
    def end_ms(self) -> int | None:
        """``end_date`` in epoch ms."""
        assert self.end_date is None or isinstance(self.end_date, int)
        return self.end_date

    @property
    def every_ms(self) -> int | None:
        assert self.every is None or isinstance(self.every, int)
        return self.every

    @property
    def offset_ms(self) -> int | None:
        assert self.offset is None or isinstance(self.offset, int)
        return self.offset

    @property
    def job_name(self) -> str:
        return self.name if self.name is not None else self.id

    @property
    def job_options(self) -> JobOptions:
        assert isinstance(self.opts, JobOptions)
        return self.opts

    @property
    def stored_tz(self) -> str | None:
        """The ``tz`` written to Redis: a pattern without one is stored as UTC."""
        if self.pattern is None:
            return None
        return self.tz if self.tz is not None else "UTC"

    def repeat(self) -> Repeat:
        """The repeat options as BullMQ stores them (what Node passes around)."""
        return Repeat(
            pattern=self.pattern,
            every=self.every_ms,
            tz=self.stored_tz,
            start_date=self.start_ms,
            end_date=self.end_ms,
            limit=self.limit,
            immediately=self.immediately,
            offset=self.offset_ms,
        )

    def repeat_opts(self) -> dict[str, Any]:
        """``filteredRepeatOpts``: the repeat options a Node caller would pass,
        without ``immediately`` (BullMQ never stores it)."""
        out: dict[str, Any] = {}
        if self.pattern is not None:
            out["pattern"] = self.pattern
            out["tz"] = self.stored_tz
        else:
            out["every"] = self.every
            if self.offset is not None:
                out["offset"] = self.offset
        for key, value in (("startDate", self.start_date), ("endDate", self.end_date), ("limit", self.limit)):
            if value is not None:
                out[key] = value
        return out

    def scheduler_opts(self) -> dict[str, Any]:
        """ARGV[2] of ``addJobScheduler``: what the ``repeat:<id>`` hash records."""
        out: dict[str, Any] = {"name": self.job_name}
        for key, value in (
            ("startDate", self.start_date),
            ("endDate", self.end_date),
            ("tz", self.stored_tz),
            ("pattern", self.pattern),
            ("every", self.every),
            ("limit", self.limit),
            ("offset", self.offset if self.every is not None and self.offset else None),
        ):
            if value is not None:
                out[key] = value
        return out

    def template_opts(self) -> dict[str, Any]:
        """The job options template, as Node's ``optsAsJSON`` stores it: only
        what was set (``attempts`` too: Node stores no default for it)."""
        encoded = self.job_options.to_bullmq()
        if self.job_options.attempts is None:
            encoded.pop("attempts", None)
        return encoded

    def data_json(self) -> bytes:
        return codec.encode(self.data)

    def expected_state(self) -> dict[str, Any]:
        """What the scheduler hash holds after this schedule is written
        (compared by :mod:`bullbridge.scheduler.store` to detect foreign edits)."""
        state: dict[str, Any] = {
            "name": self.job_name,
            "pattern": self.pattern,
            "every": self.every,
            "tz": self.stored_tz,
            "startDate": self.start_date,
            "endDate": self.end_date,
            "limit": self.limit,
            "data": codec.decode(self.data_json()),
            "opts": self.template_opts(),
        }
        if self.every is not None and self.offset:
            state["offset"] = self.offset
        return state

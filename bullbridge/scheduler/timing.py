"""When a BullMQ job scheduler fires next, computed as Node BullMQ 6.7 does.

Two sources of truth are reproduced here, nothing else:

* ``pattern`` schedulers: ``defaultRepeatStrategy`` in ``job-scheduler.js``
  (start from ``max(now, startDate)``, parse with the repeat options, take
  cron-parser's ``next()``; ``immediately`` means "now"), then the clamp in
  ``upsertJobScheduler`` (never earlier than ``now``). A fresh parse per
  iteration, as BullMQ does, so no DST bookkeeping carries over between runs.
* ``every`` schedulers: ``getJobSchedulerEveryNextMillis`` in the Lua scripts
  (first run at ``max(startDate, now)``, or aligned to ``offset``, or at once;
  then ``prev + every``, realigned after missed slots).

:func:`fire_sequence` chains them the way a scheduler runs when each iteration
is picked up on time (the next run is computed when the current one starts).
"""

from __future__ import annotations

from dataclasses import dataclass

from bullbridge.clock import now_ms
from bullbridge.scheduler.cron import CronIterator, parse
from bullbridge.scheduler.errors import CronRangeError


@dataclass(frozen=True)
class Repeat:
    """BullMQ's repeat options, as stored (``opts.repeat`` of a job).

    Times are epoch milliseconds. ``count`` is the iteration number of the
    job these options were read from (None before the first one)."""

    pattern: str | None = None
    every: int | None = None
    tz: str | None = None
    start_date: int | None = None
    end_date: int | None = None
    limit: int | None = None
    immediately: bool = False
    offset: int | None = None
    count: int | None = None
    hash_seed: str | None = None
    strict: bool = False


def cron_next(millis: int, repeat: Repeat, *, clock: int | None = None) -> int | None:
    """``defaultRepeatStrategy(millis, repeatOpts)``: the next fire time after
    ``millis`` (or ``clock``/now with ``immediately``); None when there is none
    (cron-parser threw inside its ``try``: past ``endDate``, or never matching).

    A pattern cron-parser cannot parse raises :class:`CronSyntaxError`, as the
    parse sits outside BullMQ's ``try``."""
    assert repeat.pattern is not None
    start = repeat.start_date
    current = start if start and start > millis else millis
    fields = parse(repeat.pattern, strict=repeat.strict, hash_seed=repeat.hash_seed)
    iterator = CronIterator(fields, current=current, tz=repeat.tz, start=start, end=repeat.end_date)
    if repeat.immediately:
        return clock if clock is not None else now_ms()
    try:
        return iterator.next()
    except CronRangeError:
        return None


def pattern_next_millis(now: int, repeat: Repeat, *, clock: int | None = None) -> int | None:
    """The ``nextMillis`` ``upsertJobScheduler`` computes for a pattern:
    :func:`cron_next`, never earlier than ``now``."""
    next_millis = cron_next(now, repeat, clock=clock)
    if next_millis is not None and next_millis < now:
        next_millis = now
    return next_millis


def every_next_millis(
    prev_millis: int | None, every: int, now: int, offset: int | None, start_date: int | None
) -> tuple[int, int]:
    """``getJobSchedulerEveryNextMillis`` (Lua): ``(nextMillis, offset)``."""
    next_millis: float
    if prev_millis is None:
        if start_date:
            next_millis = max(start_date, now)
        elif offset and offset > 0:
            next_millis = (now // every) * every + offset
            if next_millis <= now:
                next_millis += every
        else:
            next_millis = now
    else:
        next_millis = prev_millis + every
        if next_millis < now:
            aligned = (now // every) * every + (offset or 0)
            next_millis = aligned + every if aligned <= now else aligned
    if not offset:
        offset = int(next_millis - (next_millis // every) * every)
    return int(next_millis), int(offset)


def fire_sequence(repeat: Repeat, *, created_at: int, count: int) -> list[int]:
    """The first ``count`` fire times of a scheduler upserted at ``created_at``
    whose jobs each start exactly on time (BullMQ semantics: the limit counts
    iterations, ``endDate`` stops it, each next run is computed at the start
    of the current one)."""
    out: list[int] = []
    if repeat.end_date and created_at > repeat.end_date:
        return out
    limit = repeat.limit
    if repeat.every is not None:
        prev: int | None = None
        offset = repeat.offset
        now = created_at
        while len(out) < count and (limit is None or len(out) < limit):
            nxt, offset = every_next_millis(prev, repeat.every, now, offset, repeat.start_date)
            out.append(nxt)
            prev = now = nxt
            if repeat.end_date and now > repeat.end_date:
                break  # the Lua does not check endDate; upsertJobScheduler does, before the next one
        return out
    first = pattern_next_millis(created_at, repeat, clock=created_at)
    following = Repeat(**{**repeat.__dict__, "immediately": False})
    current = first
    while current is not None and len(out) < count and (limit is None or len(out) < limit):
        out.append(current)
        if repeat.end_date and current > repeat.end_date:
            break
        current = pattern_next_millis(current, following)
    return out

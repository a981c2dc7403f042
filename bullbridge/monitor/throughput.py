"""Jobs finished per minute: from BullMQ's metrics keys, or from finish times.

Two sources, both read in O(minutes), never O(jobs):

* **BullMQ's metrics** (``<prefix>:<queue>:metrics:completed|failed`` and their
  ``:data`` lists), written by ``moveToFinished`` when a worker sets
  ``metrics.maxDataPoints`` (Node) or ``metrics_max_data_points`` (bullbridge).
  Read with BullMQ's ``getMetrics`` script, as Node's ``Queue.getMetrics`` does.
  They count jobs even after ``removeOnComplete`` deleted them.
* **Finish times**: the scores of the ``completed``/``failed`` sets, counted
  per minute with ``ZCOUNT`` (O(log n) each). Exact while jobs are kept.

Both are lower bounds of the truth (metrics miss jobs finished by workers that
do not record them; finish times miss deleted jobs), so the larger of the two
over the window is used, and ``source`` says which.

How the metrics keys encode minutes (``collectMetrics`` in moveToFinished):
the hash holds ``count`` (all jobs ever), ``prevTS`` and ``prevCount``; the
``:data`` list holds, newest first, the jobs of each *closed* minute before
``prevTS``'s minute. Jobs since ``prevTS``'s minute are ``count - prevCount``,
and minutes after it with no job have not been written yet (they are zeros).

A series is indexed by minutes back from now: index 0 is the current,
partial minute. The rate over a window of ``W`` minutes divides the jobs of
indexes ``0..W-1`` by ``W - 1`` plus the elapsed part of the current minute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bullbridge.errors import ConfigurationError
from bullbridge.keys import QueueKeys
from bullbridge.monitor.reader import Reader, integer
from bullbridge.monitor.sample import FINISHED_STATES

MINUTE_MS = 60_000
DEFAULT_WINDOW_MINUTES = 5


@dataclass(frozen=True)
class BullMetrics:
    """What ``Queue.getMetrics(type)`` returns in Node, plus the per-minute series."""

    kind: str
    count: int = 0
    prev_ts: int | None = field(default=None, metadata={"json": "prevTS"})  # Node's spelling
    prev_count: int = 0
    data: list[int] = field(default_factory=list)
    #: Length of the ``:data`` list.
    points: int = 0

    @property
    def recorded(self) -> bool:
        """Whether any worker has ever recorded metrics for this kind."""
        return self.prev_ts is not None

    def series(self, now_ms: int, minutes: int) -> list[int]:
        """Jobs per wall-clock minute, index 0 = the current minute."""
        out = [0] * minutes
        if self.prev_ts is None:
            return out
        current = now_ms // MINUTE_MS
        prev_minute = self.prev_ts // MINUTE_MS
        # A worker clock slightly ahead of ours puts prevTS in "the future": count it now.
        index = max(0, current - prev_minute)
        if index < minutes:
            out[index] += max(0, self.count - self.prev_count)
        for offset, value in enumerate(self.data):
            index = current - (prev_minute - 1 - offset)
            if 0 <= index < minutes:
                out[index] += value
            elif index >= minutes:
                break
        return out


def metrics_command(reader: Reader, keys: QueueKeys, kind: str, start: int = 0, end: int = -1) -> tuple[Any, ...]:
    key = keys.metrics(kind)
    return reader.script("getMetrics", [key, key + ":data"], [start, end])


def parse_metrics(kind: str, reply: Any) -> BullMetrics:
    """The reply of BullMQ's ``getMetrics`` script: ``[[count, prevTS, prevCount], data, numPoints]``."""
    meta, data, points = reply
    count, prev_ts, prev_count = (integer(v) for v in meta)
    return BullMetrics(
        kind=kind,
        count=count or 0,
        prev_ts=prev_ts,
        prev_count=prev_count or 0,
        data=[integer(v) or 0 for v in data],
        points=int(points or 0),
    )


async def read_metrics(reader: Reader, keys: QueueKeys, kind: str, start: int = 0, end: int = -1) -> BullMetrics:
    """Node's ``Queue.getMetrics(kind, start, end)``."""
    (reply,) = await reader.pipeline([metrics_command(reader, keys, kind, start, end)])
    return parse_metrics(kind, reply)


@dataclass(frozen=True)
class Throughput:
    """Finished jobs per minute over a recent window, and the per-minute series."""

    source: str
    window_minutes: int
    completed_per_minute: float
    failed_per_minute: float
    #: Jobs per minute, index 0 = the current (partial) minute.
    completed: list[int]
    failed: list[int]
    #: Start of the current minute (epoch ms): ``completed[i]`` is the minute
    #: starting at ``minute_ms - i * 60000``.
    minute_ms: int
    #: All jobs ever counted by BullMQ's metrics (``None`` when never recorded).
    metrics_completed_total: int | None = None
    metrics_failed_total: int | None = None


def window_rate(series: list[int], window: int, now_ms: int) -> float:
    """Jobs per minute over the last ``window`` minutes (the current one partial)."""
    elapsed = (now_ms % MINUTE_MS) / MINUTE_MS
    minutes = (window - 1) + elapsed
    if minutes <= 0:
        return 0.0
    return round(sum(series[:window]) / minutes, 3)


async def read_throughput(
    reader: Reader,
    keys: QueueKeys,
    now_ms: int,
    *,
    window_minutes: int = DEFAULT_WINDOW_MINUTES,
    series_minutes: int | None = None,
) -> Throughput:
    """Read both sources for ``max(window, series)`` minutes and keep the better one."""
    if window_minutes < 2:
        raise ConfigurationError("the throughput window must be at least 2 minutes")
    minutes = max(window_minutes, series_minutes or 0)
    current = now_ms // MINUTE_MS
    commands: list[tuple[Any, ...]] = [metrics_command(reader, keys, kind, 0, minutes) for kind in FINISHED_STATES]
    for state in FINISHED_STATES:
        for i in range(minutes):
            low = (current - i) * MINUTE_MS
            high: Any = "+inf" if i == 0 else low + MINUTE_MS - 1
            commands.append(("ZCOUNT", keys[state], low, high))
    replies = await reader.pipeline(commands)
    metrics = [parse_metrics(kind, reply) for kind, reply in zip(FINISHED_STATES, replies[:2])]
    counted = [list(map(int, replies[2 + i * minutes : 2 + (i + 1) * minutes])) for i in range(2)]
    from_metrics = [m.series(now_ms, minutes) for m in metrics]
    recorded = any(m.recorded for m in metrics)

    def window_sum(pair: list[list[int]]) -> int:
        return sum(sum(s[:window_minutes]) for s in pair)

    if recorded and window_sum(from_metrics) >= window_sum(counted):
        source, chosen = "metrics", from_metrics
    else:
        source, chosen = "timestamps", counted
    completed, failed = chosen
    return Throughput(
        source=source,
        window_minutes=window_minutes,
        completed_per_minute=window_rate(completed, window_minutes, now_ms),
        failed_per_minute=window_rate(failed, window_minutes, now_ms),
        completed=completed,
        failed=failed,
        minute_ms=current * MINUTE_MS,
        metrics_completed_total=metrics[0].count if metrics[0].recorded else None,
        metrics_failed_total=metrics[1].count if metrics[1].recorded else None,
    )

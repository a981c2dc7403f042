"""A bounded sample of recently finished jobs, and the percentiles taken from it.

Latency, failure rate and the per-language breakdown are computed from the
newest ``N`` finished jobs (``N`` = 1,000 by default): ``ZREVRANGE`` on the
``completed`` and ``failed`` sets (their scores are the finish times), merged,
then one pipelined ``HMGET`` of six fields per job. The cost depends on ``N``
only, never on how many jobs the queue holds, so a million-job queue answers
as fast as a small one.

Times, from the job hash:

* wait = ``processedOn - (timestamp + delay)``: how long the job waited once it
  was due - queue latency. Jobs that took more than one attempt have no wait
  (``processedOn`` is their last attempt's start, after backoffs);
* processing = ``finishedOn - processedOn`` (the last attempt).

Percentiles are nearest-rank: p95 of 20 values is the 19th smallest. Jobs
deleted by ``removeOnComplete``/``removeOnFail`` are not in the sets and so not
in the sample.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bullbridge.keys import QueueKeys
from bullbridge.monitor.languages import language_of_job
from bullbridge.monitor.reader import Reader, integer, text

DEFAULT_SAMPLE_SIZE = 1000
FINISHED_STATES = ("completed", "failed")
_FIELDS = ("timestamp", "processedOn", "finishedOn", "atm", "pb", "name", "delay")


def nearest_rank(sorted_values: Sequence[int], percent: float) -> int | None:
    """The nearest-rank percentile of already sorted values (``None`` when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(percent / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True)
class Percentiles:
    """p50/p95/p99, mean and max of durations in milliseconds (``None`` without data)."""

    count: int = 0
    p50: int | None = None
    p95: int | None = None
    p99: int | None = None
    mean: float | None = None
    max: int | None = None

    @classmethod
    def of(cls, values: Iterable[int]) -> Percentiles:
        ordered = sorted(values)
        if not ordered:
            return cls()
        return cls(
            count=len(ordered),
            p50=nearest_rank(ordered, 50),
            p95=nearest_rank(ordered, 95),
            p99=nearest_rank(ordered, 99),
            mean=round(sum(ordered) / len(ordered), 3),
            max=ordered[-1],
        )


@dataclass(frozen=True, slots=True)
class FinishedJob:
    """The few fields of a finished job the statistics need."""

    id: str
    state: str
    timestamp: int | None
    processed_on: int | None
    finished_on: int | None
    attempts_made: int
    processed_by: str | None
    name: str | None
    delay: int = 0

    @property
    def language(self) -> str:
        return language_of_job(self.processed_by, self.processed_on)

    @property
    def wait_ms(self) -> int | None:
        if self.processed_on is None or self.timestamp is None or self.attempts_made > 1:
            return None
        return max(0, self.processed_on - self.timestamp - self.delay)

    @property
    def processing_ms(self) -> int | None:
        if self.processed_on is None or self.finished_on is None:
            return None
        return max(0, self.finished_on - self.processed_on)


@dataclass(frozen=True)
class SampleSummary:
    """What figures taken from a sample stand on: how many jobs, whether more
    matched than it holds, and when its oldest job finished."""

    size: int
    truncated: bool
    oldest_finished_on: int | None


@dataclass(frozen=True)
class FinishedSample:
    """The newest finished jobs, newest first, and what they say."""

    jobs: list[FinishedJob] = field(default_factory=list)
    #: True when more finished jobs matched than the sample holds.
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.jobs)

    @property
    def failed(self) -> int:
        return sum(1 for j in self.jobs if j.state == "failed")

    @property
    def failure_rate(self) -> float | None:
        return self.failed / len(self.jobs) if self.jobs else None

    @property
    def wait(self) -> Percentiles:
        return Percentiles.of(w for j in self.jobs if (w := j.wait_ms) is not None)

    @property
    def processing(self) -> Percentiles:
        return Percentiles.of(p for j in self.jobs if (p := j.processing_ms) is not None)

    @property
    def oldest_finished_on(self) -> int | None:
        return min((j.finished_on for j in self.jobs if j.finished_on is not None), default=None)

    @property
    def newest_finished_on(self) -> int | None:
        return max((j.finished_on for j in self.jobs if j.finished_on is not None), default=None)

    def summary(self) -> SampleSummary:
        return SampleSummary(size=len(self.jobs), truncated=self.truncated, oldest_finished_on=self.oldest_finished_on)

    def by_language(self) -> dict[str, FinishedSample]:
        """The sample split by the language of each job's last attempt."""
        groups: dict[str, list[FinishedJob]] = {}
        for job in self.jobs:
            groups.setdefault(job.language, []).append(job)
        return {lang: FinishedSample(jobs, self.truncated) for lang, jobs in groups.items()}


async def read_finished(
    reader: Reader,
    keys: QueueKeys,
    size: int = DEFAULT_SAMPLE_SIZE,
    *,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> FinishedSample:
    """The newest ``size`` jobs of ``completed`` and ``failed`` together (finished in
    ``[since_ms, until_ms]`` when given). Two round trips, bounded by ``size``."""
    if size <= 0:
        return FinishedSample()
    ranges: list[tuple[Any, ...]] = []
    for state in FINISHED_STATES:
        if since_ms is None and until_ms is None:
            ranges.append(("ZREVRANGE", keys[state], 0, size - 1, "WITHSCORES"))
        else:
            high = "+inf" if until_ms is None else until_ms
            low = "-inf" if since_ms is None else since_ms
            ranges.append(("ZREVRANGEBYSCORE", keys[state], high, low, "WITHSCORES", "LIMIT", 0, size))
    replies = await reader.pipeline(ranges)
    entries: list[tuple[float, str, str]] = []
    truncated = False
    for state, reply in zip(FINISHED_STATES, replies):
        if len(reply) >= 2 * size:
            truncated = True
        it = iter(reply)
        for member, score in zip(it, it):
            entries.append((float(score), text(member) or "", state))
    if len(entries) > size:
        truncated = True
        entries = heapq.nlargest(size, entries)
    else:
        entries.sort(reverse=True)
    rows = await reader.pipeline([("HMGET", keys.job(job_id), *_FIELDS) for _, job_id, _ in entries])
    jobs: list[FinishedJob] = []
    for (score, job_id, state), row in zip(entries, rows):
        if all(v is None for v in row):
            continue  # removed between the two round trips
        timestamp, processed_on, finished_on, atm, pb, name, delay = row
        jobs.append(
            FinishedJob(
                id=job_id,
                state=state,
                timestamp=integer(timestamp),
                processed_on=integer(processed_on),
                finished_on=integer(finished_on) if finished_on is not None else int(score),
                attempts_made=integer(atm) or 0,
                processed_by=text(pb),
                name=text(name),
                delay=integer(delay) or 0,
            )
        )
    return FinishedSample(jobs, truncated)

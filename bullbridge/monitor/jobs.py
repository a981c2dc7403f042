"""Job details and paged job lists, read as Node's getters read them.

* state: BullMQ's ``getStateV2`` script (``getState`` before Redis 6.0.6);
* a page of ids: BullMQ's ``getRanges`` script, then one pipelined ``HMGET``
  of the summary fields (never the ``data``, which may be megabytes);
* children: :func:`bullbridge.job.read_dependencies` (Node's ``getDependencies``
  groups), counted and listed up to a limit;
* logs: the newest lines of ``<job>:logs`` and their total.

A corrupt hash (data that is not JSON, a non-numeric timestamp) is shown, not
refused: :meth:`bullbridge.job.Job.values` gives the raw text back with the
error beside it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

from bullbridge.errors import ConfigurationError
from bullbridge.job import Dependencies, Job, JobValues, fields_to_dict, read_dependencies
from bullbridge.keys import QueueKeys
from bullbridge.monitor.languages import display_worker_name, language_of_job
from bullbridge.monitor.reader import Reader, text

#: Job states as Node 6's ``getJobCounts`` names them, in display order. A legacy
#: ``paused`` list (a queue Node < 6 paused) counts as ``waiting``; it can still
#: be listed alone as ``paused``.
STATES = ("waiting", "active", "delayed", "prioritized", "waiting-children", "completed", "failed")
#: The key (BullMQ "type") holding each state.
STATE_KEYS = {
    "waiting": "wait",
    "active": "active",
    "delayed": "delayed",
    "prioritized": "prioritized",
    "waiting-children": "waiting-children",
    "paused": "paused",
    "completed": "completed",
    "failed": "failed",
}
#: Listing order per state: what runs next first for delayed and prioritized,
#: newest first elsewhere (Node's getters default).
ASCENDING = {"delayed", "prioritized"}
DEFAULT_LOG_LINES = 100
DEFAULT_CHILDREN = 100
_SUMMARY_FIELDS = (
    "name",
    "timestamp",
    "processedOn",
    "finishedOn",
    "atm",
    "failedReason",
    "progress",
    "pb",
    "delay",
    "priority",
)


def state_key(state: str) -> str:
    try:
        return STATE_KEYS[state]
    except KeyError:
        raise ConfigurationError(f"unknown job state {state!r} (one of {', '.join(STATES)})") from None


@dataclass(frozen=True)
class JobSummary:
    """A row of a job list."""

    id: str
    name: str
    state: str
    timestamp: int | None
    processed_on: int | None
    finished_on: int | None
    attempts_made: int
    failed_reason: str | None
    progress: Any
    processed_by: str | None
    language: str
    delay: int | None
    priority: int | None


@dataclass(frozen=True)
class JobPage:
    """One page of the jobs in a state."""

    queue: str
    state: str
    start: int
    count: int
    total: int
    jobs: list[JobSummary]


@dataclass(frozen=True)
class JobDetail(JobValues):
    """Everything about one job: its hash decoded (:class:`~bullbridge.job.JobValues`,
    problems included), its state, newest logs and children."""

    json_properties: ClassVar[tuple[str, ...]] = ("language", "worker_name", "wait_ms", "processing_ms")

    state: str
    logs: list[str]
    log_count: int
    children: Dependencies

    @property
    def language(self) -> str:
        return language_of_job(self.processed_by, self.processed_on)

    @property
    def worker_name(self) -> str | None:
        return display_worker_name(self.processed_by)

    @property
    def wait_ms(self) -> int | None:
        if self.processed_on is None or self.timestamp is None:
            return None
        return max(0, self.processed_on - self.timestamp)

    @property
    def processing_ms(self) -> int | None:
        if self.processed_on is None or self.finished_on is None:
            return None
        return max(0, self.finished_on - self.processed_on)


def state_command(reader: Reader, keys: QueueKeys, job_id: str, v2: bool) -> tuple[Any, ...]:
    """BullMQ's getState(V2) for one job."""
    state_keys = [
        keys[k]
        for k in ("completed", "failed", "delayed", "active", "wait", "paused", "waiting-children", "prioritized")
    ]
    return reader.script("getStateV2" if v2 else "getState", state_keys, [job_id, keys.job(job_id)])


async def read_state(reader: Reader, keys: QueueKeys, job_id: str) -> str:
    v2 = await reader.server_version() >= (6, 0, 6)
    (reply,) = await reader.pipeline([state_command(reader, keys, job_id, v2)])
    return text(reply) or "unknown"


async def read_job(
    reader: Reader,
    keys: QueueKeys,
    job_id: str,
    *,
    log_lines: int = DEFAULT_LOG_LINES,
    children_limit: int = DEFAULT_CHILDREN,
) -> JobDetail | None:
    """One job with its state, logs and children; ``None`` when its hash does not exist."""
    v2 = await reader.server_version() >= (6, 0, 6)
    (raw_fields, state, log_count, logs), children = await asyncio.gather(
        reader.pipeline(
            [
                ("HGETALL", keys.job(job_id)),
                state_command(reader, keys, job_id, v2),
                ("LLEN", keys.logs(job_id)),
                ("LRANGE", keys.logs(job_id), -log_lines, -1) if log_lines > 0 else ("LRANGE", keys.logs(job_id), 1, 0),
            ]
        ),
        read_dependencies(reader, keys, job_id, limit=children_limit, tolerant=True),
    )
    if not raw_fields:
        return None
    values = Job(keys.name, job_id, fields_to_dict(raw_fields)).values()
    return JobDetail(
        **vars(values),
        state=text(state) or "unknown",
        logs=[text(line) or "" for line in logs],
        log_count=int(log_count),
        children=children,
    )


def _summary(queue: str, job_id: str, state: str, row: list[Any]) -> JobSummary:
    """A list row from the ``HMGET`` of :data:`_SUMMARY_FIELDS`, decoded as a job hash holding only those."""
    values = Job(queue, job_id, {k.encode(): v for k, v in zip(_SUMMARY_FIELDS, row) if v is not None}).values()
    reason = values.failed_reason
    return JobSummary(
        id=job_id,
        name=values.name,
        state=state,
        timestamp=values.timestamp,
        processed_on=values.processed_on,
        finished_on=values.finished_on,
        attempts_made=values.attempts_made,
        failed_reason=reason[:300] if reason else None,
        progress=values.progress,
        processed_by=values.processed_by,
        language=language_of_job(values.processed_by, values.processed_on),
        delay=values.delay,
        priority=values.priority,
    )


async def read_jobs(reader: Reader, keys: QueueKeys, state: str, start: int = 0, count: int = 20) -> JobPage:
    """Jobs ``start .. start+count-1`` of a state (BullMQ's getRanges), with their summaries.
    ``waiting`` pages through ``wait`` and then a legacy ``paused`` list."""
    kinds = ("wait", "paused") if state == "waiting" else (state_key(state),)
    start = max(0, start)
    count = max(1, count)
    asc = "1" if state in ASCENDING else "0"
    (sizes,) = await reader.pipeline([reader.script("getCounts", [keys.base], list(kinds))])
    ids: list[str] = []
    offset = start
    for kind, size in zip(kinds, (int(n or 0) for n in sizes)):
        if offset >= size:
            offset -= size
            continue
        take = min(count - len(ids), size - offset)
        (ranges,) = await reader.pipeline(
            [reader.script("getRanges", [keys.base], [offset, offset + take - 1, asc, kind])]
        )
        ids += [text(i) or "" for i in (ranges[0] if ranges else [])]
        offset = 0
        if len(ids) >= count:
            break
    rows = await reader.pipeline([("HMGET", keys.job(i), *_SUMMARY_FIELDS) for i in ids])
    jobs = [_summary(keys.name, i, state, row) for i, row in zip(ids, rows) if any(v is not None for v in row)]
    total = sum(int(n or 0) for n in sizes)
    return JobPage(queue=keys.name, state=state, start=start, count=count, total=total, jobs=jobs)

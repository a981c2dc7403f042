"""Job details and paged job lists, read as Node's getters read them.

* state: BullMQ's ``getStateV2`` script (``getState`` before Redis 6.0.6);
* a page of ids: BullMQ's ``getRanges`` script, then one pipelined ``HMGET``
  of the summary fields (never the ``data``, which may be megabytes);
* children: the parent's ``:processed``, ``:dependencies``, ``:failed`` and
  ``:unsuccessful`` keys, as Node's ``getDependencies``, counted with BullMQ's
  ``getDependencyCounts`` script and listed up to a limit;
* logs: the newest lines of ``<job>:logs`` and their total.

A corrupt hash (data that is not JSON, a non-numeric timestamp) is shown, not
refused: the raw text comes back with the error beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bullbridge import codec
from bullbridge.errors import CorruptJob
from bullbridge.job import Job, fields_to_dict
from bullbridge.keys import QueueKeys
from bullbridge.monitor.languages import display_worker_name, language_of_job
from bullbridge.monitor.reader import Reader, integer, text

#: Job states as Node's ``getJobCounts`` names them, in display order.
STATES = ("waiting", "active", "delayed", "prioritized", "waiting-children", "paused", "completed", "failed")
#: The key (BullMQ "type") holding each state.
STATE_KEYS = {"waiting": "wait", "active": "active", "delayed": "delayed", "prioritized": "prioritized",
              "waiting-children": "waiting-children", "paused": "paused", "completed": "completed",
              "failed": "failed"}
#: Listing order per state: what runs next first for delayed and prioritized,
#: newest first elsewhere (Node's getters default).
ASCENDING = {"delayed", "prioritized"}
DEFAULT_LOG_LINES = 100
DEFAULT_CHILDREN = 100
_SUMMARY_FIELDS = ("name", "timestamp", "processedOn", "finishedOn", "atm", "failedReason", "progress", "pb",
                   "delay", "priority")


def state_key(state: str) -> str:
    try:
        return STATE_KEYS[state]
    except KeyError:
        raise ValueError(f"unknown job state {state!r} (one of {', '.join(STATES)})") from None


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

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "state": self.state, "timestamp": self.timestamp,
                "processedOn": self.processed_on, "finishedOn": self.finished_on,
                "attemptsMade": self.attempts_made, "failedReason": self.failed_reason,
                "progress": self.progress, "processedBy": self.processed_by, "language": self.language,
                "delay": self.delay, "priority": self.priority}


@dataclass(frozen=True)
class JobPage:
    """One page of the jobs in a state."""

    queue: str
    state: str
    start: int
    count: int
    total: int
    jobs: list[JobSummary]

    def to_dict(self) -> dict[str, Any]:
        return {"queue": self.queue, "state": self.state, "start": self.start, "count": self.count,
                "total": self.total, "jobs": [j.to_dict() for j in self.jobs]}


@dataclass(frozen=True)
class Children:
    """A parent's children by outcome, as Node's ``getDependencies`` groups them."""

    processed: dict[str, Any] = field(default_factory=dict)
    unprocessed: list[str] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "processed": self.processed, "unprocessed": self.unprocessed,
                "ignored": self.ignored, "failed": self.failed}


@dataclass(frozen=True)
class JobDetail:
    """Everything about one job."""

    id: str
    queue: str
    state: str
    name: str
    data: Any
    opts: Any
    progress: Any
    timestamp: int | None
    processed_on: int | None
    finished_on: int | None
    delay: int | None
    priority: int | None
    attempts_made: int
    attempts_started: int
    stalled_counter: int
    returnvalue: Any
    failed_reason: str | None
    stacktrace: list[str]
    logs: list[str]
    log_count: int
    parent_key: str | None
    parent: dict[str, Any] | None
    children: Children
    processed_by: str | None
    repeat_job_key: str | None
    deduplication_id: str | None
    problems: list[str]

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "queue": self.queue, "state": self.state, "name": self.name, "data": self.data,
            "opts": self.opts, "progress": self.progress, "timestamp": self.timestamp,
            "processedOn": self.processed_on, "finishedOn": self.finished_on, "delay": self.delay,
            "priority": self.priority, "attemptsMade": self.attempts_made, "attemptsStarted": self.attempts_started,
            "stalledCounter": self.stalled_counter, "returnvalue": self.returnvalue,
            "failedReason": self.failed_reason, "stacktrace": self.stacktrace, "logs": self.logs,
            "logCount": self.log_count, "parentKey": self.parent_key, "parent": self.parent,
            "children": self.children.to_dict(), "processedBy": self.processed_by, "language": self.language,
            "workerName": self.worker_name, "repeatJobKey": self.repeat_job_key,
            "deduplicationId": self.deduplication_id, "waitMs": self.wait_ms, "processingMs": self.processing_ms,
            "problems": self.problems,
        }


def state_command(reader: Reader, keys: QueueKeys, job_id: str, v2: bool) -> tuple[Any, ...]:
    """BullMQ's getState(V2) for one job."""
    state_keys = [keys[k] for k in ("completed", "failed", "delayed", "active", "wait", "paused",
                                    "waiting-children", "prioritized")]
    return reader.script("getStateV2" if v2 else "getState", state_keys, [job_id, keys.job(job_id)])


async def read_state(reader: Reader, keys: QueueKeys, job_id: str) -> str:
    v2 = await reader.server_version() >= (6, 0, 6)
    (reply,) = await reader.pipeline([state_command(reader, keys, job_id, v2)])
    return text(reply) or "unknown"


def _decoded(job: Job, attr: str, raw_key: bytes, problems: list[str]) -> Any:
    try:
        return getattr(job, attr)
    except CorruptJob as exc:
        problems.append(f"{attr}: {exc}")
        return text(job.fields.get(raw_key))


def _field_int(fields: dict[bytes, bytes], key: bytes, problems: list[str]) -> int | None:
    raw = fields.get(key)
    if raw is None:
        return None
    value = integer(raw)
    if value is None and raw != b"":
        problems.append(f"{key.decode()}: not a number: {raw[:40]!r}")
    return value


async def read_job(reader: Reader, keys: QueueKeys, job_id: str, *, log_lines: int = DEFAULT_LOG_LINES,
                   children_limit: int = DEFAULT_CHILDREN) -> JobDetail | None:
    """One job with its state, logs and children; ``None`` when its hash does not exist."""
    v2 = await reader.server_version() >= (6, 0, 6)
    job_key = keys.job(job_id)
    dep_keys = [f"{job_key}:processed", f"{job_key}:dependencies", f"{job_key}:failed", f"{job_key}:unsuccessful"]
    raw_fields, state, log_count, logs, dep_counts = await reader.pipeline([
        ("HGETALL", job_key),
        state_command(reader, keys, job_id, v2),
        ("LLEN", keys.logs(job_id)),
        ("LRANGE", keys.logs(job_id), -log_lines, -1) if log_lines > 0 else ("LRANGE", keys.logs(job_id), 1, 0),
        reader.script("getDependencyCounts", dep_keys, ["processed", "unprocessed", "ignored", "failed"]),
    ])
    if not raw_fields:
        return None
    fields = fields_to_dict(raw_fields)
    job = Job(keys.name, job_id, fields)
    problems: list[str] = []
    counts = dict(zip(("processed", "unprocessed", "ignored", "failed"), (int(c) for c in dep_counts)))
    children = await _read_children(reader, dep_keys, counts, children_limit) if any(counts.values()) else Children(
        counts=counts)
    for key in (b"timestamp", b"atm", b"ats", b"stc"):
        _field_int(fields, key, problems)
    return JobDetail(
        id=job_id, queue=keys.name, state=text(state) or "unknown", name=job.name,
        data=_decoded(job, "data", b"data", problems), opts=_decoded(job, "opts", b"opts", problems),
        progress=job.progress, timestamp=integer(fields.get(b"timestamp")),
        processed_on=integer(fields.get(b"processedOn")), finished_on=integer(fields.get(b"finishedOn")),
        delay=integer(fields.get(b"delay")), priority=integer(fields.get(b"priority")),
        attempts_made=integer(fields.get(b"atm") or fields.get(b"attemptsMade")) or 0,
        attempts_started=integer(fields.get(b"ats")) or 0, stalled_counter=integer(fields.get(b"stc")) or 0,
        returnvalue=job.returnvalue, failed_reason=job.failed_reason, stacktrace=job.stacktrace,
        logs=[text(line) or "" for line in logs], log_count=int(log_count), parent_key=job.parent_key,
        parent=job.parent, children=children, processed_by=job.processed_by, repeat_job_key=job.repeat_job_key,
        deduplication_id=job.deduplication_id, problems=problems)


async def _read_children(reader: Reader, dep_keys: list[str], counts: dict[str, int], limit: int) -> Children:
    processed_key, pending_key, ignored_key, failed_key = dep_keys

    def hash_read(key: str, n: int) -> tuple[Any, ...]:
        return ("HGETALL", key) if n <= limit else ("HSCAN", key, 0, "COUNT", limit)

    processed, pending, ignored, failed = await reader.pipeline([
        hash_read(processed_key, counts["processed"]),
        ("SMEMBERS", pending_key) if counts["unprocessed"] <= limit else ("SSCAN", pending_key, 0, "COUNT", limit),
        hash_read(ignored_key, counts["ignored"]),
        ("ZRANGE", failed_key, 0, limit - 1),
    ])

    def flat(reply: Any, scanned: bool) -> list[Any]:
        return list(reply[1]) if scanned else list(reply)

    def as_map(items: list[Any], decode_json: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        it = iter(items)
        for key, value in zip(it, it):
            if len(out) >= limit:
                break
            value_text = text(value)
            if decode_json and value is not None:
                try:
                    out[text(key) or ""] = codec.decode(value)
                    continue
                except CorruptJob:
                    pass
            out[text(key) or ""] = value_text
        return out

    return Children(
        processed=as_map(flat(processed, counts["processed"] > limit), True),
        unprocessed=sorted(text(k) or "" for k in flat(pending, counts["unprocessed"] > limit))[:limit],
        ignored=as_map(flat(ignored, counts["ignored"] > limit), False),
        failed=[text(k) or "" for k in failed],
        counts=counts,
    )


def _summary(job_id: str, state: str, row: list[Any]) -> JobSummary:
    name, timestamp, processed_on, finished_on, atm, failed_reason, progress, pb, delay, priority = row
    progress_value: Any = 0
    if progress is not None:
        try:
            progress_value = codec.decode(progress)
        except CorruptJob:
            progress_value = text(progress)
    reason = text(failed_reason)
    processed = integer(processed_on)
    return JobSummary(
        id=job_id, name=text(name) or "", state=state, timestamp=integer(timestamp), processed_on=processed,
        finished_on=integer(finished_on), attempts_made=integer(atm) or 0,
        failed_reason=reason[:300] if reason else None, progress=progress_value, processed_by=text(pb),
        language=language_of_job(text(pb), processed), delay=integer(delay), priority=integer(priority))


async def read_jobs(reader: Reader, keys: QueueKeys, state: str, start: int = 0, count: int = 20) -> JobPage:
    """Jobs ``start .. start+count-1`` of a state (BullMQ's getRanges), with their summaries."""
    kind = state_key(state)
    start = max(0, start)
    count = max(1, count)
    asc = "1" if state in ASCENDING else "0"
    counts_reply, ranges = await reader.pipeline([
        reader.script("getCounts", [keys.base], [kind]),
        reader.script("getRanges", [keys.base], [start, start + count - 1, asc, kind]),
    ])
    ids = [text(i) or "" for i in (ranges[0] if ranges else [])]
    rows = await reader.pipeline([("HMGET", keys.job(i), *_SUMMARY_FIELDS) for i in ids])
    jobs = [_summary(i, state, row) for i, row in zip(ids, rows) if any(v is not None for v in row)]
    return JobPage(queue=keys.name, state=state, start=start, count=count, total=int(counts_reply[0]), jobs=jobs)

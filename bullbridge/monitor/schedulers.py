"""Job schedulers (BullMQ's repeatable jobs) and when each fires next.

BullMQ keeps them in the ``<prefix>:<queue>:repeat`` sorted set (member = the
scheduler id, score = its next run in epoch ms) and one hash per scheduler,
``<prefix>:<queue>:repeat:<id>`` (``name``, ``pattern`` or ``every``, ``tz``,
``ic`` iteration count, ``limit``, ``startDate``, ``endDate``, ``offset``,
``data``, ``opts``). Read as Node's ``getJobSchedulers`` reads them, except
that an entry without a hash (a legacy repeatable job) is listed, marked
``legacy``, instead of being deleted: the monitor does not write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bullbridge import codec
from bullbridge.errors import CorruptJob
from bullbridge.job import fields_to_dict
from bullbridge.keys import QueueKeys
from bullbridge.monitor.reader import Reader, integer, text


@dataclass(frozen=True)
class SchedulerInfo:
    """One job scheduler."""

    id: str
    next_run_ms: int | None
    name: str | None = None
    pattern: str | None = None
    every: int | None = None
    tz: str | None = None
    offset: int | None = None
    iteration_count: int | None = None
    limit: int | None = None
    start_date: int | None = None
    end_date: int | None = None
    template_data: Any = None
    legacy: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "next": self.next_run_ms, "name": self.name, "pattern": self.pattern,
                "every": self.every, "tz": self.tz, "offset": self.offset, "iterationCount": self.iteration_count,
                "limit": self.limit, "startDate": self.start_date, "endDate": self.end_date,
                "template": self.template_data, "legacy": self.legacy}


@dataclass(frozen=True)
class SchedulerPage:
    queue: str
    total: int
    start: int
    schedulers: list[SchedulerInfo]

    def to_dict(self) -> dict[str, Any]:
        return {"queue": self.queue, "total": self.total, "start": self.start,
                "schedulers": [s.to_dict() for s in self.schedulers]}


def _scheduler(scheduler_id: str, next_ms: int | None, raw: list[Any]) -> SchedulerInfo:
    if not raw:
        return SchedulerInfo(id=scheduler_id, next_run_ms=next_ms, legacy=True)
    f = {k.decode("utf-8", "replace"): v for k, v in fields_to_dict(raw).items()}
    data: Any = None
    if "data" in f:
        try:
            data = codec.decode(f["data"])
        except CorruptJob:
            data = text(f["data"])
    return SchedulerInfo(
        id=scheduler_id, next_run_ms=next_ms, name=text(f.get("name")), pattern=text(f.get("pattern")),
        every=integer(f.get("every")), tz=text(f.get("tz")), offset=integer(f.get("offset")),
        iteration_count=integer(f.get("ic")), limit=integer(f.get("limit")),
        start_date=integer(f.get("startDate")), end_date=integer(f.get("endDate")), template_data=data)


async def read_schedulers(reader: Reader, keys: QueueKeys, start: int = 0, count: int = 50) -> SchedulerPage:
    """Schedulers ordered by next run, soonest first."""
    start = max(0, start)
    total, entries = await reader.pipeline([
        ("ZCARD", keys["repeat"]),
        ("ZRANGE", keys["repeat"], start, start + max(1, count) - 1, "WITHSCORES"),
    ])
    it = iter(entries)
    pairs = [(text(member) or "", integer(score)) for member, score in zip(it, it)]
    hashes = await reader.pipeline([("HGETALL", f"{keys['repeat']}:{sid}") for sid, _ in pairs])
    return SchedulerPage(queue=keys.name, total=int(total), start=start,
                         schedulers=[_scheduler(sid, nxt, raw) for (sid, nxt), raw in zip(pairs, hashes)])


async def read_scheduler(reader: Reader, keys: QueueKeys, scheduler_id: str) -> SchedulerInfo | None:
    """One scheduler through BullMQ's ``getJobScheduler`` script."""
    (reply,) = await reader.pipeline([reader.script("getJobScheduler", [keys["repeat"]], [scheduler_id])])
    raw, score = reply
    if score is None:
        return None
    return _scheduler(scheduler_id, integer(score), raw or [])

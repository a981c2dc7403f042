"""Job schedulers as stored (by either language): the one record type and its reads.

A scheduler is BullMQ's: a member of the queue's ``repeat`` sorted set (score:
next run, epoch ms), a hash ``<prefix>:<queue>:repeat:<id>`` (``name``,
``pattern`` or ``every``, ``tz``, ``startDate``, ``endDate``, ``limit``,
``offset``, template ``data``/``opts``, iteration count ``ic``) and one delayed
job ``repeat:<id>:<nextMillis>``. bullbridge adds an owner
(:mod:`bullbridge.scheduler.ownership`).

Two reads over one decoding, both read-only:

* :func:`read_scheduler_page` - ordered by next run, soonest first, a page at
  a time (the monitor, ``bullbridge schedule list``), as Node's
  ``getJobSchedulers`` reads them;
* :func:`read_schedulers` - by id (sync), or all of a queue.

Decoding never fails: a template ``data`` that is not JSON is kept as its text,
a number that is not one is ``None``, and a ``repeat`` member without a hash (a
pre-v6 repeatable job, which Node's getter would delete) is listed with
``legacy`` set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bullbridge import codec
from bullbridge.errors import CorruptJob
from bullbridge.job import fields_to_dict
from bullbridge.keys import Pipelines, QueueKeys
from bullbridge.scheduler.ownership import OwnerRecord, owners_key

#: Numeric hash fields compared by :meth:`SchedulerInfo.state`.
_STATE_INTS = ("every", "startDate", "endDate", "limit", "offset")


def scheduler_key(keys: QueueKeys, scheduler_id: str) -> str:
    return f"{keys['repeat']}:{scheduler_id}"


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _int(raw: Any) -> int | None:
    """A score or numeric field as ``int`` (``None`` when missing, empty or not a number)."""
    if raw is None or raw in ("", b""):
        return None
    try:
        return int(float(raw))
    except (TypeError, ValueError, OverflowError):
        return None


def _json_or_text(raw: str | None) -> Any:
    """A JSON field decoded, or its text when it is not JSON (``None`` when missing)."""
    if raw is None:
        return None
    try:
        return codec.decode(raw)
    except CorruptJob:
        return raw


@dataclass(frozen=True)
class SchedulerInfo:
    """One job scheduler as stored, plus its bullbridge owner if it has one."""

    queue: str
    id: str
    #: Its next run (epoch ms): the score in ``repeat``; ``None`` when it is not there.
    next_run_ms: int | None = field(metadata={"json": "next"})
    name: str | None = None
    pattern: str | None = None
    every: int | None = None
    tz: str | None = None
    offset: int | None = None
    iteration_count: int | None = None
    limit: int | None = None
    start_date: int | None = None
    end_date: int | None = None
    #: The template ``data`` decoded (its text when it is not JSON).
    template_data: Any = field(default=None, metadata={"json": "template"})
    #: A pre-v6 repeatable job: a ``repeat`` member without a scheduler hash.
    legacy: bool = False
    #: The declaration that owns it (``None``: made by Node, by hand, or unowned).
    owner: str | None = None
    #: The hash as stored, text keys and values.
    fields: dict[str, str] = field(default_factory=dict, repr=False, metadata={"json": None})

    @property
    def exists(self) -> bool:
        """BullMQ's ``isJobScheduler``: the hash has an iteration count."""
        return "ic" in self.fields

    def state(self) -> dict[str, Any]:
        """The comparable definition (the shape of :meth:`Schedule.expected_state`)."""
        f = self.fields
        out: dict[str, Any] = {"name": f.get("name"), "pattern": f.get("pattern"), "tz": f.get("tz")}
        for key in _STATE_INTS:
            out[key] = _int(f.get(key))
        for key in ("data", "opts"):
            raw = f.get(key)
            out[key] = _json_or_text(raw) if raw else {}
        return out


@dataclass(frozen=True)
class SchedulerPage:
    """Schedulers ``start ..`` of a queue by next run, and how many it has."""

    queue: str
    total: int
    start: int
    schedulers: list[SchedulerInfo]


def decode_scheduler(
    queue: str, scheduler_id: str, score: Any, raw_hash: Any, owner: OwnerRecord | None = None
) -> SchedulerInfo:
    """One scheduler from its ``repeat`` score and its hash (an ``HGETALL`` reply)."""
    f = {_text(k): _text(v) for k, v in fields_to_dict(raw_hash or []).items()}
    next_run_ms = _int(score)
    return SchedulerInfo(
        queue=queue,
        id=scheduler_id,
        next_run_ms=next_run_ms,
        name=f.get("name"),
        pattern=f.get("pattern") or None,
        every=_int(f.get("every")),
        tz=f.get("tz") or None,
        offset=_int(f.get("offset")),
        iteration_count=_int(f.get("ic")),
        limit=_int(f.get("limit")),
        start_date=_int(f.get("startDate")),
        end_date=_int(f.get("endDate")),
        template_data=_json_or_text(f.get("data")),
        legacy=next_run_ms is not None and not f,
        owner=owner.owner if owner else None,
        fields=f,
    )


async def _read(
    client: Pipelines, keys: QueueKeys, ids: Sequence[str], scores: Sequence[Any] | None
) -> list[SchedulerInfo]:
    """The hashes and owners of ``ids`` (and their scores when not known yet), in one round trip."""
    if not ids:
        return []
    commands: list[tuple[Any, ...]] = [] if scores is not None else [("ZSCORE", keys["repeat"], i) for i in ids]
    commands += [("HGETALL", scheduler_key(keys, i)) for i in ids]
    commands.append(("HMGET", owners_key(keys), *ids))
    replies = await client.execute_many(commands)
    if scores is None:
        scores, replies = replies[: len(ids)], replies[len(ids) :]
    owners = replies[-1]
    return [
        decode_scheduler(keys.name, i, score, raw, OwnerRecord.decode(i, owner))
        for i, score, raw, owner in zip(ids, scores, replies[:-1], owners)
    ]


async def read_scheduler_page(
    client: Pipelines, keys: QueueKeys, start: int = 0, count: int | None = 50
) -> SchedulerPage:
    """Schedulers ordered by next run, soonest first (``count=None``: all from ``start``).
    Two round trips, whatever the page size."""
    start = max(0, start)
    stop = -1 if count is None else start + max(1, count) - 1
    total, flat = await client.execute_many(
        [
            ("ZCARD", keys["repeat"]),
            ("ZRANGE", keys["repeat"], start, stop, "WITHSCORES"),
        ]
    )
    items = list(flat or [])
    ids, scores = [_text(m) for m in items[::2]], items[1::2]
    return SchedulerPage(
        queue=keys.name, total=int(total), start=start, schedulers=await _read(client, keys, ids, scores)
    )


async def read_schedulers(
    client: Pipelines, keys: QueueKeys, ids: Sequence[str] | None = None
) -> dict[str, SchedulerInfo]:
    """Schedulers of one queue by id, in one round trip; all of them (by next run)
    when ``ids`` is None. An id with neither score nor hash comes back too, with
    ``next_run_ms=None`` and ``exists`` false."""
    if ids is None:
        return {s.id: s for s in (await read_scheduler_page(client, keys, 0, None)).schedulers}
    return {s.id: s for s in await _read(client, keys, list(ids), None)}

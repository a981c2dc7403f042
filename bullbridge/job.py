"""A job as BullMQ stores it: one Redis hash, decoded lazily and checked.

Field names are BullMQ's (``name``, ``data``, ``opts``, ``timestamp``, ``atm``,
``ats``, ``stc``, ``processedOn``, ``finishedOn``, ``returnvalue``,
``failedReason``, ``stacktrace``, ``progress``, ``parentKey``, ``parent``,
``rjk``, ``deid``, ``pb``, ``defa``...). A hash written by a foreign writer may
be broken; :meth:`Job.check` names what is wrong (the port instead loops such
a job through stall recovery forever, or completes it with ``data={}``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bullbridge import codec
from bullbridge.errors import CorruptJob

if TYPE_CHECKING:
    from bullbridge.connection.resp import RespClient
    from bullbridge.keys import QueueKeys

_MISSING = object()


#: Counters BullMQ's scripts HINCRBY: anything but an integer breaks them.
COUNTERS = (b"atm", b"ats", b"stc", b"attemptsMade")


def _is_int(raw: bytes) -> bool:
    text = raw[1:] if raw[:1] == b"-" else raw
    return text.isdigit()


def fields_to_dict(flat: list[bytes] | dict[Any, Any]) -> dict[bytes, bytes]:
    """A flat HGETALL reply ``[k1, v1, k2, v2...]`` as a dict with bytes keys."""
    if isinstance(flat, dict):
        return {(k if isinstance(k, bytes) else str(k).encode()): (v if isinstance(v, bytes) else str(v).encode())
                for k, v in flat.items()}
    it = iter(flat)
    return dict(zip(it, it))


def _text(raw: bytes | None) -> str | None:
    return raw.decode("utf-8", "replace") if raw is not None else None


class Job:
    """A read-only view of a job hash. Properties decode on first access."""

    __slots__ = ("_codec", "_data", "_opts", "fields", "id", "queue")

    def __init__(self, queue: str, job_id: str, fields: dict[bytes, bytes],
                 json_codec: codec.JsonCodec = codec.DEFAULT) -> None:
        self.queue = queue
        self.id = job_id
        self.fields = fields
        self._data: Any = _MISSING
        self._opts: Any = _MISSING
        self._codec = json_codec

    def __repr__(self) -> str:
        return f"<Job {self.queue}:{self.id} name={self.name!r}>"

    # -- identity ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        return _text(self.fields.get(b"name")) or ""

    @property
    def data(self) -> Any:
        if self._data is _MISSING:
            raw = self.fields.get(b"data")
            self._data = self._codec.decode(raw) if raw is not None else {}
        return self._data

    @property
    def opts(self) -> dict[str, Any]:
        """BullMQ's stored options (camelCase, compressed keys as stored)."""
        if self._opts is _MISSING:
            raw = self.fields.get(b"opts")
            value = self._codec.decode(raw) if raw is not None else {}
            self._opts = value
        return self._opts if isinstance(self._opts, dict) else {}

    # -- numbers ----------------------------------------------------------------------

    def _int(self, key: bytes, default: int = 0) -> int:
        raw = self.fields.get(key)
        if raw is None or raw == b"":
            return default
        try:
            return int(raw)
        except ValueError:
            try:
                return int(float(raw))
            except (ValueError, OverflowError):  # "x", "nan", "inf", "1e400"
                shown = raw[:40].decode("utf-8", "replace")
                raise CorruptJob(f"field '{key.decode()}' is not a number: {shown!r}") from None

    @property
    def timestamp(self) -> int:
        return self._int(b"timestamp")

    @property
    def delay(self) -> int:
        return self._int(b"delay")

    @property
    def priority(self) -> int:
        return self._int(b"priority")

    @property
    def attempts_made(self) -> int:
        """Finished attempts (BullMQ ``atm``; legacy ``attemptsMade``)."""
        if b"atm" in self.fields:
            return self._int(b"atm")
        return self._int(b"attemptsMade")

    @property
    def attempts_started(self) -> int:
        return self._int(b"ats")

    @property
    def stalled_counter(self) -> int:
        return self._int(b"stc")

    @property
    def attempts(self) -> int:
        """Total attempts allowed (BullMQ treats 0 as 1)."""
        value = self.opts.get("attempts") or 1
        return int(value) if isinstance(value, (int, float)) else 1

    @property
    def processed_on(self) -> int | None:
        return self._int(b"processedOn") if b"processedOn" in self.fields else None

    @property
    def finished_on(self) -> int | None:
        return self._int(b"finishedOn") if b"finishedOn" in self.fields else None

    # -- outcome ----------------------------------------------------------------------

    @property
    def progress(self) -> Any:
        raw = self.fields.get(b"progress")
        if raw is None:
            return 0
        try:
            return self._codec.decode(raw)
        except CorruptJob:
            return _text(raw)

    @property
    def returnvalue(self) -> Any:
        raw = self.fields.get(b"returnvalue")
        if raw is None:
            return None
        try:
            return self._codec.decode(raw)
        except CorruptJob:
            return _text(raw)

    @property
    def failed_reason(self) -> str | None:
        return _text(self.fields.get(b"failedReason"))

    @property
    def stacktrace(self) -> list[str]:
        raw = self.fields.get(b"stacktrace")
        if not raw:
            return []
        try:
            value = self._codec.decode(raw)
        except CorruptJob:
            return [_text(raw) or ""]
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]

    # -- relations --------------------------------------------------------------------

    @property
    def parent_key(self) -> str | None:
        return _text(self.fields.get(b"parentKey"))

    @property
    def parent(self) -> dict[str, Any] | None:
        raw = self.fields.get(b"parent")
        if raw is None:
            return None
        try:
            value = self._codec.decode(raw)
        except CorruptJob:
            return None
        return value if isinstance(value, dict) else None

    @property
    def repeat_job_key(self) -> str | None:
        return _text(self.fields.get(b"rjk"))

    @property
    def deduplication_id(self) -> str | None:
        return _text(self.fields.get(b"deid"))

    @property
    def processed_by(self) -> str | None:
        """The worker name that took the job (BullMQ ``pb``), when it had one."""
        return _text(self.fields.get(b"pb"))

    @property
    def deferred_failure(self) -> str | None:
        return _text(self.fields.get(b"defa"))

    # -- checks -----------------------------------------------------------------------

    def safe_opts(self) -> dict[str, Any]:
        """The options, or ``{}`` when they cannot be decoded (for failing such a job)."""
        try:
            return self.opts
        except CorruptJob:
            return {}

    def safe_attempts(self) -> tuple[int, int]:
        """``(attempts_made, attempts)``, or ``(0, 1)`` when the hash is corrupt."""
        try:
            return self.attempts_made, self.attempts
        except CorruptJob:
            return 0, 1

    def numeric_repairs(self) -> dict[str, str]:
        """Counter fields that are not numbers, reset to ``"0"``: BullMQ's finishing
        script runs ``HINCRBY atm`` and would fail on them, so failing such a job
        must overwrite them first (through the script's own fields-to-update)."""
        repairs = {}
        for key in COUNTERS:
            raw = self.fields.get(key)
            if raw is not None and not _is_int(raw):
                repairs[key.decode()] = "0"
        return repairs

    def check(self) -> None:
        """Raise :class:`CorruptJob` naming the first thing a worker cannot use."""
        f = self.fields
        if b"name" not in f and b"data" not in f and b"timestamp" not in f:
            present = {k.decode("utf-8", "replace") for k in f}
            raise CorruptJob(
                f"job hash is missing (only {', '.join(sorted(present)) or 'no fields'} present): "
                "the job was deleted while it waited")
        if b"name" not in f:
            raise CorruptJob("job hash has no 'name' field")
        try:
            f[b"name"].decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptJob("field 'name' is not UTF-8") from None
        for key in (b"timestamp", b"atm", b"ats", b"stc", b"delay", b"priority", b"attemptsMade"):
            raw = f.get(key)
            if raw is not None and raw != b"":
                try:
                    ok = _is_int(raw) if key in COUNTERS else math.isfinite(float(raw))
                except ValueError:
                    ok = False
                if not ok:
                    shown = raw[:40].decode("utf-8", "replace")
                    raise CorruptJob(f"field '{key.decode()}' is not a number: {shown!r}")
        for key, attr in ((b"data", "data"), (b"opts", "opts")):
            if key in f:
                try:
                    getattr(self, attr)
                except CorruptJob as exc:
                    raise CorruptJob(f"field '{attr}' is {exc}") from None
        if b"opts" in f:
            raw_opts = self._opts if self._opts is not _MISSING else self._codec.decode(f[b"opts"])
            if not isinstance(raw_opts, dict):
                raise CorruptJob(f"field 'opts' is JSON but not an object: {type(raw_opts).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (CLI, dashboard)."""
        return {
            "id": self.id,
            "queue": self.queue,
            "name": self.name,
            "data": self.data,
            "opts": self.opts,
            "timestamp": self.timestamp,
            "processedOn": self.processed_on,
            "finishedOn": self.finished_on,
            "attemptsMade": self.attempts_made,
            "attemptsStarted": self.attempts_started,
            "progress": self.progress,
            "returnvalue": self.returnvalue,
            "failedReason": self.failed_reason,
            "stacktrace": self.stacktrace,
            "parentKey": self.parent_key,
            "processedBy": self.processed_by,
        }


@dataclass(frozen=True)
class EnqueuedJob:
    """What ``add`` returns: the id BullMQ assigned (or yours)."""

    id: str
    name: str
    queue: str
    timestamp: int


@dataclass(frozen=True)
class Dependencies:
    """A parent's children by state (Node's ``job.getDependencies()``): return
    values of processed children, keys of unprocessed ones, failure reasons of
    ignored ones, and keys of failed ones (``continue_parent_on_failure``)."""

    processed: dict[str, Any]
    unprocessed: list[str]
    ignored: dict[str, str]
    failed: list[str]


async def read_dependencies(client: RespClient, keys: QueueKeys, job_id: str,
                            json_codec: codec.JsonCodec = codec.DEFAULT) -> Dependencies:
    """Read a parent's children in one round trip (the hashes/sets Node reads)."""
    key = keys.job(job_id)
    processed, unprocessed, ignored, failed = await client.execute_many([
        ("HGETALL", f"{key}:processed"),
        ("SMEMBERS", f"{key}:dependencies"),
        ("HGETALL", f"{key}:failed"),
        ("ZRANGE", f"{key}:unsuccessful", 0, -1),
    ])
    return Dependencies(
        processed={k.decode(): json_codec.decode(v) for k, v in fields_to_dict(processed).items()},
        unprocessed=sorted(m.decode() for m in unprocessed),
        ignored={k.decode(): v.decode("utf-8", "replace") for k, v in fields_to_dict(ignored).items()},
        failed=[m.decode() for m in failed],
    )

"""A job as BullMQ stores it: one Redis hash, decoded lazily and checked.

Field names are BullMQ's (``name``, ``data``, ``opts``, ``timestamp``, ``atm``,
``ats``, ``stc``, ``processedOn``, ``finishedOn``, ``returnvalue``,
``failedReason``, ``stacktrace``, ``progress``, ``parentKey``, ``parent``,
``rjk``, ``deid``, ``pb``, ``defa``...). A hash written by a foreign writer may
be broken; :meth:`Job.check` names what is wrong (the port instead loops such
a job through stall recovery forever, or completes it with ``data={}``), and
:meth:`Job.values` decodes it for showing, never refusing (the monitor).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bullbridge import codec
from bullbridge.errors import CorruptJob

if TYPE_CHECKING:
    from bullbridge.keys import Pipelines, QueueKeys

_MISSING = object()


#: Counters BullMQ's scripts HINCRBY: anything but an integer breaks them.
COUNTERS = (b"atm", b"ats", b"stc", b"attemptsMade")


#: Counters beyond this are refused: Node reads them rounded, and Redis's HINCRBY overflows at 2**63.
MAX_COUNTER = 2**53 - 1


#: The numeric fields a worker checks before it runs a job, and whether each is a counter.
_NUMERIC_FIELDS = tuple(
    (key, key in COUNTERS) for key in (b"timestamp", b"atm", b"ats", b"stc", b"delay", b"priority", b"attemptsMade")
)


def _is_int(raw: bytes) -> bool:
    text = raw[1:] if raw[:1] == b"-" else raw
    return text.isdigit()


def _is_counter(raw: bytes) -> bool:
    """An integer BullMQ's scripts can HINCRBY and Node reads exactly."""
    return _is_int(raw) and abs(int(raw)) <= MAX_COUNTER


def fields_to_dict(flat: list[bytes] | dict[Any, Any]) -> dict[bytes, bytes]:
    """A flat HGETALL reply ``[k1, v1, k2, v2...]`` as a dict with bytes keys."""
    if isinstance(flat, dict):
        return {
            (k if isinstance(k, bytes) else str(k).encode()): (v if isinstance(v, bytes) else str(v).encode())
            for k, v in flat.items()
        }
    it = iter(flat)
    return dict(zip(it, it))


def _text(raw: bytes | None) -> str | None:
    return raw.decode("utf-8", "replace") if raw is not None else None


class Job:
    """A read-only view of a job hash. Properties decode on first access."""

    __slots__ = ("_codec", "_data", "_opts", "fields", "id", "queue")

    def __init__(
        self, queue: str, job_id: str, fields: dict[bytes, bytes], json_codec: codec.JsonCodec = codec.DEFAULT
    ) -> None:
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

    def _number(self, key: bytes) -> int | None:
        """The integer in field ``key``, ``None`` when missing or empty; :class:`CorruptJob`
        (saying what is wrong, not where) when it is not a number."""
        raw = self.fields.get(key)
        if raw is None or raw == b"":
            return None
        try:
            return int(raw)
        except ValueError:
            try:
                return int(float(raw))
            except (ValueError, OverflowError):  # "x", "nan", "inf", "1e400"
                raise CorruptJob(f"not a number: {raw[:40].decode('utf-8', 'replace')!r}") from None

    def _int(self, key: bytes, default: int = 0) -> int:
        try:
            value = self._number(key)
        except CorruptJob as exc:
            raise CorruptJob(f"field '{key.decode()}' is {exc}") from None
        return default if value is None else value

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
        return self._int(self._attempts_key)

    @property
    def _attempts_key(self) -> bytes:
        return b"atm" if b"atm" in self.fields else b"attemptsMade"

    @property
    def attempts_started(self) -> int:
        return self._int(b"ats")

    @property
    def stalled_counter(self) -> int:
        return self._int(b"stc")

    @property
    def attempts(self) -> int:
        """Total attempts allowed, read as Node reads ``opts.attempts``: a number, or a string
        Node's ``<`` turns into one (``"3"`` allows 3); a fraction allows as many attempts as
        ``attemptsMade + 1 < attempts`` does (2.5 -> 3). Anything else (and 0) counts as 1;
        :meth:`check` refuses what is not a number before a worker runs the job."""
        value = js_number(self.opts.get("attempts"))
        if not math.isfinite(value) or value < 1:
            return 1
        return math.ceil(value)

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
        """``(attempts_made, attempts)``, or ``(0, 1)`` when the hash is corrupt (never raises:
        failing a broken job must not fail in turn)."""
        try:
            made, allowed = self.attempts_made, self.attempts
        except Exception:
            return 0, 1
        return (made if abs(made) <= MAX_COUNTER else 0), min(allowed, MAX_COUNTER)

    def numeric_repairs(self) -> dict[str, str]:
        """Counter fields that are not numbers, reset to ``"0"``: BullMQ's finishing
        script runs ``HINCRBY atm`` and would fail on them, so failing such a job
        must overwrite them first (through the script's own fields-to-update)."""
        repairs = {}
        for key in COUNTERS:
            raw = self.fields.get(key)
            if raw is not None and not _is_counter(raw):
                repairs[key.decode()] = "0"
        return repairs

    def check(self) -> None:
        """Raise :class:`CorruptJob` naming the first thing a worker cannot use."""
        f = self.fields
        if b"name" not in f and b"data" not in f and b"timestamp" not in f:
            present = {k.decode("utf-8", "replace") for k in f}
            raise CorruptJob(
                f"job hash is missing (only {', '.join(sorted(present)) or 'no fields'} present): "
                "the job was deleted while it waited"
            )
        if b"name" not in f:
            raise CorruptJob("job hash has no 'name' field")
        try:
            f[b"name"].decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptJob("field 'name' is not UTF-8") from None
        for key, counter in _NUMERIC_FIELDS:
            raw = f.get(key)
            if raw:
                if counter:  # the common case, a short run of digits, is a counter: no int() needed
                    ok = _is_int(raw)
                    if ok and len(raw) > 15 and not _is_counter(raw):
                        shown = raw[:40].decode("utf-8", "replace")
                        raise CorruptJob(f"field '{key.decode()}' is not a counter BullMQ can increment: {shown!r}")
                else:
                    try:
                        ok = math.isfinite(float(raw))
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
            check_worker_options(raw_opts)

    def values(self) -> JobValues:
        """Every field decoded without raising, to show a job as it is (the monitor, the
        dashboard): a JSON field that is not JSON comes back as its raw text, a number
        that is not one as ``None``, each with the reason in ``problems``. Missing
        numbers are ``None`` too (counters ``0``). The properties above decode; this
        only catches what they raise."""
        problems: list[str] = []

        def json_field(key: bytes, read: Callable[[], Any]) -> Any:
            try:
                return read()
            except CorruptJob as exc:
                problems.append(f"{key.decode()}: {exc}")
                return _text(self.fields.get(key))

        def number(key: bytes) -> int | None:
            try:
                return self._number(key)
            except CorruptJob as exc:
                problems.append(f"{key.decode()}: {exc}")
                return None

        opts = json_field(b"opts", lambda: self.opts)
        if self._opts is not _MISSING and not isinstance(self._opts, dict):  # shown as {}
            problems.append(f"opts: JSON but not an object: {type(self._opts).__name__}")
        return JobValues(
            id=self.id,
            queue=self.queue,
            name=self.name,
            data=json_field(b"data", lambda: self.data),
            opts=opts,
            progress=self.progress,
            timestamp=number(b"timestamp"),
            processed_on=number(b"processedOn"),
            finished_on=number(b"finishedOn"),
            delay=number(b"delay"),
            priority=number(b"priority"),
            attempts_made=number(self._attempts_key) or 0,
            attempts_started=number(b"ats") or 0,
            stalled_counter=number(b"stc") or 0,
            returnvalue=self.returnvalue,
            failed_reason=self.failed_reason,
            stacktrace=self.stacktrace,
            parent_key=self.parent_key,
            parent=self.parent,
            processed_by=self.processed_by,
            repeat_job_key=self.repeat_job_key,
            deduplication_id=self.deduplication_id,
            problems=problems,
        )


# --- the stored options a worker acts on ----------------------------------------------------

_JS_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_JS_PREFIXED = {"0x": 16, "0o": 8, "0b": 2}


def js_number(value: Any) -> float:
    """JavaScript's ``Number(value)`` for what JSON holds: numbers as they are, strings as
    ``Number("3")`` reads them (trimmed; ``""`` is 0; ``0x1f``; ``Infinity``), ``null`` 0,
    booleans 0/1, anything else ``NaN``. How Node's ``attemptsMade + 1 < opts.attempts``
    reads an option a foreign writer stored."""
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        return math.nan
    text = value.strip()
    if not text:
        return 0.0
    base = _JS_PREFIXED.get(text[:2].lower())
    if base is not None:
        try:
            return float(int(text[2:], base))
        except ValueError:
            return math.nan
    if text.lstrip("+-") == "Infinity":
        return -math.inf if text.startswith("-") else math.inf
    return float(text) if _JS_DECIMAL.fullmatch(text) else math.nan


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _finite(value: Any, *, strings: bool) -> bool:
    """A finite number (or, with ``strings``, a string Node reads as one)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    return strings and isinstance(value, str) and math.isfinite(js_number(value)) and bool(value.strip())


def check_worker_options(opts: dict[str, Any]) -> None:
    """Refuse (:class:`CorruptJob`) a stored option the worker must act on and cannot: a job with
    such an option fails at once, with the option named, instead of a retry rule nobody meant.

    * ``attempts``: a finite number, or a string Node's ``<`` reads as one (``"3"``);
    * ``backoff``: a finite number, or ``{type: string, delay?: number, jitter?: number}``
      (``delay`` may be a numeric string, as Node's arithmetic reads it);
    * ``removeOnComplete`` / ``removeOnFail``: a boolean, a number, or
      ``{count?, age?, limit?}`` of numbers (Node hands anything else to its Lua script as is).
    """
    attempts = opts.get("attempts")
    if attempts is not None and not _finite(attempts, strings=True):
        raise CorruptJob(f"option 'attempts' is {_shown(attempts)}: not a number of attempts")
    _check_backoff(opts.get("backoff"))
    for name in ("removeOnComplete", "removeOnFail"):
        keep = opts.get(name)
        if keep is None or isinstance(keep, bool) or _finite(keep, strings=False):
            continue
        if isinstance(keep, dict) and all(
            _finite(v, strings=False) for k, v in keep.items() if k in ("count", "age", "limit")
        ):
            continue
        raise CorruptJob(f"option '{name}' is {_shown(keep)}: not a boolean, a count, or {{count, age, limit}}")


def _check_backoff(backoff: Any) -> None:
    if backoff is None or backoff is False or _finite(backoff, strings=False):
        return
    if not isinstance(backoff, dict):
        raise CorruptJob(f"option 'backoff' is {_shown(backoff)}: not a delay in ms nor {{type, delay}}")
    kind = backoff.get("type")
    if not isinstance(kind, str) or not kind:
        raise CorruptJob(f"option 'backoff' has type {_shown(kind)}: not the name of a backoff strategy")
    delay = backoff.get("delay")
    if delay is not None and not _finite(delay, strings=True):
        raise CorruptJob(f"option 'backoff' has delay {_shown(delay)}: not a number of ms")
    jitter = backoff.get("jitter")
    if jitter is not None and not _finite(jitter, strings=False):
        raise CorruptJob(f"option 'backoff' has jitter {_shown(jitter)}: not a number")


@dataclass(frozen=True)
class JobValues:
    """A job hash decoded for showing (:meth:`Job.values`): never refused, with what
    could not be decoded named in ``problems``."""

    id: str
    queue: str
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
    parent_key: str | None
    parent: dict[str, Any] | None
    processed_by: str | None
    repeat_job_key: str | None
    deduplication_id: str | None
    problems: list[str]


@dataclass(frozen=True)
class EnqueuedJob:
    """What ``add`` returns: the id BullMQ assigned (or yours)."""

    id: str
    name: str
    queue: str
    timestamp: int


#: The groups of a parent's children, in Node's ``getDependencies`` order.
CHILD_GROUPS = ("processed", "unprocessed", "ignored", "failed")


@dataclass(frozen=True)
class Dependencies:
    """A parent's children by state (Node's ``job.getDependencies()``): return
    values of processed children, keys of unprocessed ones, failure reasons of
    ignored ones, and keys of failed ones (``continue_parent_on_failure``), with
    how many each group holds (``counts``, :data:`CHILD_GROUPS` as keys; more than
    listed when the read had a ``limit``)."""

    processed: dict[str, Any] = field(default_factory=dict)
    unprocessed: list[str] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


async def read_dependencies(
    client: Pipelines,
    keys: QueueKeys,
    job_id: str,
    json_codec: codec.JsonCodec = codec.DEFAULT,
    *,
    limit: int | None = None,
    tolerant: bool = False,
) -> Dependencies:
    """Read a parent's children (the hashes/sets Node reads).

    Without ``limit``: everything, in one round trip. With one: the counts first
    (``HLEN``/``SCARD``/``ZCARD``, what BullMQ's ``getDependencyCounts`` runs),
    then at most ``limit`` children per group (a group larger than that is read
    with one ``HSCAN``/``SSCAN`` step, never whole), so a parent of a million
    children costs two small round trips. ``tolerant`` keeps a processed
    child's return value that is not JSON as its text instead of raising
    :class:`CorruptJob`."""
    key = keys.job(job_id)
    processed_key, pending_key, ignored_key, failed_key = (
        f"{key}:processed",
        f"{key}:dependencies",
        f"{key}:failed",
        f"{key}:unsuccessful",
    )
    counts: dict[str, int] | None = None
    scanned = dict.fromkeys(CHILD_GROUPS, False)  # groups larger than limit: one SCAN step, not all
    if limit is not None:
        limit = max(1, limit)
        replies = await client.execute_many(
            [("HLEN", processed_key), ("SCARD", pending_key), ("HLEN", ignored_key), ("ZCARD", failed_key)]
        )
        counts = dict(zip(CHILD_GROUPS, (int(n) for n in replies)))
        if not any(counts.values()):
            return Dependencies(counts=counts)
        scanned = {group: n > limit for group, n in counts.items()}
    processed, pending, ignored, failed = await client.execute_many(
        [
            ("HSCAN", processed_key, 0, "COUNT", limit) if scanned["processed"] else ("HGETALL", processed_key),
            ("SSCAN", pending_key, 0, "COUNT", limit) if scanned["unprocessed"] else ("SMEMBERS", pending_key),
            ("HSCAN", ignored_key, 0, "COUNT", limit) if scanned["ignored"] else ("HGETALL", ignored_key),
            ("ZRANGE", failed_key, 0, -1 if limit is None else limit - 1),
        ]
    )

    def items(reply: Any, group: str) -> list[Any]:
        return list(reply[1]) if scanned[group] else list(reply)  # a SCAN reply is [cursor, items]

    def value(raw: bytes) -> Any:
        try:
            return json_codec.decode(raw)
        except CorruptJob:
            if not tolerant:
                raise
            return _text(raw)

    processed_map = {_text(k) or "": value(v) for k, v in fields_to_dict(items(processed, "processed")).items()}
    ignored_map = {_text(k) or "": _text(v) or "" for k, v in fields_to_dict(items(ignored, "ignored")).items()}
    unprocessed = sorted(_text(m) or "" for m in items(pending, "unprocessed"))
    failed_keys = [_text(m) or "" for m in failed]
    if counts is None:  # everything was read
        counts = dict(zip(CHILD_GROUPS, (len(processed_map), len(unprocessed), len(ignored_map), len(failed_keys))))
    else:  # a SCAN step may return a few more than asked
        processed_map = dict(list(processed_map.items())[:limit])
        ignored_map = dict(list(ignored_map.items())[:limit])
        unprocessed = unprocessed[:limit]
    return Dependencies(
        processed=processed_map, unprocessed=unprocessed, ignored=ignored_map, failed=failed_keys, counts=counts
    )

"""Contracts: the jobs one side writes, recorded to JSON and replayed on the other.

A mixed-language queue has a contract nobody writes down: the job names, data
shapes and options the producers send and the consumers accept. bullbridge
records it from what BullMQ actually stored:

1. **Record**, on the producer's side: run the real producer (a Node function
   through the driver, or Python code) in a test, then :func:`record` reads the
   jobs it wrote - name, data, and options exactly as BullMQ stored them - in
   the order they were added. :meth:`ContractStore.check` compares them with
   the committed contract file and fails when they changed (rerun with
   ``--bullbridge-update-contracts`` to accept a change on purpose).
2. **Replay**, on the consumer's side: :func:`write_jobs` puts the recorded
   jobs back into Redis through BullMQ's own add scripts, with the stored
   options unchanged (only scheduling ones that would keep a job from running
   now are dropped: see :data:`REPLAY_DROPS`), and the real consumer - Python
   handlers or a Node processor module - must process them.

So a producer change fails the producer's recording test, and once the new
contract is committed, a consumer that cannot handle it fails its replay test:
each break shows up on the side that changed.

3. **Pin what consumers return** (optional): :meth:`Replay.results` (the
   replay's outcome per job: state and return value, or failure reason - or
   just their *shape*, keys and JSON types) checked with the same
   :meth:`ContractStore.check` against a ``.results`` file of the consumer's
   side, so a handler that changes what it returns fails its replay test too.

A missing contract file is written and the test passes - except under ``CI``
(``CI=true`` in the environment, ``--bullbridge-strict-contracts``, or the ini
option ``bullbridge_strict_contracts = true``), where it fails with the command
that records it.

What a recording holds: every job hash in the queues, scheduler iterations
aside (their ids and options carry the time they ran). Flow relations are not
kept: each job of a flow is recorded, and replayed, as a job of its own.
"""

from __future__ import annotations

import fnmatch
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from bullbridge import codec as codec_module
from bullbridge import scripts
from bullbridge.clock import now_ms
from bullbridge.connection.resp import RespClient
from bullbridge.errors import BullbridgeError
from bullbridge.job import fields_to_dict
from bullbridge.keys import QueueKeys

log = logging.getLogger("bullbridge.testing.contracts")

FORMAT = 1

#: Stored options dropped on replay: they would delay the job or tie it to a
#: scheduler, parent or deduplication key that does not exist in the replay.
REPLAY_DROPS = ("delay", "repeat", "repeatJobKey", "prevMillis", "parent", "de", "deduplication")

_LIST_STATES = ("wait", "paused", "active")
_ZSET_STATES = ("delayed", "prioritized", "waiting-children", "completed", "failed")


@dataclass(frozen=True)
class RecordedJob:
    """One job as BullMQ stored it: its queue, name, data and stored options."""

    queue: str
    name: str
    data: Any
    opts: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """As stored in a contract file: object keys sorted, so files diff stably
        (BullMQ's Lua stores options in hash order, which varies)."""
        return {"queue": self.queue, "name": self.name, "data": _sorted(self.data), "opts": _sorted(self.opts)}

    @classmethod
    def from_json(cls, value: Any) -> RecordedJob:
        if not isinstance(value, dict) or not {"queue", "name"} <= set(value):
            raise ValueError(f"a recorded job is an object with queue, name, data and opts, got {value!r}")
        return cls(str(value["queue"]), str(value["name"]), value.get("data"), dict(value.get("opts") or {}))


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


class ContractFileMissing(BullbridgeError, FileNotFoundError):
    """A contract or results file that was never recorded."""


class ContractFileInvalid(BullbridgeError, ValueError):
    """A contract or results file that is not what it should be (not JSON, wrong shape)."""


_Loaded = TypeVar("_Loaded")


def _write(path: str | Path, text: str) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


def _read(path: str | Path, parse: Callable[[Any], _Loaded], missing: str) -> _Loaded:
    """One recorded file, parsed; ``missing`` (with ``{source}``) says how to record it."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContractFileMissing(missing.format(source=source)) from None
    try:
        return parse(json.loads(text))
    except ValueError as exc:
        raise ContractFileInvalid(f"{source}: {exc}") from None


class ContractMismatch(BullbridgeError, AssertionError):
    """The jobs a producer writes are not the ones its contract file holds."""


@dataclass(frozen=True)
class Contract:
    """The jobs one side wrote, in order. ``producer`` says which side ("node",
    "python"); ``recorded_with`` the versions (informative: never compared)."""

    jobs: tuple[RecordedJob, ...]
    producer: str = ""
    recorded_with: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.jobs)

    @property
    def queues(self) -> list[str]:
        """The queues the jobs are in, in order of first appearance."""
        return list(dict.fromkeys(job.queue for job in self.jobs))

    def by_name(self, name: str) -> list[RecordedJob]:
        return [job for job in self.jobs if job.name == name]

    def to_json(self) -> dict[str, Any]:
        return {
            "bullbridge_contract": FORMAT,
            "producer": self.producer,
            "recorded_with": self.recorded_with,
            "jobs": [job.to_json() for job in self.jobs],
        }

    @classmethod
    def from_json(cls, value: Any) -> Contract:
        if not isinstance(value, dict) or value.get("bullbridge_contract") != FORMAT:
            raise ValueError('not a bullbridge contract (no "bullbridge_contract": 1)')
        return cls(
            tuple(RecordedJob.from_json(j) for j in value.get("jobs") or ()),
            str(value.get("producer") or ""),
            {str(k): str(v) for k, v in (value.get("recorded_with") or {}).items()},
        )

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"

    def save(self, path: str | Path) -> Path:
        return _write(path, self.dumps())

    @classmethod
    def load(cls, path: str | Path) -> Contract:
        return _read(
            path,
            cls.from_json,
            "no contract at {source}: record it first (the producer side's test writes it; "
            "run that test once, or with --bullbridge-update-contracts)",
        )

    def diff(self, other: Contract, ignore: Sequence[str] = ()) -> list[str]:
        """How ``other`` (what was recorded now) differs from this contract, one
        line per difference; ``ignore`` holds glob paths inside a job to skip
        (``data.createdAt``, ``data.items.*.id``, ``opts.timestamp``)."""
        lines: list[str] = []
        for index in range(max(len(self.jobs), len(other.jobs))):
            if index >= len(other.jobs):
                job = self.jobs[index]
                lines.append(f"job {index} ({job.queue}/{job.name}) is no longer written")
                continue
            if index >= len(self.jobs):
                job = other.jobs[index]
                lines.append(
                    f"job {index} ({job.queue}/{job.name}) is new: data {_short(job.data)}, opts {_short(job.opts)}"
                )
                continue
            mine, theirs = self.jobs[index], other.jobs[index]
            label = f"job {index} ({mine.queue}/{mine.name})"
            _diff_value(mine.to_json(), theirs.to_json(), "", ignore, label, lines)
        return lines

    def masked_equal(self, other: Contract, ignore: Sequence[str] = ()) -> bool:
        return not self.diff(other, ignore)


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _ignored(path: str, ignore: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in ignore)


def _diff_value(expected: Any, actual: Any, path: str, ignore: Sequence[str], label: str, lines: list[str]) -> None:
    if path and _ignored(path, ignore):
        return
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in dict.fromkeys([*expected, *actual]):
            sub = f"{path}.{key}" if path else str(key)
            if key not in actual:
                if not _ignored(sub, ignore):
                    lines.append(f"{label}: {sub} is gone (was {_short(expected[key])})")
            elif key not in expected:
                if not _ignored(sub, ignore):
                    lines.append(f"{label}: {sub} is new: {_short(actual[key])}")
            else:
                _diff_value(expected[key], actual[key], sub, ignore, label, lines)
        return
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        for i, (a, b) in enumerate(zip(expected, actual)):
            _diff_value(a, b, f"{path}.{i}", ignore, label, lines)
        return
    if expected != actual or (type(expected) is not type(actual) and not _same_number(expected, actual)):
        lines.append(f"{label}: {path or 'job'} was {_short(expected)}, now {_short(actual)}")


def _same_number(a: Any, b: Any) -> bool:
    numbers = (int, float)
    return (
        isinstance(a, numbers)
        and isinstance(b, numbers)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
        and a == b
    )


# --- what consumers return ---------------------------------------------------------------

RESULTS_FORMAT = 1


def shape_of(value: Any) -> Any:
    """A JSON value's shape: objects keep their keys (sorted), arrays the shape of their first
    item, scalars become their JSON type - ``"string"``, ``"number"``, ``"boolean"``, ``"null"``.
    ``{"sent_to": "ada@example.com", "ids": [3, 4]}`` -> ``{"ids": ["number"], "sent_to": "string"}``."""
    if isinstance(value, dict):
        return {str(k): shape_of(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [shape_of(value[0])] if value else []
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "string" if isinstance(value, str) else type(value).__name__


@dataclass(frozen=True)
class ConsumedJob:
    """What a consumer did with one replayed job: its final state, and the return value
    (completed) or the failure reason (failed)."""

    queue: str
    name: str
    state: str
    returnvalue: Any = None
    failed_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"queue": self.queue, "name": self.name, "state": self.state}
        if self.state == "failed":
            out["failedReason"] = self.failed_reason
        else:
            out["returnvalue"] = _sorted(self.returnvalue)
        return out

    @classmethod
    def from_json(cls, value: Any) -> ConsumedJob:
        if not isinstance(value, dict) or not {"queue", "name", "state"} <= set(value):
            raise ValueError(f"a consumed job is an object with queue, name, state and returnvalue, got {value!r}")
        return cls(
            str(value["queue"]),
            str(value["name"]),
            str(value["state"]),
            value.get("returnvalue"),
            value.get("failedReason"),
        )


@dataclass(frozen=True)
class Results:
    """What a consumer returned for each job of a replayed contract, in the contract's order
    (:meth:`bullbridge.testing.Replay.results`). With ``shape``, each return value is kept as
    its :func:`shape_of`: a different value of the same shape still matches."""

    jobs: tuple[ConsumedJob, ...]
    consumer: str = ""
    shape: bool = False

    def __len__(self) -> int:
        return len(self.jobs)

    def to_json(self) -> dict[str, Any]:
        return {
            "bullbridge_results": RESULTS_FORMAT,
            "consumer": self.consumer,
            "shape": self.shape,
            "jobs": [job.to_json() for job in self.jobs],
        }

    @classmethod
    def from_json(cls, value: Any) -> Results:
        if not isinstance(value, dict) or value.get("bullbridge_results") != RESULTS_FORMAT:
            raise ValueError('not a bullbridge results file (no "bullbridge_results": 1)')
        return cls(
            tuple(ConsumedJob.from_json(j) for j in value.get("jobs") or ()),
            str(value.get("consumer") or ""),
            bool(value.get("shape")),
        )

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"

    def save(self, path: str | Path) -> Path:
        return _write(path, self.dumps())

    @classmethod
    def load(cls, path: str | Path) -> Results:
        return _read(
            path,
            cls.from_json,
            "no results file at {source}: the consumer side's replay test writes it "
            "(run it once, or with --bullbridge-update-contracts)",
        )

    def diff(self, other: Results, ignore: Sequence[str] = ()) -> list[str]:
        """How ``other`` (the results now) differs from these, one line per difference;
        ``ignore`` holds glob paths inside a job (``returnvalue.message_id``)."""
        lines: list[str] = []
        if self.shape != other.shape:
            lines.append(
                f"the results file holds {'shapes' if self.shape else 'values'}: check with shape={self.shape}"
            )
            return lines
        for index in range(max(len(self.jobs), len(other.jobs))):
            if index >= len(other.jobs):
                job = self.jobs[index]
                lines.append(f"job {index} ({job.queue}/{job.name}) is no longer replayed")
            elif index >= len(self.jobs):
                job = other.jobs[index]
                lines.append(f"job {index} ({job.queue}/{job.name}) is new: {_short(job.to_json())}")
            else:
                mine, theirs = self.jobs[index], other.jobs[index]
                label = f"job {index} ({mine.queue}/{mine.name})"
                _diff_value(mine.to_json(), theirs.to_json(), "", ignore, label, lines)
        return lines


# --- recording ------------------------------------------------------------------------


async def _job_ids(client: RespClient, keys: QueueKeys) -> list[str]:
    """The queue's job ids in the order they were added: the ``added`` events of
    its stream first, then any job still in a state set that the (trimmed)
    stream no longer mentions."""
    ordered: dict[str, None] = {}
    cursor = "-"
    while True:
        entries = await client.execute("XRANGE", keys["events"], cursor, "+", "COUNT", 1000)
        if not entries:
            break
        for _entry_id, flat in entries:
            values = fields_to_dict(flat)
            if values.get(b"event") == b"added" and b"jobId" in values:
                ordered.setdefault(values[b"jobId"].decode(), None)
        last = entries[-1][0].decode()
        cursor = "(" + last
        if len(entries) < 1000:
            break
    commands: list[tuple[Any, ...]] = [("LRANGE", keys[s], 0, -1) for s in _LIST_STATES]
    commands += [("ZRANGE", keys[s], 0, -1) for s in _ZSET_STATES]
    replies = await client.execute_many(commands)
    extra = {m.decode() for reply in replies for m in reply or ()} - set(ordered)
    if extra:
        stamps = await client.execute_many([("HGET", keys.job(i), "timestamp") for i in sorted(extra)])
        by_time = sorted(
            zip(sorted(extra), stamps),
            key=lambda pair: (int(pair[1] or 0), int(pair[0]) if pair[0].isdigit() else 0, pair[0]),
        )
        for job_id, _ in by_time:
            ordered.setdefault(job_id, None)
    return list(ordered)


async def record(
    client: RespClient,
    queues: Iterable[str],
    *,
    prefix: str = "bull",
    producer: str = "",
    recorded_with: dict[str, str] | None = None,
    json_codec: codec_module.JsonCodec = codec_module.DEFAULT,
) -> Contract:
    """Every job in ``queues`` (under ``prefix``) as BullMQ stored it, in the
    order added; scheduler iterations and removed jobs are not in it."""
    jobs: list[RecordedJob] = []
    for queue in queues:
        keys = QueueKeys(queue, prefix)
        ids = await _job_ids(client, keys)
        hashes = await client.execute_many([("HGETALL", keys.job(i)) for i in ids]) if ids else []
        for raw in hashes:
            fields = fields_to_dict(raw or [])
            if not fields or b"name" not in fields or b"rjk" in fields:
                continue
            data = json_codec.decode(fields[b"data"]) if fields.get(b"data") else {}
            opts = json_codec.decode(fields[b"opts"]) if fields.get(b"opts") else {}
            jobs.append(
                RecordedJob(
                    queue, fields[b"name"].decode("utf-8", "replace"), data, opts if isinstance(opts, dict) else {}
                )
            )
    return Contract(tuple(jobs), producer, dict(recorded_with or {}))


# --- replaying ------------------------------------------------------------------------


def replay_opts(opts: dict[str, Any]) -> dict[str, Any]:
    """The stored options minus :data:`REPLAY_DROPS`."""
    return {k: v for k, v in opts.items() if k not in REPLAY_DROPS}


async def write_jobs(
    client: RespClient,
    jobs: Iterable[RecordedJob],
    *,
    prefix: str = "bull",
    json_codec: codec_module.JsonCodec = codec_module.DEFAULT,
) -> list[tuple[RecordedJob, str]]:
    """Add ``jobs`` to their queues under ``prefix`` through BullMQ's add scripts,
    stored options as recorded (see :func:`replay_opts`); returns each job with its id."""
    added: list[tuple[RecordedJob, str]] = []
    for job in jobs:
        qs = scripts.QueueScripts(QueueKeys(job.queue, prefix))
        opts = replay_opts(job.opts)
        custom = opts.get("jobId")
        script, keys, args = qs.add_job(
            job_id=str(custom) if custom else "",
            name=job.name,
            timestamp=now_ms(),
            data_json=json_codec.encode(job.data),
            encoded_opts=opts,
        )
        result = scripts.check_code(await scripts.run(client, script, keys, args), "addJob")
        added.append((job, result.decode() if isinstance(result, bytes) else str(result)))
    return added


_Checked = TypeVar("_Checked", Contract, Results)


def _save_versions(committed: Contract, recorded: Contract, path: Path) -> None:
    """The same jobs, recorded with other versions: keep the file's jobs, note the versions."""
    if committed.recorded_with != recorded.recorded_with:
        replace(committed, recorded_with=recorded.recorded_with).save(path)


@dataclass
class ContractStore:
    """Contract files under ``base``: :meth:`check` one recorded now (a :class:`Contract`, or the
    :class:`Results` of a replay) against the committed one, :meth:`load` one to replay. With
    ``update``, :meth:`check` (re)writes the file instead of comparing. A missing file is written -
    unless ``strict`` (CI), where it fails saying ``record_command``, the command that records it."""

    base: Path
    update: bool = False
    strict: bool = False
    #: How to record a missing contract (``pytest <test id> --bullbridge-update-contracts``).
    record_command: str = ""

    def path(self, name: str | Path) -> Path:
        path = Path(name)
        if not path.suffix or path.suffix == ".results":
            path = path.with_name(path.name + ".json")
        return path if path.is_absolute() else self.base / path

    def load(self, name: str | Path) -> Contract:
        return Contract.load(self.path(name))

    def load_results(self, name: str | Path) -> Results:
        return Results.load(self.path(name))

    def check(self, recorded: _Checked, name: str | Path, *, ignore: Sequence[str] = ()) -> _Checked:
        """Compare ``recorded`` with the file ``name``; raise :class:`ContractMismatch` listing
        the differences. Returns what the file holds (or what was just written)."""
        path = self.path(name)
        if not path.exists():
            return self._missing(recorded, path)
        committed: _Checked = type(recorded).load(path)
        differences = committed.diff(recorded, ignore)
        if not differences:
            if self.update and isinstance(committed, Contract) and isinstance(recorded, Contract):
                _save_versions(committed, recorded, path)
            return committed
        if self.update:
            recorded.save(path)
            log.warning("updated contract %s: %s", path, "; ".join(differences))
            return recorded
        shown = "\n  ".join(differences[:30])
        more = f"\n  ... and {len(differences) - 30} more" if len(differences) > 30 else ""
        if isinstance(recorded, Results):
            raise ContractMismatch(
                f"what the consumer returns no longer matches {path}:\n  {shown}{more}\n"
                "If this change is intended, rerun with --bullbridge-update-contracts and commit the file "
                "(and tell the producers' side: they read these results)."
            )
        raise ContractMismatch(
            f"the jobs written no longer match the contract {path}:\n  {shown}{more}\n"
            "If this change is intended, rerun with --bullbridge-update-contracts and commit the file; "
            "the consumer side's replay test then checks that it still accepts these jobs."
        )

    def _missing(self, recorded: _Checked, path: Path) -> _Checked:
        if self.strict and not self.update:
            how = (
                f": record it with `{self.record_command}`"
                if self.record_command
                else (": record it by running this test with --bullbridge-update-contracts")
            )
            raise ContractMismatch(f"no contract at {path}, and CI does not write one{how}, then commit the file")
        recorded.save(path)
        log.warning("wrote new contract %s (%d jobs)", path, len(recorded))
        return recorded

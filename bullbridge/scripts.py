"""BullMQ's Lua scripts, run unchanged, with keys and arguments built as BullMQ does.

The scripts are read from the installed Python port (``bullmq/commands``): we
never fork or edit them, so every Redis mutation is BullMQ's own - with one
addition in front of the scripts that can push a job into ``wait``: Node < 6's
paused list (:mod:`bullbridge.protocol`), so a queue a Node 5 service paused
loses nothing when it resumes. What this
module owns is *calling* them fast: ``EVALSHA`` on a pipelining connection,
scripts loaded once per connection (and again on ``NOSCRIPT``), and argument
lists built without the port's per-call overhead. ``tests/test_scripts_parity.py``
checks every builder here against the port's own, byte for byte (the fields
Node sends and the port omits, such as the worker ``name``, are the only
differences and are listed there).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import msgpack

from bullbridge import protocol
from bullbridge.clock import now_ms
from bullbridge.connection.resp import Arg, RespClient, RespConnection, RespError
from bullbridge.errors import LockLost, MissingDependency, ScriptError
from bullbridge.keys import QueueKeys


def _commands_dir() -> Path:
    """The installed port's Lua scripts, found without importing the port (its
    import pulls in redis-py, which no hot path of ours needs)."""
    import importlib.util

    spec = importlib.util.find_spec("bullmq")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the bullmq package (BullMQ's official Python port) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "commands"


COMMANDS_DIR = _commands_dir()


@dataclass(frozen=True)
class Script:
    name: str
    num_keys: int
    source: bytes
    sha: str


@cache
def script(name: str) -> Script:
    """The port's script ``<name>-<numkeys>.lua`` (with :func:`bullbridge.protocol.adapt`'s prologue)."""
    matches = sorted(COMMANDS_DIR.glob(f"{name}-*.lua"))
    matches = [m for m in matches if m.stem.rsplit("-", 1)[0] == name]
    if len(matches) != 1:
        raise MissingDependency(
            f"BullMQ script {name!r} not found in {COMMANDS_DIR}: reinstall the bullmq package (pip install bullmq)"
        )
    path = matches[0]
    source = protocol.adapt(name, path.read_bytes())
    return Script(name, int(path.stem.rsplit("-", 1)[1]), source, hashlib.sha1(source).hexdigest())


#: Scripts the engine and producer use; loaded on every new connection.
HOT_SCRIPTS = (
    "addStandardJob",
    "addDelayedJob",
    "addPrioritizedJob",
    "addParentJob",
    "moveToActive",
    "moveToFinished",
    "moveToDelayed",
    "retryJob",
    "extendLocks",
    "moveStalledJobsToWait",
    "updateProgress",
    "addLog",
    "moveJobFromActiveToWait",
    "moveToWaitingChildren",
    "releaseLock",
)


async def preload(conn: RespConnection, names: Sequence[str] = HOT_SCRIPTS) -> None:
    """``SCRIPT LOAD`` the given scripts on a fresh connection (one round trip),
    so a MULTI of EVALSHAs can never hit NOSCRIPT half way."""
    import asyncio

    await asyncio.gather(*conn.execute_many([("SCRIPT", "LOAD", script(n).source) for n in names]))


async def run(
    client: RespClient, name: str, keys: Sequence[Arg], args: Sequence[Arg], timeout: float | None = None
) -> Any:
    """EVALSHA the script; on NOSCRIPT (a server restart or SCRIPT FLUSH) load and retry."""
    s = script(name)
    try:
        return await client.execute("EVALSHA", s.sha, len(keys), *keys, *args, timeout=timeout)
    except RespError as exc:
        if exc.prefix != "NOSCRIPT":
            raise
    await client.execute("SCRIPT", "LOAD", s.source)
    return await client.execute("EVALSHA", s.sha, len(keys), *keys, *args, timeout=timeout)


def evalsha_command(name: str, keys: Sequence[Arg], args: Sequence[Arg]) -> tuple[Arg, ...]:
    """The EVALSHA command tuple, for pipelines and transactions."""
    s = script(name)
    return ("EVALSHA", s.sha, len(keys), *keys, *args)


pack = msgpack.Packer(use_bin_type=True).pack


# --- error codes (BullMQ's ErrorCode enum) -----------------------------------------

ERROR_MESSAGES = {
    -1: "Missing key for job {job_id}. {command}",
    -2: "Missing lock for job {job_id}. {command}",
    -3: "Job {job_id} is not in the {state} state. {command}",
    -4: "Job {job_id} has pending dependencies. {command}",
    -5: "Missing key for parent job {parent}. {command}",
    -6: "Lock mismatch for job {job_id}. Cmd {command} from {state}",
    -7: "The parent job {parent} cannot be replaced. {command}",
    -9: "Cannot complete job {job_id} because it has at least one failed child. {command}",
}


def check_code(result: Any, command: str, job_id: str = "", state: str = "active", parent: str = "") -> Any:
    """Raise a :class:`ScriptError` for BullMQ's negative result codes."""
    if type(result) is int and result < 0:
        template = ERROR_MESSAGES.get(result, "Unknown code {code} error for {job_id}. {command}")
        message = template.format(job_id=job_id, command=command, state=state, parent=parent, code=result)
        if result in (-2, -6):
            raise LockLost(message, result)
        raise ScriptError(message, result)
    return result


# --- argument builders, one per script ----------------------------------------------


def keep_jobs(remove: Any) -> dict[str, Any]:
    """BullMQ's ``getKeepJobs``: True -> keep none, False/None -> keep all,
    a number -> keep that many, dict -> its numeric ``count``, ``age``, ``limit``.

    Never hands the script what it cannot read (Node passes a foreign writer's
    ``"yes"`` or ``{count: "many"}`` through, and its Lua script then fails the
    finish): other values keep everything, and non-numeric fields are dropped."""
    if isinstance(remove, bool) or remove is None:
        return {"count": 0} if remove else {"count": -1}
    if isinstance(remove, (int, float)):
        return {"count": remove} if math.isfinite(remove) else {"count": -1}
    if isinstance(remove, dict):
        kept = {
            k: v
            for k, v in remove.items()
            if k in ("count", "age", "limit") and isinstance(v, (int, float)) and not isinstance(v, bool)
            if math.isfinite(v)
        }
        return kept or {"count": -1}
    return {"count": -1}


class QueueScripts:
    """Keys and arguments for one queue's scripts (pure: no I/O)."""

    def __init__(self, keys: QueueKeys) -> None:
        self.k = keys
        k = keys
        self.move_to_active_keys: list[Arg] = [
            k["wait"],
            k["active"],
            k["prioritized"],
            k["events"],
            k["stalled"],
            k["limiter"],
            k["delayed"],
            k["paused"],
            k["meta"],
            k["pc"],
            k["marker"],
        ]
        self._finished_prefix: list[Arg] = [
            k["wait"],
            k["active"],
            k["prioritized"],
            k["events"],
            k["stalled"],
            k["limiter"],
            k["delayed"],
            k["paused"],
            k["meta"],
            k["pc"],
        ]
        self.finished_keys: dict[str, list[Arg]] = {
            target: [*self._finished_prefix, k[target], "", k.metrics(target), k["marker"]]
            for target in ("completed", "failed")
        }

    # -- adding ----------------------------------------------------------------------

    def add_job(
        self,
        *,
        job_id: str,
        name: str,
        timestamp: int,
        data_json: bytes | str,
        encoded_opts: dict[str, Any],
        parent_key: str | None = None,
        parent: dict[str, Any] | None = None,
        repeat_job_key: str | None = None,
        dedup_id: str | None = None,
        as_parent: bool = False,
    ) -> tuple[str, list[Arg], list[Arg]]:
        """``(script, keys, args)`` for addStandard/Delayed/Prioritized/ParentJob,
        chosen as BullMQ chooses (parent > delay > priority > standard)."""
        k = self.k
        packed_args = pack(
            [
                k.base,
                job_id or "",
                name,
                timestamp,
                parent_key,
                f"{parent_key}:dependencies" if parent_key else None,
                parent,
                repeat_job_key,
                f"{k.base}de:{dedup_id}" if dedup_id else None,
            ]
        )
        args: list[Arg] = [packed_args, data_json, pack(encoded_opts)]
        if as_parent:
            keys: list[Arg] = [k["meta"], k["id"], k["delayed"], k["waiting-children"], k["completed"], k["events"]]
            return "addParentJob", keys, args
        delay = encoded_opts.get("delay")
        if delay:
            keys = [k["marker"], k["meta"], k["id"], k["delayed"], k["completed"], k["events"]]
            args.append(delay)
            return "addDelayedJob", keys, args
        priority = encoded_opts.get("priority")
        if priority:
            keys = [
                k["marker"],
                k["meta"],
                k["id"],
                k["prioritized"],
                k["delayed"],
                k["completed"],
                k["active"],
                k["events"],
                k["pc"],
            ]
            args.append(priority)
            return "addPrioritizedJob", keys, args
        keys = [
            k["wait"],
            k["paused"],
            k["meta"],
            k["id"],
            k["completed"],
            k["delayed"],
            k["active"],
            k["events"],
            k["marker"],
        ]
        args.append(timestamp)
        return "addStandardJob", keys, args

    # -- fetching and finishing -------------------------------------------------------

    @staticmethod
    def worker_opts(token: str, lock_duration: int, limiter: dict[str, Any] | None, name: str | None) -> dict[str, Any]:
        opts: dict[str, Any] = {"token": token, "lockDuration": lock_duration, "limiter": limiter}
        if name:
            opts["name"] = name
        return opts

    def move_to_active(
        self,
        token: str,
        lock_duration: int,
        limiter: dict[str, Any] | None,
        name: str | None = None,
        timestamp: int | None = None,
    ) -> tuple[list[Arg], list[Arg]]:
        args: list[Arg] = [
            self.k.base,
            timestamp if timestamp is not None else now_ms(),
            pack(self.worker_opts(token, lock_duration, limiter, name)),
        ]
        return self.move_to_active_keys, args

    def move_to_finished(
        self,
        *,
        job_id: str,
        token: str,
        target: str,
        value: bytes | str,
        keep: dict[str, Any],
        attempts: int,
        attempts_made: int,
        lock_duration: int,
        limiter: dict[str, Any] | None,
        fetch_next: bool,
        max_metrics_size: int | str = "",
        parent_flags: tuple[bool, bool, bool, bool] = (False, False, False, False),
        worker_name: str | None = None,
        fields_to_update: dict[str, Any] | None = None,
        timestamp: int | None = None,
    ) -> tuple[list[Arg], list[Arg]]:
        """moveToFinished for ``target`` completed/failed. ``value`` is the JSON
        return value or the failedReason text."""
        keys = list(self.finished_keys[target])
        keys[11] = self.k.job(job_id)
        prop = "returnvalue" if target == "completed" else "failedReason"
        opts: dict[str, Any] = {
            "token": token,
            "keepJobs": keep,
            "limiter": limiter,
            "lockDuration": lock_duration,
            "attempts": attempts,
            "attemptsMade": attempts_made,
            "maxMetricsSize": max_metrics_size,
            "fpof": parent_flags[0],
            "cpof": parent_flags[1],
            "idof": parent_flags[2],
            "rdof": parent_flags[3],
        }
        if worker_name:
            opts["name"] = worker_name
        args: list[Arg] = [
            job_id,
            timestamp if timestamp is not None else now_ms(),
            prop,
            value or "",
            target,
            "1" if fetch_next else "",
            self.k.base,
            pack(opts),
        ]
        if fields_to_update:
            args.append(pack(_flat(fields_to_update)))
        return keys, args

    def move_to_delayed(
        self,
        *,
        job_id: str,
        token: str,
        delay: int,
        skip_attempt: bool = False,
        fields_to_update: dict[str, Any] | None = None,
        fetch_next: bool = False,
        lock_duration: int = 0,
        limiter: dict[str, Any] | None = None,
        worker_name: str | None = None,
        timestamp: int | None = None,
    ) -> tuple[list[Arg], list[Arg]]:
        k = self.k
        keys: list[Arg] = [
            k["marker"],
            k["active"],
            k["prioritized"],
            k["delayed"],
            k.job(job_id),
            k["events"],
            k["meta"],
            k["stalled"],
            k["wait"],
            k["limiter"],
            k["pc"],
        ]
        args: list[Arg] = [
            k.base,
            str(timestamp if timestamp is not None else now_ms()),
            job_id,
            token,
            delay,
            "1" if skip_attempt else "0",
            pack(_flat(fields_to_update)) if fields_to_update else "",
            "1" if fetch_next else "0",
        ]
        if fetch_next:
            args.append(pack(self.worker_opts(token, lock_duration, limiter, worker_name)))
        return keys, args

    def retry_job(
        self,
        *,
        job_id: str,
        token: str,
        lifo: bool,
        fields_to_update: dict[str, Any] | None = None,
        timestamp: int | None = None,
    ) -> tuple[list[Arg], list[Arg]]:
        k = self.k
        keys: list[Arg] = [
            k["active"],
            k["wait"],
            k["paused"],
            k.job(job_id),
            k["meta"],
            k["events"],
            k["delayed"],
            k["prioritized"],
            k["pc"],
            k["marker"],
            k["stalled"],
        ]
        args: list[Arg] = [
            k.base,
            timestamp if timestamp is not None else now_ms(),
            "RPUSH" if lifo else "LPUSH",
            job_id,
            token,
        ]
        if fields_to_update:
            args.append(pack(_flat(fields_to_update)))
        return keys, args

    def move_job_from_active_to_wait(self, job_id: str, token: str) -> tuple[list[Arg], list[Arg]]:
        k = self.k
        keys: list[Arg] = [
            k["active"],
            k["wait"],
            k["stalled"],
            k["paused"],
            k["meta"],
            k["limiter"],
            k["prioritized"],
            k["marker"],
            k["events"],
        ]
        return keys, [job_id, token, k.job(job_id)]

    def move_to_waiting_children(
        self, job_id: str, token: str, child_key: str = "", timestamp: int | None = None
    ) -> tuple[list[Arg], list[Arg]]:
        k = self.k
        job_key = k.job(job_id)
        keys: list[Arg] = [
            k["active"],
            k["waiting-children"],
            job_key,
            f"{job_key}:dependencies",
            f"{job_key}:unsuccessful",
            k["stalled"],
            k["events"],
        ]
        args: list[Arg] = [token, child_key, timestamp if timestamp is not None else now_ms(), job_id, k.base]
        return keys, args

    # -- locks and stalls -------------------------------------------------------------

    def extend_locks(self, job_ids: Sequence[str], tokens: Sequence[str], duration: int) -> tuple[list[Arg], list[Arg]]:
        return [self.k["stalled"]], [self.k.base, pack(list(tokens)), pack(list(job_ids)), duration]

    def release_lock(self, job_id: str, token: str) -> tuple[list[Arg], list[Arg]]:
        return [self.k.lock(job_id)], [token]

    def move_stalled_jobs_to_wait(
        self, max_stalled_count: int, stalled_interval: int, timestamp: int | None = None
    ) -> tuple[list[Arg], list[Arg]]:
        k = self.k
        keys: list[Arg] = [
            k["stalled"],
            k["wait"],
            k["active"],
            k["stalled-check"],
            k["meta"],
            k["paused"],
            k["marker"],
            k["events"],
            k["repeat"],
        ]
        args: list[Arg] = [
            max_stalled_count,
            k.base,
            timestamp if timestamp is not None else now_ms(),
            stalled_interval,
        ]
        return keys, args

    # -- progress and logs ------------------------------------------------------------

    def update_progress(self, job_id: str, progress_json: bytes | str) -> tuple[list[Arg], list[Arg]]:
        return [self.k.job(job_id), self.k["events"], self.k["meta"]], [job_id, progress_json]

    def add_log(self, job_id: str, row: str, keep_logs: int | None) -> tuple[list[Arg], list[Arg]]:
        return [self.k.job(job_id), self.k.logs(job_id)], [job_id, row, keep_logs if keep_logs else ""]


def _flat(fields: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for key, value in fields.items():
        out.append(key)
        out.append(value)
    return out


def parse_next_job(raw: Any) -> tuple[list[bytes] | None, str | None, int, int]:
    """Decode a moveToActive / fetch-next reply: ``(hash_fields, job_id,
    rate_limit_ms, delay_until_ms)``. ``hash_fields`` is the flat HGETALL list."""
    if not raw or type(raw) is not list:
        return None, None, 0, 0
    fields = raw[0] if raw[0] else None
    job_id = raw[1]
    if isinstance(job_id, bytes):
        job_id = job_id.decode()
    elif job_id == 0:
        job_id = None
    limit = raw[2] if len(raw) > 2 and type(raw[2]) is int else 0
    delay_until = raw[3] if len(raw) > 3 else 0
    if isinstance(delay_until, bytes):
        delay_until = int(delay_until)
    return fields, job_id or None, limit, int(delay_until or 0)

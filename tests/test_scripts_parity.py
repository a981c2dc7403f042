"""Our key names and script arguments against the port's own, byte for byte.

bullbridge runs BullMQ's Lua scripts with argument lists it builds itself (no
port objects on the hot path). These tests call the port's ``Scripts`` with a
recording stand-in for its command table and compare. Known, deliberate
differences are listed where they occur: the worker ``name`` Node sends in
the fetch options (the port omits it; the scripts store it as ``pb``).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import msgpack
import pytest
from bullmq.queue_keys import QueueKeys as PortQueueKeys
from bullmq.scripts import Scripts as PortScripts

from bullbridge.keys import QueueKeys
from bullbridge.scripts import QueueScripts, keep_jobs, script

NOW = 1_700_000_000_000


class Recorder:
    """Stands in for the port's RedisConnection: records each script call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[Any], list[Any]]] = []
        self.conn = None
        self.commands = _Commands(self)


class _Commands(dict[str, Any]):
    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    def __getitem__(self, name: str) -> Any:
        async def call(keys: Any = None, args: Any = None, client: Any = None) -> Any:
            self.recorder.calls.append((name, list(keys), list(args)))
            return 0

        return call


@pytest.fixture
def frozen_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: NOW / 1000)


def port(prefix: str = "bull", queue: str = "q") -> tuple[PortScripts, Recorder]:
    recorder = Recorder()
    return PortScripts(prefix, queue, recorder), recorder  # type: ignore[arg-type]


@pytest.mark.parametrize(("prefix", "queue"), [("bull", "email"), ("{bull}", "a-b"), ("my:app", "{q}")])
def test_key_names_match_the_port(prefix: str, queue: str) -> None:
    ours = QueueKeys(queue, prefix)
    theirs = PortQueueKeys(prefix).getKeys(queue)
    for kind, name in theirs.items():
        assert ours[kind] == name
    assert ours.job("7") == f"{theirs['']}7"
    assert ours.qualified_name == PortQueueKeys(prefix).getQueueQualifiedName(queue)


def test_every_script_we_run_exists_in_the_port() -> None:
    from bullbridge.scripts import HOT_SCRIPTS

    for name in (*HOT_SCRIPTS, "getStateV2", "updateJobScheduler", "addJobScheduler", "removeUnprocessedChildren"):
        s = script(name)
        assert s.source.startswith(b"--[[") and len(s.sha) == 40


async def test_move_to_active(frozen_time: None) -> None:
    scripts, rec = port()
    await scripts.moveToActive("tok", {"lockDuration": 30000, "limiter": {"max": 2, "duration": 100}})
    name, keys, args = rec.calls[0]
    ours_keys, ours_args = QueueScripts(QueueKeys("q")).move_to_active(
        "tok", 30000, {"max": 2, "duration": 100}, timestamp=NOW
    )
    assert name == "moveToActive" and keys == ours_keys
    assert args[:2] == ours_args[:2] and args[2] == ours_args[2]
    # With a worker name we add Node's `name` field (stored as the job's pb).
    _, named = QueueScripts(QueueKeys("q")).move_to_active("tok", 30000, None, "bullbridge:w1", timestamp=NOW)
    assert msgpack.unpackb(named[2]) == {
        "token": "tok",
        "lockDuration": 30000,
        "limiter": None,
        "name": "bullbridge:w1",
    }


async def test_move_to_finished_completed(frozen_time: None) -> None:
    scripts, _ = port()

    class FakeQueue:
        opts: ClassVar[dict[str, Any]] = {"lockDuration": 30000, "limiter": None}

    class FakeJob:
        id = "12"
        queue = FakeQueue()
        attempts = 3
        attemptsMade = 1
        opts: ClassVar[dict[str, Any]] = {"failParentOnFailure": True}

    keys, args = scripts.moveToCompletedArgs(FakeJob(), {"ok": 1}, {"count": 10}, "tok", fetchNext=True)
    ours_keys, ours_args = QueueScripts(QueueKeys("q")).move_to_finished(
        job_id="12",
        token="tok",
        target="completed",
        value=b'{"ok":1}',
        keep=keep_jobs({"count": 10}),
        attempts=3,
        attempts_made=1,
        lock_duration=30000,
        limiter=None,
        fetch_next=True,
        parent_flags=(True, False, False, False),
        timestamp=NOW,
    )
    assert ours_keys == keys
    assert ours_args[:3] == args[:3] and ours_args[4:7] == args[4:7]
    assert ours_args[3] == args[3].encode()  # same JSON text; ours is bytes from orjson
    assert msgpack.unpackb(ours_args[7]) == msgpack.unpackb(args[7])


async def test_move_to_delayed_and_retry(frozen_time: None) -> None:
    scripts, _ = port()
    fields = {"failedReason": "boom", "stacktrace": "[]"}
    k1, a1 = scripts.moveToDelayedArgs("5", NOW, "tok", 200, {"fieldsToUpdate": fields})
    ours = QueueScripts(QueueKeys("q"))
    k2, a2 = ours.move_to_delayed(job_id="5", token="tok", delay=200, fields_to_update=fields, timestamp=NOW)
    assert k1 == k2 and a1 == a2
    k3, a3 = scripts.retryJobArgs("5", True, "tok", {"fieldsToUpdate": fields})
    k4, a4 = ours.retry_job(job_id="5", token="tok", lifo=True, fields_to_update=fields, timestamp=NOW)
    assert k3 == k4 and a3 == a4


async def test_locks_stalls_and_progress(frozen_time: None) -> None:
    scripts, rec = port()
    ours = QueueScripts(QueueKeys("q"))
    await scripts.extendJobLocks(["1", "2"], ["t1", "t2"], 30000)
    await scripts.moveStalledJobsToWait(1, 30000)
    await scripts.updateProgress("3", 50)
    assert rec.calls[0][1:] == ours.extend_locks(["1", "2"], ["t1", "t2"], 30000)
    assert rec.calls[1][1:] == ours.move_stalled_jobs_to_wait(1, 30000, timestamp=NOW)
    assert rec.calls[2][1:] == ours.update_progress("3", "50")


def test_every_stream_event_the_scripts_write_is_a_known_queue_event_name() -> None:
    """QueueEventName lists what the Lua scripts of both sides write to the events
    stream (a literal ``"event", "<name>"`` in an XADD); a script change that adds
    an event shows up here."""
    import re
    from pathlib import Path

    import bullmq

    from bullbridge.events import QUEUE_EVENTS

    root = Path(__file__).resolve().parents[1]
    dirs = [Path(bullmq.__file__).parent / "commands", root / "node_modules" / "bullmq" / "dist" / "esm" / "commands"]
    written: set[str] = set()
    for directory in dirs:
        for lua in directory.glob("*.lua"):
            written.update(re.findall(r'"event",\s*"([a-z-]+)"', lua.read_text()))
    assert {"added", "waiting", "progress", "stalled"} <= written  # the pattern still finds them
    assert written <= set(QUEUE_EVENTS), sorted(written - set(QUEUE_EVENTS))

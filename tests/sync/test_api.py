"""bullbridge.sync: the blocking twins have the async API's methods, and they work
without an event loop, from any thread, and refuse to run inside a loop."""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

import bullbridge
from bullbridge import FlowJob
from bullbridge import sync as bsync
from bullbridge.errors import EventLoopConflict, JobTimeout
from bullbridge.sync import Queue, runtime
from tests.telemetry.conftest import PyOtel, one

from .conftest import producer_connections, waiting_jobs

ROOT = Path(__file__).resolve().parents[2]

PAIRS = [(bullbridge.Queue, bsync.Queue), (bullbridge.FlowProducer, bsync.FlowProducer)]
#: Public names of the async classes the blocking ones leave out, and why.
NOT_MIRRORED = {
    # Hands out the async clients of the background loop; of no use to blocking code.
    "connector",
}


def _public(names: object) -> set[str]:
    return {name for name in dir(names) if not name.startswith("_")}


@pytest.mark.parametrize(("async_cls", "sync_cls"), PAIRS, ids=["Queue", "FlowProducer"])
def test_the_blocking_class_mirrors_every_method_and_signature(async_cls: type, sync_cls: type) -> None:
    """Every public method, property and attribute of the async class, with the same
    signature, blocking instead of returning a coroutine; nothing more."""
    assert sync_cls.__name__ == async_cls.__name__
    assert inspect.signature(sync_cls.__init__) == inspect.signature(async_cls.__init__)
    # Methods and properties, and the attributes the async __init__ sets (name, prefix, codec...).
    instance = async_cls(*(["q"] if async_cls is bullbridge.Queue else []), connection="redis://127.0.0.1:1")
    assert _public(sync_cls) == _public(instance) - NOT_MIRRORED
    for name in sorted(_public(async_cls) - NOT_MIRRORED):
        ours, theirs = getattr(sync_cls, name), inspect.getattr_static(async_cls, name)
        if isinstance(theirs, property):
            assert isinstance(inspect.getattr_static(sync_cls, name), property), name
            continue
        assert callable(ours), name
        assert inspect.iscoroutinefunction(theirs) or name in ("options", "prepare"), name
        assert not inspect.iscoroutinefunction(ours), f"{name} must block, not return a coroutine"
        assert inspect.signature(ours) == inspect.signature(theirs), name
        assert (theirs.__doc__ or "").split("\n")[0] in (ours.__doc__ or ""), name
    # async with  <->  with
    assert hasattr(sync_cls, "__enter__") and hasattr(sync_cls, "__exit__")


def test_every_method_blocks_and_answers_as_the_async_one(
    make_queue: Callable[..., Queue], flows: bsync.FlowProducer, rconn: redis.Redis, queue_name: str
) -> None:
    queue = make_queue()
    assert queue.name == queue_name and queue.prefix == "bull" and queue.timeout == 10.0
    job = queue.add("welcome", {"to": "ada"}, priority=3, attempts=2)
    bulk = queue.add_bulk([("a", {"n": 1}), ("b", {"n": 2}, {"delay": 60_000})])
    stored = queue.get_job(job.id)
    assert stored is not None and (stored.name, stored.data, stored.priority, stored.attempts) == (
        "welcome",
        {"to": "ada"},
        3,
        2,
    )
    assert queue.get_job("nope") is None
    assert [queue.get_job_state(j.id) for j in (job, *bulk)] == ["prioritized", "waiting", "delayed"]
    assert queue.get_job_counts("waiting", "delayed", "prioritized") == {"waiting": 1, "delayed": 1, "prioritized": 1}
    assert queue.count() == 3
    assert [j.id for j in queue.get_jobs(["waiting", "delayed"], asc=True)] == [bulk[0].id, bulk[1].id]
    assert queue.options(attempts=5).attempts == 5 and queue.prepare("x", {}).name == "x"
    # Administering.
    queue.pause()
    assert queue.is_paused() is True
    queue.resume()
    assert queue.is_paused() is False
    assert queue.promote_jobs() == 1 and queue.get_job_state(bulk[1].id) == "waiting"
    queue.set_global_concurrency(3)
    assert rconn.hget(queue.keys["meta"], "concurrency") == b"3"
    queue.remove_global_concurrency()
    queue.remove(bulk[0].id)
    assert queue.get_job(bulk[0].id) is None
    # Waiting: no worker here, so the 0.2 s wait must expire.
    with pytest.raises(JobTimeout):
        queue.result(job.id, timeout=0.2)
    # Job schedulers.
    first = queue.upsert_job_scheduler("tick", every=60_000, name="tick", data={"k": 1})
    assert first is not None and queue.get_job_scheduler("tick") is not None
    assert [s.id for s in queue.get_job_schedulers()] == ["tick"]
    assert queue.remove_job_scheduler("tick") is True and queue.get_job_scheduler("tick") is None
    # Flows.
    flow = flows.add(FlowJob("parent", queue_name, children=[FlowJob("child", queue_name, {"c": 1})]))
    assert queue.get_job_state(flow.id) == "waiting-children"
    assert queue.get_dependencies(flow.id).unprocessed == [flow.children[0].key]
    assert queue.drain() >= 2
    queue.obliterate(force=True)
    assert queue.count() == 0


def test_no_event_loop_anywhere_and_any_thread(make_queue: Callable[..., Queue], rconn: redis.Redis) -> None:
    queue = make_queue()
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()  # this test's thread runs no loop
    from_main = queue.add("main", {"t": "main"})
    results: list[str] = []
    errors: list[BaseException] = []

    def in_thread() -> None:
        try:
            results.append(queue.add("thread", {"t": threading.current_thread().name}).id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=in_thread, name="plain-thread")
    thread.start()
    thread.join(15)  # a failure detector (kind 4)
    assert not errors and len(results) == 1
    assert waiting_jobs(rconn, queue) == {from_main.id: {"t": "main"}, results[0]: {"t": "plain-thread"}}
    assert len(producer_connections(rconn, queue)) == 1


async def test_inside_a_running_loop_it_refuses_and_names_the_async_api(
    make_queue: Callable[..., Queue], rconn: redis.Redis
) -> None:
    queue = make_queue()
    with pytest.raises(EventLoopConflict, match=r"inside a running event loop.*bullbridge\.Queue") as info:
        queue.add("x", {})
    assert "asyncio.to_thread" in str(info.value)
    assert isinstance(info.value, bullbridge.BullbridgeError)
    assert rconn.llen(queue.keys["wait"]) == 0
    # Through a thread, as the message says, it works.
    assert (await asyncio.to_thread(queue.add, "x", {})).id == "1"
    # No I/O, no blocking: allowed anywhere.
    assert queue.options(attempts=2).attempts == 2


def test_made_at_import_started_on_first_call_one_thread_clean_exit(redis_url: str, queue_name: str) -> None:
    """In a fresh interpreter: module-level queues start nothing; the first call
    starts one daemon loop thread shared by every object; the process exits at
    once, with nothing on stderr, even with a reconnection pending in the background."""
    script = textwrap.dedent(
        f"""
        import threading
        from bullbridge.sync import FlowProducer, Queue
        from bullbridge.sync.runtime import THREAD_NAME
        from bullbridge.errors import RedisUnavailable

        emails = Queue({queue_name!r}, connection={redis_url!r})
        reports = Queue({queue_name + "-2"!r}, connection={redis_url!r})
        flows = FlowProducer({redis_url!r})
        dead = Queue("dead", connection="redis://127.0.0.1:1", timeout=0.2)

        def loops():
            return [t for t in threading.enumerate() if t.name == THREAD_NAME]

        assert loops() == [], "started by import or construction"
        emails.add("x", {{}})
        reports.add("y", {{}})
        assert len(loops()) == 1 and loops()[0].daemon, loops()
        try:
            dead.add("x", {{}})
        except RedisUnavailable:
            pass
        print("ok")
        """
    )
    # The exit itself must be prompt: 30 s is a failure detector (kind 4) for a hang.
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, cwd=ROOT, env=dict(os.environ)
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok" and done.stderr == ""


def test_the_loop_thread_is_one_per_process() -> None:
    assert runtime.loop_thread() is runtime.loop_thread()
    assert runtime.loop_thread().thread.daemon


def test_the_calling_threads_context_carries_over(make_queue: Callable[..., Queue], py_otel: PyOtel) -> None:
    """Context variables of the caller (here the current OpenTelemetry span of a
    request) are those the add runs in, on the loop thread: the add's span is a
    child of the request's, as with the async API."""
    queue = make_queue(telemetry=py_otel.telemetry)
    with py_otel.tracer.start_as_current_span("POST /signup"):
        job = queue.add("welcome", {"to": "ada"})
    spans = py_otel.spans()
    request, add = one(spans, "POST /signup"), one(spans, f"add {queue.name}.welcome")
    assert add["parentSpanId"] == request["spanId"] and add["traceId"] == request["traceId"]
    assert add["attributes"]["bullmq.job.id"] == job.id

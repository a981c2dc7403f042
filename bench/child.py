"""The Python side of the benchmark: one measured process per run.

    python bench/child.py '{"mode": "drain", "impl": "bullbridge", "url": ..., "queue": ..., ...}'

``impl`` is ``bullbridge`` (its ``Worker``/``Queue``, on uvloop as the
``bullbridge worker`` command runs), ``port`` (the official Python port's
``bullmq.Worker``/``Queue``, on the default asyncio loop as its users run it;
``"loop": "uvloop"`` to change that) or ``sync`` (``bullbridge.sync.Queue``
called from plain threads, no event loop of the caller's: producers only) or ``django``
(Django's ``@task`` ``enqueue()`` on ``bullbridge.contrib.django``: a producer). The protocol is the Node side's
(``node_bench.js``): JSON lines on stdout (``ready``, ``done``), ``go`` and
``quit`` on stdin. Figures are the process's own: CPU from ``getrusage`` (every
thread), peak RSS from ``VmHWM``, times on CLOCK_MONOTONIC in microseconds.

Standalone on purpose (no import of the rest of ``bench``): the process under
test loads only what a service using that library would load.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TextIO


def cpu_times() -> tuple[float, float]:
    """(user + system, system) CPU seconds of the whole process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_stime


def cpu_report(start: tuple[float, float], end: tuple[float, float]) -> dict[str, float]:
    return {"cpu_s": end[0] - start[0], "cpu_sys_s": end[1] - start[1]}


def mono_us() -> int:
    return time.monotonic_ns() // 1000


def memory_kb() -> dict[str, int]:
    with open("/proc/self/status") as f:
        text = f.read()

    def field(name: str) -> int:
        m = re.search(rf"^{name}:\s+(\d+)\s+kB", text, re.M)
        return int(m.group(1)) if m else 0

    return {"peak_rss_kb": field("VmHWM"), "rss_kb": field("VmRSS")}


class Channel:
    """The protocol: stdout is ours alone (anything a library prints goes to stderr)."""

    def __init__(self) -> None:
        self.out: TextIO = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)
        sys.stdout = sys.stderr

    def send(self, **msg: Any) -> None:
        self.out.write(json.dumps(msg) + "\n")
        self.out.flush()

    @staticmethod
    def expect(word: str) -> None:
        """Block until ``word`` arrives on stdin (the loop is meant to stand still here)."""
        line = sys.stdin.readline()
        if not line:
            raise SystemExit(3)  # the harness is gone
        if line.strip() != word:
            raise RuntimeError(f"expected {word!r} on stdin, got {line.strip()!r}")


class Tally:
    """Counts completions; marks the first handler call and the last completion."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.completed = 0
        self.failed = 0
        self.first_us: int | None = None
        self.first_cpu = (0.0, 0.0)
        self.end_us: int | None = None
        self.end_cpu = (0.0, 0.0)
        self.latencies: list[int] = []
        self.done = asyncio.Event()

    def started(self) -> None:
        if self.first_us is None:  # the first handler call of the run
            self.first_us = mono_us()
            self.first_cpu = cpu_times()

    def on_completed(self, *_: Any) -> None:
        self.completed += 1
        self._settle()

    def on_failed(self, *_: Any) -> None:
        self.failed += 1
        self._settle()

    def _settle(self) -> None:
        if self.completed + self.failed == self.expected:
            self.end_us = mono_us()
            self.end_cpu = cpu_times()
            self.done.set()

    def report(self) -> dict[str, Any]:
        return {
            "completed": self.completed,
            "failed": self.failed,
            "first_us": self.first_us,
            "end_us": self.end_us,
            **cpu_report(self.first_cpu, self.end_cpu),
            **memory_kb(),
        }


# -- workloads (the same in node_bench.js) -----------------------------------------------------


def payload_result(data: dict[str, Any]) -> dict[str, Any]:
    """``payload``: ~1 KB out of the ~2 KB order the job carries (Node's ``payloadResult``)."""
    lines = [
        {"sku": it["sku"], "total": it["qty"] * it["price"], "status": "reserved", "eta": "2026-12-05"}
        for it in data["items"]
    ]
    return {
        "i": data["i"],
        "order": f"O-{data['i']}",
        "lines": lines,
        "note": "reserved in the primary warehouse; ships within 24 h",
    }


def handler_for(work: str, on_start: Callable[[], None]) -> Callable[[Any], Coroutine[Any, Any, Any]]:
    """noop: returns nothing; payload: returns :func:`payload_result`; io: awaits a 5 ms timer."""
    if work == "payload":

        async def payload(job: Any) -> Any:
            on_start()
            return payload_result(job.data)

        return payload
    if work == "io":

        async def io(job: Any) -> None:
            on_start()
            await asyncio.sleep(0.005)

        return io

    async def noop(job: Any) -> None:
        on_start()

    return noop


def _noop() -> None:
    pass


# -- workers ---------------------------------------------------------------------------


async def _bullbridge_worker(spec: dict[str, Any], tally: Tally, latency: bool, queue: str | None = None) -> Any:
    from bullbridge import ActiveJob, Worker

    name = queue or spec["queue"]
    if spec.get("work") == "cpu":  # in a process pool of one process per core: 10 ms of pure Python a job
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from bench.cpu_app import burn_job

        cores = len(os.sched_getaffinity(0))
        worker = Worker(name, connection=spec["url"], concurrency=cores, process_pool_size=cores)
        worker.handler("noop", run_in="process")(burn_job)
        if queue is None:
            worker.on("active", lambda job: tally.started())
    elif latency:
        worker = Worker(name, connection=spec["url"], concurrency=spec["concurrency"])

        @worker.handler("lat")
        async def lat(job: ActiveJob) -> None:
            now = mono_us()
            tally.latencies.append(now - job.data["t"])
    else:
        worker = Worker(name, connection=spec["url"], concurrency=spec["concurrency"])
        worker.handler("noop")(handler_for(spec.get("work", "noop"), tally.started if queue is None else _noop))

    worker.on("completed", tally.on_completed)
    worker.on("failed", tally.on_failed)
    await worker.start()
    return worker


async def _port_worker(spec: dict[str, Any], tally: Tally, latency: bool) -> Any:
    from bullmq import Worker

    if latency:

        async def processor(job: Any, token: str) -> None:
            now = mono_us()
            tally.latencies.append(now - job.data["t"])
    else:

        async def processor(job: Any, token: str) -> None:
            if tally.first_us is None:
                tally.started()

    worker = Worker(spec["queue"], processor, {"connection": spec["url"], "concurrency": spec["concurrency"]})
    worker.on("completed", tally.on_completed)
    worker.on("failed", tally.on_failed)
    return worker


async def warm_up(spec: dict[str, Any]) -> None:
    """As a long-lived service is warm: drain ``warm`` jobs of the same kind from
    another queue (filled by the harness) with a worker of the same settings."""
    if not spec.get("warm"):
        return
    tally = Tally(spec["warm"])
    worker = await _bullbridge_worker(spec, tally, False, queue=spec["warm_queue"])
    await tally.done.wait()
    await worker.close()


async def drain(spec: dict[str, Any], ch: Channel) -> None:
    if spec["impl"] == "bullbridge":
        await warm_up(spec)
    if spec.get("warm") is not None:  # warmed up (when there was a warm queue): the harness sends go now
        ch.send(event="ready", pid=os.getpid())
        ch.expect("go")
    tally = Tally(spec["jobs"])
    make = _bullbridge_worker if spec["impl"] == "bullbridge" else _port_worker
    worker = await make(spec, tally, False)
    await tally.done.wait()
    ch.send(event="done", **tally.report())
    ch.expect("quit")
    await worker.close()


async def latency(spec: dict[str, Any], ch: Channel) -> None:
    tally = Tally(spec["samples"])
    make = _bullbridge_worker if spec["impl"] == "bullbridge" else _port_worker
    worker = await make(spec, tally, True)
    if spec["impl"] == "port":
        await asyncio.sleep(0.2)  # its run loop starts in the background
    ch.send(event="ready", pid=os.getpid())
    await tally.done.wait()
    ch.send(event="done", latencies_us=tally.latencies, **tally.report())
    ch.expect("quit")
    await worker.close()


# -- producers ---------------------------------------------------------------------------


async def produce(spec: dict[str, Any], ch: Channel) -> None:
    """Warm up as a long-lived service would be - the same adds on another queue
    (code paths warm, scripts cached in Redis), this queue's connection up - then
    time ``jobs`` adds: ``inflight`` concurrent single adds, or bulks of ``batch``."""
    if spec["impl"] == "bullbridge":
        from bullbridge import Queue

        producer = Queue(spec["queue"], connection=spec["url"])
        async with Queue(f"{spec['queue']}-warm", connection=spec["url"]) as warm:
            await _add_jobs(_bullbridge_adders(warm), spec, spec["warm"])
        await producer.get_job("0")
        adders = _bullbridge_adders(producer)
        close = producer.close
    else:
        from bullmq import Queue

        queue = Queue(spec["queue"], {"connection": spec["url"]})
        warm_queue = Queue(f"{spec['queue']}-warm", {"connection": spec["url"]})
        await _add_jobs(_port_adders(warm_queue), spec, spec["warm"])
        await warm_queue.close()
        await queue.getJobCounts("wait")
        adders = _port_adders(queue)
        close = queue.close
    ch.send(event="ready", pid=os.getpid())
    ch.expect("go")
    latencies: list[int] = []
    t0, c0 = mono_us(), cpu_times()
    await _add_jobs(adders, spec, spec["jobs"], latencies)
    t1, c1 = mono_us(), cpu_times()
    ch.send(
        event="done",
        first_us=t0,
        end_us=t1,
        added=spec["jobs"],
        latencies_us=latencies,
        **cpu_report(c0, c1),
        **memory_kb(),
    )
    ch.expect("quit")
    await close()


def produce_sync(spec: dict[str, Any], ch: Channel) -> None:
    """``produce`` for ``bullbridge.sync.Queue``, with no event loop of ours:
    ``sequential`` adds one after another from this thread, ``threads`` shares
    one queue between ``threads`` threads (each adds every n-th index)."""
    from bullbridge.sync import Queue

    with Queue(f"{spec['queue']}-warm", connection=spec["url"]) as warm:
        _sync_add_jobs(warm, spec, spec["warm"], [])
    queue = Queue(spec["queue"], connection=spec["url"])
    queue.get_job("0")
    ch.send(event="ready", pid=os.getpid())
    ch.expect("go")
    latencies: list[int] = []
    t0, c0 = mono_us(), cpu_times()
    _sync_add_jobs(queue, spec, spec["jobs"], latencies)
    t1, c1 = mono_us(), cpu_times()
    ch.send(
        event="done",
        first_us=t0,
        end_us=t1,
        added=spec["jobs"],
        latencies_us=latencies,
        **cpu_report(c0, c1),
        **memory_kb(),
    )
    ch.expect("quit")
    queue.close()


def django_noop(i: int) -> None:
    """The Django task of the ``django`` producer (wrapped with ``@task`` once Django is set up)."""


def produce_django(spec: dict[str, Any], ch: Channel) -> None:
    """Django's ``@task`` ``enqueue()`` (bullbridge.contrib.django), one after another from a
    view-like function, with no event loop of ours; ``ENQUEUE_ON_COMMIT`` off (no database)."""
    from django.conf import settings

    backend = {"BACKEND": "bullbridge.contrib.django.BullMQBackend", "OPTIONS": {"CONNECTION": spec["url"]}}
    queues = [spec["queue"], f"{spec['queue']}-warm"]
    settings.configure(USE_TZ=True, INSTALLED_APPS=[], TASKS={"default": {**backend, "QUEUES": queues}})
    import django

    django.setup()
    try:
        from django.tasks import task
    except ImportError:
        from django_tasks import task

    def view(enqueue: Any, i: int) -> dict[str, Any]:  # what a view does: enqueue, answer with the id
        return {"task": enqueue(i).id}

    warm = task(django_noop, queue_name=queues[1])
    for i in range(spec["warm"]):
        view(warm.enqueue, i)
    noop = task(django_noop, queue_name=queues[0])
    noop.get_backend().queue(queues[0]).get_job("0")  # this queue's connection up
    ch.send(event="ready", pid=os.getpid())
    ch.expect("go")
    latencies: list[int] = []
    t0, c0 = mono_us(), cpu_times()
    for i in range(spec["jobs"]):
        started = time.perf_counter_ns()
        view(noop.enqueue, i)
        latencies.append((time.perf_counter_ns() - started) // 1000)
    t1, c1 = mono_us(), cpu_times()
    ch.send(
        event="done",
        first_us=t0,
        end_us=t1,
        added=spec["jobs"],
        latencies_us=latencies,
        job_name=noop.module_path,
        **cpu_report(c0, c1),
        **memory_kb(),
    )
    ch.expect("quit")


def _sync_add_jobs(queue: Any, spec: dict[str, Any], count: int, latencies: list[int]) -> None:
    if spec["pattern"] == "sequential":
        for i in range(count):
            started = time.perf_counter_ns()
            queue.add("noop", {"i": i})
            latencies.append((time.perf_counter_ns() - started) // 1000)
        return
    n = spec["threads"]
    errors: list[BaseException] = []

    def thread(k: int) -> None:
        try:
            for i in range(k, count, n):
                queue.add("noop", {"i": i})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=thread, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


AddOne = Callable[[int], Coroutine[Any, Any, Any]]
AddMany = Callable[[range], Coroutine[Any, Any, Any]]


def _bullbridge_adders(producer: Any) -> tuple[AddOne, AddMany]:
    async def add_one(i: int) -> Any:
        return await producer.add("noop", {"i": i})

    async def add_many(indices: range) -> Any:
        return await producer.add_bulk([("noop", {"i": i}) for i in indices])

    return add_one, add_many


def _port_adders(queue: Any) -> tuple[AddOne, AddMany]:
    async def add_one(i: int) -> Any:
        return await queue.add("noop", {"i": i}, {})

    async def add_many(indices: range) -> Any:
        return await queue.addBulk([{"name": "noop", "data": {"i": i}} for i in indices])

    return add_one, add_many


async def _add_jobs(
    adders: tuple[AddOne, AddMany], spec: dict[str, Any], count: int, latencies: list[int] | None = None
) -> None:
    """``inflight``: that many loops adding one at a time; ``sequential``: one add
    after another, each timed into ``latencies`` (us); ``bulk``: batches."""
    add_one, add_many = adders
    if spec["pattern"] == "sequential":
        for i in range(count):
            started = time.perf_counter_ns()
            await add_one(i)
            if latencies is not None:
                latencies.append((time.perf_counter_ns() - started) // 1000)
    elif spec["pattern"] == "inflight":
        counter = iter(range(count))

        async def loop() -> None:
            for i in counter:
                await add_one(i)

        await asyncio.gather(*(loop() for _ in range(spec["inflight"])))
    else:
        batch = spec["batch"]
        for start in range(0, count, batch):
            await add_many(range(start, min(count, start + batch)))


async def idle(spec: dict[str, Any], ch: Channel) -> None:
    """One process serving ``queues`` empty queues (a worker each, concurrency 1, one
    WorkerManager and its shared connector, as ``bullbridge worker`` runs them); the
    harness measures it while it waits. stdin is read in a thread: the loop keeps running."""
    from bullbridge import ManagerSettings, WorkerManager

    manager = WorkerManager(connection=spec["url"], settings=ManagerSettings(handle_signals=False))
    for k in range(spec["queues"]):
        manager.worker(f"{spec['queue']}-{k}", handler_for("noop", _noop), concurrency=1)
    await manager.start()
    ch.send(event="ready", pid=os.getpid(), **memory_kb())
    await asyncio.to_thread(ch.expect, "quit")
    await manager.close()


MODES = {"drain": drain, "latency": latency, "produce": produce, "idle": idle}


def main() -> int:
    spec = json.loads(sys.argv[1])
    ch = Channel()
    if spec["impl"] == "sync":  # blocking calls: no event loop of ours (one would refuse them)
        import bullbridge.sync

        produce_sync(spec, ch)
        return 0
    if spec["impl"] == "django":  # Django's task framework on bullbridge.sync: blocking too
        import bullbridge.contrib.django

        produce_django(spec, ch)
        return 0
    mode = MODES[spec["mode"]]
    # Load the library first, as a running service has it loaded.
    if spec["impl"] == "bullbridge":
        import bullbridge  # noqa: F401
    else:
        import bullmq  # noqa: F401
    if spec["mode"] == "drain" and spec.get("warm") is None:  # no warm-up: ready once the library is loaded
        ch.send(event="ready", pid=os.getpid())
        ch.expect("go")
    use_uvloop = spec.get("loop", "uvloop" if spec["impl"] == "bullbridge" else "asyncio") == "uvloop"
    profiler = None
    if spec.get("profile"):  # --profile: cProfile from here on (CPU figures are then inflated)
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    if use_uvloop:
        import uvloop

        uvloop.run(mode(spec, ch))
    else:
        asyncio.run(mode(spec, ch))
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(spec["profile"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

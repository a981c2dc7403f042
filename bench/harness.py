"""The measurements: one run of one implementation, measured and verified.

:class:`Bench` owns a private Redis (pinned to one CPU), a Node helper that
fills queues and verifies runs, and spawns one process per measured run,
pinned to another CPU:

* :meth:`Bench.drain` - N pre-filled no-op jobs drained by a worker;
* :meth:`Bench.produce` - N adds with 100 in flight, one at a time, from threads
  (``bullbridge.sync``), or addBulk in batches;
* :meth:`Bench.latency` - add -> handler start, on an idle worker or at a steady rate.

Every run is verified by Node reading the queue back; a run that fails
verification has ``ok=False`` and its problems, and is left out of the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench.procs import (
    Child,
    ChildError,
    NodeHelper,
    Pinning,
    node_child,
    pin_process,
    proc_cpu_seconds,
    proc_peak_rss_kb,
    proc_rss_kb,
    python_child,
)
from bullbridge.testing.redis_server import PrivateRedis

IMPLS = ("node", "bullbridge", "port")
#: bullbridge.sync.Queue, called from plain threads: a producer only (the ``sync`` suite).
SYNC_IMPL = "sync"
#: Django's ``@task`` ``enqueue()`` on bullbridge.contrib.django: a producer only (the ``sync`` suite).
DJANGO_IMPL = "django"
#: Commands the harness itself sends while a run is measured (left out of commands/job).
HARNESS_COMMANDS = frozenset({"info"})


@dataclass
class RedisSnapshot:
    cpu_s: float
    calls: dict[str, int]
    total: int


def redis_snapshot(client: redis.Redis) -> RedisSnapshot:
    info = client.info("all")
    calls = {
        k.removeprefix("cmdstat_"): int(v["calls"])
        for k, v in info.items()
        if k.startswith("cmdstat_") and isinstance(v, dict)
    }
    return RedisSnapshot(
        float(info["used_cpu_sys"]) + float(info["used_cpu_user"]), calls, int(info["total_commands_processed"])
    )


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


@dataclass
class RunResult:
    """One measured run. Per-job figures divide by ``jobs``; None when not measured."""

    suite: str  # drain | produce | latency | sync
    impl: str  # node | bullbridge | port | sync
    case: str  # c=10 | inflight | bulk | idle | steady | sequential | threads
    jobs: int
    run: int
    concurrency: int | None = None
    ok: bool = False
    problems: list[str] = field(default_factory=list)
    seconds: float | None = None
    jobs_per_s: float | None = None
    client_cpu_us_per_job: float | None = None
    client_cpu_sys_us_per_job: float | None = None  # the kernel's share of the above
    client_cpu_lifetime_s: float | None = None
    redis_cpu_us_per_job: float | None = None
    commands_per_job: float | None = None
    scripts_per_job: float | None = None
    peak_rss_mb: float | None = None
    commands: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    latencies_us: list[int] = field(default_factory=list)
    fill_seconds: float | None = None
    #: The idle and startup suites' figures (cpu_pct, redis_cmds_per_s, connections, rss_mb; first_job_ms).
    figures: dict[str, float] = field(default_factory=dict)
    #: What Node read back: {"ok", "counts", "sampled", "problems"} (empty when it never got there).
    verification: dict[str, Any] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    #: The machine while the run ran (see machine_during): the hypervisor's steal and the
    #: busy share of all CPUs, in % of CPU time, and the 1-minute load average at its start.
    steal_pct: float | None = None
    busy_pct: float | None = None
    load1: float | None = field(default_factory=lambda: load_average())
    cpu_at_start: list[int] = field(default_factory=lambda: cpu_times(), repr=False)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("cpu_at_start")
        return out

    def machine_during(self) -> None:
        """Fill steal_pct and busy_pct from /proc/stat since the run started: a run the
        hypervisor took CPU from, or that shared the machine, is told apart from a slow one."""
        now = cpu_times()
        if not now or not self.cpu_at_start:
            return
        delta = [b - a for a, b in zip(self.cpu_at_start, now, strict=False)]
        total = sum(delta[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
        if total > 0:
            self.steal_pct = 100.0 * delta[7] / total
            self.busy_pct = 100.0 * (total - delta[3] - delta[4]) / total


def cpu_times() -> list[int]:
    """The machine's CPU time counters (/proc/stat's first line, in ticks); [] where absent."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return []
    return [int(v) for v in fields[1:]] if fields and fields[0] == "cpu" else []


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _timeout_for(jobs: int, per_second_floor: float) -> float:
    return 60.0 + jobs / per_second_floor


class Bench:
    """A private Redis, a Node helper, and the measured runs.

    >>> async with Bench() as bench:
    ...     result = await bench.drain("bullbridge", concurrency=10, jobs=2_000)
    """

    def __init__(
        self,
        *,
        pin: bool | Pinning = True,
        redis_binary: str | None = None,
        port_loop: str = "asyncio",
        fill_batch: int = 1000,
        verify_sample: int = 200,
        profile_dir: Path | None = None,
    ) -> None:
        self.pinning = pin if isinstance(pin, Pinning) else Pinning.detect(pin)
        self.redis_binary = redis_binary
        self.port_loop = port_loop
        self.fill_batch = fill_batch
        self.verify_sample = verify_sample
        self.profile_dir = profile_dir
        self.server: PrivateRedis | None = None
        self.client: redis.Redis | None = None
        self.helper: NodeHelper | None = None
        self.versions: dict[str, str] = {}

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    async def __aenter__(self) -> Bench:
        # "--save '' --appendonly no": no persistence work inside a measurement.
        self.server = PrivateRedis(binary=self.redis_binary, extra_args=("--save", "", "--appendonly", "no"))
        self.server.start()
        assert self.server.process is not None
        pin_process(self.server.process.pid, self.pinning.redis)
        self.client = redis.Redis.from_url(self.url)
        try:
            self.helper = await NodeHelper(self.url, self.pinning.redis).start()
        except BaseException:
            await self.aclose()
            raise
        self.versions = {
            "redis": str(self.client.info("server").get("redis_version")),
            "node": self.helper.versions["node"],
            "bullmq_node": self.helper.versions["bullmq"],
            **_python_versions(),
        }
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self.helper is not None:
            await self.helper.close()
            self.helper = None
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.server is not None:
            self.server.stop()
            self.server = None

    # -- plumbing --------------------------------------------------------------------------

    def _flush(self) -> None:
        assert self.client is not None
        self.client.flushall()

    def _snapshot(self) -> RedisSnapshot:
        assert self.client is not None
        return redis_snapshot(self.client)

    def _child(self, impl: str, mode: str, spec: dict[str, Any], label: str) -> Child:
        spec = {"url": self.url, **spec}
        if impl == "node":
            return node_child(mode, spec, self.pinning.client, label)
        spec = {"mode": mode, "impl": impl, **spec}
        if impl == "port":
            spec["loop"] = self.port_loop
        if self.profile_dir is not None:
            self.profile_dir.mkdir(parents=True, exist_ok=True)
            spec["profile"] = str(
                self.profile_dir / f"{label.replace(' ', '-').replace('=', '')}-{time.strftime('%H%M%S')}.prof"
            )
        return python_child(spec, self.pinning.client, label)

    @staticmethod
    def _queue(suite: str, impl: str, case: str) -> str:
        return f"bench-{suite}-{impl}-{case}-{uuid.uuid4().hex[:6]}".replace("=", "")

    @staticmethod
    def _redis_figures(result: RunResult, before: RedisSnapshot, after: RedisSnapshot) -> None:
        calls = {name: after.calls.get(name, 0) - before.calls.get(name, 0) for name in after.calls}
        calls = {name: n for name, n in calls.items() if n and name not in HARNESS_COMMANDS}
        result.commands = dict(sorted(calls.items(), key=lambda kv: -kv[1]))
        result.redis_cpu_us_per_job = (after.cpu_s - before.cpu_s) * 1e6 / result.jobs
        result.commands_per_job = sum(calls.values()) / result.jobs
        result.scripts_per_job = (calls.get("evalsha", 0) + calls.get("eval", 0)) / result.jobs

    @staticmethod
    def _client_figures(result: RunResult, done: dict[str, Any], child: Child) -> None:
        first, end = done.get("first_us"), done.get("end_us")
        if first is None or end is None or end <= first:
            result.problems.append(f"no timing from the child (first {first}, end {end})")
        else:
            result.seconds = (end - first) / 1e6
            result.jobs_per_s = result.jobs / result.seconds
        result.client_cpu_us_per_job = float(done["cpu_s"]) * 1e6 / result.jobs
        result.client_cpu_sys_us_per_job = float(done.get("cpu_sys_s", 0.0)) * 1e6 / result.jobs
        result.client_cpu_lifetime_s = proc_cpu_seconds(child.pid)
        peak_kb = done.get("peak_rss_kb") or proc_peak_rss_kb(child.pid)
        result.peak_rss_mb = peak_kb / 1024 if peak_kb else None

    async def _end(self, child: Child, result: RunResult) -> None:
        """Let a child close on its own; a non-zero exit is a problem of the run."""
        with contextlib.suppress(ChildError, ConnectionError, RuntimeError):
            await child.send("quit")
        code = await child.finish(15.0)
        if code not in (0, None):
            result.problems.append(f"{child.label} exited with code {code}: {child.tail()[-1000:]}")

    async def _verify(self, result: RunResult, **kwargs: Any) -> None:
        assert self.helper is not None
        report = await self.helper.verify(sample=self.verify_sample, **kwargs)
        result.verification = report
        if not report.get("ok"):
            result.problems.extend(f"verification: {p}" for p in report.get("problems", []))
            result.problems.append(f"verification: job counts {report.get('counts')}")

    # -- drain -----------------------------------------------------------------------------

    async def drain(
        self,
        impl: str,
        *,
        concurrency: int,
        jobs: int,
        run: int = 0,
        timeout: float | None = None,
        work: str = "noop",
        warm: int | None = None,
    ) -> RunResult:
        """Pre-fill ``jobs`` jobs (not timed), then time a fresh worker process
        draining them: first handler call to last 'completed' event. ``work``:
        ``noop``, ``payload`` (~2 KB of JSON in, ~1 KB out) or ``io`` (a 5 ms
        timer); the suite is ``drain`` for noop, else ``work``. ``warm``: the
        process first drains that many jobs of the same kind from another queue
        (not timed; Node and bullbridge - the port is not warmed)."""
        assert self.helper is not None
        suite = "drain" if work == "noop" else work
        result = RunResult(suite, impl, f"c={concurrency}", jobs, run, concurrency=concurrency)
        queue = self._queue(suite, impl, f"c{concurrency}")
        self._flush()
        child: Child | None = None
        try:
            spec: dict[str, Any] = {"queue": queue, "jobs": jobs, "concurrency": concurrency, "work": work}
            if warm is not None:
                spec["warm"] = warm if impl != "port" else 0
                spec["warm_queue"] = f"{queue}-warm"
                if spec["warm"]:
                    await self.helper.fill(spec["warm_queue"], warm, self.fill_batch, work=work)
            filled = await self.helper.fill(queue, jobs, self.fill_batch, work=work)
            result.fill_seconds = filled["seconds"]
            if not filled.get("contiguous"):
                result.problems.append("fill: job ids are not contiguous")
            child = self._child(impl, "drain", spec, f"{impl} {suite} c={concurrency}")
            await child.start()
            await child.expect("ready", 60.0 + (warm or 0) / 100)
            before = self._snapshot()
            await child.send("go")
            done = await child.expect("done", timeout or _timeout_for(jobs, 100.0))
            after = self._snapshot()
            self._client_figures(result, done, child)
            self._redis_figures(result, before, after)
            if done.get("completed") != jobs or done.get("failed"):
                result.problems.append(f"{done.get('completed')} completed, {done.get('failed')} failed of {jobs}")
            await self._end(child, result)
            await self._verify(
                result,
                queue=queue,
                kind="completed",
                expect=jobs,
                first_id=filled["first_id"],
                last_id=filled["last_id"],
                work=work,
            )
        except ChildError as exc:
            result.problems.append(str(exc))
        finally:
            if child is not None:
                child.kill()
                await child.finish(5.0)
        result.ok = not result.problems
        return result

    # -- producers -------------------------------------------------------------------------

    async def produce(
        self,
        impl: str,
        *,
        mode: str,
        jobs: int,
        inflight: int = 100,
        batch: int = 1000,
        warm: int = 1000,
        run: int = 0,
        timeout: float | None = None,
        threads: int = 8,
        suite: str = "produce",
        case: str | None = None,
    ) -> RunResult:
        """Time ``jobs`` adds from a fresh producer process, connected and warmed up
        first with ``warm`` adds of the same kind to another queue (not timed):
        ``inflight`` concurrent single adds, ``sequential`` one add after another
        (each one's time kept: the latency of a blocking add), ``threads`` threads
        sharing one ``bullbridge.sync.Queue`` (impl ``sync``), or addBulk of
        ``batch`` at a time. ``suite`` and ``case`` (default: ``mode``) label the result."""
        result = RunResult(suite, impl, case or mode, jobs, run)
        queue = self._queue(suite, impl, case or mode)
        self._flush()
        spec = {"queue": queue, "jobs": jobs, "pattern": mode, "inflight": inflight, "batch": batch, "warm": warm}
        child = self._child(impl, "produce", {**spec, "threads": threads}, f"{impl} produce {mode}")
        try:
            await child.start()
            await child.expect("ready", 60.0)
            before = self._snapshot()
            await child.send("go")
            done = await child.expect("done", timeout or _timeout_for(jobs, 200.0))
            after = self._snapshot()
            self._client_figures(result, done, child)
            self._redis_figures(result, before, after)
            _add_latencies(result, done.get("latencies_us") or [])
            await self._end(child, result)
            if impl == DJANGO_IMPL:  # every Django task is prioritized; name and data are Django's
                shape = {"state": "prioritized", "name": done.get("job_name"), "shape": "django"}
                await self._verify(result, queue=queue, kind="waiting", expect=jobs, **shape)
            else:
                await self._verify(result, queue=queue, kind="waiting", expect=jobs)
        except ChildError as exc:
            result.problems.append(str(exc))
        finally:
            child.kill()
            await child.finish(5.0)
        result.ok = not result.problems
        return result

    # -- latency ---------------------------------------------------------------------------

    async def latency(
        self,
        impl: str,
        *,
        kind: str,
        samples: int,
        interval_s: float,
        concurrency: int = 1,
        warmup: int = 5,
        run: int = 0,
        settle_s: float = 0.5,
    ) -> RunResult:
        """Add ``warmup + samples`` jobs, one every ``interval_s``, to a worker that is
        started and idle; each job carries the CLOCK_MONOTONIC time just before its
        add, and the handler takes the difference as it starts. ``kind`` is a label:
        ``idle`` (50 ms apart: every job finds the worker idle) or ``steady``
        (5 ms apart: 200 jobs/s). The adds come from one bullbridge Queue in the
        harness process, the same for every worker measured."""
        from bullbridge import Queue

        total = warmup + samples
        result = RunResult("latency", impl, kind, samples, run, concurrency=concurrency)
        queue = self._queue("latency", impl, kind)
        self._flush()
        producer = Queue(queue, connection=self.url)
        child = self._child(
            impl, "latency", {"queue": queue, "samples": total, "concurrency": concurrency}, f"{impl} latency {kind}"
        )
        try:
            await producer.get_job("0")  # connected, scripts loaded
            await child.start()
            await child.expect("ready", 60.0)
            await asyncio.sleep(settle_s)  # the worker is now blocked on the queue's marker
            await _paced_adds(producer, total, interval_s)
            done = await child.expect("done", 30.0 + total * interval_s * 2)
            latencies = [int(v) for v in done.get("latencies_us", [])][warmup:]
            result.seconds = total * interval_s
            peak_kb = done.get("peak_rss_kb")
            result.peak_rss_mb = peak_kb / 1024 if peak_kb else None
            if done.get("completed") != total or done.get("failed") or len(latencies) != samples:
                result.problems.append(
                    f"{done.get('completed')} completed, {done.get('failed')} failed, "
                    f"{len(latencies)} samples of {samples}"
                )
            _add_latencies(result, latencies)
            await self._end(child, result)
            await self._verify(result, queue=queue, kind="latency", expect=total)
        except ChildError as exc:
            result.problems.append(str(exc))
        finally:
            child.kill()
            await child.finish(5.0)
            await producer.close()
        result.ok = not result.problems
        return result

    # -- idle cost and time to first job ---------------------------------------------------

    async def idle(self, impl: str, *, queues: int, seconds: float, run: int = 0, settle_s: float = 2.0) -> RunResult:
        """One process serving ``queues`` empty queues: once it is ready and has settled,
        its CPU (% of one core), Redis's commands/s (the harness's own INFO left out),
        the connections it holds, and its RSS, over ``seconds``."""
        assert self.client is not None
        result = RunResult("idle", impl, f"{queues} queues", queues, run)
        queue = self._queue("idle", impl, "q")
        self._flush()
        baseline = int(self.client.info("clients")["connected_clients"])
        child = self._child(impl, "idle", {"queue": queue, "queues": queues}, f"{impl} idle")
        try:
            await child.start()
            await child.expect("ready", 120.0)
            await asyncio.sleep(settle_s)
            cpu0, stats0, t0 = proc_cpu_seconds(child.pid), self.client.info("stats"), time.monotonic()
            await asyncio.sleep(seconds)
            cpu1, stats1, t1 = proc_cpu_seconds(child.pid), self.client.info("stats"), time.monotonic()
            clients = int(self.client.info("clients")["connected_clients"])
            rss_kb = proc_rss_kb(child.pid)
            elapsed = t1 - t0
            commands = int(stats1["total_commands_processed"]) - int(stats0["total_commands_processed"]) - 1
            result.seconds = elapsed
            result.figures = {
                "cpu_pct": ((cpu1 or 0.0) - (cpu0 or 0.0)) / elapsed * 100,
                "redis_cmds_per_s": commands / elapsed,
                "connections": float(clients - baseline),
                "rss_mb": (rss_kb or 0) / 1024,
            }
            result.peak_rss_mb = (proc_peak_rss_kb(child.pid) or 0) / 1024
            await self._end(child, result)
        except ChildError as exc:
            result.problems.append(str(exc))
        finally:
            child.kill()
            await child.finish(5.0)
        result.ok = not result.problems
        return result

    async def startup(self, impl: str, *, run: int = 0, timeout: float = 60.0) -> RunResult:
        """Time to first job: one job waiting, the worker process started cold (Node:
        ``node_bench.js startup``; bullbridge: ``bullbridge worker
        bench.startup_app:make --burst``); its handler returns the monotonic time it
        first ran. Process spawn -> that time."""
        assert self.helper is not None and self.client is not None
        result = RunResult("startup", impl, "first job", 1, run)
        queue = self._queue("startup", impl, "q")
        self._flush()
        filled = await self.helper.fill(queue, 1, 1)
        if impl != "node":
            _compile_bytecode()
        if impl == "node":
            child = node_child("startup", {"url": self.url, "queue": queue}, self.pinning.client, "node startup")
        else:
            argv = ["env", f"BENCH_QUEUE={queue}", sys.executable, "-m", "bullbridge", "worker"]
            argv += ["bench.startup_app:make", "--burst", "--redis", self.url, "--log-level", "WARNING"]
            child = Child(argv, self.pinning.client, "bullbridge startup")
        try:
            started = time.monotonic_ns() // 1000
            await child.start()
            code = await child.finish(timeout)
            if code not in (0, None):
                result.problems.append(f"exited with {code}: {child.tail()[-600:]}")
            raw = self.client.hget(f"bull:{queue}:{filled['first_id']}", "returnvalue")
            if raw is None:
                result.problems.append("the job has no return value: the handler never ran")
            else:
                result.figures = {"first_job_ms": (int(raw) - started) / 1000}
                result.seconds = result.figures["first_job_ms"] / 1000
        except ChildError as exc:
            result.problems.append(str(exc))
        finally:
            child.kill()
            await child.finish(5.0)
        result.ok = not result.problems
        return result


@functools.cache
def _compile_bytecode() -> None:
    """Compile bullbridge's and the bench's modules to bytecode once, as ``pip install``
    does for an installed package: an editable checkout (``make bootstrap``) under
    ``PYTHONDONTWRITEBYTECODE`` would otherwise compile every module on each cold start,
    ~110 ms here that no installed deployment pays."""
    import compileall

    import bullbridge

    for package in (Path(bullbridge.__file__).parent, Path(__file__).parent):
        compileall.compile_dir(str(package), quiet=1)


def _add_latencies(result: RunResult, latencies_us: Sequence[int]) -> None:
    """Keep a run's samples (us) and their percentiles (ms)."""
    result.latencies_us = [int(v) for v in latencies_us]
    ordered = sorted(v / 1000 for v in result.latencies_us)
    if ordered:
        result.latency_ms = {
            "p50": percentile(ordered, 50),
            "p95": percentile(ordered, 95),
            "p99": percentile(ordered, 99),
            "max": ordered[-1],
            "mean": sum(ordered) / len(ordered),
        }


async def _paced_adds(producer: Any, total: int, interval_s: float) -> None:
    """One add every ``interval_s`` on an absolute schedule (a slow add never delays the
    next); each job's data carries the monotonic time, in µs, just before its add."""
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[Any]] = []
    start = loop.time() + 0.01

    async def add(i: int) -> None:
        await producer.add("lat", {"t": time.monotonic_ns() // 1000, "i": i})

    for i in range(total):
        delay = start + i * interval_s - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(add(i)))
    await asyncio.gather(*tasks)


def _python_versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist, key in (("bullbridge", "bullbridge"), ("bullmq", "bullmq_port"), ("uvloop", "uvloop")):
        try:
            out[key] = version(dist)
        except PackageNotFoundError:
            out[key] = "missing"
    return out

"""The chaos run: Python and Node workers side by side, killed while they hold
jobs, and a Redis crash mid-run - then proof that every job completed, that
every job a kill caught was recovered, and that every re-run has a cause.

    python -m tests.chaos.run [--jobs 10000] [--queues 3] [--kill-every 1.5] [--min-hits 10] [--json]

(``make chaos`` runs the full version; ``tests/chaos/test_chaos_short.py`` a
short one in CI.) Redis runs with AOF and ``appendfsync always``, so its crash
loses nothing acknowledged.

**Kills that bite.** Handlers run 50-300 ms, so a busy worker holds several
jobs at any moment. Every handler writes a ``start`` line before its work and
an ``end`` line after it (to a file, which survives the Redis crash and the
kill), and the havoc loop only SIGKILLs a process that has a job in flight
(started, not ended) at that moment - waiting for one if need be. After the
run, each SIGKILL's *hits* are the jobs its process had started and not ended
before the kill; each must have run again in another process (the recovery,
timed from the kill to that start) and ended completed. SIGTERM is the
graceful path: it must cause no re-run at all.

**Every re-run explained.** A job's execution that is followed by another one
must have been cut short by a SIGKILL of its process after it started, or be
one whose handler overlapped the Redis outage (a finish that could not be
written while Redis was down, recovered as stalled: at-least-once). Anything
else is *unexplained*, and fails the run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bullbridge import Queue
from bullbridge.clock import now_ms
from bullbridge.errors import RedisUnavailable
from bullbridge.testing.redis_server import PrivateRedis

ROOT = Path(__file__).resolve().parents[2]
NODE_WORKER = Path(__file__).with_name("node_worker.js")
#: How long a handler works (ms): long enough that a busy worker always holds some jobs.
HANDLER_MS = (50, 300)
#: The workers' lock duration (both languages): a finish that could not be written in the
#: Redis outage leaves the job to stall recovery once its lock expires.
LOCK_MS = 2000


@dataclass(frozen=True)
class Execution:
    """One handler run, from the log: where, when it started and (if it did) ended."""

    job: str
    lang: str
    pid: int
    start: int
    end: int | None


@dataclass(frozen=True)
class Kill:
    at: int  # epoch ms
    pid: int
    lang: str
    signal: str


@dataclass
class ChaosReport:
    jobs: int
    queues: int
    completed: int = 0
    failed: int = 0
    active_left: int = 0
    waiting_left: int = 0
    executions: int = 0
    by_language: dict[str, int] = field(default_factory=dict)
    kills: dict[str, int] = field(default_factory=dict)
    #: SIGKILLs that caught at least one job in flight, and the jobs they caught.
    kills_with_hits: int = 0
    jobs_hit: int = 0
    #: Jobs a kill caught that were never run again or never completed.
    hits_not_recovered: int = 0
    reruns: int = 0
    reruns_after_sigkill: int = 0
    reruns_after_redis_crash: int = 0
    reruns_unexplained: int = 0
    redis_restarts: int = 0
    #: Kill -> the caught job's next start, per ``<killed language>-><recovering language>``.
    recovery_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    never_ran: int = 0
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            self.completed == self.jobs
            and self.failed == 0
            and self.active_left == 0
            and self.waiting_left == 0
            and self.never_ran == 0
            and self.hits_not_recovered == 0
            and self.reruns_unexplained == 0
        )


@dataclass
class Proc:
    lang: str
    process: asyncio.subprocess.Process
    started: float


def read_log(path: Path) -> list[Execution]:
    """The executions in a chaos log (``start|end queue job lang pid epoch_ms`` lines)."""
    starts: dict[tuple[str, int], list[tuple[str, int]]] = defaultdict(list)  # (job, pid) -> open starts
    done: list[Execution] = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) != 6:
            continue  # a line cut short by a SIGKILL
        kind, queue, job_id, lang, pid, ts = parts
        key = (f"{queue}/{job_id}", int(pid))
        if kind == "start":
            starts[key].append((lang, int(ts)))
        elif kind == "end" and starts.get(key):
            lang0, start = starts[key].pop(0)
            done.append(Execution(key[0], lang0, key[1], start, int(ts)))
    for (job, pid), opened in starts.items():
        done.extend(Execution(job, lang, pid, start, None) for lang, start in opened)
    return sorted(done, key=lambda e: (e.job, e.start))


class LogTail:
    """The executions in flight right now, kept up to date by reading only what the
    log gained since the last look (the whole log grows to tens of thousands of lines)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.open: dict[tuple[str, int], int] = {}  # (job, pid) -> start epoch ms

    def refresh(self) -> None:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits for the next look
        self.offset += len(complete)
        for line in complete.decode().splitlines():
            parts = line.split()
            if len(parts) != 6:
                continue
            kind, queue, job_id, _, pid, ts = parts
            key = (f"{queue}/{job_id}", int(pid))
            if kind == "start":
                self.open[key] = int(ts)
            else:
                self.open.pop(key, None)

    def started_since(self, pid: int, since: int) -> bool:
        return any(p == pid and start >= since for (_, p), start in self.open.items())


def in_flight(executions: list[Execution], pid: int, at: int) -> list[Execution]:
    """What ``pid`` had started and not ended at ``at``."""
    return [e for e in executions if e.pid == pid and e.start <= at and (e.end is None or e.end > at)]


class Chaos:
    def __init__(
        self,
        jobs: int,
        queues: int,
        kill_every: float,
        seed: int,
        workdir: Path,
        rate: float = 400.0,
        min_hits: int = 10,
    ) -> None:
        self.jobs = jobs
        self.rate = rate
        self.min_hits = min_hits
        self.redis_restarts = 0
        self.redis_down: tuple[int, int] | None = None  # epoch ms: killed, answering again
        self.queue_names = [f"chaos-{i}" for i in range(queues)]
        self.kill_every = kill_every
        self.random = random.Random(seed)
        self.workdir = workdir
        self.log = workdir / "executions.log"
        self.log.touch()
        self.tail = LogTail(self.log)
        self.procs: list[Proc] = []
        self.kill_events: list[Kill] = []
        self.redis = PrivateRedis(persist=True, extra_args=("--appendfsync", "always"))

    async def start_worker(self, lang: str) -> Proc:
        env = dict(
            os.environ,
            BULLBRIDGE_REDIS_URL=self.redis.url,
            CHAOS_QUEUES=",".join(self.queue_names),
            CHAOS_LOG=str(self.log),
            CHAOS_HANDLER_MS=f"{HANDLER_MS[0]},{HANDLER_MS[1]}",
            CHAOS_LOCK_MS=str(LOCK_MS),
            PYTHONPATH=str(ROOT),
        )
        if lang == "python":
            cmd = [sys.executable, "-m", "bullbridge", "worker", "tests.apps.chaos_app:make", "--drain-timeout", "5"]
        else:
            cmd = [
                "node",
                str(NODE_WORKER),
                self.redis.url,
                ",".join(self.queue_names),
                str(self.log),
                f"{HANDLER_MS[0]},{HANDLER_MS[1]}",
                str(LOCK_MS),
            ]
        process = await asyncio.create_subprocess_exec(
            *cmd, cwd=str(ROOT), env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        proc = Proc(lang, process, time.monotonic())
        self.procs.append(proc)
        return proc

    async def produce(self) -> None:
        """Add the jobs at ``rate`` per second while the chaos goes on (custom ids:
        re-adding after a failed attempt is idempotent)."""
        producers = [Queue(q, connection=self.redis.url, timeout=3) for q in self.queue_names]
        try:
            batch = 50
            for start in range(0, self.jobs, batch):
                specs: dict[int, list[tuple[str, dict[str, int], dict[str, str]]]] = defaultdict(list)
                for i in range(start, min(start + batch, self.jobs)):
                    q = i % len(producers)
                    specs[q].append(("work", {"i": i}, {"job_id": f"c-{i}"}))
                for q, jobs in specs.items():
                    while True:
                        try:
                            await producers[q].add_bulk(jobs)
                            break
                        except RedisUnavailable:
                            await asyncio.sleep(0.2)
                await asyncio.sleep(batch / self.rate)
        finally:
            await asyncio.gather(*(p.close() for p in producers))

    async def _victim_with_jobs(self, timeout: float = 3.0) -> Proc | None:
        """A live worker that has just started a job (per the log), waiting up to
        ``timeout`` for one: that job has at least half the shortest handler time
        still to run, so the kill aimed at this process lands while it holds it."""
        deadline = time.monotonic() + timeout
        fresh_ms = HANDLER_MS[0] // 2
        while time.monotonic() < deadline:
            alive = [p for p in self.procs if p.process.returncode is None]
            self.tail.refresh()
            since = now_ms() - fresh_ms
            busy = [p for p in alive if self.tail.started_since(p.process.pid, since)]
            if busy:
                return self.random.choice(busy)
            await asyncio.sleep(0.02)
        return None

    async def _crash_redis(self) -> None:
        self.redis_restarts += 1
        killed = now_ms()
        self.redis.kill()
        await asyncio.sleep(0.5)
        await asyncio.to_thread(self.redis.restart)
        self.redis_down = (killed, now_ms())

    async def havoc(self, stop: asyncio.Event) -> None:
        started = time.monotonic()
        # Two SIGKILLs for each SIGTERM, in that order: how many kills land depends on the run's
        # length, not on a coin.
        signals = itertools.cycle([signal.SIGKILL, signal.SIGKILL, signal.SIGTERM])
        while not stop.is_set():
            await asyncio.sleep(self.kill_every * self.random.uniform(0.5, 1.5))
            if stop.is_set():
                break
            if self.redis_down is None and time.monotonic() - started > 3 * self.kill_every:
                await self._crash_redis()
                continue
            sig = next(signals)
            victim = await self._victim_with_jobs()
            if victim is None:
                continue
            self.kill_events.append(Kill(now_ms(), victim.process.pid, victim.lang, sig.name))
            victim.process.send_signal(sig)
            try:
                await asyncio.wait_for(victim.process.wait(), 10)
            except TimeoutError:
                victim.process.kill()
                await victim.process.wait()
            self.procs.remove(victim)
            await self.start_worker(victim.lang)

    async def run(self) -> ChaosReport:
        t0 = time.monotonic()
        self.redis.start()
        report = ChaosReport(self.jobs, len(self.queue_names))
        try:
            for lang in ("python", "python", "node", "node"):
                await self.start_worker(lang)
            stop = asyncio.Event()
            havoc = asyncio.create_task(self.havoc(stop))
            await self.produce()
            await self.wait_all_done(timeout=60 + self.jobs / 50)
            stop.set()
            await havoc
            report.redis_restarts = self.redis_restarts
            await self.count(report)
        finally:
            for proc in self.procs:
                if proc.process.returncode is None:
                    proc.process.send_signal(signal.SIGTERM)
            for proc in self.procs:
                try:
                    await asyncio.wait_for(proc.process.wait(), 10)
                except TimeoutError:
                    proc.process.kill()
            self.redis.stop()
        report.wall_s = round(time.monotonic() - t0, 1)
        return report

    async def _counts(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        async with Queue(self.queue_names[0], connection=self.redis.url, timeout=5) as first:
            for name in self.queue_names:
                queue = first if name == first.name else Queue(name, connection=first.connector, timeout=5)
                counts = await queue.get_job_counts("completed", "failed", "active", "waiting", "delayed")
                totals.update(counts)
        return dict(totals)

    async def wait_all_done(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                counts = await self._counts()
            except RedisUnavailable:
                await asyncio.sleep(0.5)
                continue
            if counts.get("completed", 0) + counts.get("failed", 0) >= self.jobs:
                return
            await asyncio.sleep(0.5)

    async def count(self, report: ChaosReport) -> None:
        counts = await self._counts()
        report.completed = counts.get("completed", 0)
        report.failed = counts.get("failed", 0)
        report.active_left = counts.get("active", 0)
        report.waiting_left = counts.get("waiting", 0) + counts.get("delayed", 0)
        executions = read_log(self.log)
        by_job: dict[str, list[Execution]] = defaultdict(list)
        for e in executions:
            by_job[e.job].append(e)
        report.executions = len(executions)
        report.by_language = dict(Counter(e.lang for e in executions))
        report.never_ran = self.jobs - len(by_job)
        report.kills = dict(Counter(k.signal for k in self.kill_events))
        self._account_for_kills(report, executions, by_job)
        self._account_for_reruns(report, by_job)

    def _account_for_kills(
        self, report: ChaosReport, executions: list[Execution], by_job: dict[str, list[Execution]]
    ) -> None:
        """Each SIGKILL's hits, each hit's recovery: a later start elsewhere, then an end."""
        recoveries: dict[str, list[int]] = defaultdict(list)
        for kill in (k for k in self.kill_events if k.signal == "SIGKILL"):
            hits = in_flight(executions, kill.pid, kill.at)
            report.kills_with_hits += bool(hits)
            report.jobs_hit += len(hits)
            for hit in hits:
                later = [e for e in by_job[hit.job] if e.start > hit.start and e.pid != kill.pid]
                if not later or all(e.end is None for e in later):
                    report.hits_not_recovered += 1
                    continue
                recoveries[f"{kill.lang}->{later[0].lang}"].append(later[0].start - kill.at)
        for pair, values in sorted(recoveries.items()):
            ordered = sorted(values)
            report.recovery_ms[pair] = {
                "n": len(ordered),
                "p50": float(statistics.median(ordered)),
                "p95": float(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]),
                "max": float(ordered[-1]),
            }

    def _account_for_reruns(self, report: ChaosReport, by_job: dict[str, list[Execution]]) -> None:
        """Every execution followed by another one needs a cause."""
        killed = {k.pid: k.at for k in self.kill_events if k.signal == "SIGKILL"}
        down = self.redis_down
        for runs in by_job.values():
            for earlier, _ in itertools.pairwise(runs):
                report.reruns += 1
                if earlier.pid in killed and killed[earlier.pid] >= earlier.start:
                    report.reruns_after_sigkill += 1
                elif down is not None and earlier.start <= down[1] and (earlier.end or down[1]) >= down[0] - LOCK_MS:
                    report.reruns_after_redis_crash += 1
                else:
                    report.reruns_unexplained += 1


async def chaos(
    jobs: int = 10_000,
    queues: int = 3,
    kill_every: float = 1.0,
    seed: int = 7,
    rate: float = 400.0,
    min_hits: int = 10,
) -> ChaosReport:
    with tempfile.TemporaryDirectory(prefix="bullbridge-chaos-") as tmp:
        return await Chaos(jobs, queues, kill_every, seed, Path(tmp), rate, min_hits).run()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--queues", type=int, default=3)
    parser.add_argument("--kill-every", type=float, default=1.0, help="mean seconds between kills")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate", type=float, default=400.0, help="jobs added per second")
    parser.add_argument("--min-hits", type=int, default=10, help="SIGKILLs that must catch jobs in flight")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # connection warnings during the Redis crash are expected
    report = asyncio.run(chaos(args.jobs, args.queues, args.kill_every, args.seed, args.rate, args.min_hits))
    bites = report.kills_with_hits >= args.min_hits
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        for key, value in asdict(report).items():
            print(f"{key:>26}: {value}")
        verdict = "OK - every job completed, every hit recovered, every re-run explained"
        print(f"{'result':>26}: {verdict if report.ok else 'JOBS LOST, STUCK, UNRECOVERED OR RE-RUN WITHOUT CAUSE'}")
        if not bites:
            print(f"{'':>26}  only {report.kills_with_hits} SIGKILLs caught jobs in flight (wanted {args.min_hits})")
    return 0 if report.ok and bites else 1


if __name__ == "__main__":
    sys.exit(main())

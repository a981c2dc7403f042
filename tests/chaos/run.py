"""The chaos run: Python and Node workers side by side, killed at random, and a
Redis crash mid-run - then proof that every job completed.

    python -m tests.chaos.run [--jobs 10000] [--queues 3] [--kill-every 1.5] [--json]

(``make chaos`` runs the full version; ``tests/chaos/test_chaos_short.py`` a
short one in CI.) Redis runs with AOF and ``appendfsync always``, so its crash
loses nothing acknowledged. Every handler start is appended to a log file by
the worker process (files survive the Redis crash), so the run can count
executions, re-runs caused by kills, and how long each recovery took.
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
from bullbridge.errors import RedisUnavailable
from bullbridge.testing.redis_server import PrivateRedis

ROOT = Path(__file__).resolve().parents[2]
NODE_WORKER = Path(__file__).with_name("node_worker.js")


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
    reruns: int = 0
    reruns_after_sigkill: int = 0
    kills: dict[str, int] = field(default_factory=dict)
    redis_restarts: int = 0
    recovery_ms_p50: float | None = None
    recovery_ms_max: float | None = None
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
        )


@dataclass
class Proc:
    lang: str
    process: asyncio.subprocess.Process
    started: float


class Chaos:
    def __init__(
        self, jobs: int, queues: int, kill_every: float, seed: int, workdir: Path, rate: float = 400.0
    ) -> None:
        self.jobs = jobs
        self.rate = rate
        self.redis_restarts = 0
        self.queue_names = [f"chaos-{i}" for i in range(queues)]
        self.kill_every = kill_every
        self.random = random.Random(seed)
        self.workdir = workdir
        self.log = workdir / "executions.log"
        self.procs: list[Proc] = []
        self.kill_events: list[tuple[float, int, str]] = []  # (epoch ms, pid, signal)
        self.redis = PrivateRedis(persist=True, extra_args=("--appendfsync", "always"))

    async def start_worker(self, lang: str) -> Proc:
        env = dict(
            os.environ,
            BULLBRIDGE_REDIS_URL=self.redis.url,
            CHAOS_QUEUES=",".join(self.queue_names),
            CHAOS_LOG=str(self.log),
            PYTHONPATH=str(ROOT),
        )
        if lang == "python":
            cmd = [sys.executable, "-m", "bullbridge", "worker", "tests.apps.chaos_app:make", "--drain-timeout", "5"]
        else:
            cmd = ["node", str(NODE_WORKER), self.redis.url, ",".join(self.queue_names), str(self.log)]
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

    async def havoc(self, stop: asyncio.Event) -> None:
        redis_restarted = False
        started = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(self.kill_every * self.random.uniform(0.5, 1.5))
            if stop.is_set():
                break
            if not redis_restarted and time.monotonic() - started > 3 * self.kill_every:
                redis_restarted = True
                self.redis_restarts += 1
                self.redis.kill()
                await asyncio.sleep(0.5)
                await asyncio.to_thread(self.redis.restart)
                continue
            alive = [p for p in self.procs if p.process.returncode is None]
            if not alive:
                continue
            victim = self.random.choice(alive)
            sig = self.random.choice([signal.SIGKILL, signal.SIGKILL, signal.SIGTERM])
            self.kill_events.append((time.time() * 1000, victim.process.pid, sig.name))
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
        async with Queue(self.queue_names[0], connection=self.redis.url, timeout=5) as p:
            client = p._link.client()
            for q in self.queue_names:
                base = f"bull:{q}:"
                replies = await client.execute_many(
                    [
                        ("ZCARD", base + "completed"),
                        ("ZCARD", base + "failed"),
                        ("LLEN", base + "active"),
                        ("LLEN", base + "wait"),
                        ("ZCARD", base + "delayed"),
                    ]
                )
                for name, value in zip(("completed", "failed", "active", "wait", "delayed"), replies):
                    totals[name] += int(value)
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
        report.waiting_left = counts.get("wait", 0) + counts.get("delayed", 0)
        starts: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
        for line in self.log.read_text().splitlines():
            queue, job_id, lang, pid, ts = line.split()
            starts[f"{queue}/{job_id}"].append((int(ts), int(pid), lang))
        report.executions = sum(len(v) for v in starts.values())
        report.by_language = dict(Counter(lang for v in starts.values() for _, _, lang in v))
        report.never_ran = self.jobs - len(starts)
        report.kills = dict(Counter(sig for _, _, sig in self.kill_events))
        kills_by_pid = {pid: ts for ts, pid, sig in self.kill_events if sig == "SIGKILL"}
        recoveries: list[float] = []
        for runs in starts.values():
            runs.sort()
            report.reruns += len(runs) - 1
            for (_, pid, _), (next_ts, _, _) in itertools.pairwise(runs):
                if pid in kills_by_pid:
                    report.reruns_after_sigkill += 1
                    recoveries.append(next_ts - kills_by_pid[pid])
        if recoveries:
            report.recovery_ms_p50 = round(statistics.median(recoveries), 1)
            report.recovery_ms_max = round(max(recoveries), 1)


async def chaos(
    jobs: int = 10_000, queues: int = 3, kill_every: float = 1.5, seed: int = 7, rate: float = 400.0
) -> ChaosReport:
    with tempfile.TemporaryDirectory(prefix="bullbridge-chaos-") as tmp:
        return await Chaos(jobs, queues, kill_every, seed, Path(tmp), rate).run()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--queues", type=int, default=3)
    parser.add_argument("--kill-every", type=float, default=1.5, help="mean seconds between kills")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate", type=float, default=400.0, help="jobs added per second")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # connection warnings during the Redis crash are expected
    report = asyncio.run(chaos(args.jobs, args.queues, args.kill_every, args.seed, args.rate))
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        for key, value in asdict(report).items():
            print(f"{key:>22}: {value}")
        print(f"{'result':>22}: {'OK - every job completed' if report.ok else 'JOBS LOST OR STUCK'}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

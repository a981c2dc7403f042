"""``make demo``: the seed's background-jobs layer, Node and Python side by side.

``python -m examples.layer15.demo`` (``make demo``) runs the reference app of a checkout -
``examples/layer15`` (Python) and ``interop/layer15`` (Node) - on a private
Redis, or on ``BULLBRIDGE_REDIS_URL`` under a key prefix of its own that is
deleted afterwards:

1. it starts the Python workers (``python -m examples.layer15``: email,
   image-processing, data-sync, analytics; they sync the cron schedules at
   startup) and the Node workers (``node interop/layer15/workers.js``: email,
   notifications). The email queue is served by both, as in a gradual
   migration. Three of the cron jobs run once right away (their next run
   promoted, as an operator would);
2. the Node producer adds ~2,000 jobs a minute for ``seconds``, plus a
   newsletter that pushes the email queue over its 100/min rate limit, while a
   live view refreshes (a table on a terminal, a line every 5 s otherwise);
3. once every job has finished it stops both sides with SIGTERM while a few
   long image jobs run (graceful shutdown: they finish), and prints the seed's
   targets with the figures measured from the finished jobs
   (:mod:`bullbridge.monitor`), the schedules, and the migration report of
   the email queue.

``bullbridge demo`` (which works from an installed wheel too) is the short
two-direction exchange (Node enqueues for a Python worker, Python for a Node worker).

Exit status: 0 unless a job did not finish or a process did not stop cleanly.
The targets are reported, not enforced: on a busy machine they may be missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from bullbridge.clock import now_ms
from bullbridge.connection import redis_url_from_env
from bullbridge.monitor import FinishedJob, FinishedSample, MigrationReport, Monitor, Percentiles
from bullbridge.monitor import format as fmt
from bullbridge.monitor.languages import NODE, PYTHON
from bullbridge.queue import Queue
from bullbridge.scheduler import SchedulerInfo
from bullbridge.testing.redis_server import PrivateRedis, die_with_parent

# --- the layer: what the demo knows about examples/layer15 and interop/layer15 ----------

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "interop" / "layer15"
QUEUES = ("email", "image-processing", "data-sync", "analytics", "notifications")
PYTHON_QUEUES = ("email", "image-processing", "data-sync", "analytics")
NODE_QUEUES = ("email", "notifications")
MIGRATING = "email"
#: The email workers' limiter (100 per minute): its jobs wait for the limiter, not a worker.
EMAIL_LIMIT, EMAIL_WINDOW_MS = 100, 60_000
RATE_LIMITED = ("email",)
#: Queue latency is measured where it applies: not rate-limited, first attempts, not
#: delayed (scheduled runs), and not flow parents (their last run waits for children).
LATENCY_QUEUES = tuple(q for q in QUEUES if q not in RATE_LIMITED)
PARENT_JOBS = {"data-sync": ("sync",)}
#: Schedules the demo runs once at the start (promoting their next run, as an operator would);
#: the newsletter's run comes from the producer instead (the scheduled one mails 2,000 readers over an hour).
RUN_NOW = ("daily-analytics", "hourly-backup", "cleanup")
#: The seed's targets.
MIN_THROUGHPUT, MAX_LATENCY_MS, MAX_FAILURE_RATE, DRAIN_TIMEOUT_S = 1000, 100, 0.01, 30


def layer_available(root: Path = ROOT) -> bool:
    """Whether this is a checkout holding the reference app (``pip install`` has no examples)."""
    return (root / "examples" / "layer15" / "app.py").is_file() and (
        root / "interop" / "layer15" / "producer.js"
    ).is_file()


@dataclass(frozen=True)
class LayerParams:
    """One run of the layer. ``python_command`` starts the Python workers (from ``ROOT``)."""

    seconds: float = 60.0
    scale: float = 1.0
    #: Readers of the newsletter added at the start, and the seconds its emails are spread over.
    newsletter: int = 60
    spread: float = 30.0
    prefix: str = "bull"
    python_command: tuple[str, ...] = (sys.executable, "-m", "examples.layer15")
    #: How long jobs may take to finish once the producer is done (the rate limit's window, retries).
    finish_timeout: float = 150.0
    start_timeout: float = 30.0
    #: Seconds between refreshes of the live view (a line every 5 refreshes off a terminal).
    refresh: float = 1.0


# --- child processes ---------------------------------------------------------------------


@dataclass
class Child:
    """A process of the layer (Python workers, Node workers, Node producer), its output in a log file."""

    label: str
    argv: tuple[str, ...]
    log_path: Path
    process: asyncio.subprocess.Process
    stopped_in: float | None = None

    @classmethod
    async def start(cls, label: str, argv: Sequence[str], env: dict[str, str], log_dir: Path) -> Child:
        log_path = log_dir / f"{label}.log"
        with open(log_path, "wb") as log:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=ROOT,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=die_with_parent,
            )
        return cls(label, tuple(argv), log_path, process)

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    @property
    def command(self) -> str:
        return " ".join(Path(a).name if a == sys.executable else a for a in self.argv)

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(f"    {line}" for line in text.splitlines()[-lines:])

    async def stop(self, timeout: float = DRAIN_TIMEOUT_S + 10) -> int:
        """SIGTERM, then wait (SIGKILL after ``timeout``); returns the exit code."""
        started = time.perf_counter()
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()
        self.stopped_in = time.perf_counter() - started
        return self.process.returncode if self.process.returncode is not None else -1


class LayerError(Exception):
    """The layer could not run (a process died, workers never showed up...)."""


# --- what is measured --------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    goal: str
    measured: str
    met: bool


@dataclass
class LayerResult:
    """A finished run: the jobs that finished since the start, and how the processes stopped."""

    params: LayerParams
    started_ms: int
    produced_until_ms: int
    added: dict[str, int]
    samples: dict[str, FinishedSample]
    migration: MigrationReport
    #: The job schedulers at the end (synced at startup; RUN_NOW ran once).
    schedulers: list[tuple[str, SchedulerInfo]]
    #: Jobs of this run that had not finished at the end, per queue (0 when all went well).
    unfinished: dict[str, int]
    #: Label -> (exit code, seconds from SIGTERM to exit).
    shutdown: dict[str, tuple[int, float]] = field(default_factory=dict)
    #: Python jobs active when SIGTERM arrived (they must finish, not be handed back).
    drained: int = 0
    log_dir: Path | None = None

    def jobs(self, queues: Sequence[str] = QUEUES) -> list[FinishedJob]:
        return [j for q in queues for j in self.samples[q].jobs]

    @property
    def finished(self) -> int:
        return len(self.jobs())

    @property
    def failed(self) -> int:
        return sum(1 for j in self.jobs() if j.state == "failed")

    @property
    def retried(self) -> int:
        return sum(1 for j in self.jobs() if j.attempts_made > 1)

    @property
    def failure_rate(self) -> float | None:
        return self.failed / self.finished if self.finished else None

    @property
    def first_added_ms(self) -> int:
        return min((j.timestamp for j in self.jobs() if j.timestamp is not None), default=self.started_ms)

    @property
    def production_minutes(self) -> float:
        """From the first job added to the producer's exit."""
        return max(1, self.produced_until_ms - self.first_added_ms) / 60_000

    @property
    def finished_while_producing(self) -> int:
        return sum(1 for j in self.jobs() if j.finished_on is not None and j.finished_on <= self.produced_until_ms)

    @property
    def throughput(self) -> float:
        """Jobs finished per minute while the producer ran (the whole layer)."""
        return self.finished_while_producing / self.production_minutes

    def latency_jobs(self, queues: Sequence[str] = LATENCY_QUEUES) -> list[FinishedJob]:
        """The jobs whose wait is queue latency (see ``LATENCY_QUEUES``)."""
        return [
            j
            for q in queues
            for j in self.samples[q].jobs
            if j.attempts_made <= 1 and not j.id.startswith("repeat:") and j.name not in PARENT_JOBS.get(q, ())
        ]

    def latency(self, queues: Sequence[str] = LATENCY_QUEUES) -> Percentiles:
        return Percentiles.of(w for j in self.latency_jobs(queues) if (w := j.wait_ms) is not None)

    @property
    def email_window_max(self) -> int:
        """Most email jobs started in one limiter window (windows open at the first job after the last one closed)."""
        starts = sorted(j.processed_on for j in self.samples[MIGRATING].jobs if j.processed_on is not None)
        best, window_start, count = 0, None, 0
        for t in starts:
            if window_start is None or t >= window_start + EMAIL_WINDOW_MS:
                window_start, count = t, 0
            count += 1
            best = max(best, count)
        return best

    @property
    def complete(self) -> bool:
        """Every job finished, and both worker processes stopped cleanly."""
        return not any(self.unfinished.values()) and all(code == 0 for code, _ in self.shutdown.values())

    def targets(self) -> list[Target]:
        lat, rate = self.latency(), self.failure_rate
        window = self.produced_until_ms - self.first_added_ms
        return [
            Target(
                "throughput, whole layer",
                f"> {MIN_THROUGHPUT:,}/min",
                f"{self.throughput:,.0f}/min ({self.finished_while_producing:,} jobs in {window / 1000:.1f} s)",
                self.throughput > MIN_THROUGHPUT,
            ),
            Target(
                "queue latency p50 / p95",
                f"< {MAX_LATENCY_MS} ms",
                f"{fmt.duration(lat.p50)} / {fmt.duration(lat.p95)} ({lat.count:,} jobs, see note)",
                lat.p95 is not None and lat.p95 < MAX_LATENCY_MS,
            ),
            Target(
                "failure rate",
                f"< {MAX_FAILURE_RATE:.0%}",
                f"{fmt.percent(rate, 2)} ({self.failed:,} of {self.finished:,}; {self.retried:,} retried)",
                rate is not None and rate < MAX_FAILURE_RATE,
            ),
            Target(
                "email rate limit",
                f"{EMAIL_LIMIT}/min",
                f"at most {self.email_window_max} started in one {EMAIL_WINDOW_MS // 1000} s window",
                self.email_window_max <= EMAIL_LIMIT,
            ),
            Target(
                "graceful shutdown",
                f"{DRAIN_TIMEOUT_S} s drain",
                f"{self.drained} active job(s) finished; "
                + ", ".join(
                    f"{label} exit {code} in {fmt.duration(seconds * 1000)}"
                    for label, (code, seconds) in self.shutdown.items()
                ),
                bool(self.shutdown)
                and not any(self.unfinished.values())
                and all(code == 0 and seconds < DRAIN_TIMEOUT_S for code, seconds in self.shutdown.values()),
            ),
        ]


# --- the live view -----------------------------------------------------------------------


@dataclass
class Snapshot:
    """The queues at one instant (counts, workers, the email limiter)."""

    taken: float
    counts: dict[str, dict[str, int]]
    workers: dict[str, dict[str, int]]
    email_window: int

    def finished(self, queue: str) -> int:
        return self.counts[queue]["completed"] + self.counts[queue]["failed"]

    def total(self, state: str) -> int:
        return sum(c[state] for c in self.counts.values())


async def snapshot(monitor: Monitor) -> Snapshot:
    counts, workers, limiter = await asyncio.gather(
        asyncio.gather(*(monitor.counts(q) for q in QUEUES)),
        monitor.workers(QUEUES),
        monitor.reader.execute("GET", monitor.keys(MIGRATING)["limiter"]),
    )
    by_language = {
        q: {lang: sum(1 for w in ws if w.language == lang) for lang in (PYTHON, NODE)} for q, ws in workers.items()
    }
    return Snapshot(time.monotonic(), dict(zip(QUEUES, counts)), by_language, int(limiter or 0))


class LiveView:
    """A table redrawn in place on a terminal; a line every ``every`` updates otherwise."""

    def __init__(self, out: TextIO, *, every: int = 5) -> None:
        self.out = out
        self.tty = out.isatty()
        self.every = every
        self._updates = 0
        self._drawn = 0
        self._history: deque[Snapshot] = deque()

    def _rate(self, snap: Snapshot, queue: str | None) -> float | None:
        old = self._history[0]
        if snap.taken - old.taken < 0.5:
            return None
        names = QUEUES if queue is None else (queue,)
        done = sum(snap.finished(q) - old.finished(q) for q in names)
        return done * 60 / (snap.taken - old.taken)

    def update(self, elapsed: float, snap: Snapshot, phase: str, *, force: bool = False) -> None:
        self._history.append(snap)
        while snap.taken - self._history[0].taken > 10:
            self._history.popleft()
        self._updates += 1
        limiter = f"email limiter {snap.email_window}/{EMAIL_LIMIT} this window"
        if not self.tty:
            if force or self._updates % self.every == 1 or self.every == 1:
                print(
                    f"t={elapsed:5.1f}s  {phase}: completed {snap.total('completed'):,}  failed "
                    f"{snap.total('failed'):,}  waiting {snap.total('waiting') + snap.total('prioritized'):,}  "
                    f"active {snap.total('active')}  delayed {snap.total('delayed'):,}  "
                    f"{fmt.rate(self._rate(snap, None))}  {limiter}",
                    file=self.out,
                    flush=True,
                )
            return

        def per_minute(queue: str | None) -> str:
            value = self._rate(snap, queue)
            return "-" if value is None else f"{value:,.0f}"

        rows = []
        for q in QUEUES:
            c = snap.counts[q]
            rows.append(
                [
                    q,
                    fmt.workers(snap.workers.get(q, {})),
                    fmt.number(c["waiting"] + c["prioritized"]),
                    fmt.number(c["active"]),
                    fmt.number(c["delayed"] + c["waiting-children"]),
                    fmt.number(c["completed"]),
                    fmt.number(c["failed"]),
                    per_minute(q),
                ]
            )
        t = snap.total
        rows.append(
            [
                "all",
                "",
                fmt.number(t("waiting") + t("prioritized")),
                fmt.number(t("active")),
                fmt.number(t("delayed") + t("waiting-children")),
                fmt.number(t("completed")),
                fmt.number(t("failed")),
                per_minute(None),
            ]
        )
        table = fmt.table(
            ["queue", "workers", "waiting", "active", "delayed", "done", "failed", "/min"],
            rows,
            [False, False, True, True, True, True, True, True],
        )
        text = f"t={elapsed:5.1f}s  {phase}  ({limiter})\n{table}"
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")
        self.out.write(text + "\n")
        self.out.flush()
        width = shutil.get_terminal_size((100, 24)).columns
        self._drawn = sum(max(1, -(-len(line) // width)) for line in text.splitlines())


# --- the run -----------------------------------------------------------------------------


def _env(url: str, prefix: str) -> dict[str, str]:
    env = dict(os.environ, BULLBRIDGE_REDIS_URL=url, BULLBRIDGE_PREFIX=prefix, PYTHONUNBUFFERED="1")
    env.pop("REDIS_URL", None)
    return env


async def _wait_for_workers(monitor: Monitor, children: Sequence[Child], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        workers = await monitor.workers(QUEUES)
        missing = [
            f"{lang} on {q}"
            for lang, queues in ((PYTHON, PYTHON_QUEUES), (NODE, NODE_QUEUES))
            for q in queues
            if not any(w.language == lang for w in workers[q])
        ]
        if not missing:
            return
        for child in children:
            if not child.running:
                raise LayerError(
                    f"{child.label} ({child.command}) exited with {child.process.returncode}:\n{child.tail()}"
                )
        if time.monotonic() > deadline:
            raise LayerError(f"workers did not start within {timeout:g} s (missing: {', '.join(missing)})")
        await asyncio.sleep(0.2)


def _pending(snap: Snapshot, baseline_delayed: dict[str, int]) -> dict[str, int]:
    """Jobs of this run not finished yet (scheduled runs, delayed until their time, excluded)."""
    return {
        q: c["waiting"]
        + c["prioritized"]
        + c["active"]
        + c["waiting-children"]
        + max(0, c["delayed"] - baseline_delayed.get(q, 0))
        for q, c in snap.counts.items()
    }


async def _schedulers(monitor: Monitor) -> list[tuple[str, SchedulerInfo]]:
    return [(q, s) for q in QUEUES for s in (await monitor.schedulers(q)).schedulers]


async def _start_long_jobs(url: str, prefix: str, monitor: Monitor, count: int = 3) -> int:
    """Add ``count`` image jobs of about a second each; return how many are active (after at most 5 s)."""
    async with Queue("image-processing", connection=url, prefix=prefix) as producer:
        await producer.add_bulk(
            ("process", {"image": f"uploads/large-{i}.png", "size": 256, "operations": ["blur", "sharpen"] * 4})
            for i in range(count)
        )
    deadline = time.monotonic() + 5
    while True:
        active = (await monitor.counts("image-processing"))["active"]
        if active >= count or time.monotonic() > deadline:
            return active
        await asyncio.sleep(0.05)


def _added(producer: Child) -> dict[str, int]:
    for line in reversed(producer.log_path.read_text(errors="replace").splitlines()):
        if line.startswith("added "):
            added: dict[str, int] = json.loads(line[len("added ") :])
            return added
    return {}


async def run_layer(
    url: str, params: LayerParams = LayerParams(), out: TextIO = sys.stdout, log_dir: Path | None = None
) -> LayerResult:
    """Run the layer on ``url`` (see the module docstring); raises :class:`LayerError` when it cannot."""
    if shutil.which("node") is None:
        raise LayerError("node is not on PATH: the layer's Node side needs Node.js 20+")
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="bullbridge-demo-"))
    env = _env(url, params.prefix)
    node_workers = ("node", str(NODE_DIR.relative_to(ROOT) / "workers.js"))
    producer_argv = (
        "node",
        str(NODE_DIR.relative_to(ROOT) / "producer.js"),
        "--seconds",
        f"{params.seconds:g}",
        "--scale",
        f"{params.scale:g}",
        "--newsletter",
        str(params.newsletter),
        "--spread",
        f"{params.spread:g}",
    )
    children: list[Child] = []
    monitor = Monitor(url, prefix=params.prefix, command_timeout=10.0)
    try:
        python = await Child.start("python", params.python_command, env, log_dir)
        node = await Child.start("node", node_workers, env, log_dir)
        children += [python, node]
        print(f"  python workers  {python.command:<40} {', '.join(PYTHON_QUEUES)}", file=out)
        print(f"  node workers    {node.command:<40} {', '.join(NODE_QUEUES)}", file=out)
        await _wait_for_workers(monitor, children, params.start_timeout)
        synced = await _schedulers(monitor)
        baseline_delayed = {q: c["delayed"] for q, c in (await snapshot(monitor)).counts.items()}
        ran = [s.id for q, s in synced if s.id in RUN_NOW and s.next_run_ms is not None]
        for queue, s in synced:
            if s.id in ran:
                await monitor.actions(queue).promote_job(f"repeat:{s.id}:{s.next_run_ms}")
        print(
            f"\n{len(synced)} schedules synced by the Python workers at startup "
            f"({', '.join(s.id for _, s in synced)}); running {', '.join(ran)} once now",
            file=out,
        )

        print(
            f"\nNode producer: {' '.join(producer_argv)}\n  ~2,000 jobs/min at scale 1 for {params.seconds:g} s, "
            f"and a newsletter to {params.newsletter} readers spread over {params.spread:g} s, which takes "
            f"the email queue over its {EMAIL_LIMIT}/min rate limit\n",
            file=out,
            flush=True,
        )
        started_ms = now_ms()
        started = time.monotonic()
        producer = await Child.start("producer", producer_argv, env, log_dir)
        children.append(producer)
        exited: list[int] = []
        producer_exit = asyncio.ensure_future(producer.process.wait())
        producer_exit.add_done_callback(lambda _: exited.append(now_ms()))
        view = LiveView(out, every=max(1, round(5 / params.refresh)))
        produced_until_ms: int | None = None
        deadline: float | None = None
        while True:
            snap = await snapshot(monitor)
            for child in (python, node):
                if not child.running:
                    raise LayerError(f"{child.label} workers exited with {child.process.returncode}:\n{child.tail()}")
            if produced_until_ms is None and exited:
                produced_until_ms = exited[0]
                deadline = time.monotonic() + params.finish_timeout
                if producer.process.returncode != 0:
                    raise LayerError(f"the producer exited with {producer.process.returncode}:\n{producer.tail()}")
            pending = _pending(snap, baseline_delayed)
            phase = "producing" if produced_until_ms is None else f"finishing ({sum(pending.values()):,} left)"
            view.update(time.monotonic() - started, snap, phase)
            if produced_until_ms is not None and not any(pending.values()):
                break
            if deadline is not None and time.monotonic() > deadline:
                break
            await asyncio.sleep(params.refresh)
        assert produced_until_ms is not None
        view.update(
            time.monotonic() - started,
            snap,
            "all jobs finished" if not any(pending.values()) else f"gave up waiting ({sum(pending.values()):,} left)",
            force=True,
        )
        migration = await monitor.migration_report(MIGRATING, since_ms=started_ms)

        # Graceful shutdown: a few long image jobs are running when SIGTERM arrives; they finish.
        drained = await _start_long_jobs(url, params.prefix, monitor)
        print(
            f"\nSIGTERM to both sides while {drained} image job(s) run (active jobs get {DRAIN_TIMEOUT_S} s)...",
            file=out,
            flush=True,
        )
        codes = await asyncio.gather(python.stop(), node.stop())
        shutdown = {child.label: (code, child.stopped_in or 0.0) for child, code in zip((python, node), codes)}
        pending = _pending(await snapshot(monitor), baseline_delayed)
        schedulers = await _schedulers(monitor)
        samples = dict(
            zip(QUEUES, await asyncio.gather(*(monitor.sample(q, 1_000_000, since_ms=started_ms) for q in QUEUES)))
        )
        result = LayerResult(
            params,
            started_ms,
            produced_until_ms,
            _added(producer),
            samples,
            migration,
            schedulers,
            {q: n for q, n in pending.items() if n},
            shutdown,
            drained,
            log_dir,
        )
        return result
    finally:
        await asyncio.gather(*(c.stop(timeout=5) for c in children if c.running), return_exceptions=True)
        await monitor.close()


async def delete_prefix(url: str, prefix: str) -> int:
    """Delete every key under ``prefix:`` (the demo's own, on a Redis it did not start)."""
    from bullbridge.connection import connect
    from bullbridge.testing.interop import delete_prefix as delete

    connector = connect(url)
    try:
        return await delete(connector.fast("bullbridge:demo-cleanup"), prefix)
    finally:
        await connector.close()


# --- the report --------------------------------------------------------------------------


def _indent(text: str, by: str = "  ") -> str:
    return "\n".join(by + line if line else line for line in text.splitlines())


def render_schedules(schedulers: Sequence[tuple[str, SchedulerInfo]]) -> str:
    rows = []
    for queue, s in schedulers:
        when = "-"
        if s.next_run_ms is not None:
            local = datetime.fromtimestamp(s.next_run_ms / 1000, ZoneInfo(s.tz or "UTC"))
            when = f"{local:%a %Y-%m-%d %H:%M} {s.tz or 'UTC'}"
        rows.append([s.id, queue, s.name or "", s.pattern or fmt.duration(s.every), when])
    return fmt.table(["schedule", "queue", "job", "cron", "next run"], rows)


def _served_by(sample: FinishedSample) -> str:
    groups = sample.by_language()
    if len(groups) <= 1:
        return next(iter(groups), "-")
    total = len(sample)
    return " + ".join(
        f"{lang} {len(s) * 100 / total:.0f}%" for lang, s in sorted(groups.items(), key=lambda kv: -len(kv[1]))
    )


def render_queues(result: LayerResult) -> str:
    rows = []
    for q in QUEUES:
        s = result.samples[q]
        wait = result.latency((q,)) if q in LATENCY_QUEUES else s.wait
        note = " *" if q in RATE_LIMITED else ""
        rows.append(
            [
                q,
                _served_by(s),
                fmt.number(len(s)),
                fmt.number(s.failed),
                fmt.number(sum(1 for j in s.jobs if j.attempts_made > 1)),
                fmt.duration(wait.p50) + note,
                fmt.duration(wait.p95) + note,
                fmt.duration(s.processing.p50),
                fmt.duration(s.processing.p95),
            ]
        )
    return fmt.table(
        ["queue", "served by", "jobs", "failed", "retried", "wait p50", "wait p95", "run p50", "run p95"],
        rows,
        [False, False, True, True, True, True, True, True, True],
    )


def _ran(result: LayerResult) -> list[str]:
    """The scheduled runs that finished (``repeat:<schedule>:<ms>`` jobs)."""
    return [f"{j.name} ({j.state})" for q in QUEUES for j in result.samples[q].jobs if j.id.startswith("repeat:")]


def render_targets(result: LayerResult) -> str:
    rows = [[t.name, t.goal, t.measured, "ok" if t.met else "MISSED"] for t in result.targets()]
    return fmt.table(["target", "seed", "measured", ""], rows)


def render_result(result: LayerResult) -> str:
    from bullbridge.cli.monitor import render_report

    parts = [
        "jobs finished since the start, per queue (from the job hashes: bullbridge.monitor):",
        _indent(render_queues(result)),
        "  * email waits for its 100/min rate limit and the newsletter's random delays, by design",
        "",
        "the seed's targets:",
        _indent(render_targets(result)),
        f"  latency = processedOn - timestamp of first attempts on {', '.join(LATENCY_QUEUES)}: not the rate-",
        "  limited email queue, data-sync's flow parents (their last run waits for the children), scheduled runs",
        "",
        "schedules (examples/layer15/schedules.py, synced at startup as BullMQ job schedulers):",
        _indent(render_schedules(result.schedulers)),
        f"  ran once at the start: {', '.join(_ran(result))}",
        "",
        f"migration report (bullbridge migrate report {MIGRATING}):",
        _indent(render_report(result.migration)),
    ]
    if result.unfinished:
        parts += ["", f"NOT FINISHED: {result.unfinished}"]
    return "\n".join(parts)


# --- the front door ----------------------------------------------------------------------


async def run_layer_demo(params: LayerParams = LayerParams(), out: TextIO = sys.stdout) -> int:
    """``make demo``: the layer on a private Redis (or ``BULLBRIDGE_REDIS_URL``); the exit status."""
    url = redis_url_from_env()
    server = None
    shared = url is not None
    if url is None:
        server = PrivateRedis().start()
        url = server.url
    elif params.prefix == "bull":  # someone's Redis: keys of our own, deleted afterwards
        params = replace(params, prefix=f"bullbridge-demo-{uuid.uuid4().hex[:8]}")
    log_dir = Path(tempfile.mkdtemp(prefix="bullbridge-demo-"))
    where = f"private redis-server {server.version}" if server else f"prefix {params.prefix!r}"
    print(
        f"bullbridge demo: the seed's background-jobs layer, Node and Python side by side\n"
        f"Redis {url} ({where}); logs in {log_dir}\n",
        file=out,
        flush=True,
    )
    try:
        result = await run_layer(url, params, out, log_dir)
    except LayerError as exc:
        print(f"\ndemo failed: {exc}\nlogs in {log_dir}", file=out)
        return 1
    finally:
        if shared:
            await delete_prefix(url, params.prefix)
        if server is not None:
            server.stop()
    print("\n" + render_result(result), file=out)
    if result.complete:
        print(
            f"\nall jobs finished and both sides stopped cleanly ({sum(t.met for t in result.targets())} of "
            f"{len(result.targets())} targets met)",
            file=out,
        )
        shutil.rmtree(log_dir, ignore_errors=True)
        return 0
    print(f"\nSOMETHING WENT WRONG: see the logs in {log_dir}", file=out)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m examples.layer15.demo [--seconds S] [--scale X]``; the exit status."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m examples.layer15.demo",
        description=(
            "Run the reference app (examples/layer15 + interop/layer15): Python and Node workers on five queues, "
            "the email queue served by both, a Node producer at ~2,000 jobs/min, a live view, then the seed's "
            "targets measured from the jobs and the email queue's migration report. Uses BULLBRIDGE_REDIS_URL when "
            "set (under a prefix of its own, deleted afterwards)."
        ),
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the producer runs (default 60)")
    parser.add_argument("--scale", type=float, default=1.0, help="producer load: 1 = ~2,000 jobs/min (default 1)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run_layer_demo(LayerParams(seconds=args.seconds, scale=args.scale)))
    return 130


if __name__ == "__main__":
    sys.exit(main())

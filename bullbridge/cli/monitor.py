"""``bullbridge stats``, ``bullbridge job``, ``bullbridge queue <action>`` and ``bullbridge migrate report``.

Reads go through :class:`bullbridge.monitor.Monitor` (read-only, bounded cost);
the ``queue`` actions write through BullMQ's own scripts and ask for
confirmation first (``--yes`` skips it; without a terminal they refuse).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from bullbridge.cli.build import Checked, argument, command, connection_options, group, option, percentile_sample_option
from bullbridge.cli.output import emit, emit_json, emit_table, json_text
from bullbridge.clock import datetime_ms, now_ms
from bullbridge.jsonapi import to_json
from bullbridge.redact import printable

if TYPE_CHECKING:
    from bullbridge.monitor import JobDetail, MigrationReport, Monitor, QueueStats


def parse_duration_ms(value: str) -> int:
    """``90`` (seconds), ``500ms``, ``30s``, ``15m``, ``2h``, ``7d``, ``1w`` -> milliseconds."""
    from bullbridge.monitor.format import parse_duration_ms as parse

    try:
        return parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_since(value: str) -> int:
    """A start time: a duration back from now (``1h``), epoch milliseconds, or ISO-8601."""
    if value.isdigit() and len(value) >= 12:
        return int(value)
    try:
        return now_ms() - parse_duration_ms(value)
    except argparse.ArgumentTypeError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {value!r} (a duration back from now such as 1h, epoch ms, or ISO-8601)"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no timezone: add Z or +hh:mm")
    return datetime_ms(moment)


def register(root: click.Group) -> None:
    command(
        root,
        "stats",
        run_stats,
        [
            argument("queues", nargs=-1, metavar="[QUEUE]..."),
            *connection_options(),
            option("--watch", is_flag=True, help="refresh until Ctrl-C"),
            option("--interval", type=float, default=2.0, help="seconds between refreshes (default 2)"),
            option("--json", is_flag=True, help="JSON (one document per refresh with --watch)"),
            percentile_sample_option(),
            option("--window", type=int, default=5, metavar="MIN", help="throughput window in minutes (default 5)"),
        ],
        help="queue counts, throughput, latency, workers by language",
        description="Per-queue statistics. Without QUEUE, every queue under the prefix (SCAN).",
    )
    command(
        root,
        "job",
        run_job,
        [
            argument("queue", metavar="QUEUE"),
            argument("job_id", metavar="ID"),
            *connection_options(),
            option("--json", is_flag=True, help="print JSON"),
            option("--logs", type=int, default=100, metavar="N", help="newest log lines to show (default 100)"),
        ],
        help="one job in full: data, options, state, logs, children",
    )
    _register_queue_actions(root)
    migrate = group(root, "migrate", help="evidence for moving a queue between Node and Python")
    command(
        migrate,
        "report",
        run_migrate_report,
        [
            argument("queue", metavar="QUEUE"),
            *connection_options(),
            option(
                "--since",
                type=Checked(parse_since, "WHEN"),
                default=None,
                metavar="WHEN",
                help="only jobs finished since (1h, 7d, epoch ms, ISO-8601)",
            ),
            option(
                "--sample",
                type=int,
                default=10_000,
                metavar="N",
                help="at most this many of the newest jobs (default 10000)",
            ),
            option("--json", is_flag=True, help="print JSON"),
        ],
        help="Python next to Node on one queue",
        description="Per language: share of jobs, failure rate, processing p50/p95, "
        "retries, over the newest finished jobs.",
    )


_STATES = ("completed", "failed", "delayed", "waiting", "paused", "prioritized")


def _actions() -> dict[str, tuple[str, list[click.Parameter]]]:
    """Each action of ``bullbridge queue``: its help and the parameters beyond QUEUE."""
    return {
        "retry": (
            "move failed (or completed) jobs back to wait",
            [option("--state", type=click.Choice(("failed", "completed")), default="failed")],
        ),
        "promote": ("run every delayed job now", []),
        "clean": (
            "delete jobs of a state older than an age",
            [
                option("--state", type=click.Choice(_STATES), required=True),
                option(
                    "--age",
                    type=Checked(parse_duration_ms, "AGE"),
                    required=True,
                    metavar="AGE",
                    help="only jobs older than this (30s, 15m, 2h, 7d)",
                ),
                option("--limit", type=int, default=0, help="delete at most this many (default: all)"),
            ],
        ),
        "pause": ("pause the queue for every worker (Node and Python)", []),
        "resume": ("resume a paused queue", []),
        "drain": (
            "delete waiting jobs (active and finished stay)",
            [option("--delayed", is_flag=True, help="delete delayed jobs too")],
        ),
        "retry-job": ("retry one failed job", [argument("job_id", metavar="ID")]),
        "promote-job": ("run one delayed job now", [argument("job_id", metavar="ID")]),
        "remove-job": ("delete one job (not active)", [argument("job_id", metavar="ID")]),
    }


def _register_queue_actions(root: click.Group) -> None:
    queue = group(
        root,
        "queue",
        help="operator actions: retry, promote, clean, pause, resume, drain",
        description="Each action runs BullMQ's own script and asks first (--yes to skip).",
    )
    for name, (text, extra) in _actions().items():
        command(
            queue,
            name,
            run_action,
            [
                argument("queue", metavar="QUEUE"),
                *[p for p in extra if isinstance(p, click.Argument)],
                *connection_options(),
                option("--yes", "-y", is_flag=True, help="do not ask for confirmation"),
                option("--json", is_flag=True, help="print the result as JSON"),
                *[p for p in extra if not isinstance(p, click.Argument)],
            ],
            help=text,
            fixed={"action": name},
        )


def _monitor(args: argparse.Namespace, **kwargs: Any) -> Monitor:
    from bullbridge.monitor import Monitor

    return Monitor(args.redis, prefix=args.prefix, **kwargs)


def _run(args: argparse.Namespace, body: Callable[[Monitor], Awaitable[int]], **kwargs: Any) -> int:
    """Run ``body`` with a monitor; failures propagate to :mod:`bullbridge.cli.failures`."""

    async def main() -> int:
        monitor = _monitor(args, **kwargs)
        try:
            return await body(monitor)
        finally:
            await monitor.close()

    return asyncio.run(main())


def _dump(value: Any) -> str:
    return json_text(value, indent=None)


# --- stats -----------------------------------------------------------------------------


STAT_HEADERS = (
    "QUEUE",
    "WAIT",
    "ACTIVE",
    "DELAYED",
    "PRIO",
    "CHILD",
    "DONE",
    "FAILED",
    "DONE/M",
    "FAIL/M",
    "FAIL%",
    "WAIT p50/p95",
    "PROC p50/p95",
    "OLDEST",
    "WORKERS",
)


def stats_rows(stats: Sequence[QueueStats]) -> list[list[str]]:
    from bullbridge.monitor import format as fmt

    rows = []
    for s in stats:
        c = s.counts
        rows.append(
            [
                s.queue + (" (paused)" if s.paused else ""),
                fmt.number(c["waiting"]),
                fmt.number(c["active"]),
                fmt.number(c["delayed"]),
                fmt.number(c["prioritized"]),
                fmt.number(c["waiting-children"]),
                fmt.number(c["completed"]),
                fmt.number(c["failed"]),
                fmt.rate(s.throughput.completed_per_minute),
                fmt.rate(s.throughput.failed_per_minute),
                fmt.percent(s.failure_rate),
                f"{fmt.duration(s.wait.p50)}/{fmt.duration(s.wait.p95)}",
                f"{fmt.duration(s.processing.p50)}/{fmt.duration(s.processing.p95)}",
                fmt.duration(s.oldest_waiting_age_ms),
                fmt.workers(s.workers),
            ]
        )
    return rows


#: Which columns of the stats table are numbers (right-aligned): all but the queue and the workers.
STAT_RIGHT = [False] + [True] * 13 + [False]


def render_stats(stats: Sequence[QueueStats], prefix: str = "bull") -> str:
    from bullbridge.monitor import format as fmt

    if not stats:
        return f"no queues under prefix {prefix!r} (--prefix names another)"
    return fmt.table(STAT_HEADERS, stats_rows(stats), STAT_RIGHT)


def run_stats(args: argparse.Namespace) -> int:
    from bullbridge.connection.resp import RespConnectionError, RespError

    async def body(monitor: Monitor) -> int:
        await monitor.require(*args.queues)
        names: list[str] | None = list(args.queues) or None
        refresh = 0
        while True:
            try:
                if names is None or (not args.queues and refresh % 15 == 0):
                    names = await monitor.queues()
                stats = await monitor.stats(names)
            except (RespConnectionError, RespError) as exc:
                if not args.watch or refresh == 0:
                    raise
                print(
                    f"bullbridge stats: {time.strftime('%H:%M:%S')} cannot read Redis "
                    f"({printable(exc, single_line=True)}); retrying",
                    file=sys.stderr,
                    flush=True,
                )
                await asyncio.sleep(args.interval)
                continue
            if args.json:
                emit_json(to_json(stats), indent=None if args.watch else 2, flush=True)
            else:
                if args.watch and sys.stdout.isatty():
                    sys.stdout.write("\x1b[H\x1b[2J")
                if args.watch:
                    emit(f"{time.strftime('%H:%M:%S')} - every {args.interval:g}s, Ctrl-C to stop")
                if stats:
                    emit_table(STAT_HEADERS, stats_rows(stats), STAT_RIGHT, flush=True)
                else:
                    emit(render_stats(stats, monitor.prefix), flush=True)
            if not args.watch:
                return 0
            refresh += 1
            await asyncio.sleep(args.interval)

    return _run(args, body, sample_size=args.sample, window_minutes=args.window)


# --- job -------------------------------------------------------------------------------


def render_job(job: JobDetail) -> str:
    from bullbridge.monitor import format as fmt

    def pretty(value: Any) -> str:
        return json.dumps(value, indent=2, ensure_ascii=False, default=str)

    lines = [
        f"job {job.id} of queue {job.queue}: {job.name}",
        f"  state         {job.state}",
        f"  created       {fmt.timestamp(job.timestamp)}",
        f"  processed     {fmt.timestamp(job.processed_on)}  (waited {fmt.duration(job.wait_ms)})",
        f"  finished      {fmt.timestamp(job.finished_on)}  (ran {fmt.duration(job.processing_ms)})",
        f"  attempts      {job.attempts_made} made, {job.attempts_started} started, {job.stalled_counter} stalled",
        f"  worker        {job.worker_name or '-'} ({job.language})",
        f"  progress      {_dump(job.progress)}",
    ]
    if job.delay:
        lines.append(f"  delay         {fmt.duration(job.delay)}")
    if job.priority:
        lines.append(f"  priority      {job.priority}")
    if job.parent is not None or job.parent_key:
        lines.append(f"  parent        {job.parent_key or _dump(job.parent)}")
    if job.repeat_job_key:
        lines.append(f"  scheduler     {job.repeat_job_key}")
    if job.deduplication_id:
        lines.append(f"  dedup id      {job.deduplication_id}")
    lines += ["", "data:", pretty(job.data), "", "options:", pretty(job.opts)]
    if job.returnvalue is not None:
        lines += ["", "return value:", pretty(job.returnvalue)]
    if job.failed_reason:
        lines += ["", f"failed reason: {job.failed_reason}"]
    if job.stacktrace:
        lines += ["", "stacktrace:", *job.stacktrace]
    if job.children.total:
        c = job.children.counts
        lines += [
            "",
            f"children: {c['processed']} processed, {c['unprocessed']} pending, "
            f"{c['failed']} failed, {c['ignored']} ignored",
        ]
        lines += [f"  pending   {k}" for k in job.children.unprocessed]
        lines += [f"  processed {k} -> {_dump(v)}" for k, v in job.children.processed.items()]
        lines += [f"  failed    {k}" for k in job.children.failed]
        lines += [f"  ignored   {k}: {v}" for k, v in job.children.ignored.items()]
    if job.log_count:
        shown = len(job.logs)
        lines += [
            "",
            f"logs ({job.log_count}" + (f", newest {shown} shown" if shown < job.log_count else "") + "):",
            *job.logs,
        ]
    if job.problems:
        lines += ["", "problems in this job's hash:", *(f"  {p}" for p in job.problems)]
    return "\n".join(lines)


def run_job(args: argparse.Namespace) -> int:
    from bullbridge.errors import JobNotFound

    async def body(monitor: Monitor) -> int:
        await monitor.require(args.queue)
        job = await monitor.job(args.queue, args.job_id, log_lines=args.logs)
        if job is None:
            raise JobNotFound(
                f"no job {args.job_id!r} in queue {args.queue!r} (prefix {args.prefix!r}): "
                f"check the id (bullbridge stats {args.queue} shows what the queue holds)"
            )
        if args.json:
            emit_json(to_json(job))
        else:
            emit(render_job(job))
        return 0

    return _run(args, body)


# --- actions ---------------------------------------------------------------------------


def confirm(question: str, assume_yes: bool) -> bool:
    """Ask on the terminal; without one, only ``--yes`` proceeds."""
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        print(
            f"bullbridge: {printable(question, single_line=True)} - refusing without a terminal; pass --yes to proceed",
            file=sys.stderr,
        )
        return False
    try:
        answer = input(f"{printable(question, single_line=True)} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


async def describe_action(monitor: Monitor, args: argparse.Namespace) -> str:
    """What the action is about to do, with the numbers involved."""
    from bullbridge.monitor import format as fmt

    q = args.queue
    name = args.action
    if name in ("retry-job", "promote-job", "remove-job"):
        verb = {"retry-job": "retry", "promote-job": "promote", "remove-job": "remove"}[name]
        return f"{verb} job {args.job_id} of queue {q!r}?"
    counts = await monitor.counts(q)
    if name == "retry":
        return f"move {counts[args.state]:,} {args.state} jobs of queue {q!r} back to wait?"
    if name == "promote":
        return f"run {counts['delayed']:,} delayed jobs of queue {q!r} now?"
    if name == "clean":
        return (
            f"delete {args.state} jobs older than {fmt.duration(args.age)} from queue {q!r} "
            f"({counts[args.state]:,} {args.state} now" + (f", at most {args.limit:,}" if args.limit else "") + ")?"
        )
    if name == "pause":
        return f"pause queue {q!r} for every worker ({counts['active']:,} active jobs will finish)?"
    if name == "resume":
        return f"resume queue {q!r}?"
    if name == "drain":
        waiting = counts["waiting"] + counts["prioritized"]
        extra = f" and {counts['delayed']:,} delayed" if args.delayed else ""
        return f"delete {waiting:,} waiting{extra} jobs of queue {q!r}?"
    raise ValueError(f"unknown action {name}")


def run_action(args: argparse.Namespace) -> int:
    async def body(monitor: Monitor) -> int:
        await monitor.require(args.queue)
        question = await describe_action(monitor, args)
        if not confirm(question, args.yes):
            return 2
        actions = monitor.actions(args.queue)
        name = args.action
        if name == "retry":
            result = await actions.retry(args.state)
        elif name == "promote":
            result = await actions.promote()
        elif name == "clean":
            result = await actions.clean(args.state, grace_ms=args.age, limit=args.limit)
        elif name == "pause":
            result = await actions.pause()
        elif name == "resume":
            result = await actions.resume()
        elif name == "drain":
            result = await actions.drain(delayed=args.delayed)
        elif name == "retry-job":
            result = await actions.retry_job(args.job_id)
        elif name == "promote-job":
            result = await actions.promote_job(args.job_id)
        else:
            result = await actions.remove_job(args.job_id)
        if args.json:
            emit(_dump(to_json(result)))
        elif name in ("pause", "resume"):
            emit(f"queue {args.queue!r} {name}d")
        else:
            emit(f"{name}: {result.count:,} job(s) on queue {args.queue!r}")
        return 0

    return _run(args, body)


# --- migrate report --------------------------------------------------------------------


def render_report(report: MigrationReport) -> str:
    from bullbridge.monitor import format as fmt

    period = f"since {fmt.timestamp(report.since_ms)}" if report.since_ms is not None else "newest jobs"
    head = (
        f"migration report for queue {report.queue!r}: {report.jobs:,} finished jobs ({period}; "
        f"{fmt.timestamp(report.oldest_finished_on)} .. {fmt.timestamp(report.newest_finished_on)})"
    )
    if report.truncated:
        head += f"\n  (more jobs finished in that period: only the newest {report.sample_limit:,} were read)"
    if not report.languages:
        return head + "\n  no finished jobs to compare"
    langs = list(report.languages.values())
    rows: list[list[str]] = []

    def row(label: str, cell: Callable[[Any], str]) -> None:
        rows.append([label, *(cell(s) for s in langs)])

    row("jobs", lambda s: fmt.number(s.jobs))
    row("share", lambda s: fmt.percent(s.share))
    row("failed", lambda s: f"{s.failed:,} ({fmt.percent(s.failure_rate)})")
    row("processing p50", lambda s: fmt.duration(s.processing.p50))
    row("processing p95", lambda s: fmt.duration(s.processing.p95))
    row("processing p99", lambda s: fmt.duration(s.processing.p99))
    row("wait p50", lambda s: fmt.duration(s.wait.p50))
    row("wait p95", lambda s: fmt.duration(s.wait.p95))
    row("retried (attempts > 1)", lambda s: f"{s.retried:,} ({fmt.percent(s.retry_rate)})")
    row("workers connected now", lambda s: fmt.number(report.live_workers.get(s.language, 0)))
    row("busiest workers", lambda s: ", ".join(f"{n or '(unnamed)'}: {c:,}" for n, c in list(s.workers.items())[:3]))
    out = [head, "", fmt.table(["", *(s.language for s in langs)], rows, [False] + [True] * len(langs))]
    comparison = report.comparison()
    if comparison is not None:

        def ratio(value: float | None) -> str:
            return "-" if value is None else f"x{value:.2f}"

        def points(value: float | None) -> str:
            return "-" if value is None else f"{value * 100:+.1f} pt"

        out += [
            "",
            f"python vs node: processing p50 {ratio(comparison.processing_p50_ratio)}, "
            f"p95 {ratio(comparison.processing_p95_ratio)}; "
            f"failure rate {points(comparison.failure_rate_delta)}; "
            f"retries {points(comparison.retry_rate_delta)}",
        ]
    return "\n".join(out)


def run_migrate_report(args: argparse.Namespace) -> int:
    async def body(monitor: Monitor) -> int:
        await monitor.require(args.queue)
        report = await monitor.migration_report(args.queue, since_ms=args.since, sample_size=args.sample)
        if args.json:
            emit_json(to_json(report))
        else:
            emit(render_report(report))
        return 0

    return _run(args, body)

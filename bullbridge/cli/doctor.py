"""``bullbridge doctor``: check a live deployment and print what to fix.

Exit status: 0 when nothing is wrong (only ok/info findings), 1 when the worst
finding is a warning, 2 when there is an error (see :mod:`bullbridge.doctor`).
"""

from __future__ import annotations

import argparse
import asyncio
import os

import click

from bullbridge.cli.build import command, connection_options, option
from bullbridge.cli.output import emit, emit_json
from bullbridge.doctor import ERROR, INFO, OK, WARNING, DoctorReport, DoctorSettings, Finding, diagnose
from bullbridge.jsonapi import to_json

_MARK = {OK: "ok", INFO: "info", WARNING: "WARNING", ERROR: "ERROR"}


def register(root: click.Group) -> None:
    command(
        root,
        "doctor",
        run_doctor,
        [
            *connection_options(
                "Redis URL (default: BULLBRIDGE_REDIS_URL / REDIS_URL, else redis://127.0.0.1:6379); "
                "redis+cluster://h:p,h:p and redis+sentinel:// work too"
            ),
            option("--json", is_flag=True, help="print the report as JSON"),
            option(
                "--failed-threshold",
                type=int,
                default=1000,
                metavar="N",
                help="failed jobs per queue above which they count as piling up (default 1000)",
            ),
            option(
                "--skew-threshold",
                type=int,
                default=1000,
                metavar="MS",
                help="clock difference with Redis worth a warning, in ms (default 1000)",
            ),
            option("--verbose", "-v", is_flag=True, help="show ok findings too"),
        ],
        help="check Redis and the queues of a deployment; print what to fix",
        description="Checks Redis (version, maxmemory-policy, persistence, clock skew, cluster hash tags) and "
        "every queue under the prefix (Node version against the compatibility matrix, workers per "
        "language, stalled jobs, failed jobs piling up). Exit status: 0 nothing wrong, 1 warnings, "
        "2 errors; when Redis cannot be used at all, one line and 3 (unreachable), 4 (credentials) "
        "or 5 (an error reply); --json still prints the report.",
    )


def run_doctor(args: argparse.Namespace) -> int:
    """The report (exit 0/1/2 for nothing wrong/warnings/errors); when Redis cannot be used at
    all, that failure alone, in one line (exit 3 unreachable, 4 credentials, 5 an error reply)."""
    url = (
        args.redis
        or os.environ.get("BULLBRIDGE_REDIS_URL")
        or os.environ.get("REDIS_URL")
        or "redis://127.0.0.1:6379/0"
    )
    settings = DoctorSettings(
        prefix=args.prefix, failed_threshold=args.failed_threshold, skew_warning_ms=args.skew_threshold
    )
    report = asyncio.run(diagnose(url, settings))
    if report.connection_error is not None and not args.json:
        raise report.connection_error
    if args.json:
        emit_json(to_json(report))
    else:
        emit(render(report, verbose=args.verbose), end="")
    return report.exit_code


def _line(f: Finding) -> list[str]:
    where = f"[{f.queue}] " if f.queue else ""
    out = [f"  {_MARK[f.severity]:<8} {f.check:<17} {where}{f.message}"]
    if f.fix and f.severity in (WARNING, ERROR):
        out.append(f"  {'':<8} {'':<17} fix: {f.fix}")
    return out


def render(report: DoctorReport, *, verbose: bool = False) -> str:
    lines = [
        f"bullbridge doctor: {report.target}, prefix {report.prefix!r}"
        + (f", {len(report.nodes)} cluster masters" if len(report.nodes) > 1 else "")
    ]
    server = [f for f in report.findings if f.queue is None]
    queued = [f for f in report.findings if f.queue is not None]
    lines.append("server:")
    for f in server:
        if verbose or f.severity != OK:
            lines.extend(_line(f))
    if queued:
        lines.append("queues:")
        for f in sorted(queued, key=lambda f: (str(f.queue), -["ok", "info", "warning", "error"].index(f.severity))):
            if verbose or f.severity != OK:
                lines.extend(_line(f))
    errors, warnings = report.count(ERROR), report.count(WARNING)
    verdict = "nothing wrong" if not errors and not warnings else f"{errors} error(s), {warnings} warning(s)"
    lines.append(f"{verdict} (exit {report.exit_code})")
    return "\n".join(lines) + "\n"

"""``bullbridge schedule``: preview cron patterns, list and sync job schedulers.

* ``preview PATTERN [--tz ZONE] [-n N] [--from ISO] [--json]`` - the next N
  fire times as a BullMQ scheduler produces them (Node's cron-parser rules,
  DST included), ISO-8601 UTC, one per line (``--json``: a list);
* ``list --redis URL [--prefix P] [--json] [QUEUE...]`` - the schedulers in
  Redis, made by either language, with their next run and owner (every queue
  that has any when none is named);
* ``sync MODULE:ATTR|FILE.toml --redis URL [--adopt] [--json]`` - make Redis
  hold the declared schedules (exit status 1 when some id is taken by a
  scheduler the declaration does not own).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Any

import click

from bullbridge.cli.build import argument, command, group, option
from bullbridge.cli.output import emit, emit_json, emit_table
from bullbridge.clock import datetime_ms, now_ms
from bullbridge.codec import js_date
from bullbridge.jsonapi import to_json
from bullbridge.monitor.discovery import discover_queues, require_queue
from bullbridge.monitor.format import schedule_rule
from bullbridge.redact import printable


def register(root: click.Group) -> None:
    schedule = group(root, "schedule", help="preview cron patterns; list and sync BullMQ job schedulers")
    command(
        schedule,
        "preview",
        run_preview,
        [
            argument("pattern"),
            option("--tz", default=None, help="IANA time zone (default UTC)"),
            option("-n", "n", type=int, default=10, help="how many fire times (default 10)"),
            option(
                "--from",
                "start",
                default=None,
                help="ISO-8601 instant to start after (default now; without an offset it is UTC)",
            ),
            option("--json", is_flag=True, help="print a JSON list"),
        ],
        help="next fire times of a cron pattern, as Node BullMQ computes them",
        description="The next fire times of PATTERN (5 fields, or 6 with seconds first; @daily-style "
        "macros) as Node BullMQ computes them, ISO-8601 UTC.",
    )
    command(
        schedule,
        "list",
        run_list,
        [
            argument("queues", nargs=-1, metavar="[QUEUE]..."),
            option("--redis", metavar="URL", help="Redis URL (default: BULLBRIDGE_REDIS_URL)"),
            option("--prefix", default="bull", help="BullMQ key prefix (default bull)"),
            option("--json", is_flag=True, help="print JSON"),
        ],
        help="job schedulers in Redis, from either language",
    )
    command(
        schedule,
        "sync",
        run_sync,
        [
            argument("spec", metavar="MODULE:ATTR"),
            option("--redis", metavar="URL", help="Redis URL (default: BULLBRIDGE_REDIS_URL)"),
            option(
                "--adopt",
                is_flag=True,
                help="take over declared ids that exist but are not owned by this declaration",
            ),
            option("--json", is_flag=True, help="print the report as JSON"),
        ],
        help="upsert declared schedules; remove the ones no longer declared",
        description="Make Redis hold the schedules of MODULE:ATTR (a Declaration, or a list of Schedule) "
        "or of a .toml file; exit status 1 when some id is taken by a scheduler the declaration does not own.",
    )


def _fail(message: str) -> int:
    print(f"bullbridge schedule: {printable(message, single_line=True)}", file=sys.stderr)
    return 2


def _parse_instant(text: str) -> int:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return datetime_ms(value)


def _iso(ms: int) -> str:
    return js_date(datetime.fromtimestamp(ms / 1000, UTC))


# --- preview ---------------------------------------------------------------------------------


def run_preview(args: argparse.Namespace) -> int:
    from bullbridge.scheduler import InvalidSchedule, Repeat, fire_sequence
    from bullbridge.scheduler.cron import validate

    if args.n < 1:
        return _fail("-n must be at least 1")
    try:
        validate(args.pattern, args.tz)
        start = _parse_instant(args.start) if args.start else now_ms()
    except InvalidSchedule as exc:
        return _fail(str(exc))
    except ValueError as exc:
        return _fail(f"--from: {exc}")
    times = fire_sequence(Repeat(pattern=args.pattern, tz=args.tz), created_at=start, count=args.n)
    stamps = [_iso(t) for t in times]
    if args.json:
        print(json.dumps(stamps))
    else:
        for stamp in stamps:
            print(stamp)
    return 0


# --- list -----------------------------------------------------------------------------------


async def _list(args: argparse.Namespace) -> list[dict[str, Any]]:
    from bullbridge.connection import connect
    from bullbridge.keys import QueueKeys
    from bullbridge.scheduler import read_scheduler_page

    connector = connect(args.redis)
    client = connector.fast("bullbridge:schedule-list")
    try:
        for queue in args.queues:
            await require_queue(client, QueueKeys(queue, args.prefix))
        queues = args.queues or await discover_queues(client, args.prefix, markers=("repeat",))
        rows: list[dict[str, Any]] = []
        for queue in queues:
            page = await read_scheduler_page(client, QueueKeys(queue, args.prefix), 0, None)  # by next run
            rows.extend(to_json(page.schedulers))
        return rows
    finally:
        await connector.close()


def run_list(args: argparse.Namespace) -> int:
    rows = asyncio.run(_list(args))
    for row in rows:
        row["nextIso"] = _iso(row["next"]) if row["next"] is not None else None
    if args.json:
        emit_json(rows)
        return 0
    header = ("QUEUE", "ID", "NAME", "SCHEDULE", "TZ", "NEXT (UTC)", "RUNS", "OWNER")
    table: list[tuple[str, ...]] = []
    for row in rows:
        if row["legacy"]:
            when = "legacy repeatable"
        else:
            when = schedule_rule(row["pattern"], row["every"])
        runs = f"{row['iterationCount'] or 0}" + (f"/{row['limit']}" if row["limit"] else "")
        table.append(
            (
                row["queue"],
                row["id"],
                row["name"] or "",
                when,
                row["tz"] or "",
                row["nextIso"] or "",
                runs,
                row["owner"] or "-",
            )
        )
    if not table:
        emit("no job schedulers")
        return 0
    emit_table(header, table)
    return 0


# --- sync -----------------------------------------------------------------------------------


def run_sync(args: argparse.Namespace) -> int:
    from bullbridge.runner import load_target
    from bullbridge.scheduler import InvalidSchedule, load_declaration, sync

    module, sep, attr = args.spec.partition(":")
    if sep and module and attr and not args.spec.endswith(".toml"):
        load_target(f"{module}:{attr.split('.')[0]}")  # the user's module: its errors are theirs (exit 7)
    try:
        declaration = load_declaration(args.spec)
    except InvalidSchedule as exc:
        return _fail(str(exc))
    report = asyncio.run(sync(declaration, args.redis, adopt=args.adopt))
    if args.json:
        emit_json(to_json(report))
    else:
        lines = report.lines()
        emit(f"declaration {report.declaration}: " + (f"{len(lines)} scheduler(s)" if lines else "nothing declared"))
        for line in lines:
            emit(f"  {line}")
    return 1 if report.conflicts else 0

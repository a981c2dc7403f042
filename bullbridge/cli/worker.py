"""``bullbridge worker MODULE:ATTR`` and ``bullbridge check``.

``MODULE:ATTR`` names a :class:`~bullbridge.manager.WorkerManager`, a
:class:`~bullbridge.worker.Worker`, a list of workers, or a (sync or async)
function returning one of those. Settings come from the command line, then
``BULLBRIDGE_*`` environment variables, then defaults.
"""

from __future__ import annotations

import argparse
import os
import sys

import click

from bullbridge import runner
from bullbridge.cli.build import argument, command, option
from bullbridge.cli.output import emit
from bullbridge.errors import ConfigurationError


def register(root: click.Group) -> None:
    command(
        root,
        "worker",
        run_worker,
        [
            argument("target", metavar="[MODULE:ATTR]", required=False),
            option(
                "--django",
                metavar="SETTINGS_MODULE",
                help="run Django tasks from BullMQ queues: django.setup() with these settings, then serve the "
                "queues of every bullbridge.contrib.django.BullMQBackend in TASKS (docs/django.md)",
            ),
            option("--redis", metavar="URL", help="Redis URL (sets BULLBRIDGE_REDIS_URL for the module)"),
            option("--concurrency", type=int, help="override every worker's concurrency"),
            option("--burst", is_flag=True, help="process what is queued, then exit"),
            option(
                "--allow-failures",
                is_flag=True,
                help="with --burst: exit 0 even when jobs failed for good (default: exit 1 then)",
            ),
            option("--health-port", type=int, help="serve /livez, /readyz, /health on this port"),
            option(
                "--health-host",
                help="address the health endpoint binds (default 127.0.0.1; 0.0.0.0 for Kubernetes probes)",
            ),
            option("--drain-timeout", type=float, help="seconds active jobs get after a signal (default 25)"),
            option("--name", help="this process's name in health reports"),
            option(
                "--processes",
                type=int,
                default=1,
                help="run N worker processes under a supervisor (CPU-bound handlers)",
            ),
        ],
        help="run the workers defined at MODULE:ATTR until SIGTERM/SIGINT",
        description="Runs the workers of MODULE:ATTR (a WorkerManager, Worker(s), or a factory of them) and "
        "logs at INFO (with --django and no MODULE:ATTR: the Django task worker): a start line (queues, "
        "concurrency, handlers, Redis URL with the password masked, versions), every retry at INFO, "
        "every job that failed for good at WARNING, and a summary on exit. "
        "Exit status: 0 clean; 1 jobs had to be handed back, or (--burst) jobs failed for good; 2-8 see "
        "bullbridge --help.",
    )
    command(
        root,
        "check",
        run_check,
        [
            option("--redis", metavar="URL", help="Redis URL (default BULLBRIDGE_REDIS_URL)"),
            option("--name", help="check this process only (its --name)"),
            option("--prefix", default="bull", help="BullMQ key prefix (default: bull)"),
            option("--max-age", type=float, default=30.0, help="seconds after which a heartbeat is stale"),
        ],
        help="exit non-zero unless the worker process(es) report healthy",
        description="Reads the workers' heartbeats in Redis. Exit status: 0 healthy, 1 missing or stale, "
        "3 Redis unreachable, 4 Redis refused the credentials.",
    )


def run_worker(args: argparse.Namespace) -> int:
    if args.redis:
        from bullbridge.connection import ConnectionSettings

        ConnectionSettings.from_url(args.redis)  # a malformed URL fails here, in one line
        os.environ["BULLBRIDGE_REDIS_URL"] = args.redis
    if not args.target and not args.django:
        raise ConfigurationError("MODULE:ATTR is missing (e.g. myapp.workers:manager), or give --django SETTINGS")
    if args.processes < 1:
        raise ConfigurationError(f"--processes must be >= 1, got {args.processes}")
    if args.processes > 1:
        from bullbridge.supervisor import supervise

        return supervise(args.argv, args.processes, args.name, args.health_port)
    target = runner.load_target(_django_target(args) if args.django else str(args.target))
    code = runner.run_worker(
        target,
        concurrency=args.concurrency,
        burst=args.burst or None,
        burst_allow_failures=args.allow_failures or None,
        health_port=args.health_port,
        health_host=args.health_host,
        drain_timeout=args.drain_timeout,
        name=args.name,
    )
    return runner.watch_exit(code)  # threads a handler left running cannot hold the process


def _django_target(args: argparse.Namespace) -> str:
    """Set Django up (before the target is imported: it may import models), then the target."""
    from bullbridge.contrib.django.worker import setup

    if os.getcwd() not in sys.path:  # the settings module is the project's, as for manage.py
        sys.path.insert(0, os.getcwd())
    setup(args.django)
    return str(args.target or "bullbridge.contrib.django.worker:worker_manager")


def run_check(args: argparse.Namespace) -> int:
    from bullbridge.connection import connect
    from bullbridge.health import check

    async def main() -> int:
        connector = connect(args.redis)
        try:
            healthy, reports = await check(connector, name=args.name, prefix=args.prefix, max_age=args.max_age)
        finally:
            await connector.close()
        if not reports:
            emit("no worker heartbeat found" + (f" for {args.name!r}" if args.name else ""))
        for r in reports:
            emit(
                f"{r.name}: {r.state}, heartbeat {r.age:.1f} s ago, queues {', '.join(r.queues)}, "
                f"{r.active} active, {r.completed} completed, {r.failed} failed"
            )
        return 0 if healthy else 1

    return runner.run(main())

"""``bullbridge interop check``: bullbridge's conformance scenarios against your Redis and Node BullMQ."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

import click

from bullbridge.cli.build import command, group, option
from bullbridge.cli.output import emit, emit_json
from bullbridge.errors import ConfigurationError
from bullbridge.redact import printable


def register(root: click.Group) -> None:
    interop = group(root, "interop", help="check that your Node BullMQ and bullbridge agree (conformance scenarios)")
    command(
        interop,
        "check",
        run_check,
        [
            option(
                "--redis",
                metavar="URL",
                help="the Redis to use (default: $BULLBRIDGE_REDIS_URL / $REDIS_URL, else a private "
                "redis-server started for the run)",
            ),
            option(
                "--node-modules",
                metavar="DIR",
                help="your Node project (or its node_modules) whose bullmq to check (default: "
                "$BULLBRIDGE_NODE_MODULES, $NODE_PATH, else the nearest node_modules above the "
                "current folder)",
            ),
            option(
                "--bullmq",
                metavar="VERSION",
                help="check this npm bullmq version instead (installed once with npm into ~/.cache/bullbridge/node)",
            ),
            option(
                "--only",
                multiple=True,
                metavar="NAME",
                help="run only this scenario (a name like 'flow', an id like 'flow[N->P]', or a group "
                "like 'options'); repeatable",
            ),
            option(
                "--concurrency",
                type=int,
                default=1,
                metavar="N",
                help="scenarios run at once (default 1; more is faster, timing checks get noisier)",
            ),
            option(
                "--timeout", type=float, default=30.0, metavar="SECONDS", help="limit of each scenario (default 30)"
            ),
            option("--slow", is_flag=True, help="also run the slow scenarios (10,000 jobs each way: ~10 s more)"),
            option("--json", is_flag=True, help="print the report as JSON instead of a table"),
            option("--list", is_flag=True, help="list the scenarios and exit"),
        ],
        help="run the conformance scenarios both ways and print a pass/fail table",
        description="Run bullbridge's interop scenarios (every job option both ways, events, flows, schedulers, "
        "limits, stalled recovery) against a Redis and the Node bullmq your project installs. "
        "Everything is written under a key prefix of its own (bbcheck-...) and deleted afterwards, "
        "so a shared Redis is safe. Exit status: 0 all passed, 1 a scenario failed, 2 bad arguments "
        "(an unknown scenario, a --node-modules without bullmq, --node-modules with --bullmq), 3/4 Redis "
        "unreachable or refusing the credentials, 8 Node.js or npm bullmq missing.",
    )


def _fail(message: str) -> int:
    print(f"bullbridge interop check: {printable(message, single_line=True)}", file=sys.stderr)
    return 2


def _node_modules(args: argparse.Namespace) -> Path | None:
    from bullbridge.testing.npm import ENV_NODE_MODULES, find_node_modules, install_bullmq, resolve_node_modules

    if args.bullmq and args.node_modules:
        raise ConfigurationError("--node-modules and --bullmq name two Node bullmq: give one")
    if args.bullmq:
        major = args.bullmq.split(".")[0]
        # BullMQ 6 expects ioredis installed beside it (`new Queue()` throws otherwise).
        return install_bullmq(args.bullmq, extra=("ioredis@5",) if major.isdigit() and int(major) >= 6 else ())
    if args.node_modules:
        return resolve_node_modules(args.node_modules)
    if os.environ.get(ENV_NODE_MODULES):
        return resolve_node_modules(os.environ[ENV_NODE_MODULES])
    if os.environ.get("NODE_PATH"):
        return None
    return find_node_modules(Path.cwd())


def run_check(args: argparse.Namespace) -> int:
    from bullbridge.conformance import SCENARIOS, check, select
    from bullbridge.connection import redis_url_from_env
    from bullbridge.errors import BullbridgeError
    from bullbridge.jsonapi import to_json
    from bullbridge.testing.redis_server import PrivateRedis

    try:
        chosen = select(args.only, slow=args.slow) if args.only else list(SCENARIOS)
        if args.list:
            for s in chosen:
                emit(f"{s.id:<32} {s.group:<11} {s.title}")
            return 0
        node_modules = _node_modules(args)
    except (ValueError, BullbridgeError) as exc:
        return _fail(str(exc))
    if logging.getLogger().getEffectiveLevel() >= logging.WARNING:
        # The scenarios kill and stall workers on purpose: their warnings are expected noise.
        for name in ("bullbridge.worker", "bullbridge.events", "asyncio"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    url = args.redis or redis_url_from_env()
    server = None
    try:
        if url is None:
            server = PrivateRedis().start()
            url = server.url
        if not args.json:
            where = f"bullmq from {node_modules}" if node_modules else "the bullmq Node resolves"
            count = len(select(args.only, slow=args.slow))
            print(f"running {count} scenarios against {where}...", file=sys.stderr, flush=True)
        report = asyncio.run(
            check(
                url,
                node_modules=node_modules,
                only=args.only or None,
                slow=args.slow,
                concurrency=args.concurrency,
                timeout=args.timeout,
            )
        )
    finally:
        if server is not None:
            server.stop()
    if args.json:
        emit_json(to_json(report))
    else:
        emit(report.render())
    return 0 if report.ok else 1

"""``bullbridge metrics`` (Prometheus exporter) and ``bullbridge dashboard`` (web UI).

Both bind to 127.0.0.1 by default. The dashboard is read-only unless started
with ``--allow-actions`` and a token (``--token`` or ``BULLBRIDGE_DASHBOARD_TOKEN``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from bullbridge.cli.monitor import connection_options

log = logging.getLogger("bullbridge.monitor.cli")

TOKEN_ENV = "BULLBRIDGE_DASHBOARD_TOKEN"


def register(sub: Any) -> None:
    common = connection_options()

    metrics = sub.add_parser(
        "metrics",
        parents=[common],
        help="serve Prometheus metrics of the queues",
        description="bullmq_job_count / _completed_total / _failed_total as Node exports them, "
        "plus wait and processing histograms and workers per language.",
    )
    metrics.add_argument("queues", nargs="*", metavar="QUEUE", help="queues to export (default: all, by SCAN)")
    metrics.add_argument("--port", type=int, default=9464, help="port (default 9464)")
    metrics.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    metrics.add_argument("--path", default="/metrics", help="URL path (default /metrics)")
    metrics.add_argument(
        "--lookback",
        type=int,
        default=300,
        metavar="SECONDS",
        help="histograms start with the jobs finished this long before startup (default 300)",
    )
    metrics.set_defaults(func=run_metrics)

    dashboard = sub.add_parser(
        "dashboard",
        parents=[common],
        help="serve the web dashboard",
        description="Queues, jobs, schedulers and workers by language. Read-only unless "
        "--allow-actions is given with a token.",
    )
    dashboard.add_argument("queues", nargs="*", metavar="QUEUE", help="queues to show (default: all, by SCAN)")
    dashboard.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    dashboard.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    dashboard.add_argument(
        "--allow-actions", action="store_true", help="enable retry/promote/clean/pause/resume/drain (needs a token)"
    )
    dashboard.add_argument("--token", default=None, help=f"the token actions require (default: ${TOKEN_ENV})")
    dashboard.add_argument("--base-path", default="", help="URL prefix when behind a proxy (e.g. /bull)")
    dashboard.add_argument("--metrics", action="store_true", help="also serve Prometheus metrics at /metrics")
    dashboard.add_argument(
        "--sample",
        type=int,
        default=1000,
        metavar="N",
        help="newest finished jobs the percentiles come from (default 1000)",
    )
    dashboard.set_defaults(func=run_dashboard)


def _missing(module: str) -> int:
    print(f"bullbridge: this command needs {module}: pip install 'bullbridge[monitor]'", file=sys.stderr)
    return 1


def run_metrics(args: argparse.Namespace) -> int:
    try:
        from aiohttp import web

        from bullbridge.monitor import Monitor
        from bullbridge.monitor.prometheus import PrometheusExporter, metrics_app
    except ImportError as exc:
        return _missing(exc.name or "prometheus-client and aiohttp")

    async def make() -> web.Application:
        monitor = Monitor(args.redis, prefix=args.prefix)
        exporter = PrometheusExporter(monitor, args.queues or None, lookback_ms=args.lookback * 1000)
        app = metrics_app(exporter, args.path)

        async def close(app: web.Application) -> None:
            await monitor.close()

        app.on_cleanup.append(close)
        return app

    print(f"bullbridge metrics on http://{args.host}:{args.port}{args.path}", flush=True)
    web.run_app(make(), host=args.host, port=args.port, print=None, access_log=None)
    return 0


def run_dashboard(args: argparse.Namespace) -> int:
    try:
        from aiohttp import web

        from bullbridge.dashboard import create_app
        from bullbridge.monitor import Monitor
    except ImportError as exc:
        return _missing(exc.name or "aiohttp")
    token = args.token or os.environ.get(TOKEN_ENV) or None
    if args.allow_actions and not token:
        print(
            f"bullbridge: --allow-actions needs a token (--token or ${TOKEN_ENV}); refusing to start", file=sys.stderr
        )
        return 2
    if token and not args.allow_actions:
        log.warning("a token was given without --allow-actions: the dashboard stays read-only")

    async def make() -> web.Application:
        monitor = Monitor(args.redis, prefix=args.prefix, sample_size=args.sample)
        app = create_app(
            monitor,
            queues=args.queues or None,
            allow_actions=args.allow_actions,
            token=token if args.allow_actions else None,
            base_path=args.base_path,
        )
        if args.metrics:
            from bullbridge.monitor.prometheus import CONTENT_TYPE, PrometheusExporter

            exporter = PrometheusExporter(monitor, args.queues or None)

            async def metrics(request: web.Request) -> web.Response:
                return web.Response(body=await exporter.render(), headers={"Content-Type": CONTENT_TYPE})

            app.router.add_get(args.base_path.rstrip("/") + "/metrics", metrics)
        return app

    mode = "actions enabled" if args.allow_actions else "read-only"
    print(f"bullbridge dashboard ({mode}) on http://{args.host}:{args.port}{args.base_path or '/'}", flush=True)
    web.run_app(make(), host=args.host, port=args.port, print=None, access_log=None)
    return 0

"""``bullbridge metrics`` (Prometheus exporter) and ``bullbridge dashboard`` (web UI).

Both bind to 127.0.0.1 by default, check Redis (and any named queue) before
they listen, and print their URL only once listening. The dashboard is
read-only unless started with ``--allow-actions`` and a token of at least 16
characters (``BULLBRIDGE_DASHBOARD_TOKEN`` or ``--token-file``: a ``--token``
argument is visible to every user of the machine in ``ps``); it answers only
for loopback ``Host`` names unless ``--allowed-host`` adds others.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bullbridge.cli.build import argument, command, connection_options, option, percentile_sample_option
from bullbridge.errors import BullbridgeError, CannotListen, ConfigurationError, MissingDependency

if TYPE_CHECKING:
    from aiohttp import web

    from bullbridge.monitor import Monitor

log = logging.getLogger("bullbridge.monitor.cli")

TOKEN_ENV = "BULLBRIDGE_DASHBOARD_TOKEN"
_LISTEN_ERRNOS = (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL)


def register(root: click.Group) -> None:
    command(
        root,
        "metrics",
        run_metrics,
        [
            argument("queues", nargs=-1, metavar="[QUEUE]..."),
            *connection_options(),
            option("--port", type=int, default=9464, help="port (default 9464)"),
            option("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)"),
            option("--path", default="/metrics", help="URL path (default /metrics)"),
            option(
                "--lookback",
                type=int,
                default=300,
                metavar="SECONDS",
                help="histograms start with the jobs finished this long before startup (default 300)",
            ),
            option(
                "--max-queues",
                type=int,
                default=100,
                metavar="N",
                help="export at most N discovered queues, the first by name (default 100)",
            ),
        ],
        help="serve Prometheus metrics of the queues",
        description="bullmq_job_count / _completed_total / _failed_total as Node exports them, "
        "plus wait and processing histograms and workers per language. Without QUEUE: all, by SCAN.",
    )
    command(
        root,
        "dashboard",
        run_dashboard,
        [
            argument("queues", nargs=-1, metavar="[QUEUE]..."),
            *connection_options(),
            option("--port", type=int, default=8080, help="port (default 8080)"),
            option("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)"),
            option(
                "--allow-actions", is_flag=True, help="enable retry/promote/clean/pause/resume/drain (needs a token)"
            ),
            option("--token", default=None, help=f"the token actions require (visible in `ps`: prefer ${TOKEN_ENV})"),
            option(
                "--token-file",
                type=click.Path(path_type=Path),
                default=None,
                metavar="PATH",
                help="read the token from PATH",
            ),
            option(
                "--allowed-host",
                multiple=True,
                metavar="NAME",
                help="a Host name the dashboard answers for besides loopback (repeatable; '*' for any)",
            ),
            option("--base-path", default="", help="URL prefix when behind a proxy (e.g. /bull)"),
            option("--metrics", is_flag=True, help="also serve Prometheus metrics at /metrics"),
            percentile_sample_option(),
        ],
        help="serve the web dashboard",
        description="Queues, jobs, schedulers and workers by language (without QUEUE: all, by SCAN). Read-only "
        f"unless --allow-actions is given with a token of 16+ characters (${TOKEN_ENV} or --token-file).",
    )


def _need_aiohttp() -> None:
    try:
        import aiohttp  # noqa: F401
        import prometheus_client  # noqa: F401
    except ImportError as exc:
        raise MissingDependency(
            f"this command needs {exc.name or 'aiohttp'}: pip install 'bullbridge[monitor]'"
        ) from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def preflight(monitor: Monitor, queues: list[str]) -> None:
    """Fail before listening when Redis cannot be used or a named queue does not exist."""
    await monitor.reader.execute("PING")
    await monitor.require(*queues)


def serve(make: Callable[[], Awaitable[web.Application]], host: str, port: int, announce: str) -> int:
    """Run the app until Ctrl-C/SIGTERM; ``announce`` is printed once the socket listens."""
    _need_aiohttp()
    from aiohttp import web

    try:
        web.run_app(make(), host=host, port=port, print=lambda _: print(announce, flush=True), access_log=None)
    except OSError as exc:
        if isinstance(exc, BullbridgeError) or exc.errno not in _LISTEN_ERRNOS:
            raise
        raise CannotListen(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}): choose another --port, or stop what uses it"
        ) from None
    return 0


def run_metrics(args: argparse.Namespace) -> int:
    _need_aiohttp()
    from bullbridge.monitor import Monitor
    from bullbridge.monitor.prometheus import PrometheusExporter, metrics_app

    if args.max_queues < 1:
        raise ConfigurationError(f"--max-queues must be >= 1, got {args.max_queues}")

    async def make() -> web.Application:
        monitor = Monitor(args.redis, prefix=args.prefix)
        try:
            await preflight(monitor, args.queues)
        except BaseException:
            await monitor.close()
            raise
        exporter = PrometheusExporter(
            monitor, args.queues or None, lookback_ms=args.lookback * 1000, max_queues=args.max_queues
        )
        app = metrics_app(exporter, args.path)

        async def close(app: web.Application) -> None:
            await monitor.close()

        app.on_cleanup.append(close)
        return app

    return serve(make, args.host, args.port, f"bullbridge metrics on http://{args.host}:{args.port}{args.path}")


def dashboard_token(args: argparse.Namespace) -> str | None:
    """The token: ``--token-file``, else ``--token`` (with a warning: ``ps`` shows it), else the environment."""
    if args.token_file is not None:
        try:
            text: str = args.token_file.read_text()
            return text.strip() or None
        except OSError as exc:
            raise ConfigurationError(f"cannot read --token-file {args.token_file}: {exc.strerror or exc}") from None
    if args.token is not None:
        log.warning("--token is visible to every user of this machine (ps): prefer $%s or --token-file", TOKEN_ENV)
        return str(args.token)
    return os.environ.get(TOKEN_ENV) or None


def run_dashboard(args: argparse.Namespace) -> int:
    _need_aiohttp()
    from aiohttp import web

    from bullbridge.dashboard import create_app
    from bullbridge.dashboard.plumbing import LOOPBACK_HOSTS, check_token
    from bullbridge.monitor import Monitor

    token = dashboard_token(args)
    if args.allow_actions:
        try:
            token = check_token(token)
        except ValueError as exc:
            raise ConfigurationError(f"--allow-actions: {exc} (--token-file, or ${TOKEN_ENV})") from None
        if not is_loopback(args.host):
            log.warning(
                "actions are enabled on %s, which is not a loopback address: whoever reaches it with the token "
                "can retry, clean and drain queues; serve it behind TLS and an authenticating proxy",
                args.host,
            )
    elif token:
        log.warning("a token was given without --allow-actions: the dashboard stays read-only")
    hosts = [*LOOPBACK_HOSTS, *args.allowed_host]
    if args.host not in ("0.0.0.0", "::", ""):
        hosts.append(args.host)

    async def make() -> web.Application:
        monitor = Monitor(args.redis, prefix=args.prefix, sample_size=args.sample)
        try:
            await preflight(monitor, args.queues)
        except BaseException:
            await monitor.close()
            raise
        app = create_app(
            monitor,
            queues=args.queues or None,
            allow_actions=args.allow_actions,
            token=token if args.allow_actions else None,
            base_path=args.base_path,
            allowed_hosts=hosts,
        )
        if args.metrics:
            from bullbridge.monitor.prometheus import CONTENT_TYPE, PrometheusExporter

            exporter = PrometheusExporter(monitor, args.queues or None)

            async def metrics(request: web.Request) -> web.Response:
                return web.Response(body=await exporter.render(), headers={"Content-Type": CONTENT_TYPE})

            app.router.add_get(args.base_path.rstrip("/") + "/metrics", metrics)
        return app

    mode = "actions enabled" if args.allow_actions else "read-only"
    url = f"http://{args.host}:{args.port}{args.base_path or '/'}"
    return serve(make, args.host, args.port, f"bullbridge dashboard ({mode}) on {url}")

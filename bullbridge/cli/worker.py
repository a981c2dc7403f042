"""``bullbridge worker MODULE:ATTR`` and ``bullbridge check``.

``MODULE:ATTR`` names a :class:`~bullbridge.manager.WorkerManager`, a
:class:`~bullbridge.worker.Worker`, a list of workers, or a (sync or async)
function returning one of those. Settings come from the command line, then
``BULLBRIDGE_*`` environment variables, then defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import os
import sys
from typing import Any

from bullbridge.errors import ConfigurationError


def register(sub: Any) -> None:
    worker = sub.add_parser("worker", help="run the workers defined at MODULE:ATTR until SIGTERM/SIGINT")
    worker.add_argument("target", metavar="MODULE:ATTR", help="a WorkerManager, Worker(s), or a factory of them")
    worker.add_argument("--redis", help="Redis URL (sets BULLBRIDGE_REDIS_URL for the module)")
    worker.add_argument("--concurrency", type=int, help="override every worker's concurrency")
    worker.add_argument("--burst", action="store_true", help="process what is queued, then exit")
    worker.add_argument("--health-port", type=int, help="serve /livez, /readyz, /health on this port")
    worker.add_argument("--drain-timeout", type=float, help="seconds active jobs get after a signal (default 25)")
    worker.add_argument("--name", help="this process's name in health reports")
    worker.add_argument("--processes", type=int, default=1,
                        help="run N worker processes under a supervisor (CPU-bound handlers)")
    worker.set_defaults(func=run_worker)

    chk = sub.add_parser("check", help="exit non-zero unless the worker process(es) report healthy")
    chk.add_argument("--redis", help="Redis URL (default BULLBRIDGE_REDIS_URL)")
    chk.add_argument("--name", help="check this process only (its --name)")
    chk.add_argument("--prefix", default="bull")
    chk.add_argument("--max-age", type=float, default=30.0, help="seconds after which a heartbeat is stale")
    chk.set_defaults(func=run_check)


def load_target(target: str) -> Any:
    """Import ``module:attr`` (or ``module.attr``)."""
    module_name, sep, attr = target.partition(":")
    if not sep:
        module_name, _, attr = target.rpartition(".")
    if not module_name or not attr:
        raise ConfigurationError(f"{target!r} is not MODULE:ATTR")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigurationError(f"module {module_name!r} has no attribute {attr!r}") from None


async def build_manager(target: Any, args: argparse.Namespace) -> Any:
    from bullbridge.manager import ManagerSettings, WorkerManager
    from bullbridge.worker import Worker

    if callable(target) and not isinstance(target, (Worker, WorkerManager)):
        target = target()
        if inspect.isawaitable(target):
            target = await target
    overrides = {"burst": args.burst or None, "health_port": args.health_port,
                 "drain_timeout": args.drain_timeout, "name": args.name}
    if isinstance(target, WorkerManager):
        manager = target
        manager.settings = ManagerSettings.from_env(**{
            **{f: getattr(manager.settings, f) for f in manager.settings.__dataclass_fields__},
            **{k: v for k, v in overrides.items() if v is not None}})
    elif isinstance(target, Worker) or (isinstance(target, (list, tuple)) and
                                        all(isinstance(w, Worker) for w in target)):
        workers = [target] if isinstance(target, Worker) else list(target)
        manager = WorkerManager(workers, connection=workers[0]._connector,
                                settings=ManagerSettings.from_env(**overrides))
    else:
        raise ConfigurationError(f"{args.target} is a {type(target).__name__}: expected a WorkerManager, "
                                 "a Worker, a list of Workers, or a function returning one")
    if args.concurrency:
        manager.set_concurrency(args.concurrency)
    return manager


def run_worker(args: argparse.Namespace) -> int:
    if args.redis:
        os.environ["BULLBRIDGE_REDIS_URL"] = args.redis
    if args.processes < 1:
        print("bullbridge worker: --processes must be >= 1", file=sys.stderr)
        return 2
    if args.processes > 1:
        from bullbridge.supervisor import supervise

        return supervise(args.argv, args.processes, args.name, args.health_port)
    try:
        target = load_target(args.target)
    except (ConfigurationError, ImportError) as exc:
        print(f"bullbridge worker: {exc}", file=sys.stderr)
        return 2

    async def main() -> int:
        manager = await build_manager(target, args)
        return int(await manager.run())

    try:
        return _run(main())
    except ConfigurationError as exc:
        print(f"bullbridge worker: {exc}", file=sys.stderr)
        return 2


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
            print("no worker heartbeat found" + (f" for {args.name!r}" if args.name else ""))
        for r in reports:
            print(f"{r.name}: {r.state}, heartbeat {r.age:.1f} s ago, queues {', '.join(r.queues)}, "
                  f"{r.active} active, {r.completed} completed, {r.failed} failed")
        return 0 if healthy else 1

    return _run(main())


def _run(coro: Any) -> int:
    """asyncio.run on uvloop when installed; closes cleanly (no 'Event loop is closed' noise)."""
    try:
        import uvloop

        return int(uvloop.run(coro))
    except ImportError:  # pragma: no cover - uvloop is in the lock
        return int(asyncio.run(coro))

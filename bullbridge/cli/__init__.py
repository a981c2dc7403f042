"""The ``bullbridge`` command.

Each subcommand lives in its own module under ``bullbridge.cli`` with two
functions: ``register(subparsers)`` adds its parser(s) and sets
``func=<callable(args) -> int>`` as a default. Adding a command is one module
plus one name in ``COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

COMMAND_MODULES = ["worker", "demo", "monitor", "monitor_web", "schedule", "doctor", "interop"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bullbridge", description="Python on BullMQ queues shared with Node.js")
    parser.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING (default), ERROR")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"bullbridge.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(argv) if argv is not None else sys.argv[1:]
    args = build_parser().parse_args(raw)
    args.argv = raw  # for commands that re-run themselves (worker --processes)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())

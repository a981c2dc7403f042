"""The ``bullbridge`` command. Subcommands live in their own modules."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bullbridge", description="Python on BullMQ queues shared with Node.js")
    parser.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING (default), ERROR")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run Node and Python exchanging jobs on a private Redis")
    demo.add_argument("--jobs", type=int, default=200, help="jobs in each direction (default 200)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "demo":
        from bullbridge.demo import main as demo_main

        return demo_main(args.jobs)
    return 2


if __name__ == "__main__":
    sys.exit(main())

"""``bullbridge demo``."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "demo", help="run Node and Python exchanging jobs on a private Redis")
    parser.add_argument("--jobs", type=int, default=200, help="jobs in each direction (default 200)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bullbridge.demo import main

    return main(args.jobs)

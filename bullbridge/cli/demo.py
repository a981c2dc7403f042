"""``bullbridge demo`` (the seed's background-jobs layer) and ``bullbridge demo --quick``."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "demo", help="run the reference background-jobs layer, Node and Python side by side, on a private Redis",
        description="Run the reference app (examples/layer15 + interop/layer15): Python and Node workers on five "
                    "queues, the email queue served by both, a Node producer at ~2,000 jobs/min, a live view, "
                    "then the seed's targets measured from the jobs and the email queue's migration report. "
                    "Uses BULLBRIDGE_REDIS_URL when set (under a prefix of its own, deleted afterwards).")
    parser.add_argument("--quick", action="store_true",
                        help="the short demo instead: jobs exchanged both ways (Node->Python, Python->Node)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the producer runs (default 60)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="producer load: 1 = ~2,000 jobs/min (default 1)")
    parser.add_argument("--jobs", type=int, default=200, help="--quick: jobs in each direction (default 200)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bullbridge.demo import LayerParams, main

    return main(args.jobs, quick=args.quick, params=LayerParams(seconds=args.seconds, scale=args.scale))

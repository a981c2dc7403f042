"""Time to first job (``python -m bench --suites startup``): what ``bullbridge worker`` runs.

``bullbridge worker bench.startup_app:make --burst``, started cold by the harness with
one job waiting on ``$BENCH_QUEUE``: the handler returns the CLOCK_MONOTONIC time (us)
at which it first ran, so the harness reads "process started -> first handler call"
from the job's return value.
"""

from __future__ import annotations

import os
import time
from typing import Any

from bullbridge import Worker


async def first(job: Any) -> int:
    return time.monotonic_ns() // 1000


def make() -> Worker:
    return Worker(os.environ["BENCH_QUEUE"], {"noop": first}, concurrency=1)

"""A CPU-bound worker for ``bench/processes.py``: each job burns ``BENCH_CPU_MS`` of pure Python."""

from __future__ import annotations

import os
import time
from typing import Any

from bullbridge import Worker


def burn(ms: float) -> int:
    end = time.process_time() + ms / 1000
    n = 0
    while time.process_time() < end:
        n += 1
    return n


def make() -> Worker:
    ms = float(os.environ.get("BENCH_CPU_MS", "4"))

    async def work(job: Any) -> int:
        return burn(ms)  # on purpose on the loop: one process = one core

    return Worker(os.environ["BENCH_QUEUE"], {"work": work}, concurrency=4, loop_block_warning=0)


#: The CPU-bound workload of ``python -m bench --suites cpu``: 10 ms of pure Python a job.
CPU_JOB_MS = 10.0


def burn_job(job: Any) -> None:
    """A ``run_in="process"`` handler: 10 ms of pure-Python work in the worker's process pool."""
    burn(CPU_JOB_MS)

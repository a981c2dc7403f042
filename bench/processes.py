"""Multi-process scaling for CPU-bound handlers: ``bullbridge worker --processes N``.

    python -m bench.processes [--jobs 800] [--cpu-ms 4]

Drains the same queue of CPU-bound jobs (each burns ``--cpu-ms`` of pure
Python on the event loop) with 1 and with 2 worker processes (``--burst``),
and prints jobs/s for each.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bullbridge import Queue  # noqa: E402
from bullbridge.testing.redis_server import PrivateRedis  # noqa: E402


async def fill(url: str, queue: str, jobs: int) -> None:
    async with Queue(queue, connection=url) as producer:
        for start in range(0, jobs, 500):
            await producer.add_bulk([("work", {"i": i}) for i in range(start, min(start + 500, jobs))])


def drain(url: str, queue: str, processes: int, cpu_ms: float) -> float:
    env = dict(os.environ, BULLBRIDGE_REDIS_URL=url, BENCH_QUEUE=queue, BENCH_CPU_MS=str(cpu_ms), PYTHONPATH=str(ROOT))
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "bullbridge", "worker", "bench.cpu_app:make", "--burst", "--processes", str(processes)],
        cwd=str(ROOT),
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=800)
    parser.add_argument("--cpu-ms", type=float, default=4.0)
    args = parser.parse_args()
    with PrivateRedis() as server:
        for processes in (1, 2):
            queue = f"cpu-{processes}"
            asyncio.run(fill(server.url, queue, args.jobs))
            wall = drain(server.url, queue, processes, args.cpu_ms)
            print(
                f"--processes {processes}: {args.jobs} jobs of {args.cpu_ms:g} ms CPU in {wall:.2f} s "
                f"= {args.jobs / wall:,.0f} jobs/s (incl. start-up)"
            )


if __name__ == "__main__":
    main()

"""The layer's monitor: failure rate and wait time per queue, checked against the targets.

    python -m examples.layer15.monitor             # every 10 s until Ctrl-C

(``bullbridge stats --watch`` shows the same figures for any queue.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bullbridge.monitor import Monitor, QueueStats
from bullbridge.monitor import format as fmt
from examples.layer15.config import EMAIL, PREFIX, QUEUES, REDIS_URL

log = logging.getLogger("layer15.monitor")

MAX_FAILURE_RATE = 0.01
MAX_WAIT_MS = 100
#: Rate-limited by design: its jobs wait for the limiter, not for a worker.
RATE_LIMITED = {EMAIL}


def alerts(stats: QueueStats) -> list[str]:
    """The targets one queue misses (over its newest 1,000 finished jobs)."""
    out = []
    if stats.failure_rate is not None and stats.failure_rate > MAX_FAILURE_RATE:
        out.append(f"{stats.queue}: failure rate {fmt.percent(stats.failure_rate)} > {fmt.percent(MAX_FAILURE_RATE)}")
    if stats.queue not in RATE_LIMITED and stats.wait.mean is not None and stats.wait.mean > MAX_WAIT_MS:
        out.append(f"{stats.queue}: average wait {fmt.duration(stats.wait.mean)} > {MAX_WAIT_MS} ms")
    return out


def render(all_stats: list[QueueStats]) -> str:
    rows = [
        [
            s.queue,
            fmt.number(s.counts["waiting"] + s.counts["prioritized"]),
            fmt.number(s.counts["active"]),
            fmt.number(s.counts["delayed"]),
            fmt.number(s.counts["completed"]),
            fmt.number(s.counts["failed"]),
            fmt.percent(s.failure_rate, 2),
            fmt.duration(s.wait.mean),
            fmt.workers(s.workers),
        ]
        for s in all_stats
    ]
    return fmt.table(
        ["queue", "waiting", "active", "delayed", "completed", "failed", "failure rate", "avg wait", "workers"],
        rows,
        [False, True, True, True, True, True, True, True, False],
    )


async def main(interval: float = 10.0) -> None:
    async with Monitor(REDIS_URL, prefix=PREFIX) as monitor:
        while True:
            all_stats = await monitor.stats(QUEUES)
            print(render(all_stats), end="\n\n", flush=True)
            for line in (a for s in all_stats for a in alerts(s)):
                log.warning("target missed: %s", line)
            await asyncio.sleep(interval)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())

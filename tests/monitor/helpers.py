"""Write BullMQ job hashes with exact times, and small waiting helpers.

Injected jobs are laid out exactly as BullMQ's scripts lay them out (the hash
``<prefix>:<queue>:<id>``; ``completed``/``failed`` sorted sets scored by the
finish time; ``wait`` list; ``delayed`` scored ``(timestamp + delay) * 0x1000``),
so the monitor reads them as it reads real ones - and the numbers are known.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from bullbridge.clock import now_ms

__all__ = ["Fake", "eventually", "inject", "now_ms", "run_cli"]


@dataclass(frozen=True)
class Fake:
    """One job to inject."""

    id: str
    state: str
    timestamp: int
    processed_on: int | None = None
    finished_on: int | None = None
    pb: str | None = None
    atm: int = 1
    name: str = "job"
    delay: int = 0
    failed_reason: str | None = None


async def inject(r: Redis, queue: str, jobs: Sequence[Fake], prefix: str = "bull") -> None:
    pipe = r.pipeline(transaction=False)
    base = f"{prefix}:{queue}:"
    for job in jobs:
        fields: dict[str, Any] = {
            "name": job.name,
            "data": "{}",
            "opts": "{}",
            "timestamp": job.timestamp,
            "delay": job.delay,
            "priority": 0,
            "atm": job.atm,
            "ats": job.atm,
        }
        if job.processed_on is not None:
            fields["processedOn"] = job.processed_on
        if job.finished_on is not None:
            fields["finishedOn"] = job.finished_on
        if job.pb is not None:
            fields["pb"] = job.pb
        if job.state == "failed":
            fields["failedReason"] = job.failed_reason or "boom"
        elif job.state == "completed":
            fields["returnvalue"] = "null"
        pipe.hset(base + job.id, mapping=fields)
        if job.state in ("completed", "failed"):
            assert job.finished_on is not None
            pipe.zadd(base + job.state, {job.id: job.finished_on})
        elif job.state == "waiting":
            pipe.lpush(base + "wait", job.id)
        elif job.state == "delayed":
            pipe.zadd(base + "delayed", {job.id: (job.timestamp + job.delay) * 0x1000})
        elif job.state == "active":
            pipe.lpush(base + "active", job.id)
        else:
            raise ValueError(job.state)
    await pipe.execute()


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy (its value) or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last value {last!r})")


async def run_cli(*args: str, timeout: float = 30.0) -> tuple[int, str, str]:
    """Run ``python -m bullbridge ARGS`` (stdin closed: no terminal), return (status, stdout, stderr)."""
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bullbridge",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()

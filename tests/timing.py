"""Timing in tests: Node baselines measured in the same test, and a log of what was measured.

The rule (tests/README.md, "Timing in tests"): a test that is about bullbridge's
own timers compares bullbridge's lateness with **Node BullMQ's own lateness for
the same thing, measured in the same test at the same moment** (so both see the
same machine load), instead of against an absolute number of milliseconds.

:class:`NodeBaseline` runs a real Node BullMQ worker on a sibling queue
(``<queue>-node``) whose processor returns ``Date.now()``; Node's job timestamps
and ``Date.now()`` are the same wall clock as Python's ``time.time()``.

:func:`record` appends measured values to ``$BULLBRIDGE_TIMING_LOG`` (JSON lines)
when it is set: that is how the bounds in the suite were chosen and re-checked
(``make flakes`` sets it for every run).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from typing import Any

from bullbridge.testing.node import NodeDriver

#: Timer slack allowed over Node's own lateness in the same test: > 3x the largest
#: bullbridge-minus-Node difference measured on this 2-core machine idle, under
#: stress-ng --cpu 2, and with two suites in parallel on top (104 ms: a 200 ms
#: backoff retried 208 ms late while Node's twin was 105 ms late, in a full
#: `make flakes FLAKES_LOAD=cpu` run; tests/README.md has the table), and half of
#: what the port's whole-second rounding costs (>= 700 ms more than Node for delays
#: and backoffs, >= 1.5 s for idle pickups), which its xfail-strict twins must keep catching.
NODE_SLACK_MS = 350.0

#: "Never early": a timer may fire this much before its due time, for the
#: millisecond rounding of job timestamps (Redis/Node store whole ms). Load only
#: makes timers later, so this bound is exact and needs no load margin.
EARLY_MS = 5.0


def now_ms() -> float:
    return time.time() * 1000


def record(test: str, **values: Any) -> None:
    """Append ``values`` measured by ``test`` to ``$BULLBRIDGE_TIMING_LOG`` (if set)."""
    path = os.environ.get("BULLBRIDGE_TIMING_LOG")
    if not path:
        return
    line = json.dumps({"test": test, "at": round(time.time(), 3), "load1": os.getloadavg()[0], **values}, default=str)
    with open(path, "a", encoding="utf-8") as log:
        log.write(line + "\n")


def late_by(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.0f}" for v in values) + "] ms"


def assert_as_punctual_as_node(
    ours: list[float], node: list[float], what: str, slack_ms: float = NODE_SLACK_MS
) -> None:
    """Each of ``ours`` (lateness in ms) is never early and at most Node's worst
    lateness in the same test plus ``slack_ms``."""
    assert all(v >= -EARLY_MS for v in ours), f"{what}: early by more than {EARLY_MS} ms: {late_by(ours)}"
    bound = max(node) + slack_ms
    assert max(ours) <= bound, (
        f"{what}: bullbridge {late_by(ours)} late, Node's own worker {late_by(node)} in the same test; "
        f"allowed: Node's worst + {slack_ms:.0f} ms = {bound:.0f} ms"
    )


class NodeBaseline:
    """A Node BullMQ worker on ``<queue>-node`` that returns ``Date.now()``: Node's
    own lateness for delayed jobs, pickups and backoffs, measured beside ours."""

    def __init__(self, node: NodeDriver, queue: str, *, concurrency: int = 2) -> None:
        self.node = node
        self.queue = f"{queue}-node"
        self.concurrency = concurrency
        self.handle = ""
        self.fail_handle = ""

    async def __aenter__(self) -> NodeBaseline:
        self.handle = await self.node.start_worker(self.queue, "async job => Date.now()", concurrency=self.concurrency)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.handle:
            await self.node.close_worker(self.handle, force=True)
        if self.fail_handle:
            await self.node.close_worker(self.fail_handle, force=True)

    async def warm_up(self) -> None:
        """One job through the worker, so it is past its start-up and idle on its marker."""
        await self.lateness(await self.add())

    async def add(self, delay_ms: int = 0) -> str:
        return await self.node.add(self.queue, "baseline", {}, {"delay": delay_ms} if delay_ms else {})

    async def lateness(self, job_id: str, delay_ms: int = 0, timeout: float = 20.0) -> float:
        """How long after it was due (added + delay) Node's worker started the job, in ms."""
        await self.node.wait_event(
            self.handle, lambda e: e.event == "completed" and str(e["jobId"]) == job_id, timeout=timeout
        )
        job = await self.node.get_job(self.queue, job_id)
        assert job is not None, f"baseline job {job_id} vanished"
        return float(job["returnvalue"]) - (job["timestamp"] + delay_ms)

    async def backoff_lateness(
        self, backoff: Any, attempts: int, expected_gaps: list[int], timeout: float = 20.0
    ) -> list[float]:
        """A Node-added job that always fails on a Node worker: how much later than
        ``expected_gaps`` (ms) each retry started."""
        queue = f"{self.queue}-retry"
        if not self.fail_handle:
            self.fail_handle = await self.node.start_worker(
                queue,
                """async job => {
                const key = 'baseline:' + job.queueName + ':' + job.id;
                (shared[key] ||= []).push(Date.now());
                throw new Error('baseline attempt ' + job.attemptsMade);
            }""",
            )
        job_id = await self.node.add(queue, "baseline-retry", {}, {"attempts": attempts, "backoff": backoff})
        await self.node.wait_event(
            self.fail_handle,
            lambda e: e.event == "failed" and str(e["jobId"]) == job_id and e["attemptsMade"] == attempts,
            timeout=timeout,
        )
        starts = await self.node.call("shared.get", key=f"baseline:{queue}:{job_id}")
        return [b - a - g for (a, b), g in zip(itertools.pairwise(starts), expected_gaps)]


async def concurrently(*aws: Any) -> list[Any]:
    """``asyncio.gather`` under a name that says why: both sides measured in the same moment."""
    return list(await asyncio.gather(*aws))

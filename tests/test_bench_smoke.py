"""The benchmark harness measures and verifies one small run (bench/README.md).

A smoke test of the measuring stick only: ~500 jobs, bullbridge only, a few
seconds. The benchmarks themselves never run in the suite (``make bench``).
"""

from __future__ import annotations

import asyncio
import shutil

import pytest

from bench.harness import Bench, RunResult

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="the bench verifies through Node BullMQ")

JOBS = 500


def test_drain_measurement_is_verified_and_complete() -> None:
    async def measure() -> RunResult:
        async with Bench() as bench:
            return await bench.drain("bullbridge", concurrency=10, jobs=JOBS, timeout=30)

    result = asyncio.run(measure())

    assert result.ok, result.problems
    assert result.verification["ok"] is True
    assert result.verification["counts"]["completed"] == JOBS
    assert result.verification["sampled"] > 0
    assert (result.suite, result.impl, result.case, result.jobs) == ("drain", "bullbridge", "c=10", JOBS)
    for name in (
        "seconds",
        "jobs_per_s",
        "client_cpu_us_per_job",
        "redis_cpu_us_per_job",
        "commands_per_job",
        "scripts_per_job",
        "peak_rss_mb",
    ):
        value = getattr(result, name)
        assert isinstance(value, float) and value > 0, (name, value)
    assert result.scripts_per_job is not None and 1 <= result.scripts_per_job < 2
    assert result.commands.get("evalsha", 0) >= JOBS

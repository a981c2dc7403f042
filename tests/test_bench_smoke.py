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


def test_sync_producer_measurements_are_verified() -> None:
    """The ``sync`` suite's two blocking cases, each read back by Node."""

    async def measure() -> list[RunResult]:
        async with Bench() as bench:
            return [
                await bench.produce("sync", mode=mode, jobs=400, warm=50, threads=4, suite="sync", timeout=30)
                for mode in ("sequential", "threads")
            ]

    sequential, threads = asyncio.run(measure())
    for result in (sequential, threads):
        assert result.ok, result.problems
        assert result.verification["ok"] is True and result.verification["counts"]["waiting"] == 400
        assert result.suite == "sync" and result.impl == "sync" and result.jobs == 400
        assert result.jobs_per_s is not None and result.jobs_per_s > 0
    # One sample per blocking add, one at a time; none for the threads.
    assert len(sequential.latencies_us) == 400 and all(v > 0 for v in sequential.latencies_us)
    assert sequential.latency_ms["p50"] <= sequential.latency_ms["p99"]
    assert threads.latencies_us == []


def test_django_producer_measurement_is_verified() -> None:
    """The ``sync`` suite's Django row: ``@task.enqueue()`` one at a time, read back by Node
    as Django's jobs (prioritized, named by the task's path, data ``{args, kwargs}``)."""

    async def measure() -> RunResult:
        async with Bench() as bench:
            return await bench.produce("django", mode="sequential", jobs=300, warm=30, suite="sync", timeout=30)

    result = asyncio.run(measure())
    assert result.ok, result.problems
    assert result.verification["counts"]["prioritized"] == 300 and result.verification["sampled"] > 0
    assert len(result.latencies_us) == 300 and result.jobs_per_s is not None

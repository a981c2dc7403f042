"""Closing a worker leaves nothing of its process pool for the interpreter's exit to race with.

A process pool the worker only told to shut down (``shutdown(wait=False)``)
goes on tearing itself down in its manager thread while the interpreter exits;
``concurrent.futures``' exit hook then writes to a wakeup pipe that thread is
closing, and prints ``Exception ignored ... OSError: [Errno 9] Bad file
descriptor`` (issue 23). Each run here is a fresh interpreter
(tests/worker/pool_exit.py) that runs process jobs, closes the worker and
exits at once, with that race's window widened. A run is clean when close()
left no pool thread or process behind (the cause, seen in nearly every run
before the fix) and the interpreter printed nothing on its way out (the
symptom).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest

from bullbridge.worker import pools
from bullbridge.worker.pools import process_pool, stop_process_pool
from tests.worker.impls import wait_until

ROOT = Path(__file__).resolve().parents[2]
MODES = ("graceful", "forced", "busy")  # busy: close(force=True) while a job runs in the pool
RUNS = 21
PARALLEL = 2

pytestmark = pytest.mark.timeout(120)


async def run_child(redis_url: str, queue: str, mode: str, marker: Path) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.worker.pool_exit",
        redis_url,
        queue,
        mode,
        str(marker),
        cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 45)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    closed = [json.loads(line) for line in out.decode().splitlines() if line.startswith('{"event": "closed"')]
    return {
        "mode": mode,
        "rc": proc.returncode,
        "stdout": out.decode(),
        "stderr": err.decode(),
        "closed": closed[0] if closed else None,
    }


def problems(run: dict[str, Any]) -> list[str]:
    found = []
    if run["rc"] != 0:
        found.append(f"exit code {run['rc']}")
    if run["stderr"]:
        found.append(f"stderr: {run['stderr'][-1500:]}")
    closed = run["closed"]
    if closed is None:
        found.append(f"never closed; stdout: {run['stdout'][-1500:]}")
    elif closed["threads"] or closed["processes"]:
        found.append(f"left behind by close(): {closed}")
    if "did not stop" in run["stdout"]:
        found.append(f"the pool needed its deadline: {run['stdout'][-1500:]}")
    return found


async def test_closing_a_worker_with_a_process_pool_then_exiting_prints_nothing(
    redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    gate = asyncio.Semaphore(PARALLEL)

    async def one(i: int) -> dict[str, Any]:
        async with gate:
            return await run_child(redis_url, f"{queue_name}-{i}", MODES[i % len(MODES)], tmp_path / f"busy-{i}")

    runs = await asyncio.gather(*(one(i) for i in range(RUNS)))
    failed = [(i, run["mode"], found) for i, run in enumerate(runs) if (found := problems(run))]
    assert not failed, f"{len(failed)}/{RUNS} runs not clean:\n" + "\n".join(map(str, failed))


# -- stop_process_pool itself, in this process ---------------------------------------


def sleep_ignoring_sigterm(seconds: float, marker: str) -> None:  # runs in the pool
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    Path(marker).touch()  # only now is SIGTERM ignored
    time.sleep(seconds)


async def started_pool(fn: Callable[..., Any], *args: Any) -> tuple[ProcessPoolExecutor, asyncio.Future[Any]]:
    """A one-process pool running ``fn(*args)``; returns once the call runs in the pool."""
    pool = process_pool(1)
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(pool, abs, -1) == 1  # the process is up
    running = loop.run_in_executor(pool, fn, *args)
    await wait_until(lambda: any(item.future.running() for item in pool._pending_work_items.values()), timeout=10)
    return pool, running


def gone(processes: list[Any], manager: threading.Thread) -> bool:
    return not manager.is_alive() and all(p.exitcode is not None for p in processes)


async def test_a_forced_stop_terminates_a_running_call_and_returns_once_the_pool_is_gone() -> None:
    pool, running = await started_pool(time.sleep, 30)
    manager, processes = pool._executor_manager_thread, list(pool._processes.values())
    assert await stop_process_pool(pool, kill=True, timeout=5)  # terminated at once: within the deadline
    assert gone(processes, manager)
    assert [p.exitcode for p in processes] == [-signal.SIGTERM]
    with pytest.raises(BrokenProcessPool):
        await running


async def test_a_pool_past_its_deadline_is_terminated_then_killed_with_one_warning_off_the_loop(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(pools, "KILL_GRACE", 0.3)
    marker = tmp_path / "ignoring"
    pool, running = await started_pool(sleep_ignoring_sigterm, 30, str(marker))  # graceful: it would go on 30 s
    # "running" is set once the call is queued to the process; under load the SIGTERM could arrive
    # before the call installed SIG_IGN (seen in full runs). Wait until it did (a failure detector).
    assert await wait_until(marker.exists, timeout=10)
    manager, processes = pool._executor_manager_thread, list(pool._processes.values())
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    try:
        with caplog.at_level(logging.WARNING, logger="bullbridge.worker"):
            assert not await stop_process_pool(pool, kill=False, timeout=0.3)
    finally:
        ticker.cancel()
    took = time.monotonic() - started
    assert 0.3 <= took < 5, took
    assert ticks >= 10, f"the loop ran {ticks} times in {took:.2f} s of waiting for the pool"
    assert gone(processes, manager)
    assert [p.exitcode for p in processes] == [-signal.SIGKILL]  # SIGTERM was ignored
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "did not stop within 0.3 s" in warnings[0], warnings
    with pytest.raises(BrokenProcessPool):
        await running


async def test_an_unused_pool_stops_at_once() -> None:
    assert await stop_process_pool(process_pool(1), kill=False)

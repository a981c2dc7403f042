"""Graceful shutdown with real processes and real signals (docs/port-differences.md#shutdown).

The worker process is ``python -m bullbridge worker tests.apps.sleepy:make``;
every handler run is counted in Redis so "ran exactly once" is checked, not assumed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis.asyncio as redis

from bullbridge import Queue
from bullbridge.testing.node import NodeDriver
from bullbridge.testing.redis_server import PrivateRedis
from tests.timing import record

ROOT = Path(__file__).resolve().parents[1]
NOISE = ("Event loop is closed", "Task was destroyed", "Traceback", "never awaited", "Unclosed")


class WorkerProcess:
    def __init__(
        self,
        url: str,
        queue: str,
        *args: str,
        sleep: float = 0.2,
        concurrency: int = 5,
        shell_background: bool = False,
        app: str = "tests.apps.sleepy:make",
        env: dict[str, str] | None = None,
    ) -> None:
        self.url, self.queue = url, queue
        self.name = f"p-{uuid.uuid4().hex[:6]}"
        self.cmd = [
            sys.executable,
            "-m",
            "bullbridge",
            "--log-level",
            "INFO",
            "worker",
            app,
            "--name",
            self.name,
            *args,
        ]
        self.env = dict(
            os.environ,
            BULLBRIDGE_REDIS_URL=url,
            APP_QUEUE=queue,
            APP_SLEEP=str(sleep),
            APP_CONCURRENCY=str(concurrency),
            PYTHONUNBUFFERED="1",
            **(env or {}),
        )
        self.shell_background = shell_background
        self.proc: asyncio.subprocess.Process | None = None
        self.pid = 0

    async def start(self) -> WorkerProcess:
        if self.shell_background:
            # A non-interactive shell starts background jobs with SIGINT ignored.
            script = " ".join(f"'{c}'" for c in self.cmd) + " 2>worker.err & echo $!; wait"
            self.proc = await asyncio.create_subprocess_exec(
                "bash", "-c", script, cwd=str(self._tmp()), env=self.env, stdout=asyncio.subprocess.PIPE
            )
            assert self.proc.stdout is not None
            self.pid = int((await self.proc.stdout.readline()).decode())
        else:
            self.proc = await asyncio.create_subprocess_exec(
                *self.cmd, cwd=str(ROOT), env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            self.pid = self.proc.pid
        await self.wait_running()
        return self

    def _tmp(self) -> Path:
        path = ROOT / "tests" / "artifacts" / self.name
        path.mkdir(parents=True, exist_ok=True)
        self.env["PYTHONPATH"] = str(ROOT)
        return path

    async def wait_running(self, timeout: float = 15.0) -> None:
        client = redis.from_url(self.url, decode_responses=True)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                raw = await client.get(f"bull:bullbridge:health:{self.name}")
                if raw and json.loads(raw)["state"] == "running":
                    return
                await asyncio.sleep(0.05)
            raise AssertionError(f"worker process {self.name} did not report running: {await self.stderr()}")
        finally:
            await client.aclose()

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    async def wait(self, timeout: float) -> int:
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        return code

    async def stderr(self) -> str:
        if self.shell_background:
            path = self._tmp() / "worker.err"
            return path.read_text() if path.exists() else ""
        assert self.proc is not None and self.proc.stderr is not None
        if self.proc.returncode is None:
            return ""
        return (await self.proc.stderr.read()).decode(errors="replace")

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


async def _runs(url: str, queue: str) -> dict[str, int]:
    client = redis.from_url(url, decode_responses=True)
    try:
        return {k: int(v) for k, v in (await client.hgetall(f"runs:{queue}")).items()}
    finally:
        await client.aclose()


async def _wait_runs(url: str, queue: str, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(await _runs(url, queue)) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"fewer than {count} jobs started")


async def test_sigterm_lets_active_jobs_finish_and_exits_clean(
    redis_url: str, producer: Queue, queue_name: str
) -> None:
    await producer.add_bulk([("work", {"i": i}) for i in range(20)])
    proc = await WorkerProcess(redis_url, queue_name, sleep=0.8, concurrency=5).start()
    try:
        await _wait_runs(redis_url, queue_name, 5)
        proc.signal(signal.SIGTERM)
        assert await proc.wait(10) == 0
        runs = await _runs(redis_url, queue_name)
        assert all(n == 1 for n in runs.values()), runs
        counts = {state: 0 for state in ("completed", "active", "waiting")}
        for job_id in [str(i) for i in range(1, 21)]:
            state = await producer.get_job_state(job_id)
            counts[state] = counts.get(state, 0) + 1
        assert counts["active"] == 0, counts
        assert counts["completed"] == len(runs), "every job that started finished"
        assert counts["waiting"] == 20 - len(runs), "jobs not started stay in wait"
        stderr = await proc.stderr()
        assert not [n for n in NOISE if n in stderr], stderr[-2000:]
        assert "stops fetching" in stderr
    finally:
        proc.kill()


async def test_second_signal_hands_jobs_back_for_node(
    node: NodeDriver, redis_url: str, producer: Queue, queue_name: str
) -> None:
    jobs = await producer.add_bulk([("work", {"i": i}) for i in range(3)])
    proc = await WorkerProcess(redis_url, queue_name, sleep=60, concurrency=3).start()
    handle = None
    try:
        await _wait_runs(redis_url, queue_name, 3)
        proc.signal(signal.SIGTERM)
        await asyncio.sleep(0.2)
        t0 = time.monotonic()
        proc.signal(signal.SIGTERM)
        assert await proc.wait(5) == 1, "jobs were handed back: not a clean drain"
        states = [await producer.get_job_state(j.id) for j in jobs]
        took = time.monotonic() - t0
        record("test_second_signal_hands_jobs_back_for_node", took=took)
        # Loosened from 1.5 s (measured 0.11 s idle, 0.53 s loaded: < 3x): 2 s still tells "at once"
        # from a hand-back through lock expiry (30 s).
        assert states == ["waiting"] * 3 and took < 2, (states, took)
        handle = await node.start_worker(queue_name, "async job => 'node'", concurrency=3)
        results = [await producer.result(j.id, timeout=5) for j in jobs]
        assert results == ["node"] * 3
        for j in jobs:
            stored = await producer.get_job(j.id)
            assert stored is not None and stored.stalled_counter == 0
    finally:
        proc.kill()
        if handle:
            await node.close_worker(handle)


async def test_shutdown_with_redis_gone_exits_within_deadline(private_redis: PrivateRedis) -> None:
    url = private_redis.url
    async with Queue("gone", connection=url) as producer:
        await producer.add_bulk([("work", {})] * 2)
    proc = await WorkerProcess(url, "gone", "--drain-timeout", "2", sleep=30, concurrency=2).start()
    try:
        await _wait_runs(url, "gone", 2)
        private_redis.kill()
        t0 = time.monotonic()
        proc.signal(signal.SIGTERM)
        code = await proc.wait(10)
        elapsed = time.monotonic() - t0
        record("test_shutdown_with_redis_gone_exits_within_deadline", took=elapsed)
        # Loosened from 2 + 2: the 2 s drain deadline + 5 s for the exit after it (measured 1.26 s idle,
        # 1.55 s heavy: 2 s was a 1.3x margin); a hang on the dead Redis still fails (wait(10)).
        assert elapsed < 2 + 5, f"took {elapsed:.1f} s with a 2 s drain deadline"
        assert code == 1
        stderr = await proc.stderr()
        assert "Event loop is closed" not in stderr and "Task was destroyed" not in stderr, stderr[-2000:]
    finally:
        proc.kill()


async def test_a_job_whose_finish_redis_never_recorded_makes_the_exit_code_1(private_redis: PrivateRedis) -> None:
    """The probe: Redis dies, SIGTERM, and the active job's handler finishes within
    the drain - but its completion cannot be written. The process logged "will be
    recovered as stalled", still counted the job completed, and exited 0 (the docs
    promise 1). Now it reports the job as not recorded and exits 1."""
    url = private_redis.url
    async with Queue("unrecorded", connection=url) as producer:
        await producer.add("work", {})
    proc = await WorkerProcess(url, "unrecorded", "--drain-timeout", "20", sleep=1.5, concurrency=1).start()
    try:
        await _wait_runs(url, "unrecorded", 1)
        private_redis.kill()
        proc.signal(signal.SIGTERM)
        # The handler ends ~1.5 s in; the write then waits for Redis 1 s twice and gives up;
        # 20 s is a failure detector (a hang would sit out the whole drain).
        assert await proc.wait(20) == 1
        stderr = await proc.stderr()
        assert "could not be recorded as completed" in stderr, stderr[-2000:]
        assert "outcome(s) not recorded" in stderr, stderr[-2000:]
        assert not [n for n in NOISE if n in stderr], stderr[-2000:]
    finally:
        proc.kill()


async def test_a_thread_a_handler_leaked_cannot_hold_the_process(
    redis_url: str, producer: Queue, queue_name: str
) -> None:
    """A handler starts a non-daemon thread and never joins it: the interpreter's
    exit waits for such threads, so the process used to outlive its work by the
    thread's minute (until Kubernetes' SIGKILL, exit code lost). Now it exits
    with its own code after EXIT_GRACE, naming the thread."""
    jobs = await producer.add_bulk([("work", {}), ("work", {})])
    proc = WorkerProcess(
        redis_url, queue_name, "--burst", app="tests.apps.misbehaving:make", env={"APP_MODE": "leak_thread"}
    )
    started = time.monotonic()
    await proc._start_quiet_stderr()  # type: ignore[attr-defined]
    try:
        # Burst: the two jobs, the queue found empty (~0.3 s), EXIT_GRACE (2 s) for the leaked threads;
        # 20 s is a failure detector - the threads alone would hold the process for 60 s.
        assert await proc.wait(20) == 0, "both jobs completed: exit 0"
        took = time.monotonic() - started
        stderr = await proc.stderr()
        assert took < 40, took
        assert "still running (started by a handler and never ended?)" in stderr, stderr[-2000:]
        assert "leaked-by-job-1" in stderr and "leaked-by-job-2" in stderr, stderr[-2000:]
        assert [await producer.get_job_state(j.id) for j in jobs] == ["completed", "completed"]
        assert set((await _runs(redis_url, queue_name)).values()) == {1}
    finally:
        proc.kill()


async def test_a_handler_that_swallows_cancellation_cannot_hold_a_forced_shutdown(
    redis_url: str, producer: Queue, queue_name: str
) -> None:
    """At the drain deadline the handler is cancelled and catches it, for ever.
    The worker waits FORCE_GRACE for it, hands the job back (any worker takes it
    now), and the process exits 1 after LEFTOVER_GRACE more, naming the task."""
    job = await producer.add("work", {})
    proc = await WorkerProcess(
        redis_url,
        queue_name,
        "--drain-timeout",
        "1",
        app="tests.apps.misbehaving:make",
        env={"APP_MODE": "swallow_cancel"},
    ).start()
    try:
        await _wait_runs(redis_url, queue_name, 1)
        proc.signal(signal.SIGTERM)
        t0 = time.monotonic()
        # 1 s drain + 2 s for the cancelled handler + 2 s for leftover tasks at exit; 20 s detects a hang.
        assert await proc.wait(20) == 1
        took = time.monotonic() - t0
        record("test_a_handler_that_swallows_cancellation_cannot_hold_a_forced_shutdown", took=took)
        stderr = await proc.stderr()
        assert "its handler ignored its cancellation" in stderr, stderr[-3000:]
        assert "still running 2 s after they were cancelled at exit" in stderr, stderr[-3000:]
        assert "handed job 1" in stderr and "back to wait" in stderr, stderr[-3000:]
        assert not [n for n in NOISE if n in stderr], stderr[-3000:]
        assert await producer.get_job_state(job.id) == "waiting", "handed back: the next worker takes it now"
        stored = await producer.get_job(job.id)
        assert stored is not None and stored.stalled_counter == 0 and stored.attempts_made == 0
    finally:
        proc.kill()


async def test_sigint_works_for_a_process_started_in_the_background(
    redis_url: str, producer: Queue, queue_name: str
) -> None:
    proc = await WorkerProcess(redis_url, queue_name, sleep=0.1, shell_background=True).start()
    try:
        job = await producer.add("work", {})
        assert await producer.result(job.id, timeout=5) == "done"
        proc.signal(signal.SIGINT)
        assert await proc.wait(10) == 0, "the shell waited for a worker that ignored SIGINT"
    finally:
        proc.kill()


async def test_check_command_and_health_endpoint(redis_url: str, queue_name: str) -> None:
    from bullbridge.testing.redis_server import free_port

    port = free_port()
    proc = await WorkerProcess(redis_url, queue_name, "--health-port", str(port)).start()
    try:
        ok = await _cli("check", "--redis", redis_url, "--name", proc.name)
        assert ok[0] == 0 and f"{proc.name}: running" in ok[1]
        missing = await _cli("check", "--redis", redis_url, "--name", "nobody")
        assert missing[0] == 1 and "no worker heartbeat found" in missing[1]
        assert await _http(port, "/livez") == (200, "ok")
        assert await _http(port, "/readyz") == (200, "ready")
        status, body = await _http(port, "/health")
        assert status == 200 and json.loads(body)["queues"] == [queue_name]
        assert json.loads(body)["redisConnected"] is True  # the JSON API's camelCase
        proc.signal(signal.SIGTERM)
        assert await proc.wait(10) == 0
        gone = await _cli("check", "--redis", redis_url, "--name", proc.name)
        assert gone[0] == 1, "a stopped process must not pass the check"
    finally:
        proc.kill()


async def test_check_reads_heartbeats_of_workers_before_the_camelcase_json(redis_url: str) -> None:
    """Rolling upgrade: a worker of an older release writes its heartbeat with
    snake_case keys; ``bullbridge check`` (and ``HealthReport.from_json``) still read it."""
    from bullbridge.clock import now_ms
    from bullbridge.health import HealthReport

    name = f"old-{uuid.uuid4().hex[:8]}"
    old = {
        "name": name,
        "state": "running",
        "pid": 1,
        "host": "h",
        "queues": ["q"],
        "active": 2,
        "completed": 5,
        "failed": 1,
        "ts": now_ms(),
        "redis_connected": False,
        "extra": {},
    }
    report = HealthReport.from_json(json.dumps(old))
    assert report.redis_connected is False and report.completed == 5
    assert json.loads(report.to_json())["redisConnected"] is False and "redis_connected" not in report.to_json()
    client = redis.from_url(redis_url)
    try:
        await client.set(f"bull:bullbridge:health:{name}", json.dumps(old), px=30_000)
        status, out = await _cli("check", "--redis", redis_url, "--name", name)
    finally:
        await client.delete(f"bull:bullbridge:health:{name}")
        await client.aclose()
    assert status == 0 and f"{name}: running" in out and "5 completed" in out


async def test_burst_mode_drains_and_exits(redis_url: str, producer: Queue, queue_name: str) -> None:
    await producer.add_bulk([("work", {"i": i}) for i in range(30)])
    proc = WorkerProcess(redis_url, queue_name, "--burst", sleep=0.01, concurrency=10)
    proc_task = asyncio.create_task(proc.start())
    try:
        await proc_task
    except AssertionError:
        pass  # it may finish before we see it running
    assert await proc.wait(15) == 0
    runs = await _runs(redis_url, queue_name)
    assert len(runs) == 30 and set(runs.values()) == {1}


async def test_burst_says_what_failed_and_exits_non_zero(redis_url: str, producer: Queue, queue_name: str) -> None:
    """A burst in which jobs failed for good: one WARNING each (queue, id, name, attempt, reason),
    retries at INFO, a summary, and exit 1 (it printed nothing and exited 0); --allow-failures: 0."""
    failing = await producer.add_bulk([("fail", {"i": i}, {"attempts": 2}) for i in range(3)])
    await producer.add_bulk([("work", {"i": i}) for i in range(5)])
    proc = WorkerProcess(redis_url, queue_name, "--burst", "--log-format", "json", sleep=0.01)
    proc.cmd.remove("--log-level")
    proc.cmd.remove("INFO")  # the worker's default level is INFO
    done = await asyncio.create_subprocess_exec(
        *proc.cmd, cwd=str(ROOT), env=proc.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(done.communicate(), 30)
    assert done.returncode == 1, err.decode()[-3000:]
    records = [json.loads(line) for line in err.decode().splitlines()]
    finals = [r for r in records if r["level"] == "WARNING" and "failed for good" in r["message"]]
    assert sorted(r["jobId"] for r in finals) == sorted(j.id for j in failing)
    for r in finals:
        assert r["queue"] == queue_name and r["jobName"] == "fail" and r["attempt"] == 2
        assert "ValueError: bad input" in r["message"]
    retries = [r for r in records if r.get("jobName") == "fail" and r["level"] == "INFO"]
    assert len(retries) == 3 and {r["attempt"] for r in retries} == {1}
    assert any("5 completed, 3 failed, 3 retried" in r["message"] for r in records), records[-3:]
    assert any("running 1 worker(s), burst on redis://" in r["message"] for r in records)
    await producer.add("fail", {"again": True})
    allowed = WorkerProcess(redis_url, queue_name, "--burst", "--allow-failures", sleep=0.01)
    done = await asyncio.create_subprocess_exec(
        *allowed.cmd, cwd=str(ROOT), env=allowed.env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(done.communicate(), 30)
    assert done.returncode == 0 and b"failed for good" in err


@pytest.mark.slow
async def test_three_sigterms_in_a_1000_job_run_lose_nothing(redis_url: str, producer: Queue, queue_name: str) -> None:
    """Acceptance: SIGTERM three times mid-run, restart each time: no job lost,
    none left active, no handler ran twice."""
    jobs = await producer.add_bulk([("work", {"i": i}) for i in range(1000)])
    for _ in range(3):
        proc = await WorkerProcess(redis_url, queue_name, sleep=0.05, concurrency=10).start()
        before = len(await _runs(redis_url, queue_name))
        await _wait_runs(redis_url, queue_name, before + 100, timeout=20)
        proc.signal(signal.SIGTERM)
        assert await proc.wait(15) == 0
    proc = await WorkerProcess(redis_url, queue_name, "--burst", sleep=0.05, concurrency=10)._start_quiet()
    assert await proc.wait(60) == 0
    runs = await _runs(redis_url, queue_name)
    assert len(runs) == 1000 and set(runs.values()) == {1}, {k: v for k, v in runs.items() if v != 1}
    states = await asyncio.gather(*(producer.get_job_state(j.id) for j in jobs))
    assert set(states) == {"completed"}


async def _start_quiet(self: WorkerProcess) -> WorkerProcess:
    self.proc = await asyncio.create_subprocess_exec(
        *self.cmd, cwd=str(ROOT), env=self.env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    self.pid = self.proc.pid
    return self


WorkerProcess._start_quiet = _start_quiet  # type: ignore[attr-defined]


async def _start_quiet_stderr(self: WorkerProcess) -> WorkerProcess:
    """Start without waiting for the heartbeat (a burst run may end first); stderr kept."""
    self.proc = await asyncio.create_subprocess_exec(
        *self.cmd, cwd=str(ROOT), env=self.env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    self.pid = self.proc.pid
    return self


WorkerProcess._start_quiet_stderr = _start_quiet_stderr  # type: ignore[attr-defined]


async def _cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bullbridge",
        *args,
        cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    return proc.returncode or 0, out.decode()


async def _http(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body.strip()


async def test_manager_syncs_its_schedules_and_works_inside_an_app(redis_url: str, queue_name: str) -> None:
    """In an existing asyncio app (no signal handlers of its own), as a FastAPI
    lifespan would use it: ``async with manager:``."""
    from datetime import timedelta

    from bullbridge import ManagerSettings, WorkerManager
    from bullbridge.scheduler import Declaration, Schedule, read_schedulers

    seen: list[str] = []

    async def tick(job):
        seen.append(job.id)

    schedules = Declaration(
        f"app-{queue_name}", (Schedule(id="tick", queue=queue_name, every=timedelta(milliseconds=300)),)
    )
    manager = WorkerManager(
        connection=redis_url, schedules=schedules, settings=ManagerSettings(handle_signals=False, heartbeat_interval=1)
    )
    manager.worker(queue_name, {"tick": tick})
    async with manager:
        assert manager.ready
        deadline = time.monotonic() + 5
        while len(seen) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    assert len(seen) >= 2, "the synced schedule fires on the managed worker"
    assert manager.state == "stopped" and manager.exit_code == 0
    infos = await read_schedulers_for(redis_url, queue_name, read_schedulers)
    assert list(infos) == ["tick"]


async def read_schedulers_for(url: str, queue: str, reader) -> dict:
    from bullbridge import connect
    from bullbridge.keys import QueueKeys

    connector = connect(url)
    client = connector.fast("t")
    try:
        return await reader(client, QueueKeys(queue))
    finally:
        await connector.close()


@pytest.mark.xfail(strict=True, reason="the port installs no signal handling: SIGTERM kills the active job")
async def test_port_finishes_the_active_job_on_sigterm(redis_url: str, producer: Queue, queue_name: str) -> None:
    """The port (docs/port-differences.md#shutdown): SIGTERM while a job runs
    should let it finish (bullbridge: test_sigterm_lets_active_jobs_finish_and_exits_clean)."""
    from tests.worker.procs import ProcWorker

    proc = await ProcWorker("port", queue_name, redis_url, "sleep:1").start()
    try:
        job = await producer.add("x", {})
        await proc.wait_for("start", timeout=5)
        await proc.signal(signal.SIGTERM)
        outcome = await producer.wait_for(job.id, timeout=4)  # a 1 s job; the port fails by this timeout
        assert outcome.state == "completed"
    finally:
        await proc.stop()


async def test_processes_run_under_a_supervisor_that_forwards_signals(
    redis_url: str, producer: Queue, queue_name: str
) -> None:
    """``--processes 2``: two full worker processes share the queue; one SIGTERM
    to the supervisor drains both, and nothing runs twice."""
    await producer.add_bulk([("work", {"i": i}) for i in range(40)])
    proc = WorkerProcess(redis_url, queue_name, "--processes", "2", sleep=0.05, concurrency=2)
    proc.proc = await asyncio.create_subprocess_exec(
        *proc.cmd, cwd=str(ROOT), env=proc.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    proc.pid = proc.proc.pid
    try:
        await _wait_runs(redis_url, queue_name, 40, timeout=20)
        client = redis.from_url(redis_url, decode_responses=True)
        names = {
            json.loads(v)["name"]
            for v in await client.mget([k async for k in client.scan_iter("bull:bullbridge:health:*")])
            if v
        }
        await client.aclose()
        assert {f"{proc.name}-0", f"{proc.name}-1"} <= names, names
        proc.signal(signal.SIGTERM)
        assert await proc.wait(15) == 0
        runs = await _runs(redis_url, queue_name)
        assert len(runs) == 40 and set(runs.values()) == {1}
    finally:
        proc.kill()

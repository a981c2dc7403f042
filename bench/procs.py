"""Processes for the benchmark: CPU pinning, measured children, the Node helper."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
NODE_SCRIPT = BENCH_DIR / "node_bench.js"
PY_CHILD = BENCH_DIR / "child.py"


class ChildError(Exception):
    """A child process died, said something unexpected, or did not answer in time."""


@dataclass(frozen=True)
class Pinning:
    """Which CPUs Redis and the client under test run on (None: not pinned)."""

    redis: frozenset[int] | None
    client: frozenset[int] | None

    @classmethod
    def detect(cls, enabled: bool = True) -> Pinning:
        """Redis on the first CPU we may use, the client on the second; no pinning on one CPU."""
        if not enabled or not hasattr(os, "sched_getaffinity"):
            return cls(None, None)
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return cls(None, None)
        return cls(frozenset({cpus[0]}), frozenset({cpus[1]}))

    @property
    def active(self) -> bool:
        return self.redis is not None

    def describe(self) -> str:
        if not self.active:
            return "not pinned (fewer than 2 CPUs available, or --no-pin)"
        assert self.redis is not None and self.client is not None
        return (
            f"Redis (and the harness) on CPU {','.join(map(str, sorted(self.redis)))}, "
            f"client under test on CPU {','.join(map(str, sorted(self.client)))}"
        )


def pin_process(pid: int, cpus: frozenset[int] | None) -> None:
    """Pin every thread of a running process (a Redis started elsewhere has bio threads)."""
    if cpus is None:
        return
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(tid, cpus)


_PR_SET_PDEATHSIG = 1


def _preexec(cpus: frozenset[int] | None) -> Callable[[], None]:
    """In the child before exec: pin (so every thread it starts inherits it) and die with us."""

    def run() -> None:  # pragma: no cover - runs in the child
        if cpus is not None:
            os.sched_setaffinity(0, cpus)
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError):
                ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return run


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a live process, from ``/proc/<pid>/stat`` (clock ticks)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def proc_peak_rss_kb(pid: int) -> int | None:
    """VmHWM of a live process, from ``/proc/<pid>/status``."""
    return _proc_status_kb(pid, "VmHWM:")


def proc_rss_kb(pid: int) -> int | None:
    """VmRSS of a live process, from ``/proc/<pid>/status``."""
    return _proc_status_kb(pid, "VmRSS:")


def _proc_status_kb(pid: int, name: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(name):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Child:
    """A process that talks JSON lines: ``{"event": ...}`` out, words in."""

    def __init__(self, argv: Sequence[str], cpus: frozenset[int] | None, label: str) -> None:
        self.argv = list(argv)
        self.cpus = cpus
        self.label = label
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr_tail: deque[str] = deque(maxlen=40)
        self._stderr_task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> Child:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=REPO,
            preexec_fn=_preexec(self.cpus),
            limit=64 * 1024 * 1024,
        )
        self._stderr_task = asyncio.create_task(self._read_stderr())
        return self

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while True:
            line = await self.proc.stderr.readline()
            if not line:
                return
            self.stderr_tail.append(line.decode(errors="replace").rstrip())

    def tail(self) -> str:
        return "\n".join(self.stderr_tail)

    async def message(self, timeout: float) -> dict[str, Any]:
        """The next JSON object the child prints (other lines are ignored)."""
        assert self.proc is not None and self.proc.stdout is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ChildError(f"{self.label}: no answer within {timeout:g} s")
            try:
                line = await asyncio.wait_for(self.proc.stdout.readline(), remaining)
            except TimeoutError:
                raise ChildError(f"{self.label}: no answer within {timeout:g} s") from None
            if not line:
                await asyncio.sleep(0.05)  # let stderr be read
                raise ChildError(f"{self.label} exited (code {self.proc.returncode}): {self.tail()[-2000:]}")
            text = line.decode(errors="replace").strip()
            if text.startswith("{"):
                try:
                    msg = json.loads(text)
                except ValueError:
                    continue
                if isinstance(msg, dict):
                    return msg

    async def expect(self, event: str, timeout: float) -> dict[str, Any]:
        msg = await self.message(timeout)
        if msg.get("event") != event:
            raise ChildError(f"{self.label}: expected {event!r}, got {msg!r}")
        return msg

    async def send(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await self.proc.stdin.drain()

    async def finish(self, timeout: float = 15.0) -> int | None:
        """Wait for the child to exit on its own; kill it after ``timeout``."""
        if self.proc is None:
            return None
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.kill()
            code = await self.proc.wait()
        if self._stderr_task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._stderr_task, 2.0)
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()


def node_binary() -> str:
    return os.environ.get("BULLBRIDGE_NODE", "node")


def node_child(mode: str, spec: dict[str, Any], cpus: frozenset[int] | None, label: str) -> Child:
    return Child([node_binary(), str(NODE_SCRIPT), mode, json.dumps(spec)], cpus, label)


def python_child(spec: dict[str, Any], cpus: frozenset[int] | None, label: str) -> Child:
    return Child([sys.executable, str(PY_CHILD), json.dumps(spec)], cpus, label)


class NodeHelper:
    """A long-lived Node process that fills queues (addBulk) and verifies runs."""

    def __init__(self, url: str, cpus: frozenset[int] | None) -> None:
        self.child = node_child("helper", {"url": url}, cpus, "node helper")
        self.versions: dict[str, str] = {}

    async def start(self) -> NodeHelper:
        await self.child.start()
        ready = await self.child.expect("ready", 30.0)
        self.versions = {"node": str(ready.get("node")), "bullmq": str(ready.get("bullmq"))}
        return self

    async def call(self, cmd: str, timeout: float = 300.0, **fields: Any) -> dict[str, Any]:
        await self.child.send(json.dumps({"cmd": cmd, **fields}))
        reply = await self.child.message(timeout)
        if not reply.get("ok"):
            raise ChildError(f"node helper {cmd} failed: {reply.get('error')}")
        result = reply["result"]
        assert isinstance(result, dict)
        return result

    async def fill(self, queue: str, jobs: int, batch: int, work: str = "noop") -> dict[str, Any]:
        return await self.call("fill", queue=queue, jobs=jobs, batch=batch, work=work)

    async def verify(
        self,
        queue: str,
        kind: str,
        expect: int,
        first_id: int = 0,
        last_id: int = -1,
        sample: int = 200,
        work: str = "noop",
        **shape: Any,
    ) -> dict[str, Any]:
        """``shape``: for waiting jobs not added as ``noop`` {i}: ``state``, ``name``, ``shape`` (node_bench.js)."""
        return await self.call(
            "verify",
            queue=queue,
            kind=kind,
            expect=expect,
            first_id=first_id,
            last_id=last_id,
            sample=sample,
            work=work,
            **shape,
        )

    async def close(self) -> None:
        if self.child.proc is not None and self.child.proc.returncode is None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.child.send(json.dumps({"cmd": "quit"}))
            await self.child.finish(5.0)

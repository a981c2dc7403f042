"""Start ``tests/worker/proc_worker.py`` as a child process and follow its events."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class ProcWorker:
    def __init__(self, impl: str, queue: str, url: str, behaviour: str, **settings: Any) -> None:
        self.args = [impl, queue, url, behaviour, json.dumps(settings)]
        self.proc: asyncio.subprocess.Process | None = None
        self.events: list[dict[str, Any]] = []
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self, timeout: float = 15.0) -> ProcWorker:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.worker.proc_worker",
            *self.args,
            cwd=str(ROOT),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        self._reader = asyncio.create_task(self._read())
        await self.wait_for("ready", timeout=timeout)
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                break
            try:
                self.events.append(json.loads(line))
            except ValueError:
                continue
            self._changed.set()
        self._changed.set()

    async def wait_for(self, event: str, timeout: float = 10.0, count: int = 1) -> list[dict[str, Any]]:
        async def wait() -> list[dict[str, Any]]:
            while True:
                found = [e for e in self.events if e["event"] == event]
                if len(found) >= count:
                    return found
                if self.proc is not None and self.proc.returncode is not None and self._reader and self._reader.done():
                    raise AssertionError(f"worker process exited ({self.proc.returncode}) before {event!r}")
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(wait(), timeout)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def exited(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            return None

    async def signal(self, sig: int) -> None:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)

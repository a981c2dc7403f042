"""Running a reference web app the way it is deployed (gunicorn, uvicorn) in a
process of its own, on a port the OS picks, and talking to it over HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class Server:
    """A server command whose output is read in a thread; ``url`` once it says where it listens."""

    def __init__(self, cmd: Sequence[str], env: dict[str, str], listening: str) -> None:
        self.proc = subprocess.Popen(
            list(cmd),
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._listening = re.compile(listening)
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = "http://" + self.wait_for(self._listening).group(1)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, pattern: re.Pattern[str] | str, count: int = 1, timeout: float = 20.0) -> re.Match[str]:
        """The ``count``-th output line matching ``pattern``. A failure detector (kind 4): a
        server boots in ~1 s here; 20 s covers a loaded machine's imports."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [m for m in map(regex.search, self.lines) if m]
                if len(found) >= count:
                    return found[count - 1]
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"the server exited ({self.proc.returncode}):\n{self.output}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{regex.pattern!r} x{count} not seen within {timeout} s:\n{self.output}")
                self._changed.wait(left)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            # A failure detector (kind 4): each view answers in ms, or within the queue's own 10 s timeout.
            with urllib.request.urlopen(req, timeout=20) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def stop(self) -> int:
        """SIGTERM, and the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        # A failure detector (kind 4): both servers stop in well under a second when idle.
        code = self.proc.wait(timeout=30)
        self._reader.join(timeout=5)  # a failure detector (kind 4): the pipe closes with the process
        return code

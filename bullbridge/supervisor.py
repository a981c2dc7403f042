"""``bullbridge worker --processes N``: N worker processes under one supervisor.

A worker process is one event loop: CPU-bound handlers saturate one core no
matter the concurrency. The supervisor starts N copies of the same
``bullbridge worker`` command (each a full BullMQ worker of its own, named
``<name>-<i>``, health port ``<port>+i``), forwards SIGTERM/SIGINT to all of
them - so each drains as it would alone, a second signal forcing them - and
exits with the worst of their exit codes. A child that dies unexpectedly is
restarted (after a short pause), unless the supervisor is stopping.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

log = logging.getLogger("bullbridge.supervisor")


def child_args(argv: Sequence[str], index: int, name: str | None, health_port: int | None) -> list[str]:
    """The child's command line: the parent's, without --processes, its own name and port."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--processes", "--name", "--health-port"):
            skip = True
            continue
        if arg.startswith(("--processes=", "--name=", "--health-port=")):
            continue
        out.append(arg)
    base = name or f"{os.uname().nodename}-{os.getpid()}"
    out += ["--name", f"{base}-{index}"]
    if health_port is not None:
        out += ["--health-port", str(health_port + index)]
    return out


def supervise(argv: Sequence[str], processes: int, name: str | None, health_port: int | None) -> int:
    """Run ``processes`` children of ``python -m bullbridge <argv>``; returns the exit code."""
    stopping = False
    children: dict[int, subprocess.Popen[bytes]] = {}

    def start(index: int) -> None:
        cmd = [sys.executable, "-m", "bullbridge", *child_args(argv, index, name, health_port)]
        children[index] = subprocess.Popen(cmd)
        log.info("started worker process %d (pid %d)", index, children[index].pid)

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    for index in range(processes):
        start(index)
    codes: dict[int, int] = {}
    while len(codes) < processes:
        for index, child in list(children.items()):
            if index in codes:
                continue
            code = child.poll()
            if code is None:
                continue
            if stopping or code == 0:
                codes[index] = code
            else:
                log.warning("worker process %d exited with %d; restarting it", index, code)
                time.sleep(1)
                if not stopping:
                    start(index)
                else:
                    codes[index] = code
        time.sleep(0.05)
    worst = max(codes.values(), key=lambda c: (c != 0, abs(c)))
    return worst if worst >= 0 else 1

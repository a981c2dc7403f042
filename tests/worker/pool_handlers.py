"""Module-level functions for process-pool handlers in tests (a pool pickles them).

Each run appends a line to ``<job.data['dir']>/<job.id>.runs`` so a test can count
runs across processes, and waits for that file to exist before it returns where
it must be seen running first.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def _note_run(job: Any) -> int:
    path = Path(job.data["dir"]) / f"{job.id}.runs"
    with path.open("a") as f:
        f.write(f"{os.getpid()}\n")
    return len(path.read_text().splitlines())


def stuck(job: Any) -> str:
    """Runs far past any timeout a test sets."""
    _note_run(job)
    time.sleep(60)
    return "never"


def slow_first_time(job: Any) -> str:
    """The first run takes ``job.data['first']`` seconds; later runs return at once."""
    if _note_run(job) == 1:
        time.sleep(float(job.data["first"]))
    return "finished"


def stuck_call(seconds: float) -> str:  # for job.run_in_process
    time.sleep(seconds)
    return "never"


def exits_abruptly(job: Any) -> str:
    """A handler that kills its own pool process (a crash, ``os._exit``)."""
    _note_run(job)
    os._exit(3)


def square(job: Any) -> int:
    return int(job.data["n"]) ** 2

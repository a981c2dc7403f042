"""A worker with process handlers, closed, then the interpreter exits at once.

    python -m tests.worker.pool_exit REDIS_URL QUEUE MODE MARKER

MODE is ``graceful`` (``close(timeout=5)``), ``forced`` (``close(force=True)``)
or ``busy`` (``close(force=True)`` while a job is running in the pool). The
worker runs two jobs in the process pool first (one through a ``run_in="process"``
handler, one through ``job.run_in_process``); MARKER is a file the busy job
creates once it runs in the pool.

Right after ``close()`` returns it prints one JSON line: what is left of the
pool (its manager thread, its processes; both should be gone) and how long
``close()`` took. Then the interpreter exits at once, the way ``bullbridge
worker`` does, so its exit hooks run right behind ``close()``: whatever they
print lands on stderr, which the test reads. bullbridge's own log goes to
stdout.

The race this guards against (issue 23) is microseconds wide: between
concurrent.futures' exit hook checking that a pool's wakeup pipe is open and
writing to it, the pool's manager thread may close the pipe. On CPython 3.11
this child widens that gap to 3 ms (:func:`widen_exit_race`), so that a pool
still tearing down at exit makes the hook fail in most runs, not one in
hundreds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
import sys
import threading
import time
from typing import Any

from bullbridge import Queue, Worker


def square(job: Any) -> int:  # runs in the pool (run_in="process")
    return int(job.data["n"]) ** 2


def cube(n: int) -> int:  # runs in the pool (job.run_in_process)
    return n**3


def block(job: Any) -> None:  # runs in the pool until the pool terminates it
    with open(job.data["marker"], "w"):
        pass
    time.sleep(60)


async def via_job(job: Any) -> int:
    return await job.run_in_process(cube, job.data["n"])


async def main(url: str, queue: str, mode: str, marker: str) -> None:
    worker = Worker(queue, {"cube": via_job}, connection=url, stalled_interval=60_000)
    worker.handler("square", run_in="process")(square)
    worker.handler("block", run_in="process")(block)
    await worker.start()
    async with Queue(queue, connection=url) as producer:
        a = await producer.add("square", {"n": 7})
        b = await producer.add("cube", {"n": 3})
        assert await producer.result(a.id, timeout=20) == 49
        assert await producer.result(b.id, timeout=20) == 27
        if mode == "busy":
            await producer.add("block", {"marker": marker})
            deadline = time.monotonic() + 20
            while not os.path.exists(marker):
                assert time.monotonic() < deadline, "the block job never started in the pool"
                await asyncio.sleep(0.01)
    started = time.monotonic()
    if mode == "graceful":
        await worker.close(timeout=5)
    else:
        await worker.close(force=True)
    print(json.dumps({"event": "closed", "seconds": round(time.monotonic() - started, 3), **leftovers()}), flush=True)


def leftovers() -> dict[str, list[str]]:
    """The pool's threads (concurrent.futures.process's manager thread) and processes still alive."""
    threads = [t.name for t in threading.enumerate() if type(t).__module__ == "concurrent.futures.process"]
    return {"threads": threads, "processes": [p.name for p in multiprocessing.active_children()]}


def widen_exit_race() -> None:
    """In the exit hook's wakeup only: 3 ms between its check of ``_closed`` and its write (3.11's code)."""
    import concurrent.futures.process as cfp

    wakeup_type: Any = getattr(cfp, "_ThreadWakeup", None)
    if sys.version_info[:2] != (3, 11) or wakeup_type is None:
        return
    plain = wakeup_type.wakeup

    def wakeup(self: Any) -> None:
        if sys._getframe(1).f_code.co_name != "_python_exit":
            plain(self)
        elif not self._closed:
            time.sleep(0.003)
            self._writer.send_bytes(b"")

    wakeup_type.wakeup = wakeup


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stdout, level=logging.WARNING)
    widen_exit_race()
    asyncio.run(main(*sys.argv[1:5]))

"""Where thread and process handlers run.

Threads are daemon threads: a handler stuck in a blocking call must not keep
the process alive after a forced shutdown (``ThreadPoolExecutor`` joins its
threads at exit, so one hung call would hang the exit). Processes come from a
``forkserver`` (Linux) or ``spawn`` context: never ``fork`` a process whose
event loop and sockets are live.
"""

from __future__ import annotations

import concurrent.futures
import functools
import multiprocessing
import os
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any

_Item = tuple[concurrent.futures.Future[Any], Callable[..., Any], tuple[Any, ...]]


class DaemonThreadPool(concurrent.futures.Executor):
    """A fixed pool of daemon threads."""

    def __init__(self, size: int, name: str = "bullbridge-handler") -> None:
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True) for i in range(size)]
        for t in self._threads:
            t.start()
        self._shutdown = False

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fut, fn, args = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # handlers may raise SystemExit/KeyboardInterrupt
                fut.set_exception(exc)
            else:
                fut.set_result(result)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        if self._shutdown:
            raise RuntimeError("thread pool is shut down")
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._queue.put((fut, functools.partial(fn, **kwargs) if kwargs else fn, args))
        return fut

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._shutdown = True
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for t in self._threads:
                t.join()


def process_pool(size: int | None) -> concurrent.futures.ProcessPoolExecutor:
    method = "forkserver" if sys.platform.startswith("linux") else "spawn"
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=size or os.cpu_count() or 1, mp_context=multiprocessing.get_context(method))


def kill_process_pool(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """Stop a process pool now, terminating handlers still running."""
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.terminate()

"""Where thread and process handlers run.

Threads are daemon threads: a handler stuck in a blocking call must not keep
the process alive after a forced shutdown (``ThreadPoolExecutor`` joins its
threads at exit, so one hung call would hang the exit). Processes come from a
``forkserver`` (Linux) or ``spawn`` context: never ``fork`` a process whose
event loop and sockets are live. A process pool is stopped with
:func:`stop_process_pool`, which returns only once the pool is gone (its
manager thread finished, its processes joined), waiting off the loop and for a
bounded time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess
from typing import Any

from bullbridge.errors import UsageError

log = logging.getLogger("bullbridge.worker")

STOP_TIMEOUT = 5.0  # seconds a closing worker waits for its process pool to be gone
KILL_GRACE = 2.0  # then, after each signal to the processes left, for its manager thread to finish

_Item = tuple[concurrent.futures.Future[Any], Callable[..., Any], tuple[Any, ...]]


class DaemonThreadPool(concurrent.futures.Executor):
    """A fixed pool of daemon threads.

    A thread cannot be killed: when a call runs too long (a handler's timeout),
    :meth:`abandon` retires the thread running it - it ends once that call
    returns, if it ever does - and starts a fresh one, so the pool keeps its size.
    """

    def __init__(self, size: int, name: str = "bullbridge-handler") -> None:
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._name = name
        self._started = 0
        self._lock = threading.Lock()
        self._busy: dict[concurrent.futures.Future[Any], threading.Thread] = {}
        self._retired: set[threading.Thread] = set()
        self._threads = [self._new_thread() for _ in range(size)]
        for t in self._threads:
            t.start()
        self._shutdown = False

    def _new_thread(self) -> threading.Thread:
        self._started += 1
        return threading.Thread(target=self._run, name=f"{self._name}-{self._started - 1}", daemon=True)

    def _run(self) -> None:
        me = threading.current_thread()
        while me not in self._retired:
            item = self._queue.get()
            if item is None:
                return
            fut, fn, args = item
            if not fut.set_running_or_notify_cancel():
                continue
            self._busy[fut] = me
            try:
                result = fn(*args)
            except BaseException as exc:  # handlers may raise SystemExit/KeyboardInterrupt
                fut.set_exception(exc)
            else:
                fut.set_result(result)
            finally:
                self._busy.pop(fut, None)
        with self._lock:
            self._retired.discard(me)

    def abandon(self, fut: concurrent.futures.Future[Any]) -> bool:
        """Stop counting on the thread that runs ``fut`` (it ends when the call
        returns) and start a replacement. False when ``fut`` is not running: a
        queued call is cancelled instead, a finished one needs nothing."""
        if fut.cancel() or fut.done():
            return False
        with self._lock:
            thread = self._busy.get(fut)
            if thread is None or thread in self._retired or self._shutdown:
                return False
            self._retired.add(thread)
            self._threads.remove(thread)
            fresh = self._new_thread()
            self._threads.append(fresh)
        fresh.start()
        return True

    @property
    def abandoned(self) -> int:
        """Retired threads still running the call they were abandoned in."""
        with self._lock:
            return sum(1 for t in self._retired if t.is_alive())

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        if self._shutdown:
            raise UsageError("the worker's thread pool is shut down: the worker is closing")
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._queue.put((fut, functools.partial(fn, **kwargs) if kwargs else fn, args))
        return fut

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        if wait:
            for t in threads:
                t.join()


def process_pool(size: int | None) -> concurrent.futures.ProcessPoolExecutor:
    method = "forkserver" if sys.platform.startswith("linux") else "spawn"
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=size or os.cpu_count() or 1, mp_context=multiprocessing.get_context(method)
    )


async def stop_process_pool(
    pool: concurrent.futures.ProcessPoolExecutor, *, kill: bool, timeout: float = STOP_TIMEOUT
) -> bool:
    """Shut ``pool`` down and return once nothing of it is left running.

    ``kill`` (a forced shutdown) cancels queued calls and terminates the
    processes now, running handlers included; otherwise queued calls finish
    first. Then waits, in a thread (never on the loop) and for at most
    ``timeout`` seconds, until the pool's manager thread has finished and its
    processes are joined; past that, the processes left are terminated, then
    killed, and one WARNING is logged. Returns True when the pool stopped in
    time.
    """
    # Why wait: after shutdown(wait=False) the pool's manager thread goes on
    # tearing the pool down by itself, and closes the pipe it is woken through
    # as it goes. concurrent.futures' interpreter-exit hook writes to that pipe
    # to wake the thread, without the lock the thread closes it under: if the
    # process exits meanwhile (a worker process exits right after close()),
    # the write can hit the descriptor as it is closed, and the interpreter
    # prints "Exception ignored ... OSError: [Errno 9] Bad file descriptor"
    # (issue 23). Once the thread has finished, the hook has nothing to race.
    manager = getattr(pool, "_executor_manager_thread", None)  # shutdown() drops both references:
    processes: list[BaseProcess] = list((getattr(pool, "_processes", None) or {}).values())  # take them first
    pool.shutdown(wait=False, cancel_futures=kill)
    if kill:
        for proc in _running(processes):
            proc.terminate()
    if not isinstance(manager, threading.Thread):  # never used: no thread, no process
        return True
    # The waiting thread may be the one that drops the last reference to the
    # pool's queues, whose semaphores are unlinked (and unregistered from
    # multiprocessing's resource tracker) as they are freed: a daemon thread
    # could be cut off halfway by the interpreter's exit, and the tracker would
    # then warn of leaked semaphores. The default executor's threads are joined.
    stopped, stuck = await asyncio.to_thread(_wait_gone, manager, processes, timeout, kill)
    if stopped or stuck:
        log.warning(
            "process pool did not stop within %.1f s: %d process(es) terminated or killed%s",
            timeout,
            stopped,
            "; its manager thread is still running" if stuck else "",
        )
        return False
    return True


def _running(processes: Sequence[BaseProcess]) -> list[BaseProcess]:
    """The processes that have not exited (their sentinel is not ready yet).

    Reads nothing from the sentinels: the pool's manager thread may be
    joining these processes at the same time."""
    if not processes:
        return []
    ready = set(multiprocessing.connection.wait([p.sentinel for p in processes], 0))
    return [p for p in processes if p.sentinel not in ready]


def _wait_gone(
    manager: threading.Thread, processes: Sequence[BaseProcess], timeout: float, terminated: bool
) -> tuple[int, bool]:
    """In a thread: join the pool's manager thread (which joins its processes
    before it ends). At ``timeout``, the processes left are terminated (killed
    if ``terminated`` already), then killed. Returns (processes signalled,
    manager thread still running)."""
    deadline = time.monotonic() + timeout
    manager.join(timeout)
    signalled: set[int] = set()
    for stop in (BaseProcess.kill,) if terminated else (BaseProcess.terminate, BaseProcess.kill):
        if not manager.is_alive():
            break
        for proc in _running(processes):
            stop(proc)
            signalled.add(id(proc))
        manager.join(KILL_GRACE)
    if manager.is_alive():
        return len(signalled), True
    for proc in processes:  # joined by the manager thread already: returns at once
        proc.join(max(0.0, deadline - time.monotonic()))
    return len(signalled), False

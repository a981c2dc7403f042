"""The background event loop that serves every ``bullbridge.sync`` object of a process.

One daemon thread per process, started by the first blocking call (not by
import or construction, so a queue can be made at module level). Each blocking
call hands its coroutine to that loop and waits for the answer with a deadline;
the async objects underneath live on the loop and are only ever touched from
its thread, so they need no locks, and calls from many threads pipeline their
commands on one connection.

**After ``fork``.** A child process inherits the loop's memory but not its
thread, and its sockets and epoll set are the parent's own (shared kernel
objects). The child must never write on them, nor close or unregister them in
a way the parent would feel. ``os.register_at_fork`` runs :func:`_forget_in_child`
in every child: it points each inherited descriptor of the loop at
``/dev/null`` (:func:`~bullbridge.connection.resp.release_fd`) - the child's
hold on the parent's sockets is gone, the parent keeps them undisturbed - and
forgets the loop. The child's first blocking call starts a loop of its own, and
the async objects notice the new loop and connect again
(:class:`~bullbridge.aio.LoopAffinity`).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import selectors
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from bullbridge.connection.resp import release_fd
from bullbridge.errors import BullbridgeError, EventLoopConflict

log = logging.getLogger("bullbridge.sync.runtime")

T = TypeVar("T")

THREAD_NAME = "bullbridge-sync-loop"


class Call(Generic[T]):
    """One blocking call: the task on the loop, and the hand-back to the caller.

    The caller blocks on a plain lock that the loop thread releases when the
    task is done (lighter than a ``concurrent.futures.Future`` and its
    condition, which cost ~10 us a call on a loaded core)."""

    __slots__ = ("_done", "error", "result", "task")

    def __init__(self) -> None:
        self._done = threading.Lock()
        self._done.acquire()
        self.task: asyncio.Task[T] | None = None
        self.result: T | None = None
        self.error: BaseException | None = None

    def start(self, loop: asyncio.AbstractEventLoop, make: Callable[[], Coroutine[Any, Any, T]]) -> None:
        """On the loop thread, in the caller's context (``call_soon_threadsafe``
        runs a callback in a copy of the context it was called in, and a task
        inherits the context it is created in: OpenTelemetry spans, contextvars
        of a request carry over)."""
        try:
            self.task = loop.create_task(make())
        except BaseException as exc:  # the method refused its arguments before any await
            self.error = exc
            self._done.release()
            return
        self.task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[T]) -> None:
        if task.cancelled():
            self.error = asyncio.CancelledError()
        elif (exc := task.exception()) is not None:
            self.error = exc
        else:
            self.result = task.result()
        self._done.release()

    def cancel(self) -> None:
        """On the loop thread: stop the task (the caller gave up waiting)."""
        if self.task is not None:
            self.task.cancel()

    def wait(self, timeout: float | None) -> bool:
        if timeout is None:
            return self._done.acquire()
        return self._done.acquire(timeout=min(max(0.0, timeout), threading.TIMEOUT_MAX))


class LoopThread:
    """An asyncio loop running forever in a daemon thread of this process."""

    def __init__(self) -> None:
        # The selector is ours, so its descriptors can be found after a fork without private attributes.
        self.selector = selectors.DefaultSelector()
        self.loop = asyncio.SelectorEventLoop(self.selector)
        self.pid = os.getpid()
        self.thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.loop.run_forever()

    def submit(self, make: Callable[[], Coroutine[Any, Any, T]]) -> Call[T]:
        """Start ``make()`` as a task on the loop, from any thread."""
        call: Call[T] = Call()
        self.loop.call_soon_threadsafe(call.start, self.loop, make)
        return call

    def cancel(self, call: Call[Any]) -> None:
        """Cancel a call's task (from any thread)."""
        self.loop.call_soon_threadsafe(call.cancel)

    def stop(self, timeout: float = 1.0) -> None:
        """Cancel what still runs on the loop (a reconnection in the background, an
        event reader), stop it and wait, briefly, for its thread. Connections are
        not closed one by one: the process is ending, and the kernel closes them."""
        if self.loop.is_closed() or not self.thread.is_alive():
            return

        def wind_down() -> None:
            self.loop.create_task(_cancel_all(timeout / 2)).add_done_callback(lambda _: self.loop.stop())

        self.loop.call_soon_threadsafe(wind_down)
        self.thread.join(timeout)
        if not self.thread.is_alive():
            self.loop.close()

    def release_in_child(self) -> None:
        """In a forked child: release every descriptor the loop holds (its sockets,
        its self-pipe, its epoll set) without the loop, which has no thread here."""
        fds = {key.fd for key in self.selector.get_map().values()}
        fileno = getattr(self.selector, "fileno", None)
        if fileno is not None:
            fds.add(fileno())
        for fd in sorted(fds):
            try:
                release_fd(fd)
            except OSError as exc:  # pragma: no cover - a descriptor closed under us
                log.debug("after fork: cannot release descriptor %d: %s", fd, exc)


async def _cancel_all(timeout: float) -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)


_lock = threading.Lock()
_current: LoopThread | None = None
#: Loops inherited through fork, kept referenced so that nothing in the child ever
#: finalises them (their descriptors already point at /dev/null).
_inherited: list[LoopThread] = []


def loop_thread() -> LoopThread:
    """This process's loop thread, started on first use."""
    global _current
    current = _current
    if current is not None:
        return current
    with _lock:
        if _current is None:
            _current = LoopThread()
            log.debug("started the bullbridge.sync event loop thread (pid %d)", _current.pid)
        return _current


def check_not_in_loop(call: str, async_call: str) -> None:
    """Refuse a blocking call from a thread that is running an event loop: it
    would stall that loop (or, on bullbridge's own loop, wait for itself)."""
    if asyncio._get_running_loop() is not None:
        raise EventLoopConflict(
            f"{call} blocks, and was called inside a running event loop: in async code use the async API "
            f"({async_call}), or run the blocking call in a thread with asyncio.to_thread"
        )


def run(
    make: Callable[[], Coroutine[Any, Any, T]],
    deadline: float | None,
    on_timeout: Callable[[], BullbridgeError],
) -> T:
    """Run ``make()`` on the loop thread and wait for its result, at most
    ``deadline`` seconds (None: as long as it takes); past it the task is
    cancelled and ``on_timeout()`` raised. Exceptions of the coroutine are
    raised here as they are."""
    runner = loop_thread()
    call = runner.submit(make)
    try:
        finished = call.wait(deadline)
    except BaseException:  # KeyboardInterrupt in a script: stop the call too
        runner.cancel(call)
        raise
    if not finished:
        runner.cancel(call)
        raise on_timeout()
    if call.error is not None:
        if isinstance(call.error, asyncio.CancelledError):  # pragma: no cover - the loop is shutting down
            raise on_timeout()
        raise call.error
    return call.result  # type: ignore[return-value]


def _forget_in_child() -> None:
    """After ``fork``, in the child: release the inherited loop's descriptors and
    forget it (and a lock another thread of the parent may have held)."""
    global _current, _lock
    _lock = threading.Lock()
    inherited, _current = _current, None
    if inherited is not None:
        inherited.release_in_child()
        _inherited.append(inherited)


def _stop_at_exit() -> None:
    """Stop the loop before the interpreter finalises, so its thread is not left
    running Python code during shutdown."""
    global _current
    current, _current = _current, None
    if current is not None and current.pid == os.getpid():
        current.stop()


os.register_at_fork(after_in_child=_forget_in_child)
atexit.register(_stop_at_exit)

"""A small event emitter whose listeners cannot hurt each other or the emitter.

The port's emitter calls listeners synchronously and lets one listener's
exception escape into the worker loop. Here every listener is isolated: an
exception is logged (once per listener and error type per minute) and the rest
still run; coroutine listeners run as tasks so a slow one never blocks a job.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from bullbridge.errors import ConfigurationError

log = logging.getLogger("bullbridge.events")

Listener = Callable[..., Any]
#: The event names an emitter knows (a ``Literal``), so a misspelt name is a type error.
E = TypeVar("E", bound=str)


class Emitter(Generic[E]):
    #: The event names a subclass emits; ``on`` refuses any other (a misspelt
    #: name would otherwise wait forever for an event that never comes).
    EVENTS: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._listeners: dict[E, list[Listener]] = defaultdict(list)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_logged: dict[tuple[int, type[BaseException]], float] = {}

    def on(self, event: E, listener: Listener | None = None) -> Any:
        """Register ``listener`` for ``event``; usable as a decorator."""
        if self.EVENTS and event not in self.EVENTS:
            raise ConfigurationError(
                f"{type(self).__name__} emits no {event!r} event (it emits: {', '.join(self.EVENTS)})"
            )
        if listener is None:

            def decorator(fn: Listener) -> Listener:
                self._listeners[event].append(fn)
                return fn

            return decorator
        self._listeners[event].append(listener)
        return listener

    def off(self, event: E, listener: Listener) -> None:
        if listener in self._listeners.get(event, []):
            self._listeners[event].remove(listener)

    def has_listeners(self, event: E) -> bool:
        return bool(self._listeners.get(event))

    def emit(self, event: E, *args: Any) -> None:
        listeners = self._listeners.get(event)
        if not listeners:
            return
        for listener in tuple(listeners):
            try:
                result = listener(*args)
            except Exception as exc:
                self._log_failure(event, listener, exc)
                continue
            if result is not None and inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(functools.partial(self._task_done, event=event, listener=listener))

    def _task_done(self, task: asyncio.Future[Any], *, event: str, listener: Listener) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            assert exc is not None
            self._log_failure(event, listener, exc)

    def _log_failure(self, event: str, listener: Listener, exc: BaseException) -> None:
        key = (id(listener), type(exc))
        now = time.monotonic()
        if now - self._last_logged.get(key, -1e9) >= 60:
            self._last_logged[key] = now
            log.error(
                "listener %s for %r raised %s: %s",
                getattr(listener, "__qualname__", listener),
                event,
                type(exc).__name__,
                exc,
                exc_info=exc,
            )

    async def wait_listeners(self, timeout: float = 5.0) -> None:
        """Let running coroutine listeners finish (at shutdown)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

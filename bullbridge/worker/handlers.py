"""Handlers per job name, and where each one runs.

``run_in``:

* ``"loop"`` - an ``async def`` handler, awaited on the event loop;
* ``"thread"`` - a plain ``def`` handler, run in the worker's thread pool so
  a blocking call (``time.sleep(20)``, a sync HTTP client) cannot stop lock
  renewal (the port runs it on the loop: the job's lock expires and another
  worker runs it a second time);
* ``"process"`` - a module-level ``def`` handler, run in a process pool for
  CPU-bound work; it receives a picklable :class:`JobSnapshot`.

Unless given, ``run_in`` follows the function: coroutine functions run on the
loop, plain functions in a thread. A job whose name has no handler fails at
once (not retried) with a reason listing the known names, unless a fallback
handler is registered.

``timeout`` (seconds, or a ``timedelta``) bounds one handler; ``None`` takes the
worker's ``handler_timeout``, ``math.inf`` exempts the handler from it. What
happens at the timeout depends on ``run_in`` (:mod:`bullbridge.worker.running`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from bullbridge.errors import ConfigurationError

RunIn = Literal["loop", "thread", "process"]
HandlerFn = Callable[..., Any]
_RUN_IN = ("loop", "thread", "process")


@dataclass(frozen=True)
class Handler:
    """A handler and how it runs: ``Handler(resize, "process", timeout=30)`` in a
    worker's handlers mapping. ``run_in`` defaults from the function (async: the
    loop; plain: a thread); ``timeout`` is in seconds (a ``timedelta`` works too)."""

    fn: HandlerFn
    run_in: RunIn | None = None
    timeout: float | timedelta | None = None

    @property
    def label(self) -> str:
        return getattr(self.fn, "__qualname__", repr(self.fn))


def handler_timeout(value: Any, what: str = "timeout") -> float | None:
    """Seconds (> 0, ``math.inf`` for none) from a number or a ``timedelta``; None stays None."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value <= 0:
        raise ConfigurationError(f"{what} must be a number of seconds > 0 (math.inf for none), got {value!r}")
    return float(value)


def make_handler(fn: HandlerFn | Handler, run_in: RunIn | None = None, timeout: Any = None) -> Handler:
    if isinstance(fn, Handler):  # checked like any other: a Handler(...) is not trusted as given
        return make_handler(fn.fn, fn.run_in or run_in, fn.timeout if fn.timeout is not None else timeout)
    if not callable(fn):
        raise ConfigurationError(f"a handler must be callable, got {type(fn).__name__}")
    is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)
    if run_in is None:
        run_in = "loop" if is_async else "thread"
    if run_in not in _RUN_IN:
        raise ConfigurationError(f"run_in must be one of {_RUN_IN}, got {run_in!r}")
    if run_in == "loop" and not is_async:
        raise ConfigurationError(
            f"handler {getattr(fn, '__qualname__', fn)} is not async: a plain function on the loop would block "
            "it (and lock renewal); use run_in='thread' (the default for plain functions)"
        )
    if run_in in ("thread", "process") and is_async:
        raise ConfigurationError(f"run_in={run_in!r} needs a plain (non-async) function")
    if run_in == "process" and getattr(fn, "__qualname__", "").count("<locals>"):
        raise ConfigurationError("a process handler must be a module-level function (it is pickled)")
    return Handler(fn, run_in, handler_timeout(timeout))


class HandlerRegistry:
    """Handlers by job name, plus an optional fallback for any other name."""

    def __init__(self) -> None:
        self._by_name: dict[str, Handler] = {}
        self.fallback: Handler | None = None

    def register(
        self, name: str | None, fn: HandlerFn | Handler, run_in: RunIn | None = None, timeout: Any = None
    ) -> Handler:
        handler = make_handler(fn, run_in, timeout)
        if name is None:
            self.fallback = handler
        else:
            if not isinstance(name, str) or not name:
                raise ConfigurationError(
                    f"a handler is registered for a non-empty job name, got {name!r} "
                    "(for every other name, use @worker.fallback)"
                )
            if name == "*":
                raise ConfigurationError(
                    "'*' is not a wildcard: pass one function as the handlers (it runs every "
                    "job name), or register it with @worker.fallback"
                )
            if name in self._by_name:
                raise ConfigurationError(f"job name {name!r} already has a handler ({self._by_name[name].label})")
            self._by_name[name] = handler
        return handler

    def update(self, handlers: Mapping[str, HandlerFn | Handler] | HandlerFn | None) -> None:
        if handlers is None:
            return
        if callable(handlers) and not isinstance(handlers, Mapping):
            self.register(None, handlers)
            return
        for name, fn in handlers.items():
            self.register(name, fn)

    def resolve(self, name: str) -> Handler | None:
        return self._by_name.get(name, self.fallback)

    @property
    def names(self) -> list[str]:
        return sorted(self._by_name)

    @property
    def needs_process_pool(self) -> bool:
        return any(h.run_in == "process" for h in self._all())

    @property
    def needs_thread_pool(self) -> bool:
        return any(h.run_in == "thread" for h in self._all())

    def _all(self) -> list[Handler]:
        return [*self._by_name.values(), *([self.fallback] if self.fallback else [])]

    def __bool__(self) -> bool:
        return bool(self._by_name) or self.fallback is not None

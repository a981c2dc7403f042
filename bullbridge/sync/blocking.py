"""Blocking methods made from async ones, so the two APIs cannot drift apart.

A blocking class holds its async twin (``bullbridge.Queue`` for
``bullbridge.sync.Queue``) and declares each method as the twin's own::

    class Queue(Blocking[queue.Queue]):
        add = blocking(queue.Queue.add)

:class:`blocking` takes the async method's signature, docstring and types
(``Callable[P, Coroutine[..., R]]`` becomes ``Callable[P, R]`` for type checkers),
and each call runs that very method on the process's loop thread
(:mod:`bullbridge.sync.runtime`) with a deadline: the object's ``timeout``, or
for a method that waits for a job (``waits=True``) its own ``timeout``
argument on top. :class:`same` passes a method that does no I/O straight
through. Nothing of the async API is written twice.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from bullbridge.errors import BullbridgeError, JobTimeout, RedisUnavailable
from bullbridge.sync import runtime

A = TypeVar("A")
P = ParamSpec("P")
R = TypeVar("R")


class Blocking(Generic[A]):
    """Base of a blocking twin: the async object it runs, and how calls on it end."""

    #: The async class's public name, for messages (``bullbridge.Queue``).
    _async_api = "bullbridge.?"

    def __init__(self, twin: A, timeout: float, where: str) -> None:
        self._twin = twin
        self._timeout = timeout
        self._where = where

    @property
    def timeout(self) -> float:
        """Seconds a call may take while Redis is unreachable or slow (default 10)."""
        return self._timeout

    def __enter__(self: _B) -> _B:
        return self

    def __exit__(self, *exc: object) -> None:
        close: Callable[[], None] = getattr(self, "close")  # noqa: B009 - declared by each subclass
        close()

    def _run(self, name: str, make: Callable[[], Coroutine[Any, Any, R]], deadline: float | None, waits: bool) -> R:
        call = f"bullbridge.sync.{type(self).__name__}.{name}"
        runtime.check_not_in_loop(call, f"await {self._async_api}(...).{name}(...)")

        def timed_out() -> BullbridgeError:
            if waits:
                return JobTimeout(f"{call}: no outcome within {deadline:g} s; wait longer with timeout=")
            return RedisUnavailable(
                f"{call}: Redis at {self._where} did not answer within {deadline:g} s; "
                "check that it is up and reachable, or pass a longer timeout="
            )

        return runtime.run(make, deadline, timed_out)


_B = TypeVar("_B", bound=Blocking[Any])


class blocking(Generic[A, P, R]):
    """The blocking form of the async method ``method`` of the twin class.

    ``waits``: the method waits for a job and takes a ``timeout`` in seconds
    (None: no limit); the call's deadline is that plus the object's timeout."""

    def __init__(self, method: Callable[Concatenate[A, P], Coroutine[Any, Any, R]], *, waits: bool = False) -> None:
        self.method = method
        self.waits = waits
        self.signature = inspect.signature(method)
        self.function: Callable[..., R] = self._function(method.__name__)

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.function.__name__ = name
        self.function.__qualname__ = f"{owner.__qualname__}.{name}"
        self.function.__module__ = owner.__module__

    def _function(self, name: str) -> Callable[..., R]:
        method, waits, signature = self.method, self.waits, self.signature

        def call(self: Blocking[A], /, *args: Any, **kwargs: Any) -> R:
            deadline: float | None = self.timeout
            if waits:
                wait = signature.bind(self._twin, *args, **kwargs)
                wait.apply_defaults()
                limit = wait.arguments["timeout"]
                deadline = None if limit is None else float(limit) + self.timeout
            twin = self._twin
            return self._run(name, lambda: method(twin, *args, **kwargs), deadline, waits)

        call.__signature__ = signature  # type: ignore[attr-defined]
        call.__doc__ = (
            f"{inspect.getdoc(method) or ''}\n\nBlocks until done, at most the object's ``timeout``"
            f"{' plus the wait' if waits else ''}; runs the async method on bullbridge's loop thread."
        ).strip()
        return call

    @overload
    def __get__(self, obj: None, owner: type[Any] | None = None) -> Callable[..., R]: ...

    @overload
    def __get__(self, obj: Blocking[A], owner: type[Any] | None = None) -> Callable[P, R]: ...

    def __get__(self, obj: Blocking[A] | None, owner: type[Any] | None = None) -> Callable[..., R]:
        if obj is None:
            return self.function
        bound: Callable[..., R] = self.function.__get__(obj, owner)
        return bound


class same(Generic[A, P, R]):
    """A method of the twin that does no I/O (validating, encoding), called as it is."""

    def __init__(self, method: Callable[Concatenate[A, P], R]) -> None:
        self.method = method

    @overload
    def __get__(self, obj: None, owner: type[Any] | None = None) -> Callable[..., R]: ...

    @overload
    def __get__(self, obj: Blocking[A], owner: type[Any] | None = None) -> Callable[P, R]: ...

    def __get__(self, obj: Blocking[A] | None, owner: type[Any] | None = None) -> Callable[..., R]:
        if obj is None:
            return self.method
        bound: Callable[..., R] = self.method.__get__(obj._twin, owner)
        return bound

"""Run workers from a dotted path: what ``bullbridge worker MODULE:ATTR`` does, as a library call.

``MODULE:ATTR`` (or ``module.attr``) names a
:class:`~bullbridge.manager.WorkerManager`, a :class:`~bullbridge.worker.Worker`,
a list of workers, or a (sync or async) function returning one of those.
:func:`run_worker` imports it, applies the overrides (then ``BULLBRIDGE_*``
environment variables, then defaults), runs it until SIGTERM/SIGINT (or, in
burst mode, until the queues are empty) and returns the process exit code -
the shape of arq's ``run_worker``, so a deployment can call it from its own
entry point as easily as from the command line.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import sys
import traceback
from collections.abc import Coroutine
from typing import Any, TypeVar

from bullbridge.errors import BullbridgeError, ConfigurationError, UserCodeError
from bullbridge.manager import ManagerSettings, WorkerManager
from bullbridge.worker import Worker

T = TypeVar("T")


def load_target(target: str) -> Any:
    """Import ``module:attr`` (or ``module.attr``), the current directory first on the path.

    A module that does not exist, or raises while imported, is a
    :class:`~bullbridge.errors.UserCodeError` naming the user's file and line (its
    ``__cause__`` is the original exception, for a traceback from the user's frame)."""
    module_name, sep, attr = target.partition(":")
    if not sep:
        module_name, _, attr = target.rpartition(".")
    if not module_name or not attr:
        raise ConfigurationError(f"{target!r} is not MODULE:ATTR (e.g. myapp.workers:manager)")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise UserCodeError(
                f"no module named {exc.name!r} (looked in {os.getcwd()} and the Python path): "
                "check MODULE:ATTR, or run from your project's folder"
            ) from None
        raise _import_failed(module_name, exc) from exc
    except Exception as exc:  # SyntaxError and every error of the module's own code
        raise _import_failed(module_name, exc) from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise UserCodeError(
            f"module {module_name!r} has no attribute {attr!r}: check MODULE:ATTR "
            f"(it defines {', '.join(_public(module)) or 'nothing public'})"
        ) from None


def _public(module: Any) -> list[str]:
    names = [n for n in vars(module) if not n.startswith("_")]
    return names[:8] + (["..."] if len(names) > 8 else [])


def user_location(exc: BaseException) -> str | None:
    """``path:line`` where ``exc`` was raised in the user's code (not in bullbridge, importlib,
    the standard library or an installed package); the innermost such frame."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    package = os.path.dirname(os.path.abspath(__file__))
    found = None
    for frame, line in traceback.walk_tb(exc.__traceback__):
        name = frame.f_code.co_filename
        if name.startswith((package, "<")) or "site-packages" in name or name.startswith(sys.base_prefix):
            continue
        found = f"{os.path.relpath(name) if name.startswith(os.getcwd()) else name}:{line}"
    return found


def _import_failed(module_name: str, exc: BaseException) -> UserCodeError:
    where = user_location(exc)
    at = f" at {where}" if where else ""
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return UserCodeError(
        f"importing module {module_name!r} failed{at} ({detail}): fix the module (--debug shows its traceback)",
        where,
    )


async def manager_for(target: Any, *, concurrency: int | None = None, **overrides: Any) -> WorkerManager:
    """The :class:`WorkerManager` a target describes, with ``overrides`` of its
    :class:`ManagerSettings` (``None`` values are ignored) and, when given, every
    worker's ``concurrency``."""
    if callable(target) and not isinstance(target, (Worker, WorkerManager)):
        factory = getattr(target, "__qualname__", repr(target))
        try:
            target = target()
            if inspect.isawaitable(target):
                target = await target
        except BullbridgeError:
            raise
        except Exception as exc:
            where = user_location(exc)
            at = f" at {where}" if where else ""
            raise UserCodeError(
                f"calling {factory}() failed{at} ({type(exc).__name__}: {exc}): fix the factory "
                "(--debug shows its traceback)",
                where,
            ) from exc
    given = {k: v for k, v in overrides.items() if v is not None}
    if isinstance(target, WorkerManager):
        manager = target
        current = {f: getattr(manager.settings, f) for f in manager.settings.__dataclass_fields__}
        manager.settings = ManagerSettings.from_env(**{**current, **given})
    elif isinstance(target, Worker) or (
        isinstance(target, (list, tuple)) and target and all(isinstance(w, Worker) for w in target)
    ):
        workers = [target] if isinstance(target, Worker) else list(target)
        manager = WorkerManager(workers, connection=workers[0].connector, settings=ManagerSettings.from_env(**given))
    else:
        raise ConfigurationError(
            f"{type(target).__name__} is not something to run: expected a WorkerManager, "
            "a Worker, a list of Workers, or a function returning one"
        )
    if concurrency:
        manager.set_concurrency(concurrency)
    return manager


def run_worker(target: str | Any, *, concurrency: int | None = None, **overrides: Any) -> int:
    """Import (when a string) and run a target until it is shut down; the exit code
    (0 when every active job finished, 1 when some had to be handed back)."""
    loaded = load_target(target) if isinstance(target, str) else target

    async def main() -> int:
        manager = await manager_for(loaded, concurrency=concurrency, **overrides)
        return await manager.run()

    return run(main())


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop when it is installed: the loop ``bullbridge worker`` uses.

    A library never changes a process's global loop policy; this runs one
    coroutine on a loop of its own and closes it cleanly."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in the lock
        return asyncio.run(coro)
    result: T = uvloop.run(coro)
    return result

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
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Coroutine
from typing import Any, TypeVar

from bullbridge.errors import BullbridgeError, ConfigurationError, UserCodeError
from bullbridge.manager import ManagerSettings, WorkerManager
from bullbridge.worker import Worker

T = TypeVar("T")
log = logging.getLogger("bullbridge.runner")

#: Seconds tasks left at the end of a run get to end once cancelled.
LEFTOVER_GRACE = 2.0
#: Seconds ``bullbridge worker`` waits for the interpreter's own exit before it ends the process itself.
EXIT_GRACE = 2.0


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
    coroutine on a loop of its own and closes it cleanly. Unlike ``asyncio.run``,
    tasks still running at the end get :data:`LEFTOVER_GRACE` seconds once
    cancelled: one that ignores its cancellation (a handler that catches
    ``CancelledError``) is left behind with a WARNING instead of holding the
    process forever."""
    loop = _new_loop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro)
    finally:
        try:
            _cancel_leftovers(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in the lock
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    done, pending = loop.run_until_complete(asyncio.wait(tasks, timeout=LEFTOVER_GRACE))
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler(
                {"message": "unhandled exception during shutdown", "exception": task.exception(), "task": task}
            )
    if pending:
        log.warning(
            "%d task(s) still running %g s after they were cancelled at exit (a handler that catches "
            "CancelledError?): %s; exiting without them",
            len(pending),
            LEFTOVER_GRACE,
            ", ".join(sorted(t.get_name() for t in pending)),
        )
        for task in pending:  # reported above: no "Task was destroyed but it is pending!" at exit
            task._log_destroy_pending = False  # type: ignore[attr-defined]


def watch_exit(code: int, grace: float = EXIT_GRACE) -> int:
    """For a process's entry point once its workers are closed: return ``code``,
    and make sure the process really exits with it. The interpreter's exit joins
    every non-daemon thread, so a thread a handler started and left running
    would hold the process (until Kubernetes kills it, exit code lost); a daemon
    watchdog ends it with ``code`` after ``grace`` seconds, naming the threads."""

    def watchdog() -> None:
        time.sleep(grace)
        me, main = threading.current_thread(), threading.main_thread()
        stuck = [t.name for t in threading.enumerate() if t not in (me, main) and not t.daemon]
        log.warning(
            "the process has not exited %g s after its workers closed: thread(s) %s still running (started by a "
            "handler and never ended?); exiting with code %d without them",
            grace,
            ", ".join(stuck) or "(none: an exit hook)",
            code,
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    threading.Thread(target=watchdog, name="bullbridge-exit-watchdog", daemon=True).start()
    return code

"""How a ``bullbridge`` command fails: one line on stderr, and an exit code per kind of failure.

Every command runs under :func:`run_command`. Whatever it raises becomes one
line - ``bullbridge <command>: <what failed>: <what to do>`` - with passwords
masked and control characters escaped (:func:`bullbridge.redact.printable`),
and the exit code of :class:`Exit`. A traceback is printed only with
``--debug`` or ``BULLBRIDGE_DEBUG=1`` (for an error in the user's module it
starts at the user's frame, not in bullbridge or importlib). A closed output
pipe (``bullbridge stats --json | head``) ends the command quietly.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from collections.abc import Callable
from enum import IntEnum
from types import TracebackType

from bullbridge.connection.replies import explain
from bullbridge.errors import (
    BullbridgeError,
    CannotListen,
    ConfigurationError,
    CorruptJob,
    InvalidJobOptions,
    JobNotFound,
    MissingDependency,
    RedisAuthError,
    RedisTlsError,
    RedisUnavailable,
    RespError,
    UnknownQueue,
    UserCodeError,
)
from bullbridge.redact import printable

DEBUG_ENV = "BULLBRIDGE_DEBUG"


class Exit(IntEnum):
    """The exit codes of every ``bullbridge`` command (docs/operations.md#exit-codes)."""

    OK = 0
    #: The command ran and its answer is "no": unhealthy, no such queue or job, jobs failed
    #: in a --burst run, doctor warnings, a conformance scenario failed.
    NO = 1
    #: Bad arguments or settings (a malformed URL, an unknown option, an invalid value).
    USAGE = 2
    #: Redis cannot be reached (nothing listening, unknown host, no answer in time).
    UNREACHABLE = 3
    #: Redis refused the credentials, or the TLS handshake failed.
    AUTH = 4
    #: Redis answered with an error (out of memory, read-only replica, a cluster node...).
    REDIS_ERROR = 5
    #: A server of ours cannot listen on its address (port in use, no permission).
    CANNOT_LISTEN = 6
    #: The user's MODULE:ATTR does not exist, or importing/calling it raised.
    USER_CODE = 7
    #: Something needed is not installed (Node.js, npm bullmq, redis-server, an extra).
    MISSING = 8
    #: A bug in bullbridge (an exception nobody expected): --debug shows it; please report it.
    INTERNAL = 70
    #: Stopped by Ctrl-C.
    INTERRUPTED = 130
    #: The output was closed early (``| head``): ended quietly, as SIGPIPE would.
    PIPE_CLOSED = 141


EXIT_HELP = (
    "exit codes: 0 ok; 1 the answer is no (unhealthy, unknown queue or job, failed jobs, warnings); "
    "2 bad arguments or settings; 3 Redis unreachable; 4 Redis refused the credentials or TLS; "
    "5 Redis answered an error; 6 cannot listen on the port; 7 your MODULE:ATTR failed; "
    "8 something needed is not installed; 70 a bug in bullbridge (run with --debug); "
    "130 interrupted; 141 output closed. Tracebacks only with --debug or BULLBRIDGE_DEBUG=1."
)

_LISTEN_ERRNOS = (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL)


def debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def classify(exc: BaseException) -> tuple[Exit, str]:
    """The exit code and the one-line message (not yet masked) for ``exc``."""
    if isinstance(exc, RespError):
        exc = explain(exc)
    if isinstance(exc, (RedisAuthError, RedisTlsError)):
        return Exit.AUTH, str(exc)
    if isinstance(exc, RedisUnavailable):
        text = str(exc)
        advice = (
            ""
            if ": " in text and ("fix" in text or "start" in text)
            else (": check that Redis runs there and the URL (--redis / BULLBRIDGE_REDIS_URL)")
        )
        return Exit.UNREACHABLE, text + advice
    if isinstance(exc, RespError):
        return Exit.REDIS_ERROR, str(exc)
    if isinstance(exc, CannotListen):
        return Exit.CANNOT_LISTEN, str(exc)
    if isinstance(exc, UserCodeError):
        return Exit.USER_CODE, str(exc)
    if isinstance(exc, MissingDependency):
        return Exit.MISSING, str(exc)
    if isinstance(exc, (UnknownQueue, JobNotFound)):
        return Exit.NO, str(exc)
    if isinstance(exc, (ConfigurationError, InvalidJobOptions)):
        return Exit.USAGE, str(exc)
    if isinstance(exc, (BullbridgeError, CorruptJob)):
        return Exit.NO, str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.errno in _LISTEN_ERRNOS:
        return Exit.CANNOT_LISTEN, f"{exc.strerror or exc}: choose another port, or stop what uses it"
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return Exit.INTERNAL, (f"internal error ({detail}): run again with --debug for the traceback, and please report it")


def user_frames(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` from the first frame outside bullbridge and importlib: the user's."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        ours = filename.startswith((package, "<frozen importlib")) or f"{os.sep}importlib{os.sep}" in filename
        if not ours:
            return tb
        tb = tb.tb_next
    return None


def print_traceback(exc: BaseException) -> None:
    """The traceback for ``--debug``: the user's error from their frame when it is theirs."""
    shown = exc.__cause__ if isinstance(exc, UserCodeError) and exc.__cause__ is not None else exc
    if shown is not exc:
        shown = shown.with_traceback(user_frames(shown.__traceback__) or shown.__traceback__)
        shown.__cause__ = shown.__context__ = None
    text = "".join(traceback.format_exception(shown))
    sys.stderr.write(printable(text))


def fail(command: str, exc: BaseException, *, debug: bool) -> int:
    """Report ``exc`` as the failure of ``command``; the exit code."""
    code, message = classify(exc)
    if debug:
        print_traceback(exc)
    print(f"bullbridge {command}: {printable(message, single_line=True)}", file=sys.stderr, flush=True)
    return int(code)


def _quiet_stdout() -> None:
    """After a closed pipe: point stdout at /dev/null, so the interpreter's final flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # pragma: no cover - stdout without a file descriptor
        pass


def run_command(command: str, body: Callable[[], int], *, debug: bool) -> int:
    """Run a command's body; every way it can fail becomes a line and an exit code."""
    try:
        status = body()
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        _quiet_stdout()
        return int(Exit.PIPE_CLOSED)
    except KeyboardInterrupt:
        print(f"bullbridge {command}: interrupted", file=sys.stderr)
        return int(Exit.INTERRUPTED)
    except SystemExit:
        raise
    except Exception as exc:
        if isinstance(exc.__context__, BrokenPipeError) or "Broken pipe" in str(exc):
            _quiet_stdout()
            return int(Exit.PIPE_CLOSED)
        return fail(command, exc, debug=debug)

"""How a failed attempt is described and when it is retried.

* ``failedReason`` keeps the exception class: ``ValueError: bad value`` (the
  port stores ``str(exc)``, so ``bad value``; Node stores ``err.message``);
* the stack trace is stored as BullMQ stores it: a JSON list of traces, one per
  failed attempt, capped by the job's ``stackTraceLimit``;
* backoffs follow Node's ``Backoffs`` exactly (fixed, exponential, jitter), and
  a custom type set by a Node producer resolves to a strategy registered on the
  worker - or fails the job with a reason that says how to register one (the
  port raises inside moveToFailed, the job stalls twice and fails as "stalled").
"""

from __future__ import annotations

import math
import random
import traceback
from collections.abc import Mapping
from typing import Any

from bullbridge.errors import BullbridgeError
from bullbridge.worker.settings import BackoffStrategy


class UnknownBackoff(BullbridgeError):
    pass


#: Longest job name or reason a log line carries (a foreign writer may store megabytes).
LOG_TEXT_LIMIT = 500


def short(text: str, limit: int = LOG_TEXT_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def log_fields(queue: str, job: Any, attempt: int) -> dict[str, Any]:
    """The ``extra`` of a job's log record: what ``--log-format json`` puts in its own keys."""
    return {"queue": queue, "job_id": str(job.id), "job_name": short(str(job.name), 200), "attempt": attempt}


def failure_reason(exc: BaseException) -> str:
    """``ClassName: message`` (just the class name when the message is empty); a
    class may name itself otherwise with ``failure_name`` (HandlerTimeout: ``TimeoutError``)."""
    name = getattr(type(exc), "failure_name", None) or type(exc).__name__
    try:
        message = repr(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    except Exception as err:  # a user exception whose __str__ raises: still a reason
        message = f"<its message could not be read: {type(err).__name__}>"
    return f"{name}: {message}" if message else name


def stack_of(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()


def stacktrace_list(previous: list[str], exc: BaseException, limit: Any) -> list[str]:
    traces = [*previous, stack_of(exc)]
    if limit == 0:
        return []
    if isinstance(limit, int) and limit > 0:
        return traces[-limit:]
    return traces


def builtin_backoff(kind: str, delay: int, jitter: float, attempts_made: int) -> int:
    """Node's ``Backoffs.builtinStrategies`` (same rounding)."""
    if kind == "fixed":
        if jitter > 0:
            min_delay = delay * (1 - jitter)
            return math.floor(random.random() * delay * jitter + min_delay)
        return delay
    max_delay = _js_round(math.pow(2, attempts_made - 1) * delay)
    if jitter > 0:
        min_delay = max_delay * (1 - jitter)
        return math.floor(random.random() * max_delay * jitter + min_delay)
    return max_delay


def _js_round(x: float) -> int:
    """``Math.round``: halves go up (Python's round() goes to even)."""
    return math.floor(x + 0.5)


def backoff_delay(
    backoff: Any, attempts_made: int, exc: BaseException, job: Any, strategies: Mapping[str, BackoffStrategy]
) -> int | None:
    """Delay in ms before the next attempt; None for no backoff (retry at once);
    -1 to fail now. Raises :class:`UnknownBackoff` with a fix in the message."""
    if backoff is None or backoff is False or backoff == 0:
        return None
    if isinstance(backoff, (int, float)) and not isinstance(backoff, bool):
        return int(backoff)
    if not isinstance(backoff, Mapping):
        raise UnknownBackoff(f"backoff option {backoff!r} is neither a number nor {{type, delay}}")
    kind = str(backoff.get("type", ""))
    delay = backoff.get("delay") or 0
    jitter = backoff.get("jitter") or 0
    if kind in strategies:
        return int(strategies[kind](attempts_made, kind, exc, job))
    if kind in ("fixed", "exponential"):
        return builtin_backoff(kind, int(delay), float(jitter), attempts_made)
    known = ", ".join(sorted({"fixed", "exponential", *strategies}))
    raise UnknownBackoff(
        f"unknown backoff type {kind!r} set by the job's producer; register it on this worker with "
        f"Worker(..., backoff_strategies={{{kind!r}: fn}}) (known here: {known})"
    )

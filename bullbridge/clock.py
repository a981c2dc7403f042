"""The one clock: epoch milliseconds, as Node's ``Date.now()`` gives them.

Every timestamp bullbridge writes (a job's ``timestamp``, a finish time, a
scheduler's next run) or compares with one Redis holds comes from here, so
Python and Node agree to the millisecond on what "now" means and how a date
becomes a number: whole milliseconds, truncated, never rounded.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from bullbridge.errors import ConfigurationError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
#: What :func:`set_offset` added to this process's clock, in nanoseconds.
_offset_ns = 0


def now_ms() -> int:
    """Milliseconds since the epoch (``Date.now()``)."""
    return (time.time_ns() + _offset_ns) // 1_000_000


def now() -> float:
    """Seconds since the epoch (``time.time()``), on the same clock as :func:`now_ms`."""
    return (time.time_ns() + _offset_ns) / 1e9


def set_offset(ms: int) -> None:
    """Run this process's clock ``ms`` milliseconds ahead (negative: behind) of the host's:
    for tests of a host whose clock is off (docs/faults.md#time). 0 puts it back."""
    global _offset_ns
    _offset_ns = int(ms) * 1_000_000


def offset_ms() -> int:
    """The offset :func:`set_offset` set (0 normally)."""
    return _offset_ns // 1_000_000


def datetime_ms(moment: datetime) -> int:
    """An aware datetime as epoch milliseconds (``date.getTime()``), exactly:
    no float rounding on the way. A naive datetime is a ``ValueError``."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ConfigurationError(
            f"{moment!r} has no timezone: a naive datetime means different instants on different hosts"
        )
    return (moment - _EPOCH) // _MS


def ms_datetime(ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC datetime."""
    return _EPOCH + ms * _MS

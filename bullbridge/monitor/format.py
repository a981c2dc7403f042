"""Human formatting shared by the CLI and the dashboard: durations, rates, tables."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

from bullbridge.clock import now_ms
from bullbridge.errors import ConfigurationError
from bullbridge.monitor.languages import NODE, PYTHON, PYTHON_PORT


def duration(ms: int | float | None) -> str:
    """``850ms``, ``4.2s``, ``42s``, ``3m04s``, ``2h05m``, ``3d04h``; ``-`` for nothing."""
    if ms is None:
        return "-"
    ms = float(ms)
    if ms < 1000:
        return f"{ms:.0f}ms"
    seconds = ms / 1000
    if round(seconds, 1) < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def schedule_rule(pattern: str | None, every: int | float | None) -> str:
    """A job scheduler's rule as people read it: its cron pattern, or ``every 6h00m``
    (``-`` for neither). The CLI's ``schedule list`` and the dashboard both print this."""
    if pattern:
        return pattern
    return f"every {duration(every)}" if every else "-"


def rate(per_minute: float | None) -> str:
    if per_minute is None:
        return "-"
    if per_minute >= 100:
        return f"{per_minute:,.0f}/m"
    return f"{per_minute:.1f}/m"


def percent(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def number(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def timestamp(ms: int | None) -> str:
    """Epoch milliseconds as ISO-8601 UTC (``-`` for nothing)."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def relative(ms: int | None, now: int | None = None) -> str:
    """``in 3m04s`` / ``2h05m ago``."""
    if ms is None:
        return "-"
    now = now if now is not None else now_ms()
    delta = ms - now
    return f"in {duration(delta)}" if delta >= 0 else f"{duration(-delta)} ago"


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_duration_ms(value: str) -> int:
    """``90`` (seconds), ``500ms``, ``30s``, ``15m``, ``2h``, ``7d``, ``1w`` -> milliseconds."""
    match = _DURATION.match(value)
    if not match:
        raise ConfigurationError(f"not a duration: {value!r} (e.g. 30s, 15m, 2h, 7d)")
    amount, unit = match.groups()
    return int(float(amount) * _UNIT_MS[unit or "s"])


_SHORT = {PYTHON: "py", NODE: "node", PYTHON_PORT: "port"}


def workers(counts: dict[str, int]) -> str:
    """``2 py + 1 node``; ``-`` without workers."""
    parts = [f"{n} {_SHORT.get(lang, lang)}" for lang, n in counts.items() if n]
    return " + ".join(parts) if parts else "-"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] | None = None) -> str:
    """A plain-text table with aligned columns (numbers right-aligned when ``right`` says so)."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    align = right or [False] * len(headers)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if a else c.ljust(w) for c, w, a in zip(cells, widths, align)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])

"""Inline SVG charts, drawn on the server: no JavaScript library, no CDN.

The dashboard must work from a browser without network access, and under a
Content-Security-Policy that forbids inline styles and scripts; SVG
presentation attributes (``fill``, ``stroke``) are neither, so the charts are
plain markup. Every chart carries ``role="img"`` and an ``aria-label``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

COMPLETED = "#2e7d32"
FAILED = "#c62828"
P50 = "#1565c0"
P95 = "#ef6c00"
WAIT = "#6a1b9a"
GRID = "#d0d7de"
TEXT = "#57606a"


@dataclass(frozen=True)
class Series:
    label: str
    color: str
    values: Sequence[float | None]


def nice_scale(value: float, ticks: int = 3) -> tuple[float, float]:
    """``(top, step)``: a round step (1, 2, 2.5 or 5 x 10^n) and the smallest multiple of it
    at or above ``value``, so gridlines land on round numbers."""
    if value <= 0:
        return 1.0, 1.0 / ticks
    rough = value / ticks
    magnitude = 1.0
    while magnitude * 10 <= rough:
        magnitude *= 10
    while magnitude > rough:
        magnitude /= 10
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= rough)
    top = step * -(-value // step)
    return top, step


def _frame(
    width: int,
    height: int,
    label: str,
    body: list[str],
    legend: Sequence[Series],
    scale: tuple[float, float],
    y_format: Callable[[float], str],
    x_labels: tuple[str, str],
    left: int,
    bottom: int,
) -> str:
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(label)}">',
        f"<title>{escape(label)}</title>",
    ]
    plot_h = height - bottom - 20
    top, step = scale
    for i in range(round(top / step) + 1):
        value = step * i
        y = 20 + plot_h - plot_h * value / top
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 8}" y2="{y:.1f}" stroke="{GRID}" stroke-width="1"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="{TEXT}">{escape(y_format(value))}</text>'
        )
    parts.extend(body)
    parts.append(f'<text x="{left}" y="{height - 6}" font-size="11" fill="{TEXT}">{escape(x_labels[0])}</text>')
    parts.append(
        f'<text x="{width - 8}" y="{height - 6}" font-size="11" text-anchor="end" '
        f'fill="{TEXT}">{escape(x_labels[1])}</text>'
    )
    x = left + 90
    for series in legend:
        parts.append(f'<rect x="{x}" y="{height - 16}" width="10" height="10" fill="{series.color}"/>')
        parts.append(f'<text x="{x + 14}" y="{height - 7}" font-size="11" fill="{TEXT}">{escape(series.label)}</text>')
        x += 24 + 7 * len(series.label)
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    label: str,
    stacked: Sequence[Series],
    *,
    width: int = 680,
    height: int = 200,
    x_labels: tuple[str, str] = ("", "now"),
    y_format: Callable[[float], str] = lambda v: f"{v:g}",
) -> str:
    """Stacked bars, one per point (oldest first)."""
    left, bottom = 48, 26
    n = max((len(s.values) for s in stacked), default=0)
    totals = [sum((s.values[i] or 0) for s in stacked if i < len(s.values)) for i in range(n)]
    scale = nice_scale(max(totals, default=0))
    if scale[1] < 1:  # counts: whole-number gridlines
        scale = (float(max(1, math.ceil(scale[0]))), 1.0)
    top = scale[0]
    plot_w = width - left - 8
    plot_h = height - bottom - 20
    slot = plot_w / max(n, 1)
    body: list[str] = []
    for i in range(n):
        base = 0.0
        for series in stacked:
            value = series.values[i] if i < len(series.values) else None
            if not value:
                continue
            h = plot_h * value / top
            y = 20 + plot_h - plot_h * (base + value) / top
            body.append(
                f'<rect x="{left + i * slot + 1:.1f}" y="{y:.1f}" width="{max(slot - 2, 1):.1f}" '
                f'height="{h:.1f}" fill="{series.color}"><title>{escape(series.label)}: {value:g}'
                f"</title></rect>"
            )
            base += value
    return _frame(width, height, label, body, stacked, scale, y_format, x_labels, left, bottom)


def line_chart(
    label: str,
    lines: Sequence[Series],
    *,
    width: int = 680,
    height: int = 200,
    x_labels: tuple[str, str] = ("", "now"),
    y_format: Callable[[float], str] = lambda v: f"{v:g}",
) -> str:
    """Lines over points (oldest first); ``None`` values leave gaps, lone points are dots."""
    left, bottom = 56, 26
    n = max((len(s.values) for s in lines), default=0)
    scale = nice_scale(max((v for s in lines for v in s.values if v is not None), default=0))
    top = scale[0]
    plot_w = width - left - 8
    plot_h = height - bottom - 20
    step = plot_w / max(n - 1, 1)
    body: list[str] = []
    for series in lines:
        run: list[str] = []

        def flush(run: list[str], color: str) -> None:
            if len(run) > 1:
                body.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(run)}"/>')
            elif run:
                x, y = run[0].split(",")
                body.append(f'<circle cx="{x}" cy="{y}" r="2.5" fill="{color}"/>')

        for i, value in enumerate(series.values):
            if value is None:
                flush(run, series.color)
                run = []
                continue
            run.append(f"{left + i * step:.1f},{20 + plot_h - plot_h * value / top:.1f}")
        flush(run, series.color)
    return _frame(width, height, label, body, lines, scale, y_format, x_labels, left, bottom)


def sparkline(
    values: Sequence[float], *, width: int = 120, height: int = 24, color: str = COMPLETED, label: str = ""
) -> str:
    """A tiny line for table cells."""
    top = max(values, default=0) or 1
    n = len(values)
    step = width / max(n - 1, 1)
    points = " ".join(f"{i * step:.1f},{height - 2 - (height - 4) * v / top:.1f}" for i, v in enumerate(values))
    return (
        f'<svg class="spark" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(label)}">'
        f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{points}"/></svg>'
    )

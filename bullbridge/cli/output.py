"""What the ``bullbridge`` command writes to stdout: masked, control characters escaped.

Queue names, job names, ids, data and failure reasons come from whoever wrote
to Redis; a queue named ``"\\x1b]0;owned\\x07"`` must not retitle the operator's
terminal. :func:`emit` writes text with control characters as ``\\xNN``;
:func:`emit_json` writes JSON whose every control character is a ``\\uXXXX`` escape.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from typing import Any

from bullbridge.redact import printable, redact

_C1 = re.compile(r"[\x7f-\x9f]")


def emit(text: object = "", *, end: str = "\n", flush: bool = False) -> None:
    """Print ``text`` for a terminal (tabs and newlines kept)."""
    print(printable(text), end=end, flush=flush)


def json_text(value: Any, *, indent: int | None = 2) -> str:
    """JSON as the CLI prints it: UTF-8 as is, every control character escaped, secrets masked."""
    text = json.dumps(value, indent=indent, ensure_ascii=False, default=str)
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", redact(text))


def emit_json(value: Any, *, indent: int | None = 2, flush: bool = False) -> None:
    print(json_text(value, indent=indent), flush=flush)


def emit_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    right: Sequence[bool] | None = None,
    *,
    flush: bool = False,
) -> None:
    """A table: rich's on a terminal wide enough for it (bold header), aligned plain text otherwise -
    what scripts, pipes and logs read. Cells are escaped as by :func:`emit` and given to rich as
    plain text, never as markup (a queue named ``[red]x`` stays that)."""
    align = list(right or [False] * len(headers))
    cells = [[printable(c) for c in row] for row in rows]
    heads = [printable(h) for h in headers]
    console = _terminal()
    natural = sum(max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(heads)) + 2 * (len(heads) - 1)
    if console is None or natural > console.width:
        # not a terminal, or one too narrow for the table: aligned lines (which a terminal wraps whole)
        from bullbridge.monitor.format import table

        emit(table(heads, cells, align), flush=flush)
        return
    from rich.table import Table
    from rich.text import Text

    grid = Table(box=None, header_style="bold", pad_edge=False)
    for header, numeric in zip(heads, align):
        grid.add_column(header, justify="right" if numeric else "left", no_wrap=True)
    for row in cells:
        grid.add_row(*(Text(cell) for cell in row))
    console.print(grid)
    if flush:
        sys.stdout.flush()


def _terminal() -> Any:
    """A rich Console on stdout when stdout is a terminal (None otherwise: rich is not imported)."""
    if not sys.stdout.isatty():
        return None
    from rich.console import Console

    return Console(file=sys.stdout, highlight=False)

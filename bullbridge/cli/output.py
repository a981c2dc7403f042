"""What the ``bullbridge`` command writes to stdout: masked, control characters escaped.

Queue names, job names, ids, data and failure reasons come from whoever wrote
to Redis; a queue named ``"\\x1b]0;owned\\x07"`` must not retitle the operator's
terminal. :func:`emit` writes text with control characters as ``\\xNN``;
:func:`emit_json` writes JSON whose every control character is a ``\\uXXXX`` escape.
"""

from __future__ import annotations

import json
import re
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

"""Logging for the ``bullbridge`` command (the library itself configures no handler).

``--log-level`` (DEBUG, INFO, WARNING, ERROR; ``bullbridge worker`` defaults to
INFO, every other command to WARNING) and ``--log-format``:

* ``text`` (default): ``2026-01-02 03:04:05,678 WARNING bullbridge.worker: ...``;
* ``json``: one object per line - ``time`` (ISO-8601 UTC, ms), ``level``,
  ``logger``, ``message``, and for job events ``queue``, ``jobId``, ``jobName``,
  ``attempt`` (the worker passes them as ``extra``) - for log shippers.

Both pass every line through :func:`bullbridge.redact.printable`: no password
and no raw control character reaches the terminal or the log store.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

from bullbridge.redact import printable, redact

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("text", "json")
#: ``extra`` fields the worker attaches to job log records, and their JSON names.
JOB_FIELDS = {"queue": "queue", "job_id": "jobId", "job_name": "jobName", "attempt": "attempt"}


def level_name(text: str) -> str:
    """``--log-level``'s type: a level name, in any case."""
    name = text.strip().upper()
    if name == "WARN":
        name = "WARNING"
    if name not in LEVELS:
        raise argparse.ArgumentTypeError(f"unknown log level {text!r} (choose from {', '.join(LEVELS[:4])})")
    return name


class TextFormatter(logging.Formatter):
    """The usual text line, masked and with control characters escaped."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record (``--log-format json``)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
        }
        for attr, key in JOB_FIELDS.items():
            value = getattr(record, attr, None)
            if value is not None:
                out[key] = value
        out["message"] = redact(record.getMessage())
        if record.exc_info:
            out["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False, default=str)


class _CliHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure` installs (and replaces on a second call). It writes to
    whatever ``sys.stderr`` is when a record comes (as logging's last-resort handler does), so
    a ``main()`` called in-process - a test capturing stderr - leaves no handler on a closed stream."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ sets it: the property wins
        pass


def configure(level: str, fmt: str = "text") -> None:
    """The root logger of this process: one stderr handler at ``level`` in ``fmt``.

    Handlers someone else installed (an embedding application, pytest's capture)
    stay, and the root level is then only ever lowered."""
    handler = _CliHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.setLevel(level)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _CliHandler)]:
        root.removeHandler(old)
    foreign = bool(root.handlers)
    root.addHandler(handler)
    numeric = logging.getLevelName(level)
    root.setLevel(min(root.level or numeric, numeric) if foreign else numeric)
    logging.captureWarnings(True)

"""Secrets out of everything bullbridge prints: one function, :func:`redact`.

Every error message that names a Redis, every ``repr`` of an object holding a
connection, every log line of the CLI and every report (doctor, the pytest
plugin's failure text, ``Interop``) goes through :func:`redact`:

* the password of any URL (``redis://user:secret@host`` -> ``redis://user:***@host``,
  ``redis://:secret@host`` -> ``redis://:***@host``), whatever its scheme, even
  when the rest of the URL is malformed;
* every password bullbridge was given (a ``ConnectionSettings`` remembers its
  own through :func:`remember`), wherever it appears - a server's error text,
  a dict of settings, an exception from below - also in its URL-encoded form.

:func:`printable` additionally escapes control characters, so a queue named
``"\\x1b]0;pwned\\x07"`` cannot retitle or repaint an operator's terminal.
"""

from __future__ import annotations

import re
from urllib.parse import quote

MASK = "***"

# scheme://[user]:password@ - the password may hold '@' (urlparse splits on the last one).
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:@/\s]*):(?P<password>[^\s/]*)@")
#: Secrets shorter than this are masked inside URLs only (masking "ab" everywhere would
#: mangle unrelated text and tell where the secret is).
MIN_REMEMBERED = 6
_known: set[str] = set()
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def remember(secret: str | None) -> None:
    """Mask ``secret`` in everything :func:`redact` sees from now on (this process)."""
    if secret and len(secret) >= MIN_REMEMBERED:
        _known.add(secret)
        encoded = quote(secret, safe="")
        if encoded != secret:
            _known.add(encoded)


def redact(text: object) -> str:
    """``str(text)`` with every URL password and every remembered secret replaced by ``***``."""
    out = str(text)
    if "://" in out:
        out = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", out)
    for secret in sorted(_known, key=len, reverse=True):
        if secret in out:
            out = out.replace(secret, MASK)
    return out


def escape_control(text: str) -> str:
    """Control characters (C0 but tab and newline, DEL, C1) as ``\\xNN`` escapes."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def printable(text: object, *, single_line: bool = False) -> str:
    """:func:`redact`, then control characters escaped (and newlines too with ``single_line``):
    what may reach an operator's terminal."""
    out = escape_control(redact(text))
    if single_line:
        out = out.replace("\r", "\\r").replace("\n", " ").replace("\t", " ")
    return out

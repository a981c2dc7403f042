"""The one JSON codec: what Python writes is what Node's ``JSON.parse`` reads.

Rules (also in the README):

* UTF-8 is written raw, never as ``\\uXXXX`` escapes (the port's ``json.dumps``
  inflates emoji and CJK up to 3x);
* ``NaN`` and ``Infinity`` are refused: Node has no JSON for them (orjson would
  silently write ``null``);
* integers beyond +/-2**53 are refused by default, naming the path, because Node
  reads them rounded and writes them back rounded; ``big_ints="string"`` sends
  them as decimal strings instead;
* ``datetime`` (timezone-aware) becomes ISO-8601 UTC with milliseconds and
  ``Z``, exactly like ``Date.prototype.toJSON``; a naive datetime is refused;
* ``bytes``, sets, and any other type without a JSON form are refused with
  the path (``$.items[3]``), as are non-string dict keys and nesting deeper
  than 254 levels;
* decoding never fails on valid JSON written by Node: orjson first, then the
  standard library for what orjson rejects (lone ``\\ud800`` escapes, ``1e400``,
  nesting beyond 1,024).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from bullbridge.errors import CorruptJob, NotJsonSafe

MAX_SAFE_INT = 2**53 - 1
MAX_DEPTH = 254
_OPTS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


def js_date(value: datetime) -> str:
    """``Date.prototype.toJSON`` for an aware datetime: ``2025-01-02T03:04:05.678Z``."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class JsonCodec:
    """Encode/decode job data, return values and progress for Node.

    ``big_ints``: ``"reject"`` (default) raises :class:`NotJsonSafe` for ints
    beyond +/-2**53; ``"string"`` sends them as strings.
    """

    big_ints: Literal["reject", "string"] = "reject"

    def encode(self, value: Any) -> bytes:
        """JSON bytes Node reads back as written, or :class:`NotJsonSafe`."""
        if self.big_ints == "string":
            value = _stringify_big_ints(value, 0)
        elif not _fast_ok(value, 0):
            _locate_problem(value, self.big_ints)
        try:
            return orjson.dumps(value, default=_default, option=_OPTS)
        except NotJsonSafe:
            raise
        except (orjson.JSONEncodeError, TypeError) as exc:
            _locate_problem(value, self.big_ints)
            raise NotJsonSafe(f"not JSON-safe ({exc})") from exc

    def decode(self, raw: bytes | bytearray | memoryview | str) -> Any:
        """Parse JSON written by either language; :class:`CorruptJob` if it is not JSON."""
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as first:
            try:
                text = bytes(raw).decode("utf-8") if isinstance(raw, (bytes, bytearray, memoryview)) else raw
                return json.loads(text)
            except UnicodeDecodeError as exc:
                raise CorruptJob(f"not UTF-8 ({exc.reason} at byte {exc.start})") from exc
            except (ValueError, RecursionError):
                raise CorruptJob(f"not valid JSON ({first})") from first


DEFAULT = JsonCodec()
encode = DEFAULT.encode
decode = DEFAULT.decode


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise NotJsonSafe("a naive datetime has no instant Node can agree on; give it a tzinfo")
        return js_date(value)
    raise TypeError(type(value).__name__)


def _fast_ok(value: Any, depth: int) -> bool:
    """Cheap check of the common case; False sends us to the slow, precise path."""
    if depth > MAX_DEPTH:
        return False
    t = type(value)
    if t is str or t is bool or value is None:
        return True
    if t is int:
        number: int = value
        return -MAX_SAFE_INT <= number <= MAX_SAFE_INT
    if t is float:
        return math.isfinite(value)
    if t is dict:
        for key, item in value.items():
            if type(key) is not str:
                return False
            ti = type(item)
            if ti is str or ti is bool or item is None:
                continue
            if not _fast_ok(item, depth + 1):
                return False
        return True
    if t is list or t is tuple:
        for item in value:
            ti = type(item)
            if ti is str or ti is bool or item is None:
                continue
            if not _fast_ok(item, depth + 1):
                return False
        return True
    if t is datetime:
        return bool(value.tzinfo is not None and value.utcoffset() is not None)
    return False


def _locate_problem(value: Any, big_ints: str) -> None:
    """Walk the value (iteratively) and raise :class:`NotJsonSafe` at the first problem."""
    stack: list[tuple[Any, str, int]] = [(value, "$", 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise NotJsonSafe(f"nested deeper than {MAX_DEPTH} levels", path)
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise NotJsonSafe("string holds a lone surrogate, which is not valid UTF-8", path) from None
            continue
        if isinstance(item, int):
            if not -MAX_SAFE_INT <= item <= MAX_SAFE_INT and big_ints == "reject":
                raise NotJsonSafe(
                    f"integer {item} is beyond 2**53, which Node rounds "
                    "(use JsonCodec(big_ints='string') or send it as a string)", path)
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                raise NotJsonSafe(f"{item} has no JSON form (Node would read null)", path)
            continue
        if isinstance(item, datetime):
            if item.tzinfo is None or item.utcoffset() is None:
                raise NotJsonSafe("a naive datetime has no instant Node can agree on; give it a tzinfo", path)
            continue
        if isinstance(item, Mapping):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise NotJsonSafe(f"dict key {key!r} is not a string", path)
                stack.append((child, f"{path}.{key}" if key.isidentifier() else f"{path}[{key!r}]", depth + 1))
            continue
        if isinstance(item, (list, tuple)):
            for index, child in enumerate(item):
                stack.append((child, f"{path}[{index}]", depth + 1))
            continue
        kind = type(item).__name__
        hint = " (decode bytes to str, or base64 them)" if isinstance(item, (bytes, bytearray)) else ""
        hint = hint or (" (use a list)" if isinstance(item, (set, frozenset)) else "")
        raise NotJsonSafe(f"{kind} has no JSON form{hint}", path)


def _stringify_big_ints(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise NotJsonSafe(f"nested deeper than {MAX_DEPTH} levels")
    if type(value) is int and not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
        return str(value)
    if isinstance(value, Mapping):
        return {k: _stringify_big_ints(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_stringify_big_ints(v, depth + 1) for v in value]
    if not _fast_ok(value, depth) and not isinstance(value, (str, int, bool)) and value is not None:
        _locate_problem(value, "string")
    return value

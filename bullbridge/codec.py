"""The one JSON codec: what Python writes is what Node's ``JSON.parse`` reads.

Job data, return values and progress all go through :class:`JsonCodec`. The
rules (also in docs/queue.md#data-the-json-codec):

Encoding (Python -> Redis -> Node)

* UTF-8 is written raw, never as ``\\uXXXX`` escapes (the port's ``json.dumps``
  inflates emoji and CJK up to 3x); the bytes are what ``JSON.stringify``
  writes for the same value, floats aside (``1e16`` vs ``10000000000000000``:
  the same double either way).
* ``NaN`` and ``+/-Infinity`` are refused: JSON has no form for them and Node
  would read ``null`` (orjson writes ``null`` silently).
* Integers beyond +/-(2**53 - 1) are refused by default, naming the path,
  because Node reads them rounded (2**53 + 1 -> ...992) and writes them back
  rounded. ``JsonCodec(big_ints="string")`` sends them as decimal strings.
* An aware ``datetime`` becomes ISO-8601 UTC with milliseconds and ``Z``,
  exactly like ``Date.prototype.toJSON`` (``2025-01-02T03:04:05.678Z``);
  a naive one is refused (no instant two hosts agree on).
* ``Enum`` members are written as their value and ``uuid.UUID`` as its
  canonical string; subclasses of ``str``/``int``/``float``/``list``/``tuple``/
  ``dict`` as their base type; tuples as arrays.
* ``bytes``, sets, ``Decimal``, ``date``/``time``, dataclasses, dict keys that
  are not strings, and every other type are refused with the path
  (``$.items[3]``) and a hint.
* A string holding lone surrogates (``"\\ud800"``, as decoded from Node) is
  written with ``\\uXXXX`` escapes, as ``JSON.stringify`` writes it.

Decoding (Node -> Redis -> Python) never fails on valid JSON:

* orjson first; what orjson refuses but ``JSON.parse`` accepts (lone surrogate
  escapes, ``1e400``, nesting beyond 1,024 levels) goes through the standard
  library, and nesting beyond Python's recursion limit through an iterative
  parser;
* an integer beyond +/-(2**53 - 1) is read as a float: the double Node's
  ``JSON.parse`` reads (``18014398509481985`` -> ``1.8014398509481984e16``),
  which also makes it safe to send back;
* JavaScript has one number type, so Node writes ``5.0`` and ``-0.0`` as ``5``
  and ``0``: an integral float sent to Node comes back as an ``int`` (equal
  under ``==``).

Malformed input (not UTF-8, not JSON) raises :class:`~bullbridge.errors.CorruptJob`, and so
do ``NaN``, ``Infinity`` and ``-Infinity``, which Python's ``json`` reads but Node's
``JSON.parse`` refuses (a foreign writer's ``{"attempts": NaN}`` is a corrupt job,
not a job with NaN attempts).
"""

from __future__ import annotations

import enum
import json
import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from bullbridge.errors import ConfigurationError, CorruptJob, NotJsonSafe

MAX_SAFE_INT = 2**53 - 1

_OPTS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_STRICT_INTEGER
_LONG_DIGITS_B = re.compile(rb"\d{16}")
_LONG_DIGITS_S = re.compile(r"\d{16}")
_SURROGATE = re.compile("[" + chr(0xD800) + "-" + chr(0xDFFF) + "]")  # chr(): mypyc takes no surrogate literal

BigInts = Literal["reject", "string"]


def js_date(value: datetime) -> str:
    """``Date.prototype.toJSON`` for an aware datetime: ``2025-01-02T03:04:05.678Z``."""
    u = value.astimezone(UTC)
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}."
        f"{u.microsecond // 1000:03d}Z"
    )


@dataclass(frozen=True)
class JsonCodec:
    """Encode/decode job data, return values and progress for Node.

    ``big_ints``: ``"reject"`` (default) raises :class:`NotJsonSafe` for ints
    beyond +/-(2**53 - 1), naming where they are; ``"string"`` sends them as
    decimal strings instead.
    """

    big_ints: BigInts = "reject"

    def __post_init__(self) -> None:
        if self.big_ints not in ("reject", "string"):
            raise ConfigurationError(f"big_ints must be 'reject' or 'string', got {self.big_ints!r}")

    def encode(self, value: Any) -> bytes:
        """JSON bytes that Node reads back as written, or :class:`NotJsonSafe`."""
        if value is None:  # a handler that returns nothing: no walk for the "null" below
            return b"null"
        try:
            out = orjson.dumps(value, default=_default, option=_OPTS)
        except orjson.JSONEncodeError:
            return self._encode_slow(value)
        # orjson writes NaN/Infinity as null: only then is a full check needed.
        if b"null" in out:
            _locate_problem(value, self.big_ints)
        return out

    def _encode_slow(self, value: Any) -> bytes:
        """The precise path: find what is wrong (with its path), else work around
        orjson's own limits (str-subclass keys, lone surrogates, depth > 254)."""
        if self.big_ints == "string":
            try:
                value = _stringify_big_ints(value)
            except RecursionError:  # a cycle (named by the walk), or deeper than Python recurses
                _locate_problem(value, self.big_ints)
                raise NotJsonSafe("nested too deeply for Python's JSON encoder") from None
        _locate_problem(value, self.big_ints)
        try:
            return orjson.dumps(value, default=_default, option=_OPTS)
        except orjson.JSONEncodeError:
            pass
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_std_default)
        except RecursionError:
            raise NotJsonSafe("nested too deeply for Python's JSON encoder") from None
        return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode("utf-8")

    def decode(self, raw: bytes | bytearray | memoryview | str) -> Any:
        """Parse JSON written by either language; :class:`CorruptJob` if it is not JSON."""
        if isinstance(raw, memoryview):
            raw = bytes(raw)
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as first:
            value = _decode_fallback(raw, first)
        if _LONG_DIGITS_S.search(raw) if isinstance(raw, str) else _LONG_DIGITS_B.search(raw):
            value = _floatify_big_ints(value)
        return value


DEFAULT = JsonCodec()
encode = DEFAULT.encode
decode = DEFAULT.decode


# --- encoding helpers -------------------------------------------------------------


def _default(value: Any) -> Any:
    """orjson's fallback for the types it passes through to us."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise TypeError("naive datetime")
        return js_date(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(type(value).__name__)


def _std_default(value: Any) -> Any:
    """The standard library's fallback (only reached for values already checked)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    return _default(value)


def _js_path(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{key!r}]"


_LEAVE = object()  # a marker on the walk's stack: the container below it is done


def _locate_problem(value: Any, big_ints: BigInts) -> None:
    """Walk the value (iteratively) and raise :class:`NotJsonSafe` at the first
    thing Node would not read back as written - a container that contains itself
    included (Node: "Converting circular structure to JSON"), which a plain walk
    would follow forever. The same object twice side by side is fine: JSON
    writes it twice."""
    stack: list[tuple[Any, str]] = [(value, "$")]
    inside: set[int] = set()  # ids of the containers on the path being walked
    while stack:
        item, path = stack.pop()
        if item is _LEAVE:
            inside.discard(int(path))
        elif isinstance(item, enum.Enum):
            stack.append((item.value, path))
        elif isinstance(item, (dict, list, tuple)):
            if id(item) in inside:
                raise NotJsonSafe("a circular reference (a container inside itself) has no JSON form", path)
            inside.add(id(item))
            stack.append((_LEAVE, str(id(item))))
            stack.extend(_children(item, path))
        else:
            _check_scalar(item, path, big_ints)


def _children(item: dict[Any, Any] | list[Any] | tuple[Any, ...], path: str) -> list[tuple[Any, str]]:
    if not isinstance(item, dict):
        return [(child, f"{path}[{index}]") for index, child in enumerate(item)]
    for key in item:
        if not isinstance(key, str):
            raise NotJsonSafe(
                f"dict key {key!r} ({type(key).__name__}) is not a string: JSON object keys are "
                "strings, and Node would read it as one",
                path,
            )
    return [(child, _js_path(path, key)) for key, child in item.items()]


def _check_scalar(item: Any, path: str, big_ints: BigInts) -> None:
    """Raise :class:`NotJsonSafe` unless Node reads ``item`` back as written."""
    if item is None or isinstance(item, (bool, str, uuid.UUID)):
        return
    if isinstance(item, int):
        if not -MAX_SAFE_INT <= item <= MAX_SAFE_INT and big_ints == "reject":
            raise NotJsonSafe(
                f"integer {item} is beyond +/-(2**53 - 1), which Node rounds (2**53 + 1 reads as "
                "9007199254740992): send it as a string, or use JsonCodec(big_ints='string')",
                path,
            )
        return
    if isinstance(item, float):
        if not math.isfinite(item):
            raise NotJsonSafe(f"{item} has no JSON form (Node would read null)", path)
        return
    if isinstance(item, datetime):
        if item.tzinfo is None or item.utcoffset() is None:
            raise NotJsonSafe("a naive datetime has no instant Node can agree on; give it a tzinfo", path)
        try:
            js_date(item)
        except OverflowError:
            raise NotJsonSafe(f"datetime {item} is out of range in UTC", path) from None
        return
    raise NotJsonSafe(f"{type(item).__name__} has no JSON form{_hint(item)}", path)


def _hint(item: Any) -> str:
    import datetime as dt
    import decimal
    from dataclasses import is_dataclass

    if isinstance(item, (bytes, bytearray, memoryview)):
        return " (decode bytes to str, or base64 them)"
    if isinstance(item, (set, frozenset)):
        return " (send a sorted list)"
    if isinstance(item, decimal.Decimal):
        return " (send str(value) to keep every digit, or float(value))"
    if isinstance(item, (dt.date, dt.time)):
        return " (send item.isoformat(), or an aware datetime)"
    if is_dataclass(item):
        return " (send dataclasses.asdict(value))"
    return ""


def _stringify_big_ints(value: Any) -> Any:
    """A copy of the value with unsafe ints as decimal strings (``big_ints="string"``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT else value
    if isinstance(value, dict):
        return {k: _stringify_big_ints(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_stringify_big_ints(v) for v in value]
    return value


# --- decoding helpers -------------------------------------------------------------


def _js_int(text: str) -> int | float:
    """An integer literal as ``JSON.parse`` reads it: a double when beyond 2**53."""
    return int(text) if len(text) < 16 else _as_js_number(text)


def _as_js_number(text: str) -> int | float:
    number = float(text)
    if number.is_integer() and abs(number) <= MAX_SAFE_INT:
        return int(number)
    return number


def _decode_fallback(raw: bytes | bytearray | str, first: Exception) -> Any:
    """What orjson refuses but ``JSON.parse`` reads: lone surrogate escapes,
    ``1e400`` (Infinity), and nesting deeper than orjson's 1,024 levels."""
    if isinstance(raw, (bytes, bytearray)):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CorruptJob(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    else:
        text = raw
    try:
        return json.loads(text, parse_int=_js_int, parse_constant=_refuse_constant)
    except RecursionError:
        pass
    except _NonStandard as exc:
        raise CorruptJob(f"not valid JSON ({exc}, which Node's JSON.parse refuses)") from None
    except ValueError:
        raise CorruptJob(f"not valid JSON ({first})") from None
    try:
        return _parse_iteratively(text)
    except ValueError as exc:
        raise CorruptJob(f"not valid JSON ({exc})") from None


class _NonStandard(ValueError):
    """``NaN``, ``Infinity`` or ``-Infinity``: Python's ``json`` reads them, JSON has no such tokens."""


def _refuse_constant(name: str) -> Any:
    raise _NonStandard(f"{name} is not JSON")


def _floatify_big_ints(value: Any) -> Any:
    """Replace ints beyond +/-(2**53 - 1) by the doubles Node reads (in place)."""

    def fix(x: Any) -> Any:
        if type(x) is int and not -MAX_SAFE_INT <= x <= MAX_SAFE_INT:
            try:
                return float(x)
            except OverflowError:
                return math.inf if x > 0 else -math.inf
        return x

    if type(value) is int:
        return fix(value)
    stack: list[Any] = [value]
    while stack:
        container = stack.pop()
        if type(container) is dict:
            for key, item in container.items():
                if type(item) is int:
                    container[key] = fix(item)
                elif type(item) in (dict, list):
                    stack.append(item)
        elif type(container) is list:
            for index, item in enumerate(container):
                if type(item) is int:
                    container[index] = fix(item)
                elif type(item) in (dict, list):
                    stack.append(item)
    return value


_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?")
_LITERALS = {"true": True, "false": False, "null": None}


def _scalar_at(text: str, pos: int) -> tuple[Any, int]:
    """The string, number, ``true``, ``false`` or ``null`` at ``pos``, and where it ends."""
    if text.startswith('"', pos):
        value, end = json.decoder.scanstring(text, pos + 1)  # type: ignore[attr-defined]
        return value, end
    number = _NUMBER.match(text, pos)
    if number:
        literal = number.group()
        return (_as_js_number(literal) if (number.group(1) or number.group(2)) else _js_int(literal)), number.end()
    word = next((w for w in _LITERALS if text.startswith(w, pos)), None)
    if word is None:
        raise ValueError(f"unexpected character at char {pos}")
    return _LITERALS[word], pos + len(word)


_Open = list[tuple[list[Any] | dict[str, Any], str]]


def _skip_ws(text: str, pos: int) -> int:
    return _WS.match(text, pos).end()  # type: ignore[union-attr]


def _key_at(text: str, pos: int) -> tuple[str, int]:
    """An object key and its ``:``; where the value starts."""
    if not text.startswith('"', pos):
        raise ValueError(f"expected a string key at char {pos}")
    key, pos = json.decoder.scanstring(text, pos + 1)  # type: ignore[attr-defined]
    pos = _skip_ws(text, pos)
    if not text.startswith(":", pos):
        raise ValueError(f"expected ':' at char {pos}")
    return key, _skip_ws(text, pos + 1)


def _value_at(text: str, pos: int, stack: _Open) -> tuple[Any, int, bool]:
    """The value at ``pos`` and where it ends; or, for a non-empty ``{`` or ``[``,
    the container opened on ``stack`` (``True``) and where its first member starts."""
    opening = text[pos] if pos < len(text) else ""
    if opening not in ("{", "["):
        value, pos = _scalar_at(text, pos)
        return value, pos, False
    pos = _skip_ws(text, pos + 1)
    if text.startswith("}" if opening == "{" else "]", pos):
        return ({} if opening == "{" else []), pos + 1, False
    if opening == "[":
        stack.append(([], ""))
        return None, pos, True
    key, pos = _key_at(text, pos)
    stack.append(({}, key))
    return None, pos, True


def _parse_iteratively(text: str) -> Any:
    """A JSON parser with an explicit stack, for nesting deeper than the
    recursive parsers allow (Node's ``JSON.parse`` has no depth limit)."""
    end = len(text)
    stack: _Open = []
    pos = _skip_ws(text, 0)
    while True:
        value, pos, opened = _value_at(text, pos, stack)
        if opened:
            continue
        # Attach the value to the open containers, closing those that end here.
        while True:
            pos = _skip_ws(text, pos)
            if not stack:
                if pos != end:
                    raise ValueError(f"extra data at char {pos}")
                return value
            container, key = stack[-1]
            if isinstance(container, list):
                container.append(value)
            else:
                container[key] = value
            char = text[pos] if pos < end else ""
            if char == ",":
                pos = _skip_ws(text, pos + 1)
                if isinstance(container, dict):
                    key, pos = _key_at(text, pos)
                    stack[-1] = (container, key)
                break
            if char != ("]" if isinstance(container, list) else "}"):
                raise ValueError(f"expected ',' or a closing bracket at char {pos}")
            stack.pop()
            value, pos = container, pos + 1

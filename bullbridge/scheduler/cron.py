"""Cron patterns, parsed and iterated exactly as Node's cron-parser 5.10.3 does.

Node BullMQ 6.7 computes every ``pattern`` scheduler's next run with
``CronExpressionParser.parse(pattern, {...repeatOpts, currentDate}).next()``.
croniter (the port's choice) disagrees with it at DST fall-back
(docs/port-differences.md#cron-dst) and accepts a different syntax. A shared schedule
must be computed identically by every worker, so this module is a faithful
port of cron-parser's parser and ``next()`` walk (``CronExpressionParser``,
``CronExpression#findSchedule``, ``CronDate``), on luxon's wall-clock
semantics from :mod:`bullbridge.scheduler.zoned`.

What cron-parser accepts (and therefore this module):

* 5 fields ``minute hour day-of-month month day-of-week``, or 6 with
  **seconds first**; fewer fields are padded from the left with ``0 * * * * *``;
* ``*``, ``?``, lists ``a,b``, ranges ``a-b``, steps ``*/n``, ``a/n``, ``a-b/n``;
* month and weekday names (``jan``, ``mon``; any case), weekday ``7`` = Sunday;
* ``L`` (last day of month; ``5L`` = last Friday), ``#`` (``5#3`` = third Friday);
* ``H`` hashed values (random per parse unless a ``hash_seed`` is given);
* the macros ``@yearly @annually @monthly @weekly @daily @hourly @minutely
  @secondly @weekdays @weekends``.

``W`` (nearest weekday) is *not* supported by cron-parser 5.10.3, so it is
refused here too. Day-of-month and day-of-week both restricted means either
matches (Vixie cron). The one deliberate difference: list items that
JavaScript reads as non-integer numbers (only reachable through ``H(...)``
oddities such as ``H(0-5)1.5``) are refused instead of looping forever.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from bullbridge.scheduler.errors import CronRangeError, CronSyntaxError
from bullbridge.scheduler.zoned import ZonedTime, get_zone

Value = int | str

PREDEFINED = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
    "@minutely": "0 * * * * *",
    "@secondly": "* * * * * *",
    "@weekdays": "0 0 0 * * 1-5",
    "@weekends": "0 0 0 * * 0,6",
}
MONTHS = {
    "jan": 1,
    "feb": 2,
    "mar": 3,
    "apr": 4,
    "may": 5,
    "jun": 6,
    "jul": 7,
    "aug": 8,
    "sep": 9,
    "oct": 10,
    "nov": 11,
    "dec": 12,
}
WEEKDAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
#: cron-parser's DAYS_IN_MONTH (February counts 29 for parse-time checks).
DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
MAX_FIELD_VALUES = 256
MAX_EXPRESSION_LENGTH = 1024
LOOP_LIMIT = 10_000

# JavaScript's \s (WhiteSpace + LineTerminator), for trim() and split(/\s+/).
_JS_SPACE = "\t\n\x0b\x0c\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_SPLIT = re.compile(f"[{_JS_SPACE}]+")
_TRIM = re.compile(f"^[{_JS_SPACE}]+|[{_JS_SPACE}]+\\Z")
_LEAD = re.compile(f"^[{_JS_SPACE}]+")
_HASH_TAIL = r"|^.*H\(\d+-\d+\)/\d+.*\Z|^.*H\(\d+-\d+\).*\Z|^.*H/\d+.*\Z"
_HASHED = re.compile(r"H(?:\((\d+)-(\d+)\))?(?:/(\d+))?", re.ASCII)
_ALIAS = re.compile(r"[a-zA-Z]{3}")
_NTH_BREAKERS = re.compile(r"[,\-/]")


class Unit(Enum):
    SECOND = "Second"
    MINUTE = "Minute"
    HOUR = "Hour"
    DAY_OF_MONTH = "DayOfMonth"
    MONTH = "Month"
    DAY_OF_WEEK = "DayOfWeek"

    @property
    def field_name(self) -> str:
        return self.value[0].lower() + self.value[1:]


@dataclass(frozen=True)
class Constraints:
    min: int
    max: int
    chars: tuple[str, ...]
    valid_chars: re.Pattern[str]


def _valid(chars: str) -> re.Pattern[str]:
    return re.compile(rf"^[{chars}]+\Z" + _HASH_TAIL, re.ASCII)


CONSTRAINTS = {
    Unit.SECOND: Constraints(0, 59, (), _valid(r"?,*\dH/-")),
    Unit.MINUTE: Constraints(0, 59, (), _valid(r"?,*\dH/-")),
    Unit.HOUR: Constraints(0, 23, (), _valid(r"?,*\dH/-")),
    Unit.DAY_OF_MONTH: Constraints(1, 31, ("L",), _valid(r"?,*\dLH/-")),
    Unit.MONTH: Constraints(1, 12, (), _valid(r"?,*\dH/-")),
    Unit.DAY_OF_WEEK: Constraints(0, 7, ("L",), _valid(r"?,*\dLH#/-")),
}


# --- JavaScript number parsing ---------------------------------------------------------

_JS_DECIMAL = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|Infinity)\Z", re.ASCII)
_JS_RADIX = re.compile(r"0([xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)\Z")
_JS_INT_PREFIX = re.compile(r"[+-]?\d+", re.ASCII)


def js_number(text: str) -> float:
    """``Number(text)`` / ``+text``: NaN for anything JavaScript cannot read."""
    text = _TRIM.sub("", text)
    if not text:
        return 0.0
    radix = _JS_RADIX.match(text)
    if radix:
        base = {"x": 16, "o": 8, "b": 2}[radix.group(1)[0].lower()]
        return float(int(radix.group(1)[1:], base))
    if _JS_DECIMAL.match(text):
        return float(text.replace("Infinity", "inf"))
    return math.nan


def js_parse_int(text: str) -> int | None:
    """``parseInt(text, 10)``: the leading decimal integer, None for NaN."""
    match = _JS_INT_PREFIX.match(_LEAD.sub("", text))
    return int(match.group(0)) if match else None


# --- seeded random (cron-parser utils/random: xfnv1a + mulberry32) ---------------------

_U32 = 0xFFFFFFFF


def _xfnv1a(text: str) -> int:
    h = 2166136261
    units = text.encode("utf-16-le")
    for i in range(0, len(units), 2):
        h = ((h ^ (units[i] | units[i + 1] << 8)) * 16777619) & _U32
    return h


def seeded_random(seed_text: str | None) -> Callable[[], float]:
    """cron-parser's PRNG: deterministic for a ``hashSeed``, random otherwise."""
    state = [_xfnv1a(seed_text) if seed_text else random.randrange(10_000_000_000)]

    def rand() -> float:
        state[0] += 0x6D2B79F5
        a = state[0] & _U32
        t = ((a ^ (a >> 15)) * (a | 1)) & _U32
        y = ((t ^ (t >> 7)) * (t | 61)) & _U32
        t = (t ^ ((t + y) & _U32)) & _U32
        return ((t ^ (t >> 14)) & _U32) / 4294967296

    return rand


# --- fields ------------------------------------------------------------------------------


def _sort_key(value: Value) -> tuple[int, int, str]:
    return (0, value, "") if isinstance(value, int) else (1, 0, value)


@dataclass(frozen=True)
class Field:
    """One parsed field: its sorted values, and the flags cron-parser derives."""

    unit: Unit
    values: tuple[Value, ...]
    wildcard: bool
    has_last: bool
    nth_day: float = 0
    numbers: frozenset[int] = frozenset()

    @classmethod
    def build(cls, unit: Unit, values: list[Value], raw: str, nth_day: float = 0) -> Field:
        c = CONSTRAINTS[unit]
        if not values:
            raise CronSyntaxError(f"Cron{unit.value} Validation error, values contains no values")
        ordered = tuple(sorted(values, key=_sort_key))
        if raw:
            wildcard = raw in ("*", "?")
        else:
            wildcard = all(v in ordered for v in range(c.min, c.max + 1))
        has_last = "L" in raw or "L" in ordered
        for value in ordered:
            ok = (
                (c.min <= value <= c.max)
                if isinstance(value, int)
                else any(re.fullmatch(rf"\d{{0,2}}{ch}", value, re.ASCII) for ch in c.chars)
            )
            if not ok:
                extra = f" or chars {''.join(c.chars)}" if c.chars else ""
                raise CronSyntaxError(
                    f"Cron{unit.value} Validation error, got value {value} expected range {c.min}-{c.max}{extra}"
                )
        seen: list[Value] = []
        for value in ordered:
            if value in seen:
                raise CronSyntaxError(f"Cron{unit.value} Validation error, duplicate values found: {value}")
            seen.append(value)
        if unit is Unit.DAY_OF_WEEK and "L" in ordered:
            raise CronSyntaxError("CronDayOfWeek Validation error, unexpected standalone L")
        numbers = frozenset(v for v in ordered if isinstance(v, int))
        return cls(unit, ordered, wildcard, has_last, nth_day, numbers)

    def nearest_after(self, current: int) -> int | None:
        """The first value above ``current`` (cron-parser ``findNearestValue``)."""
        for value in self.values:
            if isinstance(value, int) and value > current:
                return value
        return None

    @property
    def first(self) -> int:
        value = self.values[0]
        assert isinstance(value, int)
        return value


@dataclass(frozen=True)
class CronFields:
    """A parsed pattern (cron-parser ``CronFieldCollection``)."""

    second: Field
    minute: Field
    hour: Field
    day_of_month: Field
    month: Field
    day_of_week: Field
    expression: str


# --- the parser ------------------------------------------------------------------------


def raw_fields(expression: str, strict: bool = False) -> list[str]:
    """The six textual fields, seconds first (``#getRawFields``)."""
    if strict and not expression:
        raise CronSyntaxError("Invalid cron expression")
    expression = expression or "0 * * * * *"
    if len(expression.encode("utf-16-le")) // 2 > MAX_EXPRESSION_LENGTH:
        raise CronSyntaxError(f"Invalid cron expression, too long, expected at most {MAX_EXPRESSION_LENGTH} characters")
    atoms = _SPLIT.split(_TRIM.sub("", expression))
    if strict and len(atoms) < 6:
        raise CronSyntaxError("Invalid cron expression, expected 6 fields")
    if len(atoms) > 6:
        raise CronSyntaxError("Invalid cron expression, too many fields")
    defaults = ["0", "*", "*", "*", "*", "*"]
    return defaults[: 6 - len(atoms)] + atoms


def parse(expression: str, *, strict: bool = False, hash_seed: str | None = None) -> CronFields:
    """Parse a pattern as ``CronExpressionParser.parse`` does; raises
    :class:`CronSyntaxError` with cron-parser's message where it would throw."""
    if not isinstance(expression, str):
        raise CronSyntaxError(f"a cron pattern is a string, got {type(expression).__name__}")
    rand = seeded_random(hash_seed)
    expression = PREDEFINED.get(expression, expression)
    second, minute, hour, dom, month, dow = raw_fields(expression, strict)
    if not (dom == "*" or dow == "*" or not strict):
        raise CronSyntaxError("Cannot use both dayOfMonth and dayOfWeek together in strict mode!")
    seconds = _parse_field(Unit.SECOND, second, rand, strict)
    minutes = _parse_field(Unit.MINUTE, minute, rand, strict)
    hours = _parse_field(Unit.HOUR, hour, rand, strict)
    months = _parse_field(Unit.MONTH, month, rand, strict)
    days = _parse_field(Unit.DAY_OF_MONTH, dom, rand, strict)
    dow_text, nth = _parse_nth_day(dow)
    weekdays = _parse_field(Unit.DAY_OF_WEEK, dow_text, rand, strict)
    if len(months) == 1:  # CronDayOfMonth.fromMonth
        limit = DAYS_IN_MONTH[_int(months[0]) - 1]
        fitting = [d for d in days if not isinstance(d, int) or d <= limit]
        days = fitting or days
    fields = CronFields(
        second=Field.build(Unit.SECOND, seconds, second),
        minute=Field.build(Unit.MINUTE, minutes, minute),
        hour=Field.build(Unit.HOUR, hours, hour),
        day_of_month=Field.build(Unit.DAY_OF_MONTH, days, dom),
        month=Field.build(Unit.MONTH, months, month),
        day_of_week=Field.build(Unit.DAY_OF_WEEK, weekdays, dow, nth),
        expression=expression,
    )
    if len(fields.month.values) == 1 and not fields.day_of_month.has_last and fields.day_of_week.wildcard:
        first_day = js_parse_int(str(fields.day_of_month.values[0]))
        if first_day is None or not first_day <= DAYS_IN_MONTH[_int(fields.month.values[0]) - 1]:
            raise CronSyntaxError("Invalid explicit day of month definition")
    return fields


def _int(value: Value) -> int:
    if not isinstance(value, int):
        raise CronSyntaxError(f"Constraint error, got value {value}")
    return value


def _parse_field(unit: Unit, value: str, rand: Callable[[], float], strict: bool) -> list[Value]:
    c = CONSTRAINTS[unit]
    if unit in (Unit.MONTH, Unit.DAY_OF_WEEK):

        def alias(match: re.Match[str]) -> str:
            name = match.group(0).lower()
            number = MONTHS.get(name) or WEEKDAYS.get(name)
            if number is None:
                raise CronSyntaxError(f'Validation error, cannot resolve alias "{name}"')
            return str(number)

        value = _ALIAS.sub(alias, value)
    if not c.valid_chars.match(value):
        raise CronSyntaxError(f"Invalid characters, got value: {value}")
    value = re.sub(r"[*?]", f"{c.min}-{c.max}", value)
    value = _parse_hashed(unit, value, c, rand(), strict)
    return _parse_sequence(unit, value, c)


def _parse_hashed(unit: Unit, value: str, c: Constraints, random_value: float, strict: bool) -> str:
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        low, high, step = match.group(1), match.group(2), match.group(3)
        if low and high and step:
            step_n = int(step)
            if step_n <= 0:
                raise CronSyntaxError(f"Invalid step: {step_n}, must be positive")
            lo, hi = _hashed_range(int(low), int(high), c, unit, strict)
            count += math.ceil((hi - lo + 1) / step_n)
            _assert_max_values(unit, count)
            return _hashed_step(random_value, lo, hi, step_n, unit, strict)
        if low and high:
            lo, hi = _hashed_range(int(low), int(high), c, unit, strict)
            return str(_hashed_value(random_value, lo, hi))
        if step:
            step_n = int(step)
            if step_n <= 0:
                raise CronSyntaxError(f"Invalid step: {step_n}, must be positive")
            count += math.ceil((c.max - c.min + 1) / step_n)
            _assert_max_values(unit, count)
            return _hashed_step(random_value, c.min, c.max, step_n, unit, strict)
        return str(_hashed_value(random_value, c.min, c.max))

    return _HASHED.sub(replace, value)


def _hashed_value(random_value: float, low: int, high: int) -> int:
    return math.floor(random_value * (high - low + 1)) + low


def _hashed_range(low: int, high: int, c: Constraints, unit: Unit, strict: bool) -> tuple[int, int]:
    if low > high:
        raise CronSyntaxError(f"Invalid range: {low}-{high}, min > max")
    if strict and (low < c.min or high > c.max):
        raise CronSyntaxError(
            f"Invalid range: {low}-{high}, outside the {c.min}-{c.max} range of the {unit.field_name} field"
        )
    lo, hi = max(low, c.min), min(high, c.max)
    if lo > hi:
        raise CronSyntaxError(f"Invalid range: {low}-{high}, no usable value in the {unit.field_name} field")
    return lo, hi


def _hashed_step(random_value: float, low: int, high: int, step: int, unit: Unit, strict: bool) -> str:
    if strict and step > high - low + 1:
        raise CronSyntaxError(f"Invalid step: {step}, wider than the {low}-{high} range of the {unit.field_name} field")
    offset = math.floor(random_value * step)
    values = [i for i in range((low // step) * step + offset, high + 1, step) if i >= low]
    if not values:
        return str(_hashed_value(random_value, low, high))
    return ",".join(map(str, values))


def _assert_max_values(unit: Unit, count: int) -> None:
    if count > MAX_FIELD_VALUES:
        raise CronSyntaxError(
            f"Constraint error, too many values in {unit.value} field, expected at most {MAX_FIELD_VALUES}"
        )


def _parse_sequence(unit: Unit, text: str, c: Constraints) -> list[Value]:
    stack: list[Value] = []
    for atom in text.split(","):
        _assert_max_values(unit, len(stack))
        if not atom:
            raise CronSyntaxError("Invalid list value format")
        result = _parse_repeat(unit, atom, c)
        if isinstance(result, list):
            stack.extend(result)
            continue
        if any(ch in str(result) for ch in c.chars):
            stack.append(result)
            continue
        number = js_parse_int(str(result))
        if number is None or not c.min <= number <= c.max:
            raise CronSyntaxError(f"Constraint error, got value {result} expected range {c.min}-{c.max}")
        stack.append(number % 7 if unit is Unit.DAY_OF_WEEK else result)
    return stack


def _parse_repeat(unit: Unit, text: str, c: Constraints) -> list[Value] | Value:
    atoms = text.split("/")
    if len(atoms) > 2:
        raise CronSyntaxError(f"Invalid repeat: {text}")
    if len(atoms) == 2:
        span = atoms[0] if "-" in atoms[0] else f"{atoms[0]}-{c.max}"
        return _parse_range(unit, span, js_parse_int(atoms[1]), c)
    return _parse_range(unit, text, 1, c)


def _parse_range(unit: Unit, text: str, step: int | None, c: Constraints) -> list[Value] | Value:
    atoms = text.split("-")
    if len(atoms) <= 1:
        number = js_number(text)
        if math.isnan(number):
            return text
        if not math.isfinite(number) or number != int(number):
            raise CronSyntaxError(
                f"Constraint error, {text!r} is not a whole number (cron-parser would accept it and never fire)"
            )
        return int(number)
    low, high = js_parse_int(atoms[0]), js_parse_int(atoms[1])
    if low is None or high is None or low < c.min or high > c.max:
        raise CronSyntaxError(f"Constraint error, got range {_nan(low)}-{_nan(high)} expected range {c.min}-{c.max}")
    if low > high:
        raise CronSyntaxError(f"Invalid range: {low}-{high}, min({low}) > max({high})")
    if step is None or step <= 0:
        raise CronSyntaxError(f"Constraint error, cannot repeat at every {'NaN' if step is None else step} time.")
    stack: list[Value] = []
    if unit is Unit.DAY_OF_WEEK and high % 7 == 0 and (high - low) % step == 0:
        stack.append(0)
    for index in range(low, high + 1, step):
        if index not in stack:
            stack.append(index)
    return stack


def _nan(value: int | None) -> str:
    return "NaN" if value is None else str(value)


def _parse_nth_day(text: str) -> tuple[str, float]:
    atoms = text.split("#")
    if len(atoms) <= 1:
        return atoms[0], 0
    nth = js_number(atoms[-1])
    found = _NTH_BREAKERS.search(text)
    if found:
        raise CronSyntaxError(
            f"Constraint error, invalid dayOfWeek `#` and `{found.group(0)}` special characters are incompatible"
        )
    if not (len(atoms) <= 2 and not math.isnan(nth) and 1 <= nth <= 5):
        raise CronSyntaxError("Constraint error, invalid dayOfWeek occurrence number (#)")
    return atoms[0], nth


# --- CronDate ------------------------------------------------------------------------------

_SECOND, _MINUTE, _HOUR, _DAY, _MONTH = "second", "minute", "hour", "day", "month"


class CronDate:
    """A mutable wall-clock cursor with cron-parser's DST bookkeeping."""

    __slots__ = ("dst_end", "dst_start", "dst_start_landing", "t")

    def __init__(self, t: ZonedTime) -> None:
        self.t = t
        self.dst_start: int | None = None
        self.dst_start_landing: int | None = None
        self.dst_end: int | None = None

    def copy(self) -> CronDate:
        other = CronDate(self.t)
        other.dst_start, other.dst_start_landing, other.dst_end = self.dst_start, self.dst_start_landing, self.dst_end
        return other

    def add(self, unit: str) -> None:
        t = self.t
        if unit == _MONTH:
            self.t = t.plus_calendar(months=1).start_of("month")
        elif unit == _DAY:
            self.t = t.plus_calendar(days=1).start_of("day")
        elif unit == _HOUR:
            self.t = t.plus_ms(3_600_000).start_of("hour")
        elif unit == _MINUTE:
            self.t = t.plus_ms(60_000).start_of("minute")
        else:
            self.t = t.plus_ms(1000)

    def apply(self, unit: str, hours_length: int) -> None:
        """``applyDateOperation(Add, unit, hoursLength)``: step forward and note
        a skipped (spring-forward) or repeated (fall-back) hour."""
        if unit in (_MONTH, _DAY):
            self.add(unit)
            return
        previous_hour = self.t.hour
        previous_offset = self.t.offset
        self.add(unit)
        current_hour = self.t.hour
        advance = (current_hour - previous_hour + 24) % 24
        if self.t.offset > previous_offset and advance >= 2:
            if hours_length != 24:
                self.dst_start = (previous_hour + 1) % 24
                self.dst_start_landing = current_hour
        elif advance == 0 and self.t.minute == 0 and self.t.second == 0 and hours_length != 24:
            self.dst_end = current_hour

    def is_last_day_of_month(self) -> bool:
        t = self.t
        if t.month == 2:
            return t.day == DAYS_IN_MONTH[1] - (0 if _leap(t.year) else 1)
        return t.day == DAYS_IN_MONTH[t.month - 1]

    def is_last_weekday_of_month(self) -> bool:
        t = self.t
        last = DAYS_IN_MONTH[1] - (0 if _leap(t.year) else 1) if t.month == 2 else DAYS_IN_MONTH[t.month - 1]
        return t.day > last - 7


def _leap(year: int) -> bool:
    return (year % 4 == 0 and year % 100 != 0) or year % 400 == 0


# --- CronExpression ------------------------------------------------------------------------


class CronIterator:
    """A parsed pattern walking forward from a date (``CronExpression``).

    ``current``, ``start`` and ``end`` are epoch milliseconds; ``tz`` a zone
    name (None = UTC, bullbridge's documented stand-in for Node's process zone).
    :meth:`next` raises :class:`CronRangeError` when no fire time is left in
    the window (or the pattern never matches within cron-parser's loop limit).
    """

    def __init__(
        self,
        fields: CronFields,
        *,
        current: int,
        tz: str | None = None,
        start: int | None = None,
        end: int | None = None,
    ) -> None:
        self.fields = fields
        self.zone = get_zone(tz)
        self.start = start if start else None
        self.end = end if end else None
        if self.start is not None and current < self.start:
            current = self.start
        elif self.end is not None and current > self.end:
            current = self.end
        self._current = CronDate(ZonedTime(current, self.zone))
        self._dst_day: tuple[int, int, int] | None = None
        self._dst_day_result = False

    def next(self) -> int:
        """The next fire time strictly after the cursor (epoch ms); advances the cursor."""
        f = self.fields
        hours_length = len(f.hour.values)
        date = self._current.copy()
        start_ts = date.t.ts
        if date.t.millisecond > 0:
            date.t = date.t.set(millisecond=0)
            date.apply(_SECOND, hours_length)
        steps = 0
        while True:
            steps += 1
            if steps >= LOOP_LIMIT:
                raise CronRangeError("Invalid expression, loop limit exceeded")
            ts = date.t.ts
            if (self.start is not None and ts < self.start) or (self.end is not None and ts > self.end):
                raise CronRangeError("Out of the time span range")
            if date.t.month not in f.month.numbers:
                date.apply(_MONTH, hours_length)
                continue
            if not self._match_day(date):
                date.apply(_DAY, hours_length)
                continue
            if not self._match_hour(date, hours_length):
                continue
            if date.t.minute not in f.minute.numbers:
                self._next_minute(date, hours_length)
                continue
            if date.t.second not in f.second.numbers:
                self._next_second(date, hours_length)
                continue
            if start_ts == date.t.ts:
                date.apply(_SECOND, hours_length)
                continue
            break
        self._current = date
        return date.t.ts

    def take(self, count: int) -> list[int]:
        """Up to ``count`` successive fire times from one cursor (cron-parser ``take``)."""
        out: list[int] = []
        for _ in range(count):
            try:
                out.append(self.next())
            except CronRangeError:
                break
        return out

    # -- matching ---------------------------------------------------------------------

    def _match_day(self, date: CronDate) -> bool:
        f = self.fields
        dom, dow = f.day_of_month, f.day_of_week
        t = date.t
        matched_dom = t.day in dom.numbers or (dom.has_last and date.is_last_day_of_month())
        weekday = t.weekday
        matched_dow = (weekday in dow.numbers and (dow.nth_day <= 0 or math.ceil(t.day / 7) == dow.nth_day)) or (
            dow.has_last
            and date.is_last_weekday_of_month()
            and any(weekday == _first_digit(value) for value in dow.values)
        )
        if not dom.wildcard and not dow.wildcard and (matched_dom or matched_dow):
            return True
        if matched_dom and dow.wildcard:
            return True
        return dom.wildcard and not dow.wildcard and matched_dow

    def _is_dst_day(self, date: CronDate) -> bool:
        t = date.t
        key = (t.year, t.month, t.day)
        if self._dst_day != key:
            self._dst_day = key
            self._dst_day_result = t.start_of("day").offset != t.end_of_day().offset
        return self._dst_day_result

    def _match_hour(self, date: CronDate, hours_length: int) -> bool:
        hours = self.fields.hour
        current_hour = date.t.hour
        if date.dst_start is not None and date.dst_start_landing == current_hour:
            skipped = date.dst_start
            while skipped != current_hour:
                if skipped in hours.numbers:
                    return True
                skipped = (skipped + 1) % 24
        if date.dst_end == current_hour:
            date.dst_end = None
            date.apply(_HOUR, hours_length)
            return False
        if current_hour in hours.numbers:
            return True
        date.dst_start = date.dst_start_landing = None
        next_hour = hours.nearest_after(current_hour)
        if next_hour is None:
            date.apply(_DAY, hours_length)
            return False
        if self._is_dst_day(date):
            for _ in range(next_hour - current_hour):
                date.apply(_HOUR, hours_length)
                if date.t.hour >= next_hour:
                    break
        else:
            date.t = date.t.set(hour=next_hour)
        date.t = date.t.set(minute=self.fields.minute.first)
        date.t = date.t.set(second=self.fields.second.first)
        return False

    def _next_minute(self, date: CronDate, hours_length: int) -> None:
        f = self.fields
        nearest = f.minute.nearest_after(date.t.minute)
        if nearest is not None:
            date.t = date.t.set(minute=nearest)
            date.t = date.t.set(second=f.second.first)
            return
        date.apply(_HOUR, hours_length)
        date.t = date.t.set(minute=f.minute.first)
        date.t = date.t.set(second=f.second.first)

    def _next_second(self, date: CronDate, hours_length: int) -> None:
        f = self.fields
        nearest = f.second.nearest_after(date.t.second)
        if nearest is not None:
            date.t = date.t.set(second=nearest)
            return
        date.apply(_MINUTE, hours_length)
        date.t = date.t.set(second=f.second.first)


def _first_digit(value: Value) -> int | None:
    digit = js_parse_int(str(value)[:1])
    return None if digit is None else digit % 7


def validate(pattern: str, tz: str | None = None) -> CronFields:
    """Parse ``pattern`` and resolve ``tz``, raising :class:`InvalidSchedule`
    subclasses for what Node would refuse."""
    fields = parse(pattern)
    get_zone(tz)
    return fields


def fire_times(
    pattern: str, *, after: int, count: int, tz: str | None = None, start: int | None = None, end: int | None = None
) -> Sequence[int]:
    """The next ``count`` fire times of one cursor (cron-parser's ``take``).

    BullMQ instead parses afresh for every run; for the sequence a scheduler
    produces use :func:`bullbridge.scheduler.timing.fire_sequence`."""
    return CronIterator(parse(pattern), current=after, tz=tz, start=start, end=end).take(count)

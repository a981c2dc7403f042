"""Wall-clock arithmetic in a time zone, exactly as luxon 3.7 does it.

Node's cron-parser (which BullMQ uses for ``pattern`` schedulers) walks the
calendar with luxon ``DateTime`` operations: ``plus({days: 1})``,
``startOf('hour')``, ``set({hour: h})``... What those return around a DST
change is decided by luxon's ``fixOffset``: a local time is turned into an
instant by *guessing* the offset the date had before the operation, checking
the zone's offset at the guessed instant, and correcting once. In a
fall-back fold that guess picks one of the two instants; in a spring-forward
gap it moves the time forward. croniter resolves both differently, which is
why the port fires one hour late at fall-back (docs/port-differences.md#cron-dst).

:class:`ZonedTime` reproduces those operations on :mod:`zoneinfo`, in integer
milliseconds. Offsets are compared at second precision, as luxon's
``IANAZone.offset`` reads them; the only departure is for pre-1900 local mean
time offsets with seconds, where luxon's float minutes are not reproduced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from bullbridge.scheduler.errors import InvalidSchedule

MS_PER_DAY = 86_400_000
_FIXED = re.compile(r"^utc(?:([+-]\d{1,2})(?::(\d{2}))?)?$")


# --- calendar helpers (proleptic Gregorian, any year) ---------------------------------


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a (valid) civil date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(days: int) -> tuple[int, int, int]:
    """The civil date ``(year, month, day)`` of a day count since 1970-01-01."""
    days += 719468
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def is_leap(year: int) -> bool:
    return (year % 4 == 0 and year % 100 != 0) or year % 400 == 0


def days_in_month(year: int, month: int) -> int:
    """luxon's ``daysInMonth``: the month may overflow (13 = January next year)."""
    mod_month = (month - 1) % 12 + 1
    year += (month - mod_month) // 12
    if mod_month == 2:
        return 29 if is_leap(year) else 28
    return 30 if mod_month in (4, 6, 9, 11) else 31


def local_ms(year: int, month: int, day: int, hour: int, minute: int, second: int, ms: int) -> int:
    """``Date.UTC`` of wall-clock fields; month and day may overflow, as in JS."""
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    days = days_from_civil(year, month, 1) + day - 1
    return days * MS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1000 + ms


# --- zones -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Zone:
    """A time zone as luxon sees it: a name and the UTC offset at any instant."""

    name: str
    tz: tzinfo

    def offset_ms(self, ts: int) -> int:
        """UTC offset at instant ``ts`` (epoch ms), read at the whole second
        below it, like luxon's ``IANAZone.offset``."""
        tz = self.tz
        delta = tz.utcoffset(None) if isinstance(tz, timezone) else datetime.fromtimestamp(ts // 1000, tz).utcoffset()
        assert delta is not None
        return (delta.days * 86400 + delta.seconds) * 1000


@cache
def _zone_names_by_lower() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


@cache
def get_zone(name: str | None) -> Zone:
    """The zone for a BullMQ ``tz`` value, resolved as luxon's ``normalizeZone``:
    ``utc``/``gmt`` (any case), ``UTC+5``/``utc-03:30`` fixed offsets, else an
    IANA name (case-insensitive, as ``Intl`` accepts it).

    ``None`` (no ``tz``) is UTC: bullbridge's documented choice (Node would use
    each process's own local zone)."""
    if name is None:
        return Zone("UTC", UTC)
    lowered = name.lower()
    if lowered in ("utc", "gmt"):
        return Zone("UTC", UTC)
    if lowered in ("local", "system", "default"):
        raise InvalidSchedule(
            f"tz {name!r} means 'this process's zone', which differs between hosts; name an IANA zone"
        )
    fixed = _FIXED.match(lowered)
    if fixed:  # luxon FixedOffsetZone.parseSpecifier / signedOffset
        hours_text, minutes_text = fixed.group(1), fixed.group(2)
        hours = int(hours_text) if hours_text else 0
        minutes = int(minutes_text) if minutes_text else 0
        negative = hours_text is not None and hours_text.startswith("-")
        return Zone(name, timezone(timedelta(minutes=hours * 60 + (-minutes if negative else minutes))))
    try:
        return Zone(name, ZoneInfo(name))
    except (ZoneInfoNotFoundError, ValueError):
        pass
    canonical = _zone_names_by_lower().get(lowered)
    if canonical is not None:
        return Zone(name, ZoneInfo(canonical))
    raise InvalidSchedule(f"unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin'")


# --- the instant ---------------------------------------------------------------------


class ZonedTime:
    """An immutable instant with its wall-clock fields in a zone (luxon ``DateTime``).

    As in luxon, the offset is always the zone's offset at the instant; the
    fields follow from instant + offset."""

    __slots__ = ("day", "hour", "millisecond", "minute", "month", "offset", "second", "ts", "weekday", "year", "zone")

    def __init__(self, ts: int, zone: Zone) -> None:
        self.ts = ts
        self.zone = zone
        self.offset = zone.offset_ms(ts)
        local = ts + self.offset
        days, rest = divmod(local, MS_PER_DAY)
        self.year, self.month, self.day = civil_from_days(days)
        self.weekday = (days + 4) % 7  # 0 = Sunday, as Date.getDay
        seconds, self.millisecond = divmod(rest, 1000)
        minutes, self.second = divmod(seconds, 60)
        self.hour, self.minute = divmod(minutes, 60)

    def __repr__(self) -> str:
        return (
            f"ZonedTime({self.year:04d}-{self.month:02d}-{self.day:02d}T{self.hour:02d}:{self.minute:02d}:"
            f"{self.second:02d}.{self.millisecond:03d} {self.zone.name} {self.offset // 60000:+d}m)"
        )

    # -- luxon primitives ---------------------------------------------------------------

    def _from_local(self, local: int) -> ZonedTime:
        """luxon ``fixOffset``: the instant for a wall-clock time, guessing this
        instant's offset first (which decides the side of a DST fold or gap)."""
        zone = self.zone
        guess_offset = self.offset
        utc_guess = local - guess_offset
        o2 = zone.offset_ms(utc_guess)
        if o2 == guess_offset:
            return ZonedTime(utc_guess, zone)
        utc_guess -= o2 - guess_offset
        o3 = zone.offset_ms(utc_guess)
        if o2 == o3:
            return ZonedTime(utc_guess, zone)
        return ZonedTime(local - min(o2, o3), zone)

    def set(
        self,
        *,
        year: int | None = None,
        month: int | None = None,
        day: int | None = None,
        hour: int | None = None,
        minute: int | None = None,
        second: int | None = None,
        millisecond: int | None = None,
    ) -> ZonedTime:
        """luxon ``DateTime.set``: replace wall-clock fields; an unset day is
        clamped to the month's length."""
        y = self.year if year is None else year
        mo = self.month if month is None else month
        d = self.day if day is None else day
        if day is None:
            d = min(days_in_month(y, mo), d)
        local = local_ms(
            y,
            mo,
            d,
            self.hour if hour is None else hour,
            self.minute if minute is None else minute,
            self.second if second is None else second,
            self.millisecond if millisecond is None else millisecond,
        )
        return self._from_local(local)

    def plus_calendar(self, *, years: int = 0, months: int = 0, days: int = 0) -> ZonedTime:
        """luxon ``plus`` with calendar units: wall-clock date moved, time kept."""
        year = self.year + years
        month = self.month + months
        day = min(self.day, days_in_month(year, month)) + days
        return self._from_local(local_ms(year, month, day, self.hour, self.minute, self.second, self.millisecond))

    def plus_ms(self, ms: int) -> ZonedTime:
        """luxon ``plus`` with time units: an exact number of milliseconds later."""
        return ZonedTime(self.ts + ms, self.zone)

    def start_of(self, unit: str) -> ZonedTime:
        """luxon ``startOf`` for ``month``, ``day``, ``hour``, ``minute``, ``second``."""
        if unit == "month":
            return self.set(day=1, hour=0, minute=0, second=0, millisecond=0)
        if unit == "day":
            return self.set(hour=0, minute=0, second=0, millisecond=0)
        if unit == "hour":
            return self.set(minute=0, second=0, millisecond=0)
        if unit == "minute":
            return self.set(second=0, millisecond=0)
        if unit == "second":
            return self.set(millisecond=0)
        raise ValueError(f"unsupported unit {unit!r}")

    def end_of_day(self) -> ZonedTime:
        """luxon ``endOf('day')``: ``plus({days: 1}).startOf('day').minus(1)``."""
        return self.plus_calendar(days=1).start_of("day").plus_ms(-1)

"""A named set of schedules, declared in Python or in a TOML file.

The declaration's ``name`` is the owner recorded beside every scheduler it
creates: ``sync`` only ever updates or removes schedulers recorded under that
name (see :mod:`bullbridge.scheduler.store`). Give each service its own name
and keep it stable across deploys.

TOML form (``[defaults]`` apply to every schedule that does not set the key;
``tz`` only to ``pattern`` schedules; times are TOML datetimes with an offset,
or epoch milliseconds)::

    declaration = "seed-app"

    [defaults]
    queue = "maintenance"
    tz = "America/New_York"

    [[schedules]]
    id = "nightly-cleanup"
    pattern = "0 2 * * *"
    data = { older_than_days = 30 }
    opts = { attempts = 3, backoff = { type = "exponential", delay = 1000 } }

    [[schedules]]
    id = "heartbeat"
    every = 3600000
"""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from bullbridge.scheduler.errors import InvalidSchedule
from bullbridge.scheduler.schedule import Schedule

_SCHEDULE_KEYS = {f.name for f in fields(Schedule)}


@dataclass(frozen=True)
class Declaration:
    """Schedules owned together under one ``name``."""

    name: str
    schedules: tuple[Schedule, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or any(c.isspace() for c in self.name):
            raise InvalidSchedule(f"a declaration needs a non-empty name without spaces, got {self.name!r}")
        schedules = tuple(self.schedules)
        for item in schedules:
            if not isinstance(item, Schedule):
                raise InvalidSchedule(f"declaration {self.name!r} holds {type(item).__name__}, not a Schedule")
        seen: set[tuple[str, str, str]] = set()
        for s in schedules:
            key = (s.prefix, s.queue, s.id)
            if key in seen:
                raise InvalidSchedule(f"declaration {self.name!r} declares {s.queue}/{s.id} twice")
            seen.add(key)
        object.__setattr__(self, "schedules", schedules)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, default_name: str | None = None) -> Declaration:
        """Build from the TOML shape (``declaration``, ``defaults``, ``schedules``)."""
        unknown = set(data) - {"declaration", "defaults", "schedules"}
        if unknown:
            raise InvalidSchedule(f"unknown top-level keys {sorted(unknown)} (declaration, defaults, schedules)")
        name = data.get("declaration", default_name)
        if name is None:
            raise InvalidSchedule('name the declaration: declaration = "my-service"')
        defaults = dict(data.get("defaults") or {})
        bad = set(defaults) - _SCHEDULE_KEYS
        if bad:
            raise InvalidSchedule(f"unknown keys in [defaults]: {sorted(bad)}")
        schedules = []
        for index, raw in enumerate(data.get("schedules") or []):
            if not isinstance(raw, Mapping):
                raise InvalidSchedule(f"schedules[{index}] is not a table")
            bad = set(raw) - _SCHEDULE_KEYS
            if bad:
                raise InvalidSchedule(
                    f"schedules[{index}]: unknown keys {sorted(bad)} (known: {sorted(_SCHEDULE_KEYS)})"
                )
            merged = dict(raw)
            for key, value in defaults.items():
                if key == "tz" and "every" in raw:
                    continue
                merged.setdefault(key, value)
            try:
                schedules.append(Schedule(**merged))
            except TypeError as exc:
                raise InvalidSchedule(f"schedules[{index}]: {exc}") from None
        return cls(str(name), tuple(schedules))

    @classmethod
    def from_toml(cls, path: str | Path) -> Declaration:
        """Load a TOML declaration file."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidSchedule(f"cannot read schedules from {path}: {exc}") from None
        return cls.from_mapping(data, default_name=path.stem)


def load_declaration(spec: str) -> Declaration:
    """A declaration from ``path/to/file.toml`` or ``package.module:attribute``.

    The attribute may be a :class:`Declaration`, a sequence of
    :class:`Schedule` (owned under the name ``module:attribute``), or a
    callable returning either."""
    if spec.endswith(".toml"):
        return Declaration.from_toml(spec)
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise InvalidSchedule(f"expected MODULE:ATTR or a .toml file, got {spec!r}")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidSchedule(f"cannot import {module_name!r}: {exc}") from None
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise InvalidSchedule(f"{module_name!r} has no attribute {attr!r}") from None
    if callable(target) and not isinstance(target, Declaration):
        target = target()
    if isinstance(target, Declaration):
        return target
    if isinstance(target, Iterable) and not isinstance(target, (str, bytes, Mapping)):
        return Declaration(spec, tuple(target))
    raise InvalidSchedule(f"{spec} is a {type(target).__name__}, not a Declaration or a list of Schedule")

"""The one JSON shape of everything bullbridge prints or serves: dataclasses as camelCase objects.

The CLI's ``--json`` output, the dashboard's ``/api/...`` endpoints, health
reports and the doctor's report are all :func:`to_json` of a dataclass, so
they spell their keys one way, BullMQ's (``processedOn``, ``attemptsMade``):

* a dataclass becomes an object with one key per field, the field name in
  camelCase (``oldest_waiting_age_ms`` -> ``oldestWaitingAgeMs``);
* a field declares another wire name with ``field(metadata={"json": "next"})``,
  or stays out of the JSON with ``field(metadata={"json": None})``;
* a class may add computed values by naming properties (or methods taking no
  argument) in a ``json_properties`` class attribute; they follow the fields;
* mappings, lists, tuples and sets are converted item by item; mapping keys
  are data (queue names, states, languages) and are kept as they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

#: The field-metadata key that renames (a string) or leaves out (``None``) a field.
JSON = "json"


def camel(name: str) -> str:
    """``snake_case`` -> ``camelCase`` (``taken_at`` -> ``takenAt``)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def to_json(value: Any) -> Any:
    """``value`` as plain JSON-ready data (dicts, lists, scalars); see the module docstring."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            wire = f.metadata.get(JSON, camel(f.name))
            if wire is not None:
                out[wire] = to_json(getattr(value, f.name))
        for name in getattr(value, "json_properties", ()):
            extra = getattr(value, name)
            out[camel(name)] = to_json(extra() if callable(extra) else extra)
        return out
    if isinstance(value, Mapping):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(item) for item in value]
    return value

"""The one JSON serialiser of the CLI, the dashboard API, health and doctor reports."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bullbridge.jsonapi import camel, to_json


def test_camel() -> None:
    assert camel("taken_at") == "takenAt"
    assert camel("oldest_waiting_age_ms") == "oldestWaitingAgeMs"
    assert camel("name") == "name" and camel("p50") == "p50"


@dataclass(frozen=True)
class Inner:
    window_minutes: int
    completed: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Outer:
    json_properties: ClassVar[tuple[str, ...]] = ("total_jobs", "verdict")

    queue_name: str
    next_run_ms: int | None = field(default=None, metadata={"json": "next"})
    raw_fields: dict[str, str] = field(default_factory=dict, metadata={"json": None})
    inner: Inner = field(default_factory=lambda: Inner(5))
    by_state: dict[str, Inner] = field(default_factory=dict)
    ids: tuple[str, ...] = ()
    extra: Any = None

    @property
    def total_jobs(self) -> int:
        return 3

    def verdict(self) -> str:
        return "ok"


def test_dataclasses_become_camelcase_objects_recursively() -> None:
    value = Outer(
        "mail",
        17,
        {"ic": "1"},
        Inner(2, [1, 2]),
        {"waiting-children": Inner(1)},
        ("a", "b"),
        [Inner(3), {"snake_key": 1}],
    )
    assert to_json(value) == {
        "queueName": "mail",
        "next": 17,  # renamed by metadata
        "inner": {"windowMinutes": 2, "completed": [1, 2]},
        "byState": {"waiting-children": {"windowMinutes": 1, "completed": []}},  # mapping keys are data
        "ids": ["a", "b"],
        "extra": [{"windowMinutes": 3, "completed": []}, {"snake_key": 1}],
        "totalJobs": 3,  # a listed property
        "verdict": "ok",  # a listed method
    }
    json.dumps(to_json(value))  # JSON-ready
    assert to_json([Inner(1)]) == [{"windowMinutes": 1, "completed": []}]
    assert to_json(None) is None and to_json("x") == "x" and to_json(Inner) is Inner

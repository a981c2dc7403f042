"""Declaring schedules: validation as Node would validate, TOML and module loading,
time zones, and BullMQ's next-run rules that need no Redis."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bullbridge.options import JobOptions
from bullbridge.scheduler import (
    CronSyntaxError,
    Declaration,
    InvalidSchedule,
    Repeat,
    Schedule,
    fire_sequence,
    load_declaration,
)
from bullbridge.scheduler.cron import fire_times, parse
from bullbridge.scheduler.iteration import has_legacy_key_shape, node_job_opts
from bullbridge.scheduler.timing import every_next_millis
from bullbridge.scheduler.zoned import get_zone
from tests.scheduler.helpers import iso, ms


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pattern": "0 2 * * *", "every": 1000}, "Both .pattern and .every"),
        ({}, "give a cron pattern or an every interval"),
        ({"pattern": "0 2 * * *", "immediately": True, "start_date": 1}, "Both .immediately and .startDate"),
        ({"pattern": "0 0 15W * *"}, "Invalid characters"),
        ({"pattern": "0 0 30 2 *"}, "Invalid explicit day of month"),
        ({"pattern": "0 2 * * *", "tz": "Mars/Olympus"}, "unknown time zone"),
        ({"pattern": "0 2 * * *", "tz": "local"}, "differs between hosts"),
        ({"pattern": "0 2 * * *", "offset": 5}, "offset only applies to every"),
        ({"every": 1000, "tz": "UTC"}, "tz only applies to cron"),
        ({"every": 0}, "every must be > 0"),
        ({"every": 1000, "immediately": True}, "immediately has no effect"),
        ({"every": 1000, "limit": 0}, "limit must be an int >= 1"),
        ({"every": 1000, "start_date": 2000, "end_date": 1000}, "end_date must be after start_date"),
        ({"every": 1000, "start_date": datetime(2030, 1, 1)}, "naive datetime"),
        ({"every": 1000, "opts": {"job_id": "x"}}, "job_id cannot be part"),
        ({"every": 1000, "opts": JobOptions(delay=5)}, "delay cannot be part"),
        ({"every": 1000, "opts": {"removeOnComplete": True}}, "did you mean 'remove_on_complete'"),
        ({"every": 1000, "data": {"s": {1, 2}}}, "data is not JSON-safe"),
    ],
)
def test_schedules_node_would_refuse_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidSchedule, match=message.replace(".", r"\.").replace("(", r"\(")):
        Schedule(id="s", queue="q", **kwargs)  # type: ignore[arg-type]


def test_schedule_maps_to_bullmq_names() -> None:
    s = Schedule(
        id="nightly",
        queue="q",
        pattern="0 2 * * *",
        tz="America/New_York",
        start_date=datetime(2030, 1, 1, tzinfo=UTC),
        limit=3,
        opts={"attempts": 2},
    )
    assert s.job_name == "nightly"
    assert s.scheduler_opts() == {
        "name": "nightly",
        "startDate": 1893456000000,
        "tz": "America/New_York",
        "pattern": "0 2 * * *",
        "limit": 3,
    }
    assert s.template_opts() == {"attempts": 2}
    assert Schedule(id="e", queue="q", every=timedelta(hours=6)).every == 21_600_000
    assert Schedule(id="u", queue="q", pattern="0 2 * * *").stored_tz == "UTC"
    assert Schedule(id="t", queue="q", every=5).template_opts() == {}


def test_declaration_from_toml_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "seed.toml"
    path.write_text(
        textwrap.dedent("""
        declaration = "seed-app"
        [defaults]
        queue = "maintenance"
        tz = "America/New_York"

        [[schedules]]
        id = "nightly"
        pattern = "0 2 * * *"
        start_date = 2027-01-01T00:00:00-05:00
        opts = { attempts = 3, backoff = { type = "exponential", delay = 1000 } }

        [[schedules]]
        id = "heartbeat"
        every = 21600000
        queue = "ops"
    """),
        encoding="utf-8",
    )
    decl = Declaration.from_toml(path)
    nightly, heartbeat = decl.schedules
    assert decl.name == "seed-app"
    assert (nightly.queue, nightly.tz, nightly.start_date) == (
        "maintenance",
        "America/New_York",
        ms("2027-01-01T05:00:00+00:00"),
    )
    assert nightly.template_opts() == {"attempts": 3, "backoff": {"type": "exponential", "delay": 1000}}
    assert (heartbeat.queue, heartbeat.tz, heartbeat.every) == ("ops", None, 21_600_000)
    path.write_text('declaration = "x"\n[[schedules]]\nid = "a"\nqueue = "q"\nevry = 5\n', encoding="utf-8")
    with pytest.raises(InvalidSchedule, match="unknown keys"):
        Declaration.from_toml(path)


def test_declarations_refuse_duplicates_and_load_from_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = Schedule(id="a", queue="q", every=1000)
    with pytest.raises(InvalidSchedule, match="twice"):
        Declaration("d", (a, Schedule(id="a", queue="q", every=5)))
    (tmp_path / "my_schedules_mod.py").write_text(
        textwrap.dedent("""
        from bullbridge.scheduler import Schedule
        LIST = [Schedule(id="a", queue="q", every=1000)]
    """),
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    decl = load_declaration("my_schedules_mod:LIST")
    assert decl.name == "my_schedules_mod:LIST" and decl.schedules[0].id == "a"
    with pytest.raises(InvalidSchedule, match="no attribute"):
        load_declaration("my_schedules_mod:NOPE")


def test_time_zones_resolve_as_luxon_does() -> None:
    assert get_zone(None).name == get_zone("utc").name == get_zone("GMT").name == "UTC"
    assert get_zone("UTC+05:30").offset_ms(0) == 19_800_000
    assert get_zone("utc-3").offset_ms(0) == -10_800_000
    assert get_zone("europe/berlin").offset_ms(ms("2025-07-01T00:00:00+00:00")) == 7_200_000


def test_six_fields_read_seconds_first_and_macros_expand() -> None:
    start = ms("2025-01-01T00:00:00+00:00")
    assert [iso(t) for t in fire_times("15 30 2 * * *", after=start, count=2)] == [
        "2025-01-01T02:30:15+00:00",
        "2025-01-02T02:30:15+00:00",
    ]
    assert parse("30 2 * * *").second.values == (0,)
    assert parse("@weekdays").day_of_week.values == (1, 2, 3, 4, 5)
    third_friday = fire_times("0 0 9 * * 5#3", after=start, count=1, tz="Europe/Berlin")
    assert iso(third_friday[0]) == "2025-01-17T08:00:00+00:00"
    with pytest.raises(CronSyntaxError, match="too many fields"):
        parse("0 0 1 1 * 2025 x")


def test_every_alignment_follows_the_lua() -> None:
    assert every_next_millis(None, 1000, 5500, None, None) == (5500, 500)  # first run at once
    assert every_next_millis(None, 1000, 5500, 200, None) == (6200, 200)  # aligned to the offset
    assert every_next_millis(None, 1000, 5500, None, 9000) == (9000, 0)  # start date
    assert every_next_millis(6200, 1000, 6900, 200, None) == (7200, 200)  # next slot
    assert every_next_millis(6200, 1000, 9700, 200, None) == (10200, 200)  # missed slots realign


def test_fire_sequence_honours_limit_end_date_and_immediately() -> None:
    t0 = ms("2026-01-05T10:17:00+00:00")
    hourly = Repeat(pattern="0 * * * *", tz="UTC", limit=3)
    assert [iso(t) for t in fire_sequence(hourly, created_at=t0, count=10)] == [
        "2026-01-05T11:00:00+00:00",
        "2026-01-05T12:00:00+00:00",
        "2026-01-05T13:00:00+00:00",
    ]
    windowed = Repeat(pattern="0 * * * *", tz="UTC", end_date=ms("2026-01-05T12:30:00+00:00"))
    assert len(fire_sequence(windowed, created_at=t0, count=10)) == 2
    immediate = Repeat(pattern="0 0 * * *", tz="UTC", immediately=True)
    assert fire_sequence(immediate, created_at=t0, count=2) == [t0, ms("2026-01-06T00:00:00+00:00")]
    every = Repeat(every=500, offset=100, limit=4)
    assert fire_sequence(every, created_at=1_000_050, count=10) == [1_000_100, 1_000_600, 1_001_100, 1_001_600]


def test_next_job_options_are_derived_as_node_derives_them() -> None:
    assert node_job_opts({"backoff": 3000, "repeatJobKey": "x", "kl": 2}) == {
        "backoff": {"type": "fixed", "delay": 3000},
        "attempts": 0,
        "kl": 2,
    }
    assert node_job_opts({"backoff": 0, "attempts": 4}) == {"backoff": {"type": "fixed", "delay": 0}, "attempts": 4}
    assert node_job_opts({"backoff": None, "attempts": 4}) == {"attempts": 4}
    assert node_job_opts({"backoff": {}}) == {"backoff": {}, "attempts": 0}
    assert has_legacy_key_shape("report:abc::America/New_York:0 2 * * *")
    assert has_legacy_key_shape("beat:abc:1700000000000::5000")
    assert not has_legacy_key_shape("my:scheduler:with:four:colons-x")
    assert not has_legacy_key_shape("nightly")

"""Job options: the snake_case model, its validation, and the one mapping to BullMQ's names.

Pure unit tests (no Redis); what Node stores for the same options is compared
byte for byte in test_opts_parity.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import msgpack
import pytest

from bullbridge import scripts
from bullbridge.clock import datetime_ms
from bullbridge.errors import InvalidJobOptions
from bullbridge.options import (
    NODE_NAMES,
    PRIORITY_LIMIT,
    Backoff,
    Deduplication,
    JobOptions,
    KeepJobs,
    Parent,
    Telemetry,
    validate_job_id,
)
from bullbridge.queue import Queue


def test_every_node_add_option_has_a_field() -> None:
    """Node 6.7 JobsOptions minus internals (repeatJobKey, prevMillis) and add-invalid ones (repeat)."""
    node_options = {
        "timestamp",
        "priority",
        "delay",
        "attempts",
        "backoff",
        "lifo",
        "removeOnComplete",
        "removeOnFail",
        "keepLogs",
        "stackTraceLimit",
        "sizeLimit",
        "jobId",
        "parent",
        "deduplication",
        "failParentOnFailure",
        "continueParentOnFailure",
        "ignoreDependencyOnFailure",
        "removeDependencyOnFailure",
        "telemetry",
    }
    assert set(NODE_NAMES.values()) == node_options
    assert set(NODE_NAMES) <= set(JobOptions.__dataclass_fields__)


def test_to_bullmq_maps_every_field_to_node_stored_names() -> None:
    opts = JobOptions(
        job_id="order-1",
        priority=7,
        delay=timedelta(seconds=1.5),
        attempts=4,
        backoff=Backoff.exponential(timedelta(milliseconds=200), jitter=0.25),
        lifo=True,
        remove_on_complete=KeepJobs(count=10, age=timedelta(hours=1), limit=100),
        remove_on_fail=3,
        keep_logs=5,
        stack_trace_limit=2,
        size_limit=1000,
        timestamp=datetime(2030, 1, 1, tzinfo=UTC),
        telemetry=Telemetry("trace-ctx", omit_context=True),
    )
    assert opts.to_bullmq() == {
        "attempts": 4,
        "timestamp": 1893456000000,
        "priority": 7,
        "delay": 1500,
        "backoff": {"type": "exponential", "delay": 200, "jitter": 0.25},
        "lifo": True,
        "removeOnComplete": {"count": 10, "age": 3600, "limit": 100},
        "removeOnFail": 3,
        "kl": 5,
        "stackTraceLimit": 2,
        "sizeLimit": 1000,
        "jobId": "order-1",
        "tm": "trace-ctx",
        "omc": True,
    }
    child = JobOptions(parent=Parent("p-1", "orders"), fail_parent_on_failure=True)
    assert child.to_bullmq() == {"attempts": 0, "parent": {"id": "p-1", "queue": "bull:orders"}, "fpof": True}
    assert child.parent_data() == {"id": "p-1", "queueKey": "bull:orders", "fpof": True}
    for name, short in (
        ("continue_parent_on_failure", "cpof"),
        ("ignore_dependency_on_failure", "idof"),
        ("remove_dependency_on_failure", "rdof"),
    ):
        opts = JobOptions(parent=Parent("p", "q"), **{name: True})
        assert opts.to_bullmq()[short] is True and opts.parent_data()[short] is True  # type: ignore[index]
    dedup = JobOptions(
        deduplication=Deduplication("d", ttl=timedelta(seconds=2), extend=True, keep_last_if_active=True)
    )
    assert dedup.to_bullmq()["de"] == {"id": "d", "ttl": 2000, "extend": True, "keepLastIfActive": True}
    assert JobOptions(deduplication={"id": "d", "replace": True}).to_bullmq()["de"] == {"id": "d", "replace": True}


def test_key_order_is_attempts_then_declaration_order() -> None:
    """Lua stores cjson.encode(unpacked msgpack): key order decides the stored bytes."""
    opts = JobOptions(telemetry=Telemetry("m"), job_id="x-1", keep_logs=1, delay=5, priority=2, attempts=2)
    assert list(opts.to_bullmq()) == ["attempts", "priority", "delay", "kl", "jobId", "tm"]
    packed = msgpack.unpackb(scripts.pack(opts.to_bullmq()))
    assert list(packed) == ["attempts", "priority", "delay", "kl", "jobId", "tm"]


def test_unset_is_omitted_but_explicit_zero_and_false_are_written_as_node_writes_them() -> None:
    assert JobOptions().to_bullmq() == {"attempts": 0}
    assert JobOptions(delay=0, priority=0, lifo=False, remove_on_complete=False).to_bullmq() == {
        "attempts": 0,
        "priority": 0,
        "delay": 0,
        "lifo": False,
        "removeOnComplete": False,
    }


def test_times_convert_from_timedelta_and_datetime() -> None:
    assert JobOptions(delay=timedelta(minutes=1)).delay == 60_000
    assert JobOptions(delay=250.4).delay == 250
    when = datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    opts = JobOptions(delay=when)  # a datetime where ms are expected: run at that instant
    assert opts.run_at == when and opts.delay is None
    reference = datetime_ms(when) - 1234
    assert opts.delay_ms(reference) == 1234
    assert opts.to_bullmq(reference)["delay"] == 1234
    assert JobOptions(run_at=when).delay_ms(datetime_ms(when) + 50) == 0  # past: run now
    assert JobOptions(timestamp=when).timestamp == datetime_ms(when)
    assert JobOptions(deduplication=Deduplication("d", ttl=timedelta(seconds=3))).deduplication.ttl == 3000  # type: ignore[union-attr]
    assert KeepJobs(age=timedelta(days=1)).age == 86_400
    assert KeepJobs(age=timedelta(milliseconds=1500)).age == 1.5
    assert Backoff.fixed(timedelta(seconds=2)).delay == 2000
    assert Backoff.parse(timedelta(milliseconds=300)) == Backoff("fixed", 300)
    assert Backoff.parse(1000).to_bullmq() == {"type": "fixed", "delay": 1000}  # Node's normalize(1000)


def test_mappings_are_accepted_in_snake_and_node_spelling() -> None:
    opts = JobOptions.from_mapping(
        {
            "backoff": {"type": "exponential", "delay": 100},
            "remove_on_fail": {"count": 2},
            "parent": {"id": "7", "queue": "myprefix:orders"},  # Node's qualified form
            "telemetry": {"metadata": "m", "omitContext": False},
        }
    )
    assert opts.backoff == Backoff("exponential", 100)
    assert opts.remove_on_fail == KeepJobs(count=2)
    assert opts.parent == Parent("7", "orders", "myprefix")
    assert opts.telemetry == Telemetry("m", False)
    assert JobOptions(deduplication={"id": "d", "keepLastIfActive": True}).deduplication == Deduplication(
        "d", keep_last_if_active=True
    )
    assert JobOptions(deduplication="just-an-id").deduplication == Deduplication("just-an-id")
    assert Parent.parse({"id": 12, "queue": "q"}).id == "12"


@pytest.mark.parametrize(
    ("given", "suggestion"),
    [
        ({"jobId": "x"}, "did you mean 'job_id'"),
        ({"removeOnComplete": True}, "did you mean 'remove_on_complete'"),
        ({"remove_on_completed": True}, "did you mean 'remove_on_complete'"),
        ({"keepLogs": 3}, "did you mean 'keep_logs'"),
        ({"kl": 3}, "did you mean 'keep_logs'"),
        ({"failParentOnFailure": True}, "did you mean 'fail_parent_on_failure'"),
        ({"priorty": 3}, "did you mean 'priority'"),
        ({"repeat": {"every": 1000}}, "use a job scheduler"),
        ({"debounce": {"id": "x"}}, "use deduplication"),
        ({"repeatJobKey": "k"}, "internal"),
        ({"zzz": 1}, "known: job_id"),
    ],
)
def test_unknown_options_are_refused_with_a_suggestion(given: dict[str, object], suggestion: str) -> None:
    with pytest.raises(InvalidJobOptions, match=r"unknown job option|scheduler|deduplication|internal") as info:
        JobOptions.from_mapping(given)
    assert suggestion in str(info.value)


@pytest.mark.parametrize(
    "job_id",
    ["order-1", "007", "-0", "1.5", "1e3", " 12", "12 ", "uuid-0c1d", "Ünïcødé ✓", "a:b:c", "repeat:k:1700000000000"],
)
def test_custom_ids_node_accepts(job_id: str) -> None:
    assert validate_job_id(job_id) == job_id


@pytest.mark.parametrize(
    ("job_id", "message"),
    [
        ("123", "Custom Id cannot be integers"),
        ("-5", "Custom Id cannot be integers"),
        ("NaN", "Custom Id cannot be integers"),
        ("0", "cannot be '0'"),
        ("0:a:b", "cannot be '0'"),
        ("a:b", "Custom Id cannot contain :"),
        ("a:b:c:d", "Custom Id cannot contain :"),
        (":", "Custom Id cannot contain :"),
        ("", "must not be empty"),
        (42, "must be a string"),
    ],
)
def test_custom_ids_node_rejects(job_id: object, message: str) -> None:
    with pytest.raises(InvalidJobOptions, match=message):
        validate_job_id(job_id)


def test_integer_ids_beyond_2_53_are_refused_too() -> None:
    """Node's check lets '90071992547409930' through only because parseInt rounds it
    (its text comes back as ...936); bullbridge refuses every integer-like id."""
    with pytest.raises(InvalidJobOptions, match="Custom Id cannot be integers"):
        validate_job_id("90071992547409930")


def test_priority_limits() -> None:
    assert JobOptions(priority=PRIORITY_LIMIT).priority == 2_097_151
    assert JobOptions(priority=0).priority == 0
    for bad in (PRIORITY_LIMIT + 1, -1, 1.0, "3", True):
        with pytest.raises(InvalidJobOptions, match="priority"):
            JobOptions(priority=bad)  # type: ignore[arg-type]


def test_queue_defaults_allow_only_default_job_options() -> None:
    defaults = JobOptions.defaults({"attempts": 3, "backoff": 100, "remove_on_complete": True})
    assert defaults is not None
    job = JobOptions(priority=2, attempts=5).merged_over(defaults)
    assert (job.attempts, job.priority, job.backoff, job.remove_on_complete) == (5, 2, Backoff("fixed", 100), True)
    # A job's run_at wins over a default delay (Node: the job's own delay wins).
    run_at = datetime.now(UTC) + timedelta(hours=1)
    assert JobOptions(run_at=run_at).merged_over(JobOptions.defaults({"delay": 10})).delay is None
    for bad in ({"job_id": "x-1"}, {"deduplication": "d"}, {"parent": Parent("1", "q")}, {"run_at": run_at}):
        with pytest.raises(InvalidJobOptions, match="cannot be queue defaults"):
            JobOptions.defaults(bad)
    with pytest.raises(InvalidJobOptions, match="cannot be queue defaults"):
        Queue("q-defaults", connection="redis://127.0.0.1:1", default_job_options={"job_id": "x-1"})


def test_option_objects_validate_their_own_fields() -> None:
    with pytest.raises(InvalidJobOptions, match="needs a delay"):
        Backoff("fixed")
    assert Backoff.custom("linear").to_bullmq() == {"type": "linear"}
    with pytest.raises(InvalidJobOptions, match="jitter"):
        Backoff.exponential(10, jitter=2)
    with pytest.raises(InvalidJobOptions, match="count or an age"):
        KeepJobs()
    with pytest.raises(InvalidJobOptions, match="limit only applies with an age"):
        KeepJobs(count=1, limit=5)
    with pytest.raises(InvalidJobOptions, match="parent queue"):
        Parent("1", "a:b")
    assert Deduplication("d", reschedule=True).to_bullmq() == {"id": "d", "reschedule": True}
    with pytest.raises(InvalidJobOptions, match="deduplication reschedule"):
        Deduplication("d", reschedule=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidJobOptions, match="telemetry metadata"):
        Telemetry(metadata=5)  # type: ignore[arg-type]

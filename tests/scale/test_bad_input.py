"""A corpus of broken and hostile jobs written straight into Redis.

Broken jobs (a field no BullMQ writer would produce) must end in ``failed`` with
a reason naming the problem, never reach a handler, never cycle through stall
recovery, and never stop the worker serving good jobs. Hostile but valid jobs
(huge payloads, deep nesting, odd ids) must simply be processed correctly.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import redis.asyncio as redis

from bullbridge import Queue

BAD = "\xff\xfe".encode("latin-1")

# (case, fields to set (None deletes), words the failedReason must contain)
BROKEN: list[tuple[str, dict[str, Any], str]] = [
    ("data-not-json", {"data": "{oops"}, "field 'data' is not valid JSON"),
    ("data-truncated", {"data": '{"a": [1, 2'}, "field 'data' is not valid JSON"),
    ("data-empty-string", {"data": ""}, "field 'data' is not valid JSON"),
    ("data-nul-byte", {"data": "\x00"}, "field 'data' is not valid JSON"),
    ("data-not-utf8", {"data": b'"' + BAD + b'"'}, "field 'data' is not UTF-8"),
    ("data-single-quotes", {"data": "{'a': 1}"}, "field 'data' is not valid JSON"),
    ("data-trailing-garbage", {"data": '{"a": 1} xyz'}, "field 'data' is not valid JSON"),
    ("opts-not-json", {"opts": "attempts=3"}, "field 'opts' is not valid JSON"),
    ("opts-array", {"opts": "[1, 2]"}, "field 'opts' is JSON but not an object"),
    ("opts-string", {"opts": '"fast"'}, "field 'opts' is JSON but not an object"),
    ("opts-number", {"opts": "42"}, "field 'opts' is JSON but not an object"),
    ("opts-null", {"opts": "null"}, "field 'opts' is JSON but not an object"),
    ("opts-not-utf8", {"opts": b"{" + BAD + b"}"}, "field 'opts' is not UTF-8"),
    ("name-missing", {"name": None}, "job hash has no 'name' field"),
    ("name-not-utf8", {"name": BAD}, "field 'name' is not UTF-8"),
    ("hash-deleted", {"*": None}, "job hash is missing"),
    ("hash-only-garbage", {"*": {"zzz": "1"}}, "job hash is missing"),
    *[
        (f"{field}-{kind}", {field: value}, f"field '{field}' is not a number")
        for field in ("timestamp", "atm", "ats", "stc", "delay", "priority", "attemptsMade")
        for kind, value in (("text", "soon"), ("nan", "NaN"), ("inf", "1e400"))
    ],
    # --- issue 18's adversarial pass ---------------------------------------------------------------
    # Non-standard JSON: Python's json reads NaN/Infinity, Node's JSON.parse refuses them.
    ("data-nan", {"data": '{"a": NaN}'}, "field 'data' is not valid JSON (NaN is not JSON"),
    ("data-infinity", {"data": '{"a": Infinity}'}, "field 'data' is not valid JSON (Infinity is not JSON"),
    ("data-neg-infinity", {"data": "[1, -Infinity]"}, "field 'data' is not valid JSON (-Infinity is not JSON"),
    ("data-bare-nan", {"data": "NaN"}, "field 'data' is not valid JSON (NaN is not JSON"),
    ("opts-attempts-nan", {"opts": '{"attempts": NaN}'}, "field 'opts' is not valid JSON (NaN is not JSON"),
    (
        "opts-backoff-delay-infinity",
        {"opts": '{"attempts": 3, "backoff": {"type": "fixed", "delay": Infinity}}'},
        "field 'opts' is not valid JSON (Infinity is not JSON",
    ),
    ("opts-duplicate-key-nan", {"opts": '{"attempts": 2, "attempts": NaN}'}, "field 'opts' is not valid JSON"),
    # Valid JSON, wrong for the field: the worker cannot act on it, and says which option.
    ("opts-attempts-1e400", {"opts": '{"attempts": 1e400}'}, "option 'attempts' is Infinity"),
    ("opts-attempts-object", {"opts": '{"attempts": {"n": 3}}'}, "option 'attempts' is {\"n\": 3}"),
    ("opts-attempts-array", {"opts": '{"attempts": [3]}'}, "option 'attempts' is [3]"),
    ("opts-attempts-word", {"opts": '{"attempts": "three"}'}, "option 'attempts' is \"three\""),
    ("opts-attempts-bool", {"opts": '{"attempts": true}'}, "option 'attempts' is true"),
    ("opts-backoff-word", {"opts": '{"attempts": 3, "backoff": "fast"}'}, "option 'backoff' is \"fast\""),
    ("opts-backoff-array", {"opts": '{"attempts": 3, "backoff": [1000]}'}, "option 'backoff' is [1000]"),
    (
        "opts-backoff-type-number",
        {"opts": '{"attempts": 3, "backoff": {"type": 5, "delay": 100}}'},
        "option 'backoff' has type 5",
    ),
    (
        "opts-backoff-delay-word",
        {"opts": '{"attempts": 3, "backoff": {"type": "fixed", "delay": "soon"}}'},
        "option 'backoff' has delay \"soon\"",
    ),
    (
        "opts-backoff-jitter-word",
        {"opts": '{"attempts": 3, "backoff": {"type": "fixed", "delay": 10, "jitter": "lots"}}'},
        "option 'backoff' has jitter",
    ),
    ("opts-remove-on-fail-word", {"opts": '{"removeOnFail": "yes"}'}, "option 'removeOnFail' is \"yes\""),
    (
        "opts-remove-on-complete-count-word",
        {"opts": '{"removeOnComplete": {"count": "many"}}'},
        "option 'removeOnComplete' is",
    ),
    # Boundary numbers: counters BullMQ's HINCRBY overflows (it broke the fetch or finish script).
    *[
        (f"{field}-overflow", {field: "99999999999999999999"}, f"field '{field}' is not a counter")
        for field in ("atm", "ats", "stc")
    ],
    ("atm-fraction", {"atm": "1.5"}, "field 'atm' is not a number"),
    # Huge fields: refused with a reason that stays short.
    ("name-huge", {"name": "n" * 1_000_000}, "no handler for job name 'nnnn"),
    ("data-huge-unclosed", {"data": "[" * 200_000}, "field 'data' is not valid JSON"),
]

HOSTILE: list[tuple[str, Any]] = [
    ("huge-string", {"blob": "x" * 5_000_000}),
    ("deep-nesting", json.loads("[" * 250 + "]" * 250)),
    ("unicode-everywhere", {"ключ": "值", "emoji": "🚀" * 1000, "rtl": "שלום", "zw": "a\u200bb"}),
    ("many-keys", {f"k{i}": i for i in range(20_000)}),
    ("null-data", None),
    ("scalar-data", 42),
]


async def _write(url: str, key: str, fields: dict[str, Any]) -> None:
    client = redis.from_url(url)
    try:
        for name, value in fields.items():
            if name == "*":
                await client.delete(key)
                if value:
                    await client.hset(key, mapping=value)
            elif value is None:
                await client.hdel(key, name)
            else:
                await client.hset(key, name, value)
    finally:
        await client.aclose()


async def test_broken_jobs_fail_with_a_reason_and_good_jobs_go_on(redis_url: str, make_worker, producer: Queue) -> None:
    assert len(BROKEN) >= 53 and len({case for case, _, _ in BROKEN}) == len(BROKEN)
    handled: list[str] = []

    async def handle(job):
        handled.append(job.id)
        return "ok"

    broken_ids = {}
    for case, fields, _ in BROKEN:
        job = await producer.add("job", {"case": case}, attempts=3)
        await _write(redis_url, producer.keys.job(job.id), fields)
        broken_ids[case] = job.id
    good = await producer.add_bulk([("job", {"good": i}) for i in range(20)])
    worker = make_worker({"job": handle}, concurrency=4)
    await worker.start()
    outcomes = await asyncio.gather(*(producer.wait_for(i, timeout=15) for i in broken_ids.values()))
    for (case, _, words), outcome in zip(BROKEN, outcomes):
        assert outcome.state == "failed", f"{case}: {outcome}"
        assert outcome.failed_reason is not None and words in outcome.failed_reason, (case, outcome.failed_reason)
        assert len(outcome.failed_reason) < 2_000, (case, "a reason stays readable")
    assert await asyncio.gather(*(producer.result(g.id, timeout=10) for g in good)) == ["ok"] * 20
    assert sorted(handled) == sorted(g.id for g in good), "no broken job may reach a handler"
    assert worker.running and worker.active_count == 0
    counts = await worker.client.execute("LLEN", producer.keys["active"])
    assert counts == 0, "nothing left active (no stall cycling)"


@pytest.mark.parametrize(("case", "data"), HOSTILE, ids=[h[0] for h in HOSTILE])
async def test_hostile_but_valid_jobs_are_processed(case: str, data: Any, make_worker, producer: Queue) -> None:
    async def echo(job):
        return job.data

    worker = make_worker({"echo": echo})
    await worker.start()
    job = await producer.add("echo", data)
    assert await producer.result(job.id, timeout=20) == data


@pytest.mark.parametrize("job_id", ["order 7", "ü-ñ-☃", "tab\there", "line\nbreak", "x" * 500, "emoji-🚀"])
async def test_odd_custom_ids(job_id: str, make_worker, producer: Queue) -> None:
    async def echo(job):
        return job.id

    worker = make_worker({"echo": echo})
    await worker.start()
    await producer.add("echo", {}, job_id=job_id)
    assert await producer.result(job_id, timeout=5) == job_id

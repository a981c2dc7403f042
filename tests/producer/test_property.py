"""Property: any JSON-safe value survives Python -> Node worker -> Python unchanged.

Hypothesis generates nested data (unicode incl. astral characters and lone
surrogates, floats, ints within +/-(2**53 - 1), empty containers, odd keys);
each value is enqueued by bullbridge, echoed by a live Node BullMQ worker as
its return value (``async job => job.data``: JSON.parse, then JSON.stringify),
and read back through the queue's event stream.

Two documented differences are normalised before comparing, both because of
how JavaScript holds values: it has a single number type, so a float with an
integral value within +/-(2**53 - 1) (``5.0``, ``-0.0``) comes back as the int
``5``/``0`` (equal under ``==``); and its strings are UTF-16, so a surrogate
pair held in a Python str as two code points (``"\\ud83d\\ude00"``) comes back
as the one character it encodes (``"😀"``); lone surrogates come back as sent.
Otherwise the comparison is strict about types (``True`` is not ``1``).
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bullbridge import Queue
from bullbridge.codec import MAX_SAFE_INT
from bullbridge.testing.node import NodeDriver

from .conftest import node_worker

EXAMPLES = 500

_text = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF), max_size=5),  # astral
    st.text(st.sampled_from(["\ud800", "\udbff", "\udc00", "a", "é", "\x00", "\u2028"]), max_size=6),
)
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-MAX_SAFE_INT, max_value=MAX_SAFE_INT),
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
)
json_values = st.recursive(
    _leaves,
    lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(_text, children, max_size=5)),
    max_leaves=25,
)


def as_node_reads(value: Any) -> Any:
    """The value as JavaScript holds it: integral floats within the safe range are
    ints, and a surrogate pair held as two code points is the character it encodes."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_SAFE_INT:
        return int(value)
    if isinstance(value, str):
        return utf16(value)
    if isinstance(value, list):
        return [as_node_reads(v) for v in value]
    if isinstance(value, dict):
        return {utf16(k): as_node_reads(v) for k, v in value.items()}
    return value


def utf16(text: str) -> str:
    """JS strings are UTF-16: '\\ud800\\udc00' and '\U00010000' are the same string."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def same(a: Any, b: Any) -> bool:
    """Equality that also compares types (Python's == says True == 1 == 1.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


def test_normalisation_and_strict_equality() -> None:
    assert as_node_reads({"a": [5.0, -0.0, 0.5, 2.0**60]}) == {"a": [5, 0, 0.5, 2.0**60]}
    assert type(as_node_reads(2.0**60)) is float
    assert as_node_reads({"\ud800\udc00": "\ud83d\ude00 \ud800"}) == {"\U00010000": "\U0001f600 \ud800"}
    assert not same(True, 1) and not same(1, 1.0) and not same({"a": 1}, {"a": True})
    assert same({"a": [1, "x", None]}, {"a": [1, "x", None]})


@pytest.fixture
def examples() -> Iterator[list[Any]]:
    """Counts the examples that really went through Node (checked after the test)."""
    seen: list[Any] = []
    started = time.monotonic()
    yield seen
    assert len(seen) >= EXAMPLES, f"only {len(seen)} examples ran"
    print(f"{len(seen)} examples through Node in {time.monotonic() - started:.1f} s")


@pytest.fixture
async def echo_worker(node: NodeDriver, queue_name: str) -> AsyncIterator[str]:
    async with node_worker(node, queue_name, "async job => job.data", concurrency=4) as handle:
        yield handle


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(value=json_values)
async def test_any_json_value_round_trips_through_node(
    producer: Queue, echo_worker: str, examples: list[Any], value: Any
) -> None:
    job = await producer.add("echo", value)
    echoed = await producer.result(job.id, timeout=10)
    expected = as_node_reads(value)
    assert same(echoed, expected), f"sent {value!r}, Node echoed {echoed!r}"
    examples.append(value)

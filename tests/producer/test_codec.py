"""The JSON codec: what Python writes is what Node's JSON.parse reads, and back.

Unit tests of each rule, then both directions through real Node: the bytes
Python stores equal what JSON.stringify writes, Node reads Python's values as
meant, and Python decodes everything Node can write.
"""

from __future__ import annotations

import enum
import math
import uuid
from collections import namedtuple
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from bullbridge import Queue
from bullbridge.codec import DEFAULT, JsonCodec, js_date
from bullbridge.connection.resp import RespClient
from bullbridge.errors import CorruptJob, NotJsonSafe
from bullbridge.testing.node import NodeDriver

from .conftest import job_hash, node_state

codec = DEFAULT


def test_utf8_is_raw_not_escaped() -> None:
    value = {"emoji": "🎉😀", "cjk": "日本語", "accents": "wörld", "nul": "a\x00b"}
    out = codec.encode(value)
    assert "🎉😀".encode() in out and "日本語".encode() in out
    assert b"\\u" not in out.replace(b"\\u0000", b"")
    assert len(out) < len(__import__("json").dumps(value))  # the port's json.dumps inflates
    assert codec.decode(out) == value


@pytest.mark.parametrize(
    ("value", "path", "message"),
    [
        (math.nan, "$", "no JSON form"),
        ({"a": [0, math.inf]}, "$.a[1]", "no JSON form"),
        ({"neg": -math.inf}, "$.neg", "no JSON form"),
        ({"big": 2**53}, "$.big", "beyond +/-(2**53 - 1)"),
        ({"big": -(2**53)}, "$.big", "beyond"),
        ({"huge": 2**70}, "$.huge", "beyond"),
        ({"k with space": {"x": 2**64}}, "$['k with space'].x", "beyond"),
        ({"b": b"bytes"}, "$.b", "base64"),
        ({"s": {1, 2}}, "$.s", "sorted list"),
        ({"f": frozenset()}, "$.f", "sorted list"),
        ({"d": Decimal("1.10")}, "$.d", "str(value)"),
        ({"day": date(2025, 1, 1)}, "$.day", "isoformat"),
        ({"naive": datetime(2025, 1, 1)}, "$.naive", "naive datetime"),
        ({"obj": object()}, "$.obj", "object has no JSON form"),
        ({"nested": {2: "x"}}, "$.nested", "dict key 2"),
    ],
)
def test_not_json_safe_is_refused_with_its_path(value: Any, path: str, message: str) -> None:
    with pytest.raises(NotJsonSafe) as info:
        codec.encode(value)
    assert info.value.path == path
    assert message in str(info.value)


@pytest.mark.parametrize("big_ints", ["reject", "string"])
@pytest.mark.timeout(10)
def test_a_circular_value_is_refused_not_walked_forever(big_ints: Any) -> None:
    """A dict inside itself: Node's JSON.stringify throws "Converting circular
    structure to JSON"; the codec's walk used to follow it forever (a handler
    returning one hung its worker's event loop). The same object twice is fine."""
    looped: dict[str, Any] = {"ok": 1}
    looped["self"] = looped
    ring: list[Any] = [1]
    ring.append({"back": ring})
    as_policy = JsonCodec(big_ints=big_ints)
    for value, path in ((looped, "$.self"), (ring, "$[1].back")):
        with pytest.raises(NotJsonSafe, match="circular reference") as info:
            as_policy.encode(value)
        assert info.value.path == path
    shared = [1, 2]
    assert as_policy.encode({"a": shared, "b": [shared, shared]}) == b'{"a":[1,2],"b":[[1,2],[1,2]]}'


def test_safe_integer_bounds() -> None:
    assert codec.encode([2**53 - 1, -(2**53 - 1)]) == b"[9007199254740991,-9007199254740991]"
    assert codec.encode(1e300) == b"1e+300"  # as JSON.stringify(1e300) writes it


def test_big_ints_as_strings_by_policy() -> None:
    as_strings = JsonCodec(big_ints="string")
    assert as_strings.encode({"id": 2**60, "small": 5, "list": [-(2**64)]}) == (
        b'{"id":"1152921504606846976","small":5,"list":["-18446744073709551616"]}'
    )
    with pytest.raises(NotJsonSafe, match=r"at \$\.x"):
        as_strings.encode({"id": 2**60, "x": math.nan})
    with pytest.raises(ValueError):
        JsonCodec(big_ints="float")  # type: ignore[arg-type]


def test_datetime_is_date_to_json() -> None:
    when = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    assert codec.encode({"at": when}) == b'{"at":"2025-01-02T01:04:05.678Z"}'
    assert js_date(datetime(999, 1, 1, tzinfo=UTC)) == "0999-01-01T00:00:00.000Z"


def test_enums_uuids_subclasses_and_tuples() -> None:
    class Colour(enum.Enum):
        RED = "red"

    class Level(enum.IntEnum):
        HIGH = 3

    class Tag(str):
        pass

    class Ratio(float):
        pass

    pair = namedtuple("pair", "a b")
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert codec.encode(
        {"c": Colour.RED, "l": Level.HIGH, "u": ident, "r": Ratio(0.5), "t": (1, 2), "p": pair(1, "x")}
    ) == (b'{"c":"red","l":3,"u":"12345678-1234-5678-1234-567812345678","r":0.5,"t":[1,2],"p":[1,"x"]}')
    # orjson refuses str-subclass keys; the slow path writes them as plain strings.
    assert codec.encode({Tag("k"): Tag("v")}) == b'{"k":"v"}'


def test_lone_surrogates_are_escaped_as_json_stringify_does() -> None:
    assert codec.encode(["\ud800", "a\udfffb"]) == b'["\\ud800","a\\udfffb"]'
    # A surrogate pair held as two code points (as decoded from Node) is one character to Node.
    assert codec.encode("\ud83d\ude00") == b'"\\ud83d\\ude00"'
    assert codec.decode(codec.encode("\ud800")) == "\ud800"


def test_decode_never_fails_on_valid_json() -> None:
    assert codec.decode(b'"\\ud800"') == "\ud800"  # orjson refuses lone surrogates
    assert codec.decode(b"[1e400,-1e400]") == [math.inf, -math.inf]  # JSON.parse: Infinity
    assert codec.decode(b"1" + b"0" * 5000) == math.inf  # beyond Python's int-digits limit
    deep = "[" * 20_000 + '{"k": "v"}' + "]" * 20_000  # beyond every recursive parser
    value: Any = codec.decode(deep)
    depth = 0
    while isinstance(value, list):
        value, depth = value[0], depth + 1
    assert (depth, value) == (20_000, {"k": "v"})
    deep_objects = '{"a":' * 5000 + '[1, 2.5, true, false, null, "\\u00e9"]' + "}" * 5000
    value = codec.decode(deep_objects.encode())
    for _ in range(5000):
        value = value["a"]
    assert value == [1, 2.5, True, False, None, "é"]
    assert codec.decode(memoryview(b'{"a":1}')) == {"a": 1}


def test_decode_reads_big_integers_as_the_doubles_node_reads() -> None:
    assert codec.decode(b'{"a":9007199254740993,"b":[-18014398509481985],"c":9007199254740991}') == {
        "a": 9007199254740992.0,
        "b": [-18014398509481984.0],
        "c": 9007199254740991,
    }
    assert type(codec.decode(b"9007199254740991")) is int
    assert codec.decode(b'"12345678901234567890"') == "12345678901234567890"  # strings untouched
    # ... so decoded data can always be sent back.
    assert codec.encode(codec.decode(b"[123456789012345680000]")) == b"[1.2345678901234568e+20]"


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"{bad", b"", b"[1,]", b"[1] 2"])
def test_decode_malformed_raises_corrupt_job(raw: bytes) -> None:
    with pytest.raises(CorruptJob):
        codec.decode(raw)


def test_iterative_parser_rejects_malformed_deep_input() -> None:
    for text in ("[" * 3000 + "]" * 2999, "[" * 3000 + "x" + "]" * 3000, "[" * 3000 + "1,]" + "]" * 2999):
        with pytest.raises(CorruptJob):
            codec.decode(text)


# --- both directions through Node -------------------------------------------------------

SAMPLE = {
    "text": 'wörld ✓ 日本語 🎉 "quoted" back\\slash /slash',
    "controls": "\x00\x01\x1f\t\n\r\x08\x0c\x7f",
    "separators": "\u2028\u2029",
    "ints": [0, -1, 42, 9007199254740991, -9007199254740991],
    "floats": [0.5, -1.25, 3.141592653589793, 1e-7, 123.456],
    "nested": {"empty_list": [], "empty_obj": {}, "null": None, "t": True, "f": False},
    "": "empty key",
}


async def test_stored_data_bytes_equal_json_stringify(
    node: NodeDriver, producer: Queue, raw: RespClient, queue_name: str
) -> None:
    py = await producer.add("x", SAMPLE)
    node_id = await node.add(queue_name, "x", SAMPLE)
    py_data = (await job_hash(raw, f"bull:{queue_name}:{py.id}"))["data"]
    node_data = (await job_hash(raw, f"bull:{queue_name}:{node_id}"))["data"]
    assert py_data == node_data
    assert py_data == (await node.eval("return JSON.stringify(args.v)", v=SAMPLE)).encode()


async def test_node_reads_python_values_as_meant(node: NodeDriver, producer: Queue, queue_name: str) -> None:
    data = {
        **SAMPLE,
        "when": datetime(2025, 6, 7, 8, 9, 10, 123456, tzinfo=UTC),
        "astral": "𝄞🎉",
        "lone": "\ud800",
        "max": 2**53 - 1,
    }
    job = await producer.add("x", data)
    seen = await node.eval(
        """
        const job = await queue(args.q).getJob(args.id);
        const d = job.data;
        return {
            date: new Date(d.when).getTime(), astralLength: d.astral.length, lone: d.lone.charCodeAt(0),
            maxSafe: Number.isSafeInteger(d.max), separators: d.separators.length, text: d.text,
        };
    """,
        q=queue_name,
        id=job.id,
    )
    assert seen == {
        "date": 1749283750123,
        "astralLength": 4,
        "lone": 0xD800,
        "maxSafe": True,
        "separators": 2,
        "text": SAMPLE["text"],
    }


async def test_python_decodes_what_only_node_writes(node: NodeDriver, producer: Queue, queue_name: str) -> None:
    job_id = await node.eval(
        """
        let deep = 'bottom';
        for (let i = 0; i < 3000; i++) deep = [deep];
        const job = await queue(args.q).add('x', {
            deep, lone: '\\ud800', pairHalf: '\\udfff', big: 2 ** 60, huge: 1e21, negZero: -0, five: 5.0,
            rounded: 9007199254740993, tiny: 5e-324,
        });
        return job.id;
    """,
        q=queue_name,
    )
    stored = await producer.get_job(str(job_id))
    assert stored is not None
    data = stored.data
    depth, inner = 0, data["deep"]
    while isinstance(inner, list):
        inner, depth = inner[0], depth + 1
    assert (depth, inner) == (3000, "bottom")
    assert data["lone"] == "\ud800" and data["pairHalf"] == "\udfff"
    assert data["big"] == 2.0**60 and type(data["big"]) is float
    assert data["huge"] == 1e21
    assert data["negZero"] == 0 and data["five"] == 5 and type(data["five"]) is int
    assert data["rounded"] == 9007199254740992.0
    assert data["tiny"] == 5e-324
    # What Python decoded, Python can send back, and Node reads the same values.
    copy = {k: v for k, v in data.items() if k != "deep"}
    echo = await producer.add("echo", copy)
    same = await node.eval(
        """
        const a = (await queue(args.q).getJob(args.a)).data, b = (await queue(args.q).getJob(args.b)).data;
        delete a.deep;
        return JSON.stringify(a) === JSON.stringify(b);
    """,
        q=queue_name,
        a=str(job_id),
        b=echo.id,
    )
    assert same is True


async def test_return_values_and_progress_round_trip(node: NodeDriver, producer: Queue, queue_name: str) -> None:
    handle = await node.start_worker(
        queue_name,
        """async job => {
        await job.updateProgress({ pct: 50, note: 'half ✓' });
        return { got: job.data, big: 2 ** 60, half: 0.5 };
    }""",
    )
    try:
        job = await producer.add("x", {"emoji": "🎉"})
        result = await producer.result(job.id, timeout=10)
        assert result == {"got": {"emoji": "🎉"}, "big": 2.0**60, "half": 0.5}
        node_job = await node_state(node, queue_name, job.id, "completed")
        assert node_job["progress"] == {"pct": 50, "note": "half ✓"}
        stored = await producer.get_job(job.id)
        assert stored is not None and stored.progress == {"pct": 50, "note": "half ✓"}
    finally:
        await node.close_worker(handle)

"""Every invalid job raises a precise exception at the call site and writes nothing.

Each case calls the real producer against the real Redis, checks the exception
type and message, that no key of the queue exists afterwards, and then - as a
control that the check can fail - that a valid job does create keys.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import pytest

from bullbridge import Queue
from bullbridge.connection.resp import RespClient
from bullbridge.errors import InvalidJobOptions, NotJsonSafe, ScriptError
from bullbridge.flows import FlowJob, FlowProducer
from bullbridge.options import PRIORITY_LIMIT, Parent
from bullbridge.queue import JobSpec

from .conftest import queue_keys

INVALID: list[tuple[str, dict[str, Any], str]] = [
    # unknown options, with a suggestion
    ("camel-job-id", {"jobId": "x-1"}, "did you mean 'job_id'"),
    ("typo", {"remove_on_completed": True}, "did you mean 'remove_on_complete'"),
    ("repeat", {"repeat": {"every": 1000}}, "job scheduler"),
    ("debounce", {"debounce": {"id": "x"}}, "use deduplication"),
    # delay
    ("negative-delay", {"delay": -1}, "delay must be >= 0"),
    ("negative-timedelta", {"delay": timedelta(seconds=-1)}, "delay must be >= 0"),
    ("nan-delay", {"delay": math.nan}, "delay must be finite"),
    ("bool-delay", {"delay": True}, "not a bool"),
    ("naive-datetime-delay", {"delay": datetime(2030, 1, 1)}, "timezone-aware"),
    ("delay-and-run-at", {"delay": 5, "run_at": datetime.now().astimezone()}, "not both"),
    # priority
    ("priority-negative", {"priority": -1}, "between 0 and 2097151"),
    ("priority-too-big", {"priority": PRIORITY_LIMIT + 1}, "between 0 and 2097151"),
    ("priority-float", {"priority": 1.5}, "Priority should not be float"),
    ("priority-string", {"priority": "5"}, "must be an int"),
    # custom ids
    ("id-integer", {"job_id": "123"}, "Custom Id cannot be integers"),
    ("id-negative-integer", {"job_id": "-7"}, "Custom Id cannot be integers"),
    ("id-colon", {"job_id": "a:b"}, "Custom Id cannot contain :"),
    ("id-four-parts", {"job_id": "a:b:c:d"}, "Custom Id cannot contain :"),
    ("id-zero", {"job_id": "0"}, "cannot be '0'"),
    ("id-empty", {"job_id": ""}, "must not be empty"),
    ("id-int", {"job_id": 5}, "must be a string"),
    # attempts and backoff
    ("attempts-zero", {"attempts": 0}, "attempts must be an int >= 1"),
    ("attempts-float", {"attempts": 2.0}, "attempts must be an int >= 1"),
    ("backoff-no-delay", {"backoff": {"type": "exponential"}}, "needs a delay"),
    ("backoff-jitter", {"backoff": {"type": "fixed", "delay": 10, "jitter": 1.5}}, "Jitter should be between 0 and 1"),
    ("backoff-empty-type", {"backoff": {"type": "", "delay": 10}}, "non-empty string"),
    ("backoff-unknown-key", {"backoff": {"kind": "fixed"}}, "unknown backoff key"),
    ("backoff-negative", {"backoff": -5}, "backoff delay must be >= 0"),
    ("backoff-string", {"backoff": "fixed"}, "backoff must be"),
    # keep-jobs
    ("remove-negative-count", {"remove_on_complete": -1}, "must be >= 0"),
    ("remove-mapping-negative", {"remove_on_fail": {"count": -1}}, "count must be an int >= 0"),
    ("remove-negative-age", {"remove_on_fail": {"age": -5}}, "age is seconds"),
    ("remove-limit-without-age", {"remove_on_complete": {"count": 1, "limit": 5}}, "limit only applies"),
    ("remove-unknown-key", {"remove_on_complete": {"max": 5}}, "unknown remove_on_complete key"),
    ("remove-string", {"remove_on_complete": "yes"}, "must be True/False"),
    # deduplication
    ("dedup-without-id", {"deduplication": {"ttl": 100}}, "Deduplication id must be provided"),
    ("dedup-empty-id", {"deduplication": {"id": ""}}, "Deduplication id must be provided"),
    ("dedup-extend-no-ttl", {"deduplication": {"id": "d", "extend": True}}, "give a ttl"),
    ("dedup-zero-ttl", {"deduplication": {"id": "d", "ttl": 0}}, "ttl must be > 0"),
    (
        "dedup-with-parent",
        {"deduplication": {"id": "d"}, "parent": Parent("p-1", "elsewhere")},
        "Deduplication and parent options cannot be used together",
    ),
    # parent policies
    (
        "two-policies",
        {"parent": Parent("p-1", "elsewhere"), "fail_parent_on_failure": True, "ignore_dependency_on_failure": True},
        "cannot be used together",
    ),
    ("policy-without-parent", {"fail_parent_on_failure": True}, "only applies to a job with a parent"),
    ("parent-bad-queue", {"parent": {"id": "1", "queue": ""}}, "parent queue"),
    ("parent-bad-id", {"parent": {"id": "", "queue": "q"}}, "parent id"),
    # misc
    ("keep-logs-negative", {"keep_logs": -1}, "keep_logs must be an int >= 0"),
    ("stack-trace-float", {"stack_trace_limit": 1.5}, "stack_trace_limit must be an int"),
    ("size-limit-zero", {"size_limit": 0}, "size_limit must be an int >= 1"),
    ("size-limit-exceeded", {"size_limit": 10}, "exceeds its size_limit of 10 bytes"),
    ("lifo-string", {"lifo": "yes"}, "lifo must be True or False"),
    ("timestamp-naive", {"timestamp": datetime(2030, 1, 1)}, "tzinfo"),
    ("timestamp-negative", {"timestamp": -1}, "epoch milliseconds"),
    ("telemetry-bad", {"telemetry": {"metadata": 5}}, "telemetry metadata"),
]


async def _assert_nothing_written_then_control(raw: RespClient, producer: Queue, queue: str) -> None:
    assert await queue_keys(raw, queue) == []
    await producer.add("control", {})
    assert f"bull:{queue}:id" in await queue_keys(raw, queue)


@pytest.mark.parametrize(("case", "options", "message"), INVALID, ids=[c[0] for c in INVALID])
async def test_invalid_option_raises_and_writes_nothing(
    raw: RespClient, producer: Queue, queue_name: str, case: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidJobOptions) as info:
        await producer.add("job", {"payload": "more than ten bytes"}, **options)
    assert message in str(info.value)
    await _assert_nothing_written_then_control(raw, producer, queue_name)


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"price": math.nan}, "$.price"),
        ({"items": [1, {"inf": math.inf}]}, "$.items[1].inf"),
        ({"id": 2**53}, "$.id"),
        ({"raw": b"\x00\x01"}, "$.raw"),
        ({"tags": {"a", "b"}}, "$.tags"),
        ({"when": datetime(2030, 1, 1)}, "$.when"),
        ({1: "int key"}, "$"),
        ({"deep": [[[object()]]]}, "$.deep[0][0][0]"),
    ],
)
async def test_data_not_json_safe_raises_with_path_and_writes_nothing(
    raw: RespClient, producer: Queue, queue_name: str, data: Any, path: str
) -> None:
    with pytest.raises(NotJsonSafe) as info:
        await producer.add("job", data)
    assert info.value.path == path and str(info.value).endswith(f"at {path}")
    await _assert_nothing_written_then_control(raw, producer, queue_name)


async def test_bulk_with_one_invalid_job_writes_none(raw: RespClient, producer: Queue, queue_name: str) -> None:
    jobs: list[Any] = [
        ("ok", {"n": 1}),
        JobSpec("ok", {"n": 2}, {"priority": 3}),
        {"name": "bad", "data": {}, "opts": {"job_id": "42"}},
        ("ok", {"n": 4}),
    ]
    with pytest.raises(InvalidJobOptions, match="Custom Id cannot be integers"):
        await producer.add_bulk(jobs)
    with pytest.raises(NotJsonSafe, match=r"at \$\.n"):
        await producer.add_bulk([("ok", {"n": 1}), ("bad", {"n": math.nan})])
    with pytest.raises(InvalidJobOptions, match="unknown keys in bulk job"):
        await producer.add_bulk([{"name": "x", "options": {}}])
    with pytest.raises(InvalidJobOptions, match="options either as opts"):
        producer.prepare("x", {}, {"priority": 1}, lifo=True)
    await _assert_nothing_written_then_control(raw, producer, queue_name)


async def test_invalid_flow_node_writes_nothing_in_any_queue(
    raw: RespClient, flow_producer: FlowProducer, producer: Queue, queue_name: str
) -> None:
    queues = [queue_name, f"{queue_name}-a", f"{queue_name}-b"]

    def flow(grandchild_opts: dict[str, Any], **root_extra: Any) -> FlowJob:
        return FlowJob(
            "root",
            queues[0],
            {},
            children=[
                FlowJob("a", queues[1], {"n": 1}),
                FlowJob("b", queues[2], {}, children=[FlowJob("leaf", queues[1], {}, opts=grandchild_opts)]),
            ],
            **root_extra,
        )

    bad_flows: list[tuple[Any, type[Exception], str]] = [
        (lambda: flow({"job_id": "7"}), InvalidJobOptions, "Custom Id cannot be integers"),
        (lambda: flow({"attempts": 0}), InvalidJobOptions, "attempts"),
        (lambda: flow({"deduplication": "d"}), InvalidJobOptions, "Deduplication and parent"),
        (lambda: flow({"parent": Parent("x-1", "q")}), InvalidJobOptions, "a child's parent is the node"),
        (
            lambda: FlowJob("root", queues[0], {}, opts={"deduplication": "d"}, children=[FlowJob("a", queues[1])]),
            InvalidJobOptions,
            "flow nodes with children",
        ),
        (
            lambda: FlowJob("root", queues[0], {}, opts={"deduplication": {"id": "d", "replace": True}}),
            InvalidJobOptions,
            "replace is not available in flows",
        ),
        (
            lambda: FlowJob("root", queues[0], {"x": math.inf}, children=[FlowJob("a", queues[1])]),
            NotJsonSafe,
            "at $.x",
        ),
        (lambda: FlowJob("root", "bad:queue"), InvalidJobOptions, "queue name"),
        (lambda: FlowJob("root", queues[0], opts={"jobId": "r-1"}), InvalidJobOptions, "did you mean 'job_id'"),
    ]
    for make, error, message in bad_flows:
        with pytest.raises(error) as info:
            await flow_producer.add(make())
        assert message in str(info.value)
    for queue in queues:
        assert await queue_keys(raw, queue) == []
    tree = await flow_producer.add(flow({}))
    assert [n.queue for n in tree.walk()] == [queues[0], queues[1], queues[2], queues[1]]
    assert await producer.get_job_state(tree.id) == "waiting-children"


async def test_flow_child_already_under_another_parent_is_refused_before_writing(
    raw: RespClient, flow_producer: FlowProducer, queue_name: str
) -> None:
    """The port's script would answer -7 half way through the transaction (Node 6.7
    then leaves the rest of the flow added); bullbridge refuses before sending."""
    children = f"{queue_name}-kids"
    first = await flow_producer.add(
        FlowJob("p1", queue_name, children=[FlowJob("kid", children, opts={"job_id": "kid-1"})])
    )
    before = (await queue_keys(raw, queue_name), await queue_keys(raw, children))
    with pytest.raises(ScriptError, match="already exists as a child of") as info:
        await flow_producer.add(
            FlowJob(
                "p2",
                queue_name,
                children=[FlowJob("other", children), FlowJob("kid", children, opts={"job_id": "kid-1"})],
            )
        )
    assert info.value.code == -7
    assert (await queue_keys(raw, queue_name), await queue_keys(raw, children)) == before
    assert first.children[0].id == "kid-1"

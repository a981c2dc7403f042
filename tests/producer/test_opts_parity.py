"""Byte-level parity: the job hash bullbridge stores equals the one Node stores.

Node adds a job under one prefix, bullbridge the same job under another, in
the same order, so both get the same ids; every hash field is then compared
byte for byte (the prefix swapped, the creation timestamp aside). The Node
options are written in bullbridge's canonical key order (attempts first, then
BullMQ's declaration order): Lua stores ``cjson.encode`` of the unpacked
msgpack map, whose key order follows the order the producer packed.
"""

from __future__ import annotations

from typing import Any

import pytest

from bullbridge import Queue
from bullbridge.connection.resp import RespClient
from bullbridge.flows import FlowJob, FlowProducer
from bullbridge.options import Backoff, Deduplication, JobOptions, KeepJobs, Parent, Telemetry
from bullbridge.testing.node import NodeDriver

from .conftest import job_hash

NODE_PREFIX, PY_PREFIX = "nodeside", "pyside"

CASES: list[tuple[str, dict[str, Any], JobOptions]] = [
    ("no-options", {}, JobOptions()),
    (
        "attempts-backoff",
        {"attempts": 3, "backoff": {"type": "exponential", "delay": 200, "jitter": 0.5}},
        JobOptions(attempts=3, backoff=Backoff.exponential(200, jitter=0.5)),
    ),
    ("numeric-backoff", {"attempts": 2, "backoff": 1000}, JobOptions(attempts=2, backoff=1000)),
    (
        "custom-backoff",
        {"attempts": 2, "backoff": {"type": "linear", "delay": 50}},
        JobOptions(attempts=2, backoff=Backoff.custom("linear", 50)),
    ),
    (
        "priority-lifo-removes",
        {
            "attempts": 0,
            "priority": 42,
            "lifo": True,
            "removeOnComplete": True,
            "removeOnFail": {"count": 5, "age": 3600, "limit": 10},
        },
        JobOptions(
            priority=42, lifo=True, remove_on_complete=True, remove_on_fail=KeepJobs(count=5, age=3600, limit=10)
        ),
    ),
    (
        "remove-counts",
        {"attempts": 0, "removeOnComplete": 3, "removeOnFail": False},
        JobOptions(remove_on_complete=3, remove_on_fail=False),
    ),
    ("remove-age", {"attempts": 0, "removeOnComplete": {"age": 60}}, JobOptions(remove_on_complete={"age": 60})),
    (
        "delay-logs-limits-id",
        {"attempts": 0, "delay": 60000, "keepLogs": 3, "stackTraceLimit": 2, "sizeLimit": 1000, "jobId": "custom-1"},
        JobOptions(delay=60_000, keep_logs=3, stack_trace_limit=2, size_limit=1000, job_id="custom-1"),
    ),
    ("timestamp", {"attempts": 0, "timestamp": 1700000000123}, JobOptions(timestamp=1700000000123)),
    (
        "zero-and-false",
        {"attempts": 0, "priority": 0, "delay": 0, "lifo": False},
        JobOptions(priority=0, delay=0, lifo=False),
    ),
    (
        "dedup-ttl",
        {"attempts": 0, "deduplication": {"id": "d-1", "ttl": 5000, "extend": True, "keepLastIfActive": True}},
        JobOptions(deduplication=Deduplication("d-1", ttl=5000, extend=True, keep_last_if_active=True)),
    ),
    (
        "dedup-replace",
        {"attempts": 0, "delay": 1000, "deduplication": {"id": "d-2", "replace": True}},
        JobOptions(delay=1000, deduplication=Deduplication("d-2", replace=True)),
    ),
    (
        "telemetry",
        {"attempts": 0, "telemetry": {"metadata": "00-abc-01", "omitContext": True}},
        JobOptions(telemetry=Telemetry("00-abc-01", omit_context=True)),
    ),
]

PARENT_CASES = [
    "failParentOnFailure",
    "continueParentOnFailure",
    "ignoreDependencyOnFailure",
    "removeDependencyOnFailure",
]


def _normalise(fields: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v.replace(NODE_PREFIX.encode(), PY_PREFIX.encode()) for k, v in fields.items() if k != "timestamp"}


async def _compare(raw: RespClient, queue: str, job_id: str) -> dict[str, bytes]:
    node_fields = await job_hash(raw, f"{NODE_PREFIX}:{queue}:{job_id}")
    py_fields = await job_hash(raw, f"{PY_PREFIX}:{queue}:{job_id}")
    assert node_fields and py_fields
    assert _normalise(py_fields) == _normalise(node_fields)
    return py_fields


@pytest.mark.parametrize(("case", "node_opts", "py_opts"), CASES, ids=[c[0] for c in CASES])
async def test_job_hash_matches_node_byte_for_byte(
    node: NodeDriver,
    redis_url: str,
    raw: RespClient,
    queue_name: str,
    case: str,
    node_opts: dict[str, Any],
    py_opts: JobOptions,
) -> None:
    data = {"order": 17, "item": "café ☕", "tags": ["a", "b"], "price": 9.99}
    node_id = await node.add(queue_name, "make", data, node_opts, prefix=NODE_PREFIX)
    async with Queue(queue_name, connection=redis_url, prefix=PY_PREFIX) as producer:
        job = await producer.add("make", data, opts=py_opts)
    assert job.id == node_id
    stored = await _compare(raw, queue_name, job.id)
    assert "opts" in stored and "data" in stored
    # Both landed in the same structure (wait / delayed / prioritized).
    for kind in ("wait", "delayed", "prioritized"):
        node_kind = await raw.execute("EXISTS", f"{NODE_PREFIX}:{queue_name}:{kind}")
        assert await raw.execute("EXISTS", f"{PY_PREFIX}:{queue_name}:{kind}") == node_kind


@pytest.mark.parametrize("policy", PARENT_CASES)
async def test_child_hash_with_parent_policy_matches_node(
    node: NodeDriver, redis_url: str, raw: RespClient, queue_name: str, policy: str
) -> None:
    parents = f"{queue_name}-parents"
    snake = {
        "failParentOnFailure": "fail_parent_on_failure",
        "continueParentOnFailure": "continue_parent_on_failure",
        "ignoreDependencyOnFailure": "ignore_dependency_on_failure",
        "removeDependencyOnFailure": "remove_dependency_on_failure",
    }[policy]
    await node.add(parents, "parent", {}, {"jobId": "parent-1"}, prefix=NODE_PREFIX)
    node_id = await node.add(
        queue_name,
        "child",
        {"x": 1},
        {"attempts": 0, "parent": {"id": "parent-1", "queue": f"{NODE_PREFIX}:{parents}"}, policy: True},
        prefix=NODE_PREFIX,
    )
    async with Queue(parents, connection=redis_url, prefix=PY_PREFIX) as parent_producer:
        await parent_producer.add("parent", {}, job_id="parent-1")
    async with Queue(queue_name, connection=redis_url, prefix=PY_PREFIX) as producer:
        job = await producer.add("child", {"x": 1}, parent=Parent("parent-1", parents, PY_PREFIX), **{snake: True})
    assert job.id == node_id
    stored = await _compare(raw, queue_name, job.id)
    assert stored["parentKey"] == f"{PY_PREFIX}:{parents}:parent-1".encode()
    deps = f"{{}}:{parents}:parent-1:dependencies"
    assert await raw.execute("SMEMBERS", deps.format(PY_PREFIX)) == [f"{PY_PREFIX}:{queue_name}:1".encode()]
    assert await raw.execute("SMEMBERS", deps.format(NODE_PREFIX)) == [f"{NODE_PREFIX}:{queue_name}:1".encode()]


async def test_flow_hashes_match_node_flow_producer(
    node: NodeDriver, redis_url: str, raw: RespClient, queue_name: str
) -> None:
    a, b = f"{queue_name}-a", f"{queue_name}-b"
    node_flow = {
        "name": "root",
        "queueName": queue_name,
        "data": {"r": 1},
        "opts": {"jobId": "root-1", "priority": 3},
        "children": [
            {
                "name": "c1",
                "queueName": a,
                "data": {"n": 1},
                "opts": {"jobId": "c1", "attempts": 2, "failParentOnFailure": True},
            },
            {
                "name": "c2",
                "queueName": b,
                "data": {"n": 2},
                "opts": {"jobId": "c2"},
                "children": [{"name": "g", "queueName": a, "data": {}, "opts": {"jobId": "g1", "delay": 5000}}],
            },
        ],
    }
    await node.call("flow.add", flow=node_flow, prefix=NODE_PREFIX)
    async with FlowProducer(redis_url, prefix=PY_PREFIX) as fp:
        tree = await fp.add(
            FlowJob(
                "root",
                queue_name,
                {"r": 1},
                opts={"job_id": "root-1", "priority": 3},
                children=[
                    FlowJob("c1", a, {"n": 1}, opts={"job_id": "c1", "attempts": 2, "fail_parent_on_failure": True}),
                    FlowJob(
                        "c2",
                        b,
                        {"n": 2},
                        opts={"job_id": "c2"},
                        children=[FlowJob("g", a, {}, opts={"job_id": "g1", "delay": 5000})],
                    ),
                ],
            )
        )
    assert [(n.queue, n.id) for n in tree.walk()] == [(queue_name, "root-1"), (a, "c1"), (b, "c2"), (a, "g1")]
    for node_ in tree.walk():
        await _compare(raw, node_.queue, node_.id)
        deps = await raw.execute("SMEMBERS", f"{PY_PREFIX}:{node_.queue}:{node_.id}:dependencies")
        node_deps = await raw.execute("SMEMBERS", f"{NODE_PREFIX}:{node_.queue}:{node_.id}:dependencies")
        assert sorted(deps) == sorted(d.replace(NODE_PREFIX.encode(), PY_PREFIX.encode()) for d in node_deps)
    for queue in (queue_name, b):
        assert await raw.execute("ZRANGE", f"{PY_PREFIX}:{queue}:waiting-children", 0, -1) == await raw.execute(
            "ZRANGE", f"{NODE_PREFIX}:{queue}:waiting-children", 0, -1
        )

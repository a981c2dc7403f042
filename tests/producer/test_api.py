"""The Queue API around adding: reading jobs back, states, waiting with timeouts, codecs."""

from __future__ import annotations

import asyncio

import pytest

from bullbridge import Queue
from bullbridge.codec import JsonCodec
from bullbridge.connection.resp import RespClient
from bullbridge.errors import JobFailed, JobTimeout, ScriptError
from bullbridge.options import Parent
from bullbridge.testing.node import NodeDriver

from .conftest import node_worker, queue_keys


async def test_get_job_state_and_missing(producer: Queue, queue_name: str) -> None:
    job = await producer.add("x", {"a": 1}, priority=4, attempts=2)
    stored = await producer.get_job(job.id)
    assert stored is not None
    assert (stored.name, stored.data, stored.priority, stored.attempts, stored.timestamp) == (
        "x",
        {"a": 1},
        4,
        2,
        job.timestamp,
    )
    assert stored.opts == {"attempts": 2, "priority": 4}
    assert await producer.get_job_state(job.id) == "prioritized"
    assert await producer.get_job_state("nope") == "unknown"
    assert await producer.get_job("nope") is None
    no_data = await producer.add("empty")
    null = await producer.add("null", None)
    stored_no_data, stored_null = await producer.get_job(no_data.id), await producer.get_job(null.id)
    assert stored_no_data is not None and stored_null is not None
    assert stored_no_data.fields[b"data"] == b"{}"  # as Node stores undefined
    assert stored_null.fields[b"data"] == b"null"


async def test_result_timeout_and_failure(node: NodeDriver, producer: Queue, queue_name: str) -> None:
    job = await producer.add("x", {})
    # No worker yet: the job cannot finish, so the 0.2 s timeout must fire (load only delays it).
    with pytest.raises(JobTimeout, match=r"did not finish within 0\.2 s"):
        await producer.result(job.id, timeout=0.2)
    async with node_worker(node, queue_name, "async job => { if (job.data.boom) throw new Error('boom'); return 7 }"):
        assert await producer.result(job.id, timeout=10) == 7
        bad = await producer.add("x", {"boom": True})
        with pytest.raises(JobFailed, match="boom") as info:
            await producer.result(bad.id, timeout=10)
        assert info.value.reason == "boom"
    # Already finished: answered from the job's state, not from an event.
    outcome = await producer.wait_for(job.id, timeout=5)  # one read of the job's state; a failure detector
    assert (outcome.state, outcome.returnvalue) == ("completed", 7)


async def test_many_concurrent_waiters_share_one_reader(node: NodeDriver, producer: Queue, queue_name: str) -> None:
    jobs = await producer.add_bulk([("x", {"i": i}) for i in range(50)])
    async with node_worker(node, queue_name, "async job => job.data.i", concurrency=10):
        results = await asyncio.gather(*(producer.result(j.id, timeout=10) for j in jobs))
    assert results == list(range(50))


async def test_missing_parent_is_a_script_error_and_writes_nothing(
    raw: RespClient, producer: Queue, queue_name: str
) -> None:
    with pytest.raises(ScriptError, match="Missing key for parent job") as info:
        await producer.add("child", {}, parent=Parent("no-such-parent", f"{queue_name}-parents"))
    assert info.value.code == -5
    assert await queue_keys(raw, queue_name) == []


async def test_big_ints_as_strings_reach_node_as_strings(node: NodeDriver, redis_url: str, queue_name: str) -> None:
    async with Queue(queue_name, connection=redis_url, codec=JsonCodec(big_ints="string")) as producer:
        job = await producer.add("x", {"id": 2**63 - 1, "n": 5})
        node_job = await node.get_job(queue_name, job.id)
    assert node_job is not None and node_job["data"] == {"id": "9223372036854775807", "n": 5}


async def test_flow_add_bulk_and_queue_defaults(redis_url: str, queue_name: str) -> None:
    from bullbridge.flows import FlowJob, FlowProducer

    kids = f"{queue_name}-kids"
    async with (
        FlowProducer(redis_url, defaults={kids: {"attempts": 5}}) as flows,
        Queue(queue_name, connection=redis_url) as parents,
        Queue(kids, connection=redis_url) as children,
    ):
        trees = await flows.add_bulk(
            [
                FlowJob(
                    "p",
                    queue_name,
                    {"n": n},
                    children=[FlowJob("k", kids, {"n": n}), FlowJob("k", kids, opts={"attempts": 2})],
                )
                for n in range(2)
            ]
        )
        assert [await parents.get_job_state(t.id) for t in trees] == ["waiting-children"] * 2
        for tree in trees:
            deps = await parents.get_dependencies(tree.id)
            assert deps.unprocessed == sorted(c.key for c in tree.children)
            first, second = [await children.get_job(c.id) for c in tree.children]
            assert first is not None and second is not None
            assert (first.attempts, second.attempts) == (5, 2)  # queue default, then the node's own
            assert first.parent == {"id": tree.id, "queueKey": f"bull:{queue_name}"}
        assert await flows.add_bulk([]) == []

"""Node < 6's paused list, kept by the scripts bullbridge runs (bullbridge.protocol).

The Redis layout each test starts from is what Node writes - the pause of Node
5.81.5 renames ``wait`` to ``paused``, its ``Queue`` writes ``meta.version`` -
set up with the same commands Node's scripts run, so every case, including
the ones no Node version in the session produces, is checked on real Redis.
``test_node5.py`` runs the same cases against a real Node 5.81.5.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bullbridge import Queue, Worker
from bullbridge.compat import marker
from bullbridge.conformance import wait_until
from bullbridge.connection import connect
from bullbridge.connection.resp import RespClient
from bullbridge.flows import FlowJob, FlowProducer
from bullbridge.keys import QueueKeys
from bullbridge.protocol import TARGETS, adapted
from bullbridge.scripts import script
from bullbridge.testing.node import NodeDriver


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[RespClient]:
    connector = connect(redis_url)
    yield connector.fast("bullbridge:test-protocol")
    await connector.close()


async def _node5_pause(client: RespClient, keys: QueueKeys, version: str | None = "bullmq:5.81.5") -> None:
    """What Node 5.81.5's Queue and pause script write: meta.version, wait renamed to paused, meta.paused."""
    if version:
        await client.execute("HSET", keys["meta"], "version", version)
    if await client.execute("EXISTS", keys["wait"]):
        await client.execute("RENAME", keys["wait"], keys["paused"])
    await client.execute("HSET", keys["meta"], "paused", 1)
    await client.execute("DEL", keys["marker"])


async def _lists(client: RespClient, keys: QueueKeys) -> tuple[list[str], list[str]]:
    wait, paused = await client.execute_many([("LRANGE", keys["wait"], 0, -1), ("LRANGE", keys["paused"], 0, -1)])
    return [i.decode() for i in wait], [i.decode() for i in paused]


@pytest.mark.parametrize(
    ("version", "paused_list", "target"),
    [
        ("bullmq:5.81.5", False, "paused"),  # Node 5 paused an empty queue
        ("bullmq:4.18.3", False, "paused"),
        (None, False, "paused"),  # Node 4 / 5.0-5.19 write no version
        ("bullbridge:0.2.0", False, "paused"),  # only bullbridge introduced itself: the fleet is unknown
        ("bullmq-pro:7.9.0", False, "paused"),
        ("bullmq:6.7.0", True, "paused"),  # a Node 5 pause left its list; a Node 6 connected since
        ("bullmq:6.7.0", False, "wait"),  # Node 6's layout: a flag, jobs stay in wait
    ],
)
async def test_a_job_added_to_a_paused_queue_goes_where_the_fleet_looks(
    client: RespClient, redis_url: str, queue_name: str, version: str | None, paused_list: bool, target: str
) -> None:
    keys = QueueKeys(queue_name)
    async with Queue(queue_name, connection=redis_url) as producer:
        if paused_list:
            await client.execute("LPUSH", keys["paused"], "left-by-node5")
        if version:
            await client.execute("HSET", keys["meta"], "version", version)
        await client.execute("HSET", keys["meta"], "paused", 1)
        job = await producer.add("x", {})
        wait, paused = await _lists(client, keys)
        assert (job.id in wait, job.id in paused) == (target == "wait", target == "paused"), (wait, paused)
        assert await producer.get_job_state(job.id) == "waiting"
        assert (await producer.get_job_counts("waiting"))["waiting"] == 1 + paused_list
        await producer.resume()
        wait, paused = await _lists(client, keys)
        assert job.id in wait and paused == [], "resuming moves a legacy paused list back to wait"


async def test_a_running_queue_is_left_alone(client: RespClient, redis_url: str, queue_name: str) -> None:
    keys = QueueKeys(queue_name)
    await client.execute("HSET", keys["meta"], "version", "bullmq:5.81.5")
    async with Queue(queue_name, connection=redis_url) as producer:
        job = await producer.add("x", {})
    assert await _lists(client, keys) == ([job.id], [])


async def test_pausing_a_legacy_queue_moves_the_waiting_jobs_as_node5_does(
    client: RespClient, redis_url: str, queue_name: str
) -> None:
    keys = QueueKeys(queue_name)
    await client.execute("HSET", keys["meta"], "version", "bullmq:5.81.5")
    async with Queue(queue_name, connection=redis_url) as producer:
        first, second = [(await producer.add("x", {"i": i})).id for i in range(2)]
        await producer.pause()
        assert await _lists(client, keys) == ([], [second, first]), "Node 5 renames wait to paused"
        await producer.resume()
        assert await _lists(client, keys) == ([second, first], [])
        # Paused again while a (left-over) paused list holds older jobs: the waiting ones go in
        # front of them, so the older ones still run first.
        await client.execute("RPUSH", keys["paused"], "older")
        await producer.pause()
        assert await _lists(client, keys) == ([], [second, first, "older"])


async def test_a_node6_queue_pauses_with_the_flag_only(client: RespClient, redis_url: str, queue_name: str) -> None:
    keys = QueueKeys(queue_name)
    await client.execute("HSET", keys["meta"], "version", "bullmq:6.7.0")
    async with Queue(queue_name, connection=redis_url) as producer:
        job = await producer.add("x", {})
        await producer.pause()
        assert await _lists(client, keys) == ([job.id], [])
        assert await producer.is_paused()


async def test_promote_retry_and_stalled_jobs_go_to_the_paused_list(
    client: RespClient, redis_url: str, queue_name: str
) -> None:
    """Every script that can make a job ready targets the paused list on a queue Node 5 paused."""
    keys = QueueKeys(queue_name)
    async with Queue(queue_name, connection=redis_url) as producer:
        delayed = await producer.add("d", {}, delay=600_000)
        done = await producer.add("ok", {})
        worker = Worker(queue_name, {"ok": _ok}, connection=redis_url)
        await worker.start()
        assert await producer.result(done.id, timeout=10) == 1
        await worker.close()
        await _node5_pause(client, keys)
        await producer.promote_job(delayed.id)
        await producer.retry_job(done.id, "completed")
        wait, paused = await _lists(client, keys)
        assert wait == [] and set(paused) == {delayed.id, done.id}, (wait, paused)


async def _ok(job: object) -> int:
    return 1


async def test_a_parent_released_into_a_node5_paused_queue_is_kept(
    client: RespClient, redis_url: str, queue_name: str
) -> None:
    """moveToFinished releases a parent into its queue's wait list; on a queue Node 5 paused
    it lands in the paused list, where Node 5's resume looks."""
    parents, children = f"{queue_name}-parent", f"{queue_name}-child"
    pkeys = QueueKeys(parents)
    async with FlowProducer(redis_url) as flows:
        tree = await flows.add(FlowJob("parent", parents, {}, children=[FlowJob("child", children, {})]))
    await client.execute("RPUSH", pkeys["wait"], "older")  # a job waiting before Node 5 paused
    await _node5_pause(client, pkeys)
    worker = Worker(children, {"child": _ok}, connection=redis_url)
    await worker.start()
    try:
        async with Queue(children, connection=redis_url) as child_queue:
            assert await child_queue.result(tree.children[0].id, timeout=10) == 1
    finally:
        await worker.close()
    wait, paused = await _lists(client, pkeys)
    assert wait == [] and paused == ["older", tree.id], (wait, paused)


def test_every_script_that_targets_wait_is_adapted() -> None:
    """A script of the port with both 'wait' in its keys and a push into it must be in the table."""
    for name in ("addStandardJob", "retryJob", "moveStalledJobsToWait", "moveJobFromActiveToWait", "moveToActive"):
        assert adapted(name)
        assert script(name).source.startswith(b"--[[ bullbridge:")
    for name, target in TARGETS.items():
        header = script(name).source.decode().split("]]", 1)[0]
        assert header.startswith("--[[ bullbridge"), name
        assert target.wait != target.meta != target.paused
    assert not adapted("getCounts") and script("getCounts").source.startswith(b"--[[\n")


async def test_a_python_writer_introduces_itself_but_never_replaces_nodes_version(
    client: RespClient, redis_url: str, node: NodeDriver, queue_name: str
) -> None:
    keys = QueueKeys(queue_name)
    async with Queue(queue_name, connection=redis_url) as producer:
        await producer.add("x", {})
        assert await client.execute("HGET", keys["meta"], "version") == marker().encode()
        await node.queue_call(queue_name, "getJobCounts")  # Node's Queue writes its own on connect
        await wait_until(
            lambda: _version_is(client, keys, f"bullmq:{node.bullmq_version}"), 5, "Node writes meta.version"
        )
    async with Queue(queue_name, connection=redis_url) as again:
        await again.add("y", {})
    assert await client.execute("HGET", keys["meta"], "version") == f"bullmq:{node.bullmq_version}".encode()


async def _version_is(client: RespClient, keys: QueueKeys, version: str) -> bool:
    return await client.execute("HGET", keys["meta"], "version") == version.encode()


def test_another_ports_key_layout_is_refused_naming_the_fix() -> None:
    """Port 2.x's scripts order their keys differently: the prologue would rewrite the wrong
    key, so bullbridge refuses them (the matrix saw port 2.26.0 lose jobs when forced)."""
    from bullbridge.errors import PortVersionError
    from bullbridge.protocol import adapt

    moved = b"--[[\n  KEYS[1] 'active'\n  KEYS[2] 'paused'\n  KEYS[3] 'wait'\n  KEYS[5] 'meta'\n]]\nreturn 1\n"
    with pytest.raises(PortVersionError, match=r"retryJob script \(KEYS\[2\] is not 'wait'\).*bullmq>=3.4.4,<3.5"):
        adapt("retryJob", moved)
    assert adapt("getCounts", b"--[[ anything ]]") == b"--[[ anything ]]"


def test_the_marker_is_bullbridges_own_version() -> None:
    import bullbridge

    assert marker() == f"bullbridge:{bullbridge.__version__}"

"""Legacy repeatable jobs of Node 5.0 (the ``repeat`` option, legacy keys): bullbridge adds
the next iteration exactly as a Node 5 worker does.

Twin queues get the same repeatable job from a real Node bullmq 5.0.0 (every minute).
Node 5.0's ``Repeat.addNextRepeatableJob`` - what its worker calls on fetching an
iteration - adds the next iteration of one; bullbridge's ``schedule_next_iteration`` the
other's. The first iteration is due at the next whole minute, after now, so both compute
the same next run (``max(prevMillis, now)``): the two new jobs must be identical, but for
the moment they were written.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bullbridge import codec
from bullbridge.connection import connect
from bullbridge.connection.resp import RespClient
from bullbridge.job import Job, fields_to_dict
from bullbridge.keys import QueueKeys
from bullbridge.scheduler import schedule_next_iteration
from bullbridge.testing.node import NodeDriver
from bullbridge.testing.npm import install_bullmq

EVERY = 60_000


@pytest.fixture(scope="module")
async def node50(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[NodeDriver]:
    modules: Path = install_bullmq("5.0.0", tmp_path_factory.mktemp("node500"), timeout=120)
    driver = await NodeDriver(redis_url, node_modules=modules).start()
    assert driver.bullmq_version == "5.0.0"
    yield driver
    await driver.close()


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[RespClient]:
    connector = connect(redis_url)
    yield connector.fast("bullbridge:test-legacy-repeat")
    await connector.close()


async def _pending(client: RespClient, keys: QueueKeys) -> Job:
    [job_id] = [i.decode() for i in await client.execute("ZRANGE", keys["delayed"], -1, -1)]
    return Job(keys.name, job_id, fields_to_dict(await client.execute("HGETALL", keys.job(job_id))))


async def _snapshot(client: RespClient, keys: QueueKeys, job_id: str) -> dict[str, object]:
    fields = fields_to_dict(await client.execute("HGETALL", keys.job(job_id)))
    opts = codec.decode(fields.pop(b"opts"))
    assert isinstance(opts, dict)
    for moment in ("timestamp", "delay"):  # when it was written: the only difference allowed
        opts.pop(moment)
    fields.pop(b"timestamp")
    fields.pop(b"delay")
    score = await client.execute("ZSCORE", keys["delayed"], job_id)
    return {"fields": fields, "opts": opts, "due": int(float(score)) >> 12}


async def test_the_next_iteration_is_node5s(node50: NodeDriver, client: RespClient, queue_name: str) -> None:
    twins = [QueueKeys(f"{queue_name}-{side}") for side in ("node", "python")]
    for keys in twins:
        await node50.add(keys.name, "report", {"n": 1}, {"repeat": {"every": EVERY}})
    node_keys, py_keys = twins
    first = await _pending(client, node_keys)
    assert first.repeat_job_key == f"report:::::{EVERY}".replace(":::::", "::::"), first.repeat_job_key
    node_next = await node50.eval(
        "const q = queue(args.q); const job = await q.getJob(args.id); const r = await q.repeat;"
        " const next = await r.addNextRepeatableJob(job.name, job.data, job.opts); return next.id;",
        q=node_keys.name,
        id=first.id,
    )
    py_next = await schedule_next_iteration(client, py_keys, await _pending(client, py_keys))
    assert py_next == node_next, (py_next, node_next)
    assert await _snapshot(client, py_keys, py_next) == await _snapshot(client, node_keys, node_next)
    scores = [await client.execute("ZSCORE", k["repeat"], first.repeat_job_key) for k in twins]
    assert scores[0] == scores[1] == str(int(node_next.rsplit(":", 1)[1])).encode(), scores
    # Node's own getRepeatableJobs reads the Python-scheduled repeatable as it reads its own.
    listed = [await node50.queue_call(k.name, "getRepeatableJobs") for k in twins]
    assert listed[0] == listed[1] and listed[0][0]["next"] == int(node_next.rsplit(":", 1)[1]), listed


async def test_a_removed_repeatable_gets_no_next_iteration(
    node50: NodeDriver, client: RespClient, queue_name: str
) -> None:
    keys = QueueKeys(queue_name)
    await node50.add(queue_name, "report", {}, {"repeat": {"every": EVERY}})
    pending = await _pending(client, keys)
    await node50.queue_call(queue_name, "removeRepeatableByKey", pending.repeat_job_key)
    assert await schedule_next_iteration(client, keys, pending) is None

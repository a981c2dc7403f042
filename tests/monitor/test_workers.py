"""Workers per language from CLIENT LIST, checked against how Node 6.7, bullbridge
and the Python port really name their connections."""

from __future__ import annotations

import bullmq

from bullbridge import Queue
from bullbridge.monitor import Monitor
from bullbridge.monitor.workers import classify, count_by_language, parse_client_list
from bullbridge.testing.node import NodeDriver
from tests.monitor.helpers import eventually


def test_classify_client_names() -> None:
    raw = "\n".join(
        [
            "id=1 addr=a:1 age=5 idle=0 name=bull:cXE=:w:nodeA cmd=bzpopmin",
            "id=2 addr=a:2 age=5 idle=1 name=bull:cXE= cmd=bzpopmin",
            "id=3 addr=a:3 age=5 idle=0 name=bull:cXE=:w:bullbridge:py1 cmd=bzpopmin",
            "id=4 addr=a:4 age=5 idle=0 name=bull:cXE=:producer cmd=evalsha",
            "id=5 addr=a:5 age=5 idle=0 name=bull:cXE=:qe cmd=xread",
            "id=6 addr=a:6 age=5 idle=0 name=bull:qq:w:portw cmd=evalsha",
            "id=7 addr=a:7 age=5 idle=0 name=bull:qq:w:portw cmd=bzpopmin",
            "id=8 addr=a:8 age=5 idle=0 name= cmd=client|list",
            "id=9 addr=a:9 age=5 idle=0 name=other:cXE=:w:x cmd=bzpopmin",
        ]
    )
    workers = classify(parse_client_list(raw), ["qq"])["qq"]
    assert [(w.language, w.name) for w in workers] == [
        ("node", "nodeA"),
        ("node", None),
        ("python", "py1"),
        ("python-port", "portw"),
        ("python-port", "portw"),
    ]
    assert count_by_language(workers) == {"node": 2, "python": 1, "python-port": 1}


async def test_workers_of_every_kind_on_one_queue(
    node: NodeDriver, make_worker, monitor: Monitor, redis_url: str, queue_name: str
) -> None:
    q = queue_name
    named = await node.start_worker(q, name="nodeA")
    unnamed = await node.start_worker(q)
    py = make_worker({"x": _noop}, name="py1")
    await py.start()
    events = await node.subscribe(q)  # a QueueEvents connection: not a worker

    async def port_proc(job, token):  # the plain Python port
        return None

    port = bullmq.Worker(q, port_proc, {"connection": redis_url, "name": "portw"})
    try:
        async with Queue(q, connection=redis_url) as producer:
            await producer.add("x", {})  # opens the producer's named connection

            async def settled() -> dict[str, int] | None:
                found = (await monitor.workers([q]))[q]
                counts = {}
                for w in found:
                    counts[w.language] = counts.get(w.language, 0) + 1
                return counts if counts.get("python-port") == 2 else None

            connections = await eventually(settled)
        assert connections == {"node": 2, "python": 1, "python-port": 2}
        stats = await monitor.queue_stats(q)
        assert stats.workers == {"node": 2, "python": 1, "python-port": 1}
        names = sorted((w.language, w.name or "") for w in (await monitor.workers([q]))[q])
        assert ("node", "nodeA") in names and ("node", "") in names and ("python", "py1") in names
        # Node's own getWorkers sees Node and bullbridge workers (one connection each), not the port's.
        assert await node.queue_call(q, "getWorkersCount") == 3
    finally:
        await port.close()
        await node.close_worker(named)
        await node.close_worker(unnamed)
        await node.call("events.close", handle=events)


async def _noop(job):
    return None

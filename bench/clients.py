"""Which client should carry bullbridge's hot paths? The evaluation behind bullbridge.connection.resp.

20,000 ``addStandardJob`` EVALSHAs (the producer's hot call, arguments built by
bullbridge.scripts), 100 in flight, on a private Redis, with each candidate:
bullbridge's own RESP layer, redis-py with a connection pool, coredis and
valkey-glide. The last two are not bullbridge dependencies; run it in a
scratch venv::

    python3 -m venv /tmp/clients && /tmp/clients/bin/pip install coredis valkey-glide \\
        hiredis orjson msgpack uvloop redis bullmq==3.4.4
    PYTHONPATH=. /tmp/clients/bin/python bench/clients.py
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bullbridge import scripts
from bullbridge.keys import QueueKeys
from bullbridge.options import JobOptions
from bullbridge.testing.redis_server import PrivateRedis

N, INFLIGHT = 20_000, 100
Call = Callable[[str, list[Any], list[Any]], Awaitable[Any]]


async def drive(call: Call, queue: str) -> tuple[float, float]:
    """(adds per second, client CPU microseconds per add)."""
    sha = scripts.script("addStandardJob").sha
    _, keys, args = scripts.QueueScripts(QueueKeys(queue)).add_job(
        job_id="", name="x", timestamp=1, data_json=b"{}", encoded_opts=JobOptions().to_bullmq()
    )
    gate = asyncio.Semaphore(INFLIGHT)

    async def one() -> None:
        async with gate:
            await call(sha, keys, args)

    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(N)))
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return N / elapsed, cpu / N * 1e6


def as_text(args: list[Any]) -> list[Any]:
    return [a if isinstance(a, (bytes, str)) else str(a) for a in args]


async def main(url: str, port: int) -> None:
    from bullbridge.connection import connect

    source = scripts.script("addStandardJob").source
    results: dict[str, tuple[float, float]] = {}

    ours = connect(url).fast("bench")
    await ours.execute("SCRIPT", "LOAD", source)
    results["bullbridge.connection.resp"] = await drive(
        lambda sha, k, a: ours.execute("EVALSHA", sha, len(k), *k, *a), "q1"
    )
    await ours.close()

    import redis.asyncio as redis

    pool = redis.Redis(port=port, max_connections=INFLIGHT)
    results["redis-py (pool)"] = await drive(lambda sha, k, a: pool.evalsha(sha, len(k), *k, *a), "q2")
    await pool.aclose()

    import coredis

    cd = coredis.Redis(port=port, decode_responses=False)
    async with cd:
        results["coredis"] = await drive(lambda sha, k, a: cd.evalsha(sha, keys=k, args=a), "q3")

    from glide import GlideClient, GlideClientConfiguration, NodeAddress

    glide = await GlideClient.create(GlideClientConfiguration([NodeAddress("127.0.0.1", port)]))
    results["valkey-glide"] = await drive(
        lambda sha, k, a: glide.custom_command(["EVALSHA", sha, str(len(k)), *k, *as_text(a)]), "q4"
    )
    await glide.close()

    for name, (rate, cpu_us) in results.items():
        print(f"{name:16} {rate:>9,.0f} adds/s  {cpu_us:6.1f} us client CPU/add")


if __name__ == "__main__":
    import uvloop

    with PrivateRedis() as server:
        uvloop.run(main(server.url, server.port))

"""The stats library against known jobs: counts, percentiles, failure rate,
throughput (both sources), oldest waiting job, discovery, and bounded cost."""

from __future__ import annotations

from redis.asyncio import Redis

from bullbridge import Queue
from bullbridge.monitor import Monitor
from bullbridge.monitor.sample import nearest_rank
from bullbridge.monitor.throughput import MINUTE_MS, BullMetrics
from bullbridge.testing.node import NodeDriver
from bullbridge.testing.redis_server import PrivateRedis
from tests.monitor.helpers import Fake, eventually, inject, now_ms


def test_nearest_rank() -> None:
    values = list(range(1, 21))
    assert nearest_rank(values, 50) == 10
    assert nearest_rank(values, 95) == 19
    assert nearest_rank(values, 99) == 20
    assert nearest_rank([7], 99) == 7
    assert nearest_rank([], 50) is None


async def test_counts_match_node_in_every_state(node: NodeDriver, monitor: Monitor, queue_name: str) -> None:
    q = queue_name
    for i in range(3):
        await node.add(q, "w", {"i": i})
    await node.add(q, "d", {}, {"delay": 60_000})
    await node.add(q, "p", {}, {"priority": 5})
    await node.add(q, "p", {}, {"priority": 7})
    await node.call(
        "flow.add", flow={"name": "parent", "queueName": q, "children": [{"name": "child", "queueName": q, "data": {}}]}
    )
    counts = await monitor.counts(q)
    node_counts = await node.queue_call(q, "getJobCounts")
    assert counts == {
        "waiting": 4,
        "active": 0,
        "delayed": 1,
        "prioritized": 2,
        "waiting-children": 1,
        "completed": 0,
        "failed": 0,
    }
    assert counts == node_counts, "the monitor counts Node 6's getJobCounts() states, no 'paused'"


async def test_percentiles_failure_rate_and_languages(r: Redis, monitor: Monitor, queue_name: str) -> None:
    base = now_ms() - 3_600_000
    jobs: list[Fake] = []
    # 100 completed: wait 10*i ms, processing i ms, finished in order of i.
    for i in range(1, 101):
        created = base + i * 10_000
        jobs.append(
            Fake(
                str(i),
                "completed",
                created,
                created + 10 * i,
                created + 11 * i,
                pb="bullbridge:py1" if i % 2 else "nodeA",
            )
        )
    # 25 failed, processing 1000+i ms, the newest of all; unnamed Node workers (no pb).
    for i in range(1, 26):
        created = base + 2_000_000 + i * 10_000
        jobs.append(Fake(f"f{i}", "failed", created, created + 5, created + 5 + 1000 + i, atm=2))
    await inject(r, queue_name, jobs)

    stats = await monitor.queue_stats(queue_name)
    assert stats.sample.size == 125
    assert stats.failure_rate == 25 / 125
    # Processing: 1..100 and 1001..1025; nearest rank of 125 values.
    assert (stats.processing.p50, stats.processing.p95, stats.processing.p99) == (63, 1019, 1024)
    assert stats.processing.max == 1025
    # Wait is queue latency of first attempts: 10..1000 (step 10); the failed jobs took
    # two attempts (their processedOn is after a backoff), so they have no wait.
    assert stats.wait.p50 == 500
    assert stats.wait.p95 == 950
    langs = stats.languages
    assert langs["python"].jobs == 50 and langs["node"].jobs == 75
    assert langs["python"].failed == 0 and langs["node"].failed == 25
    assert langs["node"].retried == 25 and langs["python"].retried == 0
    # Odd i ran on Python: processing 1, 3, ..., 99 -> p50 is the 25th of 50 = 49.
    assert langs["python"].processing.p50 == 49

    # A smaller sample takes the newest finished jobs: the 25 failed and the 5 last completed.
    small = await monitor.sample(queue_name, 30)
    assert len(small) == 30 and small.truncated
    assert {j.id for j in small.jobs} == {f"f{i}" for i in range(1, 26)} | {str(i) for i in range(96, 101)}
    assert small.failure_rate == 25 / 30


async def test_throughput_from_finish_times(r: Redis, monitor: Monitor, queue_name: str) -> None:
    now = (now_ms() // MINUTE_MS) * MINUTE_MS + 30_000  # half way through the current minute
    minute = now // MINUTE_MS * MINUTE_MS
    jobs = []
    # minute 0 (current): 3 completed; minute -1: 6 completed + 2 failed; minute -4: 9 completed; minute -7: 50.
    for offset, n, state in (
        (0, 3, "completed"),
        (1, 6, "completed"),
        (1, 2, "failed"),
        (4, 9, "completed"),
        (7, 50, "completed"),
    ):
        for k in range(n):
            finished = minute - offset * MINUTE_MS + 1000 * k
            jobs.append(Fake(f"{state}-{offset}-{k}", state, finished - 10, finished - 5, finished))
    await inject(r, queue_name, jobs)
    t = await monitor.throughput(queue_name, series_minutes=10, now=now)
    assert t.source == "timestamps"
    assert t.completed == [3, 6, 0, 0, 9, 0, 0, 50, 0, 0]
    assert t.failed == [0, 2, 0, 0, 0, 0, 0, 0, 0, 0]
    # 5-minute window: (3 + 6 + 9) jobs over 4.5 minutes.
    assert t.completed_per_minute == round(18 / 4.5, 3)
    assert t.failed_per_minute == round(2 / 4.5, 3)
    assert t.metrics_completed_total is None


def test_metrics_keys_minute_alignment() -> None:
    # BullMQ's collectMetrics: data holds closed minutes before prevTS's minute, newest first;
    # count - prevCount jobs finished since prevTS's minute began.
    now = 1_000 * MINUTE_MS + 10_000
    m = BullMetrics("completed", count=30, prev_ts=998 * MINUTE_MS + 5, prev_count=26, data=[7, 0, 2])
    assert m.series(now, 6) == [0, 0, 4, 7, 0, 2]


async def test_throughput_from_bullmq_metrics_of_both_languages(
    node: NodeDriver, make_worker, monitor: Monitor, queue_name: str
) -> None:
    async def handle(job):
        return job.data["i"]

    worker = make_worker({"py": handle}, name="py-metrics", metrics_max_data_points=60)
    await worker.start()
    handle_id = await node.start_worker(
        queue_name, "async job => job.data.i", name="node-metrics", metrics={"maxDataPoints": 60}
    )
    for i in range(12):
        await node.add(queue_name, "py", {"i": i})
    try:
        await eventually(lambda: _completed(monitor, queue_name, 12))
    finally:
        await node.close_worker(handle_id)
    node_metrics = await node.queue_call(queue_name, "getMetrics", "completed")
    ours = await monitor.metrics(queue_name, "completed")
    assert ours.count == node_metrics["meta"]["count"] == 12
    assert ours.data == node_metrics["data"] and ours.points == node_metrics["count"]
    t = await monitor.throughput(queue_name)
    assert t.source == "metrics"
    assert t.metrics_completed_total == 12
    assert sum(t.completed[: t.window_minutes]) == 12


async def _completed(monitor: Monitor, queue: str, n: int) -> bool:
    return (await monitor.counts(queue))["completed"] >= n


async def test_finish_times_win_over_partial_metrics(r: Redis, monitor: Monitor, queue_name: str) -> None:
    now = now_ms()
    # Metrics recorded by some worker long ago (1 job); 20 jobs finished just now by workers that do not record.
    await r.hset(
        f"bull:{queue_name}:metrics:completed", mapping={"count": 1, "prevTS": now - 86_400_000, "prevCount": 0}
    )
    await inject(r, queue_name, [Fake(str(i), "completed", now - 100, now - 50, now - 10) for i in range(20)])
    t = await monitor.throughput(queue_name)
    assert t.source == "timestamps"
    assert sum(t.completed) == 20
    assert t.metrics_completed_total == 1


async def test_oldest_waiting_age_counts_from_ready_time(r: Redis, monitor: Monitor, queue_name: str) -> None:
    now = now_ms()
    await inject(
        r,
        queue_name,
        [
            Fake("old", "waiting", now - 120_000),
            Fake("promoted", "waiting", now - 600_000, delay=590_000),  # ready 10 s ago
            Fake("new", "waiting", now - 1_000),
        ],
    )
    age = await monitor.oldest_waiting_age(queue_name, now)
    assert age == 120_000
    assert await monitor.oldest_waiting_age(queue_name + "-empty", now) is None


async def test_discovery_finds_queues_of_both_languages(
    node: NodeDriver, redis_url: str, r: Redis, queue_name: str
) -> None:
    prefix = f"disc{queue_name[-8:]}"
    await node.call("queue.add", queue=f"{queue_name}-node", name="x", data={}, prefix=prefix)
    async with Queue(f"{queue_name}-py", connection=redis_url, prefix=prefix) as p:
        await p.add("x", {})
    # Not queues: a deeper key ending in :meta, another prefix, a job id starting with "me".
    await r.hset(f"{prefix}:a:b:meta", "x", 1)
    await r.set(f"other{prefix}:q:meta", 1)
    await r.hset(f"{prefix}:{queue_name}-py:message-1", "x", 1)
    async with Monitor(redis_url, prefix=prefix) as m:
        assert await m.queues() == sorted([f"{queue_name}-node", f"{queue_name}-py"])


async def test_cost_is_bounded_by_the_sample(private_redis: PrivateRedis) -> None:
    """5,000 finished jobs, a sample of 200: the monitor reads 200 hashes, never the whole set."""
    r = Redis.from_url(private_redis.url, decode_responses=True)
    try:
        now = now_ms()
        await inject(
            r,
            "big",
            [
                Fake(
                    str(i),
                    "completed" if i % 10 else "failed",
                    now - 900_000 + i,
                    now - 800_000 + i,
                    now - 700_000 + i * 100,
                )
                for i in range(5000)
            ],
        )
        await r.config_resetstat()
        async with Monitor(private_redis.url, sample_size=200) as m:
            stats = await m.stats(["big"])
        assert stats[0].sample.size == 200 and stats[0].sample.truncated
        assert stats[0].counts["completed"] + stats[0].counts["failed"] == 5000
        commands = await r.info("commandstats")
        hmget = commands.get("cmdstat_hmget", {}).get("calls", 0)
        assert 200 <= hmget <= 200 + 30  # the sample, plus the oldest-waiting probe
        for full_read in ("cmdstat_keys", "cmdstat_hgetall", "cmdstat_smembers", "cmdstat_zrangebyscore"):
            assert full_read not in commands
        assert commands["cmdstat_zrevrange"]["calls"] == 2  # completed and failed, 200 each
        assert commands.get("cmdstat_zrange", {}).get("calls", 0) <= 1  # the 10 next prioritized jobs
    finally:
        await r.aclose()


async def test_core_never_imports_the_web_parts() -> None:
    import asyncio
    import sys

    code = (
        "import sys, bullbridge, bullbridge.monitor, bullbridge.cli.monitor; "
        "print(sorted(m for m in ('aiohttp', 'prometheus_client', 'bullbridge.dashboard', "
        "'bullbridge.monitor.prometheus') if m in sys.modules))"
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert proc.returncode == 0 and out.decode().strip() == "[]"


async def test_a_broken_queue_does_not_hide_the_others(r: Redis, monitor: Monitor, queue_name: str) -> None:
    await r.set(f"bull:{queue_name}-broken:completed", "not a sorted set")
    now = now_ms()
    await inject(r, queue_name, [Fake("a", "completed", now - 30, now - 20, now - 10)])
    stats = await monitor.stats([queue_name + "-broken", queue_name])
    assert [s.queue for s in stats] == [queue_name]

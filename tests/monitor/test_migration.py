"""The migration report attributes each job to the language that ran its last attempt."""

from __future__ import annotations

import asyncio
import json

from redis.asyncio import Redis

from bullbridge.monitor import Monitor
from bullbridge.testing.node import NodeDriver
from tests.monitor.helpers import Fake, eventually, inject, now_ms, run_cli

NODE_PROCESSOR = """async (job) => {
  const key = 'mig-' + handle;
  shared[key] = shared[key] || [];
  shared[key].push([job.id, job.attemptsMade]);
  await sleep(3);
  if (job.data.kind === 'bad') throw new Error('bad on node');
  if (job.data.kind === 'flaky' && job.attemptsMade === 0) throw new Error('flaky on node');
  return 'node';
}"""


async def test_report_attributes_jobs_to_the_right_language(
    node: NodeDriver, make_worker, monitor: Monitor, redis_url: str, queue_name: str
) -> None:
    q = queue_name
    py_attempts: list[tuple[str, int]] = []

    async def work(job):
        py_attempts.append((job.id, job.attempts_made))
        await asyncio.sleep(0.003)
        if job.data["kind"] == "bad":
            raise RuntimeError("bad on python")
        if job.data["kind"] == "flaky" and job.attempts_made == 0:
            raise RuntimeError("flaky on python")
        return "python"

    await make_worker({"m": work}, name="py-mig").start()
    handle = await node.start_worker(q, NODE_PROCESSOR, name="node-mig")
    kinds = ["ok"] * 30 + ["bad"] * 6 + ["flaky"] * 4
    await node.call(
        "queue.addBulk",
        queue=q,
        jobs=[{"name": "m", "data": {"kind": k}, "opts": {"attempts": 2 if k == "flaky" else 1}} for k in kinds],
    )
    try:
        await eventually(lambda: _finished(monitor, q, len(kinds)), timeout=20)
    finally:
        await node.close_worker(handle)
    node_attempts = [(str(i), int(a)) for i, a in await node.call("shared.get", key=f"mig-{handle}")]

    # Ground truth from the processors themselves: the last attempt of each job.
    last: dict[str, tuple[int, str]] = {}
    for lang, attempts in (("python", py_attempts), ("node", node_attempts)):
        for job_id, attempt in attempts:
            if job_id not in last or attempt > last[job_id][0]:
                last[job_id] = (attempt, lang)
    assert len(last) == len(kinds)
    expected = {lang: sum(1 for _, who in last.values() if who == lang) for lang in ("python", "node")}
    assert expected["python"] > 0 and expected["node"] > 0, expected  # both languages took jobs

    kind_of = {}
    for job_id in last:
        detail = await monitor.job(q, job_id)
        assert detail is not None
        kind_of[job_id] = detail.data["kind"]

    report = await monitor.migration_report(q)
    assert report.jobs == len(kinds) and not report.truncated
    for lang in ("python", "node"):
        stats = report.languages[lang]
        mine = [i for i, (_, who) in last.items() if who == lang]
        assert stats.jobs == expected[lang]
        assert stats.failed == sum(1 for i in mine if kind_of[i] == "bad")
        assert stats.retried == sum(1 for i in mine if kind_of[i] == "flaky")
        assert stats.workers == {"py-mig" if lang == "python" else "node-mig": len(mine)}
        assert stats.processing.count == len(mine) and stats.processing.p50 is not None
    assert report.live_workers == {"python": 1}
    assert abs(report.languages["python"].share + report.languages["node"].share - 1) < 1e-3
    comparison = report.comparison()
    assert comparison is not None and comparison.processing_p50_ratio is not None

    status, out, err = await run_cli("migrate", "report", q, "--redis", redis_url, "--json")
    assert status == 0, err
    from_cli = json.loads(out)
    assert {k: v["jobs"] for k, v in from_cli["languages"].items()} == expected
    assert set(from_cli["comparison"]) == {
        "processingP50Ratio",
        "processingP95Ratio",
        "failureRateDelta",
        "retryRateDelta",
    }
    assert from_cli["sampleLimit"] == 10_000 and from_cli["jobs"] == len(kinds)
    status, text, _ = await run_cli("migrate", "report", q, "--redis", redis_url, "--since", "1h")
    assert status == 0 and "python vs node" in text and "processing p95" in text


async def _finished(monitor: Monitor, queue: str, n: int) -> bool:
    counts = await monitor.counts(queue)
    return counts["completed"] + counts["failed"] == n


async def test_since_bounds_the_period(r: Redis, monitor: Monitor, queue_name: str) -> None:
    now = now_ms()
    await inject(
        r,
        queue_name,
        [
            *(
                Fake(f"old{i}", "completed", now - 7_200_000, now - 7_200_000, now - 7_100_000, pb="nodeX")
                for i in range(5)
            ),
            *(
                Fake(f"new{i}", "completed", now - 60_000, now - 50_000, now - 40_000 + i, pb="bullbridge:y")
                for i in range(3)
            ),
        ],
    )
    report = await monitor.migration_report(queue_name, since_ms=now - 3_600_000)
    assert report.jobs == 3 and set(report.languages) == {"python"}
    assert report.languages["python"].share == 1.0
    everything = await monitor.migration_report(queue_name)
    assert {k: v.jobs for k, v in everything.languages.items()} == {"python": 3, "node": 5}
    capped = await monitor.migration_report(queue_name, sample_size=4)
    assert capped.jobs == 4 and capped.truncated

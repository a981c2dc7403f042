"""Job metrics through OpenTelemetry with Node's names, and no cost when telemetry is off."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import timedelta
from typing import Any

import redis.asyncio as redis
from opentelemetry.sdk.metrics.export import HistogramDataPoint, NumberDataPoint

from bullbridge import Queue, Worker
from bullbridge.keys import QueueKeys
from tests.telemetry.conftest import Harness, PyOtel, until


def py_metrics(py_otel: PyOtel) -> list[dict[str, Any]]:
    """The Python reader's metrics in the shape otel_harness.js gives Node's."""
    data = py_otel.metrics.get_metrics_data()
    out: list[dict[str, Any]] = []
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points = []
                for point in metric.data.data_points:
                    if isinstance(point, HistogramDataPoint):
                        value: Any = {"count": point.count, "sum": point.sum}
                    else:
                        assert isinstance(point, NumberDataPoint)
                        value = point.value
                    points.append({"attributes": dict(point.attributes or {}), "value": value})
                out.append(
                    {"name": metric.name, "unit": metric.unit, "description": metric.description, "points": points}
                )
    return out


def for_queue(metrics: list[dict[str, Any]], queue: str) -> dict[str, Any]:
    """{metric name: (unit, description, {(job name, state): value or histogram count})} of one queue."""
    view: dict[str, Any] = {}
    for metric in metrics:
        points = {}
        for point in metric["points"]:
            attrs = dict(point["attributes"])
            if attrs.pop("bullmq.queue.name") != queue:
                continue
            key = tuple(sorted(attrs.items()))
            value = point["value"]
            points[key] = value["count"] if isinstance(value, dict) else value
        if points:
            view[metric["name"]] = (metric["unit"], metric["description"], points)
    return view


async def test_job_metrics_match_node(harness: Harness, py_otel: PyOtel, redis_url: str, queue_name: str) -> None:
    jobs: dict[str, dict[str, Any]] = {
        "ok": {},
        "bad": {"attempts": 1},
        "again": {"attempts": 2},
        "later": {"attempts": 2, "backoff": {"type": "fixed", "delay": 20}},
    }
    views = {}
    for lang in ("node", "python"):
        queue = f"{queue_name}-{lang}"
        ids = [(await harness("add", queue=queue, name=name, opts=opts))["id"] for name, opts in jobs.items()]
        async with Queue(queue, connection=redis_url) as producer:
            if lang == "node":
                await harness("startWorker", queue=queue, fail="boom")
            else:

                async def run(job: Any) -> str:
                    if job.name != "ok":
                        raise RuntimeError("boom")
                    return "done"

                worker = Worker(queue, run, connection=redis_url, telemetry=py_otel.telemetry)
                await worker.start()
            for job_id in ids:
                await producer.wait_for(job_id, timeout=10)
            if lang == "python":
                await worker.close()

        async def settled(lang: str = lang, queue: str = queue) -> dict[str, Any] | None:
            # (the queue's event can reach us before the worker's own metric call)
            view = for_queue(await harness("metrics") if lang == "node" else py_metrics(py_otel), queue)
            done = len(view.get("bullmq.jobs.failed", (0, 0, {}))[2]) == 3
            return view if done and "bullmq.jobs.completed" in view else None

        views[lang] = await until(settled, what=f"{lang}'s metrics")
    assert views["python"] == views["node"]
    state = "bullmq.job.state"
    assert views["python"]["bullmq.jobs.completed"] == (
        "1",
        "Number of jobs completed",
        {(("bullmq.job.name", "ok"), (state, "completed")): 1},
    )
    assert views["python"]["bullmq.jobs.failed"][2] == {
        (("bullmq.job.name", n), (state, "failed")): 1 for n in ("bad", "again", "later")
    }
    assert set(views["python"]) == {
        "bullmq.jobs.completed",
        "bullmq.jobs.failed",
        "bullmq.jobs.retried",
        "bullmq.jobs.delayed",
        "bullmq.job.duration",
    }
    assert views["python"]["bullmq.job.duration"][:2] == ("ms", "Job processing duration")


async def test_job_counts_gauge_matches_node(harness: Harness, py_otel: PyOtel, queue_name: str) -> None:
    await harness("add", queue=queue_name, name="x")
    counts = await harness("recordCounts", queue=queue_name, states=["waiting", "active", "failed"])
    py_otel.telemetry.record_job_counts(queue_name, counts)
    node = for_queue(await harness("metrics"), queue_name)["bullmq.queue.jobs"]
    assert for_queue(py_metrics(py_otel), queue_name)["bullmq.queue.jobs"] == node
    assert node[2][(("bullmq.queue.jobs.state", "waiting"),)] == 1


def test_metrics_are_off_without_a_meter_provider() -> None:
    from bullbridge.telemetry import OtelTelemetry

    assert OtelTelemetry().meter is None
    assert OtelTelemetry(enable_metrics=True).meter is not None  # the global (no-op unless set) provider


def test_nothing_of_opentelemetry_is_imported_or_run_without_telemetry(redis_url: str, queue_name: str) -> None:
    """A producer, a flow and a worker without telemetry: opentelemetry is never imported,
    no tm is stored, and the worker has no listener of ours."""
    script = textwrap.dedent(f"""
        import asyncio, sys
        from bullbridge import FlowJob, FlowProducer, Queue, Worker

        async def main():
            async with Queue({queue_name!r}, connection={redis_url!r}) as producer:
                job = await producer.add("x", {{"n": 1}})
                await producer.add_bulk([("y", {{}})])
                async with FlowProducer({redis_url!r}) as flows:
                    await flows.add(FlowJob("p", {queue_name!r}, children=[FlowJob("c", {queue_name!r})]))
                async def handle(job):
                    return job.data
                worker = Worker({queue_name!r}, handle, connection={redis_url!r})
                assert worker._telemetry is None and not worker.has_listeners("completed")
                await worker.start()
                assert await producer.result(job.id, timeout=10) == {{"n": 1}}
                await worker.close()
                stored = await producer.get_job(job.id)
                assert stored is not None and b"tm" not in stored.fields[b"opts"]
            loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
            assert not loaded, loaded

        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_clear_error_when_opentelemetry_is_not_installed() -> None:
    script = textwrap.dedent("""
        import sys
        sys.modules["opentelemetry"] = None  # as if opentelemetry-api were not installed
        from bullbridge.errors import ConfigurationError
        from bullbridge.telemetry import OtelTelemetry
        try:
            OtelTelemetry()
        except ConfigurationError as exc:
            assert "pip install 'bullbridge[otel]'" in str(exc), exc
        else:
            raise AssertionError("no error")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


async def test_moves_a_handler_makes_are_counted_as_node_counts_them(
    py_otel: PyOtel, redis_url: str, queue_name: str
) -> None:
    """delay_until (Node: moveToDelayed + DelayedError) counts bullmq.jobs.delayed; the
    attempt's span ends without an outcome event, as Node's does."""
    runs: list[int] = []

    async def handle(job: Any) -> str:
        runs.append(1)
        if len(runs) == 1:
            await job.delay_until(timedelta(milliseconds=30))
        return "done"

    async with Queue(queue_name, connection=redis_url, telemetry=py_otel.telemetry) as producer:
        job = await producer.add("later")
        worker = Worker(queue_name, handle, connection=redis_url, telemetry=py_otel.telemetry)
        await worker.start()
        try:
            assert await producer.result(job.id, timeout=10) == "done"
        finally:
            await worker.close()
    spans = [s for s in py_otel.spans() if s["name"] == f"process {queue_name}"]
    assert len(spans) == 2 and len({s["parentSpanId"] for s in spans}) == 1
    first, second = sorted(spans, key=lambda s: len(s["events"]))
    assert first["events"] == [] and "bullmq.job.attempts.made" not in first["attributes"]
    assert [e["name"] for e in second["events"]] == ["job completed"]
    view = for_queue(py_metrics(py_otel), queue_name)
    assert view["bullmq.jobs.delayed"][2] == {(("bullmq.job.name", "later"), ("bullmq.job.state", "delayed")): 1}
    assert view["bullmq.jobs.completed"][2] == {(("bullmq.job.name", "later"), ("bullmq.job.state", "completed")): 1}


async def test_an_outcome_redis_did_not_record_counts_no_metric_and_marks_the_span(
    py_otel: PyOtel, redis_url: str, queue_name: str
) -> None:
    """A lost lock and a finish Redis refused: no bullmq.jobs.* metric, no "job
    completed" event; the consumer span records the error (Node records the
    exception its finishing call threw). A job that did complete is counted once."""
    from tests.worker.faults import Held, Outcomes

    held = {name: Held() for name in ("lost", "refused", "ok")}
    held["ok"].release.set()
    worker = Worker(queue_name, held, connection=redis_url, telemetry=py_otel.telemetry)
    seen = Outcomes(worker)
    await worker.start()
    keys = QueueKeys(queue_name)
    admin = redis.from_url(redis_url)
    try:
        async with Queue(queue_name, connection=redis_url) as producer:
            lost = await producer.add("lost")
            await held["lost"].wait_started()
            await admin.delete(keys.lock(lost.id))
            held["lost"].release.set()
            refused = await producer.add("refused")
            await held["refused"].wait_started()
            await admin.set(keys.job(refused.id) + ":dependencies", "not a set")  # the finish: WRONGTYPE
            held["refused"].release.set()
            ok = await producer.add("ok")
            assert await producer.result(ok.id, timeout=10) == "done"
        await seen.wait(3)
    finally:
        await admin.aclose()
        await worker.close()
    assert sorted(seen.seen) == sorted([("lockLost", lost.id), ("finishFailed", refused.id), ("completed", ok.id)])
    spans = {s["attributes"]["bullmq.job.id"]: s for s in py_otel.spans() if s["name"] == f"process {queue_name}"}
    assert [e["name"] for e in spans[ok.id]["events"]] == ["job completed"]
    for job_id, error in ((lost.id, "LockLost"), (refused.id, "FinishNotRecorded")):
        events = spans[job_id]["events"]
        assert [e["name"] for e in events] == ["exception"], events
        assert events[0]["attributes"]["exception.type"].endswith(f".{error}")
    view = for_queue(py_metrics(py_otel), queue_name)
    assert set(view) == {"bullmq.jobs.completed", "bullmq.job.duration"}
    assert view["bullmq.jobs.completed"][2] == {(("bullmq.job.name", "ok"), ("bullmq.job.state", "completed")): 1}

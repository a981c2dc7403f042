"""The reference app (examples/layer15 + interop/layer15) end to end, at reduced scale.

The run ``make demo`` does (:func:`examples.layer15.demo.run_layer`), shortened to 15 s
of Node producer at ~1,400 jobs/min, on the suite's Redis under a prefix of its
own. The Python workers start through ``bullbridge worker
examples.layer15.app:make`` here (``make demo`` uses ``python -m
examples.layer15``), so both documented entry points run.
"""

from __future__ import annotations

import io
import shutil
import sys
import uuid

import pytest

from bullbridge import Queue
from bullbridge.monitor import NODE, PYTHON
from examples.layer15.demo import LayerParams, LayerResult, delete_prefix, render_result, run_layer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


async def test_layer_meets_the_seed_targets_at_reduced_scale(redis_url: str) -> None:
    prefix = f"layer15-{uuid.uuid4().hex[:8]}"
    params = LayerParams(
        seconds=15,
        scale=0.7,
        newsletter=40,
        spread=5,
        prefix=prefix,
        finish_timeout=30,
        refresh=0.5,
        python_command=(sys.executable, "-m", "bullbridge", "worker", "examples.layer15.app:make"),
    )
    out = io.StringIO()
    try:
        result = await run_layer(redis_url, params, out)
        await check(result, redis_url, out.getvalue())
    finally:
        await delete_prefix(redis_url, prefix)
    assert result.log_dir is not None
    shutil.rmtree(result.log_dir, ignore_errors=True)  # kept when the test fails


async def check(result: LayerResult, redis_url: str, output: str) -> None:
    params, prefix = result.params, result.params.prefix
    report = f"{output}\n{render_result(result)}\nlogs: {result.log_dir}"

    # Every job finished, and both sides stopped cleanly on SIGTERM.
    assert result.complete, report
    assert {label for label in result.shutdown} == {"python", "node"}, report

    # Neither side logged an error (the Python workers log warnings and up here).
    assert result.log_dir is not None
    python_log = (result.log_dir / "python.log").read_text()
    assert " ERROR " not in python_log and "Traceback" not in python_log, python_log
    assert "worker error" not in (result.log_dir / "node.log").read_text(), report

    # The targets, at reduced scale.
    missed = [t for t in result.targets() if not t.met]
    assert not missed, report

    # Every job the Node producer added finished, beside the ones Python added.
    for queue, added in result.added.items():
        assert added > 0 and len(result.samples[queue]) >= added, (queue, report)
    email = result.samples["email"]
    assert sum(1 for j in email.jobs if j.name == "send") >= result.added["email"] - 1 + params.newsletter, report

    # data-sync: each sync fanned out 5 batches and summed them.
    syncs = [j for j in result.samples["data-sync"].jobs if j.name == "sync"]
    batches = [j for j in result.samples["data-sync"].jobs if j.name == "sync-batch"]
    assert syncs and len(batches) == 5 * len(syncs), report
    async with Queue("data-sync", connection=redis_url, prefix=prefix) as producer:
        for sync in syncs:
            job = await producer.get_job(sync.id)
            assert job is not None, sync.id
            assert job.returnvalue == {"source": job.data["source"], "batches": 5, "records": 500}

    # The migrating queue was served by both languages; the others by theirs.
    languages = result.migration.languages
    assert languages[PYTHON].jobs > 0 and languages[NODE].jobs > 0, report
    assert set(result.samples["notifications"].by_language()) == {NODE}, report
    for queue in ("image-processing", "data-sync", "analytics"):
        assert set(result.samples[queue].by_language()) == {PYTHON}, report

    # The schedules were synced at startup, in New York time; three ran once (promoted), and the
    # Python workers scheduled their next runs as Node would.
    assert sorted(s.id for _, s in result.schedulers) == [
        "cleanup",
        "daily-analytics",
        "hourly-backup",
        "weekly-newsletter",
    ], report
    assert {s.tz for _, s in result.schedulers} == {"America/New_York"}, report
    runs = {
        j.name or "": (queue, j)
        for queue in ("analytics", "data-sync")
        for j in result.samples[queue].jobs
        if j.id.startswith("repeat:")
    }
    assert sorted(runs) == ["cleanup", "daily-report", "incremental-backup"], report
    for name, (queue, run) in runs.items():
        async with Queue(queue, connection=redis_url, prefix=prefix) as producer:
            job = await producer.get_job(run.id)
        assert job is not None, (name, report)
        assert job.finished_on is not None and job.failed_reason is None, (name, report)
        if name == "cleanup":
            assert set(job.returnvalue) == {"email", "image-processing", "data-sync", "analytics", "notifications"}
    for _, s in result.schedulers:
        assert s.next_run_ms is not None and s.next_run_ms > result.started_ms, report

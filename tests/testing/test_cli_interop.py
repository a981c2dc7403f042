"""``bullbridge interop check``: the conformance scenarios against a user's Redis
and Node BullMQ, with a table, JSON, known differences, and nothing left behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bullbridge.conformance import SCENARIOS, CheckReport, ScenarioResult
from bullbridge.connection import connect
from tests.testing.conftest import OWN_NODE_MODULES


def _check(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bullbridge", "interop", "check", "--redis", redis_url, *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


async def _keys(redis_url: str, pattern: str) -> list[bytes]:
    connector = connect(redis_url)
    try:
        return list(await connector.fast("test").execute("KEYS", pattern))
    finally:
        await connector.close()


async def test_json_report_and_every_key_removed(redis_url: str) -> None:
    done = _check(
        redis_url,
        "--node-modules",
        str(OWN_NODE_MODULES),
        "--only",
        "plain_job",
        "--only",
        "stored_options",
        "--only",
        "flow[P->N]",
        "--json",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["nodeBullmq"] == "6.7.0" and report["pythonPort"] == "3.4.4"
    assert [r["id"] for r in report["results"]] == [
        "plain_job[N->P]",
        "plain_job[P->N]",
        "stored_options[N->P]",
        "stored_options[P->N]",
        "flow[P->N]",
    ]
    assert report["counts"] == {"pass": 5, "fail": 0, "lost": 0, "known": 0, "n/a": 0}
    assert report["prefix"].startswith("bbcheck-") and report["keysLeft"] == 0
    assert await _keys(redis_url, f"{report['prefix']}:*") == []
    assert await _keys(redis_url, "bbcheck-*") == []


async def test_older_node_bullmq_table(redis_url: str, node5_modules: Path) -> None:
    """Node 5.81.5: the paused-list loss is gone (bullbridge.protocol), and what Node 5
    lacks (reschedule) is not applicable rather than failed."""
    done = _check(
        redis_url,
        "--node-modules",
        str(node5_modules),
        "--only",
        "plain_job",
        "--only",
        "pause_resume",
        "--only",
        "stalled_recovery",
        "--only",
        "dedup_reschedule",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "Node bullmq 5.81.5" in out, out
    assert [
        line.split()[:3]
        for line in out.splitlines()
        if line.startswith(("plain_job ", "pause_resume ", "stalled_recovery ", "dedup_reschedule "))
    ] == [
        ["plain_job", "pass", "pass"],
        ["dedup_reschedule", "pass", "n/a"],
        ["pause_resume", "pass", "pass"],
        ["stalled_recovery", "pass", "pass"],
    ]
    assert (
        "not applicable dedup_reschedule[P->N]: Node bullmq 5.81.5 lacks deduplication reschedule "
        "(Node bullmq >= 6.7.0)"
    ) in out
    assert (
        out.rstrip()
        .splitlines()[-1]
        .startswith("OK: 7 passed, 0 failed, 0 lost a job, 0 known difference(s), 1 not applicable")
    )
    assert await _keys(redis_url, "bbcheck-*") == []


def test_setup_errors_exit_2_with_a_message(redis_url: str, tmp_path: Path) -> None:
    done = _check(redis_url, "--node-modules", str(tmp_path))
    assert done.returncode == 2
    assert f"{tmp_path}/node_modules does not exist: run `npm install` in {tmp_path}" in done.stderr
    done = _check(redis_url, "--only", "no_such_thing")
    assert done.returncode == 2 and "unknown scenarios: no_such_thing (names: " in done.stderr


def test_list_names_every_scenario_both_ways() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bullbridge", "interop", "check", "--list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    ids = [line.split()[0] for line in done.stdout.splitlines()]
    assert ids == [s.id for s in SCENARIOS] and len(ids) >= 40
    names = {s.name for s in SCENARIOS}
    for name in names:
        assert f"{name}[N->P]" in ids and f"{name}[P->N]" in ids, f"{name} is not checked both ways"
    assert {s.group for s in SCENARIOS} == {
        "jobs",
        "options",
        "dedup",
        "getters",
        "admin",
        "pause",
        "flows",
        "schedulers",
        "limits",
        "stalls",
    }


def test_a_failure_is_shown_and_fails_the_check() -> None:
    report = CheckReport(
        "6.7.0",
        "/x/node_modules/bullmq",
        "v20",
        "3.4.4",
        "0.1.0",
        "3.11",
        "7.0",
        "redis://:***@h:1/0",
        "bbcheck-1",
        results=[
            ScenarioResult("flow", "N->P", "pass", 0.1),
            ScenarioResult("flow", "P->N", "fail", 0.2, "parent never completed"),
            ScenarioResult("delay", "N->P", "known", 0.3, "late", note="a documented difference"),
        ],
        seconds=1.0,
    )
    assert not report.ok
    text = report.render()
    assert "flow      pass    fail" in text and "delay     known   -       N->P: a documented difference" in text
    assert "FAIL flow[P->N]: parent never completed" in text
    assert text.splitlines()[-1] == (
        "FAILED: 1 passed, 1 failed, 0 lost a job, 1 known difference(s), "
        "0 not applicable to this Node version in 1.0 s"
    )

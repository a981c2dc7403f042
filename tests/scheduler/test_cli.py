"""``bullbridge schedule preview|list|sync``, run in-process through ``bullbridge.cli.main``."""

from __future__ import annotations

import asyncio
import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bullbridge.cli import main
from bullbridge.testing.node import NodeDriver
from tests.scheduler.helpers import ms, node_next_millis


def test_preview_prints_utc_fire_times_across_fall_back(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        ["schedule", "preview", "30 2 * * *", "--tz", "America/New_York", "--from", "2025-11-01T12:00:00Z", "-n", "3"]
    )
    out = capsys.readouterr().out.split()
    assert status == 0
    assert out == ["2025-11-02T07:30:00.000Z", "2025-11-03T07:30:00.000Z", "2025-11-04T07:30:00.000Z"]


async def test_preview_json_matches_node(node: NodeDriver, capsys: pytest.CaptureFixture[str]) -> None:
    status = await asyncio.to_thread(
        main,
        [
            "schedule",
            "preview",
            "0 */30 1-3 * * *",
            "--tz",
            "Europe/Berlin",
            "--from",
            "2026-03-29T00:10:00+00:00",
            "-n",
            "5",
            "--json",
        ],
    )
    stamps = json.loads(capsys.readouterr().out)
    start = ms("2026-03-29T00:10:00+00:00")  # 01:10 CET, 50 minutes before spring forward
    [node_seq] = await node_next_millis(node, [["0 */30 1-3 * * *", "Europe/Berlin", start, None, None, 5]])
    assert status == 0
    assert [datetime.fromisoformat(s).astimezone(UTC) for s in stamps] == [
        datetime.fromtimestamp(t / 1000, UTC) for t in node_seq
    ]


def test_preview_refuses_what_cron_parser_refuses(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schedule", "preview", "0 0 15W * *"]) == 2
    assert "Invalid characters" in capsys.readouterr().err
    assert main(["schedule", "preview", "0 0 * * *", "--tz", "Mars/Olympus"]) == 2
    assert "unknown time zone" in capsys.readouterr().err


def _write_toml(path: Path, queue: str, pattern: str) -> Path:
    path.write_text(
        textwrap.dedent(f"""
        declaration = "cli-demo"

        [defaults]
        queue = "{queue}"
        tz = "America/New_York"

        [[schedules]]
        id = "nightly"
        pattern = "{pattern}"
        data = {{ days = 30 }}
        opts = {{ attempts = 2 }}

        [[schedules]]
        id = "beat"
        every = 3600000
    """),
        encoding="utf-8",
    )
    return path


async def test_sync_and_list_from_both_languages(
    node: NodeDriver, redis_url: str, queue_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = str(_write_toml(tmp_path / "schedules.toml", queue_name, "0 2 * * *"))
    assert await asyncio.to_thread(main, ["schedule", "sync", spec, "--redis", redis_url]) == 0
    out = capsys.readouterr().out
    assert f"created   {queue_name}/nightly" in out and f"created   {queue_name}/beat" in out
    assert await asyncio.to_thread(main, ["schedule", "sync", spec, "--redis", redis_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(report["unchanged"]) == [f"{queue_name}/beat", f"{queue_name}/nightly"]

    await node.eval(
        "await queue(args.q).upsertJobScheduler('from-node', { pattern: '0 9 * * 1', tz: 'UTC' }, { name: 'weekly' });",
        q=queue_name,
    )
    assert await asyncio.to_thread(main, ["schedule", "list", "--redis", redis_url, queue_name]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["QUEUE", "ID", "NAME", "SCHEDULE"]
    assert set(table[1]) <= {"-", " "}  # the header's rule, as in every table of the CLI
    rows = {line.split()[1]: line for line in table[2:]}
    assert set(rows) == {"nightly", "beat", "from-node"}
    assert rows["nightly"].rstrip().endswith("cli-demo") and rows["from-node"].rstrip().endswith("-")
    assert "every 1h00m" in rows["beat"]  # the dashboard's formatter, not "every 3600000 ms"

    assert await asyncio.to_thread(main, ["schedule", "list", "--redis", redis_url, "--json"]) == 0
    listed = [r for r in json.loads(capsys.readouterr().out) if r["queue"] == queue_name]
    by_id = {r["id"]: r for r in listed}
    assert set(by_id) == {"nightly", "beat", "from-node"}
    node_next = await node.eval("return (await queue(args.q).getJobScheduler('nightly')).next;", q=queue_name)
    assert by_id["nightly"]["next"] == node_next and by_id["nightly"]["nextIso"].endswith("Z")
    assert by_id["nightly"]["tz"] == "America/New_York" and by_id["from-node"]["owner"] is None


async def test_sync_from_module_attribute_reports_conflicts(
    node: NodeDriver,
    redis_url: str,
    queue_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    module = tmp_path / f"sched_{queue_name.replace('-', '_')}.py"
    module.write_text(
        textwrap.dedent(f"""
        from bullbridge.scheduler import Declaration, Schedule

        SCHEDULES = Declaration("mod-demo", (
            Schedule(id="mine", queue="{queue_name}", every=60_000),
            Schedule(id="theirs", queue="{queue_name}", every=60_000),
        ))
    """),
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    await node.eval("await queue(args.q).upsertJobScheduler('theirs', { every: 5000 }, {});", q=queue_name)
    status = await asyncio.to_thread(main, ["schedule", "sync", f"{module.stem}:SCHEDULES", "--redis", redis_url])
    out = capsys.readouterr().out
    assert status == 1
    assert f"created   {queue_name}/mine" in out and f"conflicts {queue_name}/theirs" in out
    assert main(["schedule", "sync", "no_such_module_xyz:X", "--redis", redis_url]) == 7  # the user's module
    assert "no module named 'no_such_module_xyz'" in capsys.readouterr().err

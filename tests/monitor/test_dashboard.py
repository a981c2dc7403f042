"""The dashboard: HTTP behaviour (read-only, tokens, JSON) and a real headless Chromium
walking it, checking that the numbers on screen are the stats library's."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from bullbridge.dashboard import create_app
from bullbridge.jsonapi import to_json
from bullbridge.monitor import Monitor
from bullbridge.monitor import format as fmt
from bullbridge.testing.node import NodeDriver
from tests.monitor.helpers import Fake, inject, now_ms

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = os.environ.get("BULLBRIDGE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


async def seed(r: Redis, queue: str) -> None:
    """30 failed (Node, processing 100..129 ms), 70 completed (Python, 1..70 ms), 2 waiting, 1 delayed."""
    now = now_ms()
    jobs = [
        Fake(
            f"c{i}",
            "completed",
            now - 600_000 + i,
            now - 590_000 + i * 10,
            now - 590_000 + i * 11,
            pb="bullbridge:py-dash",
        )
        for i in range(1, 71)
    ]
    jobs += [
        Fake(
            f"f{i}",
            "failed",
            now - 500_000 + i,
            now - 490_000,
            now - 490_000 + 100 + i,
            pb="node-dash",
            failed_reason=f"boom {i}",
        )
        for i in range(30)
    ]
    jobs += [
        Fake("w1", "waiting", now - 45_000),
        Fake("w2", "waiting", now - 1_000),
        Fake("d1", "delayed", now, delay=3_600_000),
    ]
    await inject(r, queue, jobs)
    hostile = json.dumps({"html": "<script>alert(1)</script>"})
    await r.hset(
        f"bull:{queue}:xss",
        mapping={"name": "evil", "data": hostile, "opts": "{}", "timestamp": now, "delay": 0, "priority": 0},
    )
    await r.lpush(f"bull:{queue}:wait", "xss")


@pytest.fixture
async def dashboard(redis_url: str, queue_name: str) -> AsyncIterator[tuple[TestServer, Monitor]]:
    monitor = Monitor(redis_url)
    server = TestServer(create_app(monitor, queues=[queue_name, queue_name + "-b"]))
    await server.start_server()
    yield server, monitor
    await server.close()


async def test_read_only_by_default_and_json_api(r: Redis, redis_url: str, queue_name: str, node: NodeDriver) -> None:
    await seed(r, queue_name)
    app = create_app(monitor := Monitor(redis_url), queues=[queue_name], close_monitor=False)
    async with monitor, TestClient(TestServer(app)) as c:
        api = await (await c.get(f"/api/queues/{queue_name}")).json()
        stats = await monitor.queue_stats(queue_name)
        assert api["counts"] == stats.counts
        assert api["processing"] == to_json(stats.processing) and api["failureRate"] == 0.3
        assert api["sample"] == {"size": 100, "truncated": False, "oldestFinishedOn": stats.sample.oldest_finished_on}
        jobs = await (await c.get(f"/api/queues/{queue_name}/jobs", params={"state": "failed", "count": "5"})).json()
        assert jobs["total"] == 30 and [j["id"] for j in jobs["jobs"]] == [f"f{i}" for i in range(29, 24, -1)]
        # No route writes: every POST is refused and the queue is untouched.
        for path in (f"/queues/{queue_name}/actions/pause", f"/api/queues/{queue_name}/actions/drain"):
            response = await c.post(path, data={"token": "x"})
            assert response.status in (404, 405)
        assert await node.queue_call(queue_name, "isPaused") is False
        assert (await monitor.counts(queue_name))["waiting"] == 3
        page = await (await c.get("/")).text()
        assert 'method="post"' not in page and "read-only" in page
        response = await c.get(f"/queues/{queue_name}/jobs/xss")
        assert "<script>alert(1)</script>" not in await response.text()
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert (await c.get(f"/queues/{queue_name}/jobs/nope")).status == 404


TOKEN = "s3cret-s3cret-s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_actions_need_the_token(r: Redis, redis_url: str, queue_name: str, node: NodeDriver) -> None:
    await seed(r, queue_name)
    with pytest.raises(ValueError):
        create_app(Monitor(redis_url), allow_actions=True)
    for weak in ("x", " " * 20, "fifteen-chars.."):
        with pytest.raises(ValueError, match="token"):
            create_app(Monitor(redis_url), allow_actions=True, token=weak)
    async with (
        Monitor(redis_url) as monitor,
        TestClient(TestServer(create_app(monitor, allow_actions=True, token=TOKEN, close_monitor=False))) as c,
    ):
        path = f"/api/queues/{queue_name}/actions/pause"
        assert (await c.post(path)).status == 403
        assert (await c.post(path, headers={"Authorization": "Bearer wrong"})).status == 403
        # The token is checked before the body is read: a JSON body never carries it, and a
        # malformed one without a token is a 403 (it was a 500 with a traceback), with one a 400.
        assert (await c.post(path, json={"token": TOKEN})).status == 403
        bad = {"Content-Type": "application/json"}
        assert (await c.post(path, data=b"{not json", headers=bad)).status == 403
        assert (await c.post(path, data=b"{not json", headers={**bad, **AUTH})).status == 400
        assert await node.queue_call(queue_name, "isPaused") is False
        response = await c.post(path, headers=AUTH)
        assert response.status == 200 and (await response.json())["action"] == "pause"
        assert await node.queue_call(queue_name, "isPaused") is True
        response = await c.post(f"/api/queues/{queue_name}/actions/retry-job", json={"job": "f3"}, headers=AUTH)
        assert response.status == 200
        assert await node.queue_call(queue_name, "getJobState", "f3") == "waiting"
        response = await c.post(f"/api/queues/{queue_name}/actions/promote-job", json={"job": "f4"}, headers=AUTH)
        assert response.status == 409 and "not delayed" in (await response.json())["error"]


async def test_unknown_queues_are_404_and_actions_create_no_keys(r: Redis, redis_url: str, queue_name: str) -> None:
    await seed(r, queue_name)
    ghost = queue_name + "-typo"
    async with (
        Monitor(redis_url) as monitor,
        TestClient(TestServer(create_app(monitor, allow_actions=True, token=TOKEN, close_monitor=False))) as c,
    ):
        for path in (f"/queues/{ghost}", f"/api/queues/{ghost}", f"/api/queues/{ghost}/jobs"):
            response = await c.get(path)
            assert response.status == 404, path
        response = await c.get(f"/api/queues/{ghost}")
        assert (await response.text()).count(ghost) >= 1
        for action in ("pause", "drain", "retry", "promote"):
            response = await c.post(f"/api/queues/{ghost}/actions/{action}", headers=AUTH, json={})
            assert response.status == 404, action
        assert [k async for k in r.scan_iter(f"bull:{ghost}:*")] == [], "no key written for an unknown queue"
        assert (await c.get(f"/api/queues/{queue_name}")).status == 200


async def test_only_loopback_host_names_unless_allowed(r: Redis, redis_url: str, queue_name: str) -> None:
    """DNS rebinding: a page of evil.example that resolves to 127.0.0.1 sends Host: evil.example."""
    await seed(r, queue_name)
    async with Monitor(redis_url) as monitor:
        async with TestClient(TestServer(create_app(monitor, close_monitor=False))) as c:
            assert (await c.get("/api/queues")).status == 200  # Host: 127.0.0.1:<port>
            for host in ("localhost:8080", "[::1]:8080", "LOCALHOST"):
                assert (await c.get("/api/queues", headers={"Host": host})).status == 200, host
            refused = await c.get("/api/queues", headers={"Host": "evil.example:8080"})
            assert refused.status == 403 and queue_name not in await refused.text()
        app = create_app(monitor, close_monitor=False, allowed_hosts=["bull.internal"])
        async with TestClient(TestServer(app)) as c:
            assert (await c.get("/api/queues", headers={"Host": "bull.internal"})).status == 200
            assert (await c.get("/api/queues")).status == 403  # the list replaces loopback


def _launch_args() -> dict[str, Any]:
    if os.environ.get("BULLBRIDGE_SKIP_BROWSER"):
        pytest.skip("BULLBRIDGE_SKIP_BROWSER is set")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (or set BULLBRIDGE_CHROMIUM)")
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


async def test_browser_walkthrough(
    r: Redis, redis_url: str, queue_name: str, node: NodeDriver, make_worker, dashboard: tuple[TestServer, Monitor]
) -> None:
    from playwright.async_api import async_playwright

    launch = _launch_args()
    q, other = queue_name, queue_name + "-b"
    await seed(r, q)
    await node.queue_call(
        q, "upsertJobScheduler", "nightly", {"pattern": "0 3 * * *", "tz": "UTC"}, {"name": "cleanup"}
    )
    await make_worker({"x": _noop}, queue=other, name="py-dash").start()
    node_worker = await node.start_worker(other, name="node-dash")
    server, monitor = dashboard
    base = str(server.make_url("/"))
    try:
        stats = {s.queue: s for s in await monitor.stats([q, other])}
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(**launch)
            try:
                page = await browser.new_page(viewport={"width": 1600, "height": 900})
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))

                # Overview: the numbers are the stats library's.
                await page.goto(base)
                for name in (q, other):
                    row = page.locator(f'#queues tr[data-queue="{name}"]')
                    s = stats[name]

                    async def cell(field: str, row: Any = row) -> str:
                        return (await row.locator(f'[data-field="{field}"]').inner_text()).strip()

                    for state in ("waiting", "active", "delayed", "completed", "failed"):
                        assert await cell(state) == f"{s.counts[state]:,}", (name, state)
                    assert await cell("failure-rate") == fmt.percent(s.failure_rate)
                    assert (
                        await cell("processing") == f"{fmt.duration(s.processing.p50)} / "
                        f"{fmt.duration(s.processing.p95)}"
                    )
                    assert await cell("wait") == f"{fmt.duration(s.wait.p50)} / {fmt.duration(s.wait.p95)}"
                assert (
                    await page.locator(f'#queues tr[data-queue="{other}"] [data-field="workers"]').inner_text()
                    == "1 py + 1 node"
                )
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(ARTIFACTS / "dashboard-overview.png"), full_page=True)

                # Queue page: figures, languages, schedulers, charts.
                await page.click(f'#queues tr[data-queue="{q}"] td.name a')
                await page.wait_for_selector("#queue")
                s = stats[q]
                assert await page.inner_text('.cards [data-field="processing-p95"]') == fmt.duration(s.processing.p95)
                assert await page.inner_text('.cards [data-field="failure-rate"]') == "30.0%"
                assert await page.inner_text('#languages tr[data-language="python"] [data-field="jobs"]') == "70"
                assert (
                    await page.inner_text('#languages tr[data-language="node"] [data-field="failure-rate"]') == "100.0%"
                )
                sched = (await monitor.schedulers(q)).schedulers[0]
                assert await page.get_attribute(
                    '#schedulers tr[data-scheduler="nightly"] [data-field="next"]', "data-ms"
                ) == str(sched.next_run_ms)
                assert await page.locator("svg.chart").count() == 2
                assert await page.locator("form[method=post]").count() == 0
                await page.screenshot(path=str(ARTIFACTS / "dashboard-queue.png"), full_page=True)

                # Failed jobs, paged 25 at a time, newest first.
                await page.click('nav.states a[data-field="failed"]')
                await page.wait_for_selector("#jobs")
                assert await page.inner_text('[data-field="page"]') == "page 1 of 2"
                assert await page.locator("#jobs tbody tr").count() == 25
                assert await page.get_attribute("#jobs tbody tr >> nth=0", "data-job") == "f29"
                await page.click("a[rel=next] >> nth=0")
                await page.wait_for_selector("#jobs")
                assert await page.locator("#jobs tbody tr").count() == 5

                # A job; then hostile data stays text.
                await page.click('#jobs tr[data-job="f2"] a')
                await page.wait_for_selector("#job")
                assert await page.inner_text('[data-field="failed-reason"]') == "boom 2"
                assert (await page.inner_text('[data-field="worker"]')) == "node-dash (node)"
                await page.screenshot(path=str(ARTIFACTS / "dashboard-job.png"), full_page=True)
                await page.goto(f"{base}queues/{q}/jobs/xss")
                assert "<script>alert(1)</script>" in await page.inner_text("#job")
                assert errors == []
            finally:
                await browser.close()
    finally:
        await node.close_worker(node_worker)


async def test_browser_action_with_token(r: Redis, redis_url: str, queue_name: str, node: NodeDriver) -> None:
    from playwright.async_api import async_playwright

    launch = _launch_args()
    await seed(r, queue_name)
    monitor = Monitor(redis_url)
    server = TestServer(create_app(monitor, allow_actions=True, token="tok-123-tok-123-tok-123"))
    await server.start_server()
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(**launch)
            try:
                page = await browser.new_page()
                dialogs: list[str] = []

                async def accept(dialog: Any) -> None:
                    dialogs.append(dialog.message)
                    await dialog.accept()

                page.on("dialog", lambda d: asyncio.ensure_future(accept(d)))
                await page.goto(str(server.make_url(f"/queues/{queue_name}")))
                form = page.locator(f'form[action$="/queues/{queue_name}/actions/pause"]')
                await form.locator("input[name=token]").fill("wrong")
                await form.locator("button").click()
                await page.wait_for_load_state()
                assert "403" in await page.inner_text("h1")
                assert await node.queue_call(queue_name, "isPaused") is False

                await page.goto(str(server.make_url(f"/queues/{queue_name}")))
                await form.locator("input[name=token]").fill("tok-123-tok-123-tok-123")
                await form.locator("button").click()
                await page.wait_for_selector(".flash")
                assert await page.inner_text(".flash") == "queue paused"
                assert await page.locator('[data-field="queue-paused"]').count() == 1
                assert await node.queue_call(queue_name, "isPaused") is True
                assert dialogs == [f"Pause queue {queue_name} for every worker?"] * 2
            finally:
                await browser.close()
    finally:
        await server.close()


async def _noop(job):
    return None

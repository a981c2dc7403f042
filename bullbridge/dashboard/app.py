"""The dashboard as an aiohttp application: HTML pages, a JSON API, optional actions.

Read-only unless built with ``allow_actions=True`` *and* a ``token``: then,
and only then, POST routes exist, and each request must carry the token
(``Authorization: Bearer <token>``, ``X-Bullbridge-Token``, or a ``token`` form
field, which the action forms ask for; compared in constant time). Without
them a POST anywhere is a 405/404 and nothing can write.

=======================================  ==========================================
route                                    what
=======================================  ==========================================
``GET /``                                queue overview
``GET /queues/{q}``                      one queue: counts, charts, languages, workers, schedulers
``GET /queues/{q}/jobs?state=&page=``    jobs of a state, paged
``GET /queues/{q}/jobs/{id}``            one job
``GET /queues/{q}/schedulers?page=``     job schedulers by next run
``GET /workers``                         every worker by language
``GET /api/...``                         the same as JSON (``/api/queues``, ``/api/queues/{q}``, ...)
``POST /queues/{q}/actions/{action}``    retry, promote, clean, pause, resume, drain, retry-job,
                                         promote-job, remove-job (HTML forms; JSON under ``/api``)
=======================================  ==========================================

Mount it inside another aiohttp app with ``parent.add_subapp("/bull", create_app(..., base_path="/bull"))``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from aiohttp import web

from bullbridge.clock import now_ms
from bullbridge.connection.resp import RespConnectionError, RespError
from bullbridge.dashboard import pages
from bullbridge.dashboard.actions import ACTIONS, done_message, run_action
from bullbridge.dashboard.plumbing import (
    add_security_headers,
    int_param,
    json_response,
    offered_token,
    read_form,
    state_param,
    token_matches,
)
from bullbridge.errors import JobNotFound, QueueError
from bullbridge.monitor.monitor import Monitor
from bullbridge.monitor.reader import MonitorError

log = logging.getLogger("bullbridge.dashboard")

STATIC = Path(__file__).parent / "static"
MONITOR_KEY: web.AppKey[Monitor] = web.AppKey("bullbridge_monitor", Monitor)
SERIES_MINUTES = 60
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 500
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(monitor: Monitor, *, queues: Sequence[str] | None = None, allow_actions: bool = False,
               token: str | None = None, base_path: str = "", close_monitor: bool = True) -> web.Application:
    """The dashboard for ``monitor``'s prefix (``queues`` limits it to those queues)."""
    if allow_actions and not token:
        raise ValueError("actions need a token: create_app(..., allow_actions=True, token='...')")
    base = base_path.rstrip("/")
    fixed = list(queues) if queues else None
    redis_desc = monitor.redis_description

    def page(request: web.Request) -> pages.Page:
        return pages.Page(base=base, prefix=monitor.prefix, redis=redis_desc, actions=allow_actions,
                          now_ms=now_ms())

    async def queue_names() -> list[str]:
        return fixed if fixed is not None else await monitor.queues()

    def known(queue: str) -> str:
        if fixed is not None and queue not in fixed:
            raise web.HTTPNotFound(text=f"queue {queue!r} is not shown by this dashboard")
        return queue

    # -- pages ------------------------------------------------------------------------

    async def overview(request: web.Request) -> web.Response:
        stats = await monitor.stats(await queue_names(), series_minutes=SERIES_MINUTES)
        return web.Response(text=pages.overview(page(request), stats), content_type="text/html")

    async def queue(request: web.Request) -> web.Response:
        q = known(request.match_info["queue"])
        stats = await monitor.queue_stats(q, series_minutes=SERIES_MINUTES)
        sample = await monitor.sample(q)
        workers = (await monitor.workers([q]))[q]
        sched = await monitor.schedulers(q, 0, 20)
        return web.Response(text=pages.queue_page(page(request), stats, sample, workers, sched,
                                                  flash=request.query.get("done", "")), content_type="text/html")

    async def jobs(request: web.Request) -> web.Response:
        q = known(request.match_info["queue"])
        state = state_param(request)
        size = int_param(request, "size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        number = int_param(request, "page", 1, 1)
        listing = await monitor.jobs(q, state, (number - 1) * size, size)
        counts = await monitor.counts(q)
        return web.Response(text=pages.jobs_page(page(request), listing, counts), content_type="text/html")

    async def job(request: web.Request) -> web.Response:
        q = known(request.match_info["queue"])
        detail = await monitor.job(q, request.match_info["job_id"])
        if detail is None:
            raise web.HTTPNotFound(text=f"no job {request.match_info['job_id']!r} in queue {q!r}")
        return web.Response(text=pages.job_page(page(request), detail, flash=request.query.get("done", "")),
                            content_type="text/html")

    async def schedulers(request: web.Request) -> web.Response:
        q = known(request.match_info["queue"])
        size = 50
        number = int_param(request, "page", 1, 1)
        sched = await monitor.schedulers(q, (number - 1) * size, size)
        return web.Response(text=pages.schedulers_page(page(request), q, sched, size), content_type="text/html")

    async def workers(request: web.Request) -> web.Response:
        return web.Response(text=pages.workers_page(page(request), await monitor.workers(await queue_names())),
                            content_type="text/html")

    # -- JSON -------------------------------------------------------------------------

    async def api_queues(request: web.Request) -> web.Response:
        return json_response(await monitor.stats(await queue_names()))

    async def api_queue(request: web.Request) -> web.Response:
        q = known(request.match_info["queue"])
        minutes = int_param(request, "minutes", SERIES_MINUTES, 2, 24 * 60)
        return json_response(await monitor.queue_stats(q, series_minutes=minutes))

    async def api_jobs(request: web.Request) -> web.Response:
        q = known(request.match_info["queue"])
        state = state_param(request)
        start = int_param(request, "start", 0)
        count = int_param(request, "count", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        return json_response(await monitor.jobs(q, state, start, count))

    async def api_job(request: web.Request) -> web.Response:
        q = known(request.match_info["queue"])
        detail = await monitor.job(q, request.match_info["job_id"])
        if detail is None:
            return json_response({"error": "not found"}, 404)
        return json_response(detail)

    async def api_schedulers(request: web.Request) -> web.Response:
        q = known(request.match_info["queue"])
        start = int_param(request, "start", 0)
        count = int_param(request, "count", 50, 1, MAX_PAGE_SIZE)
        return json_response(await monitor.schedulers(q, start, count))

    async def api_workers(request: web.Request) -> web.Response:
        found = await monitor.workers(await queue_names())
        return json_response(found)

    async def api_migration(request: web.Request) -> web.Response:
        q = known(request.match_info["queue"])
        since = request.query.get("since")
        report = await monitor.migration_report(q, since_ms=int(since) if since and since.isdigit() else None,
                                                sample_size=int_param(request, "sample", 10_000, 1, 100_000))
        return json_response(report)

    # -- actions ----------------------------------------------------------------------

    def authorized(request: web.Request, form: dict[str, str]) -> bool:
        assert token is not None
        return token_matches(offered_token(request, form), token)

    async def act(request: web.Request) -> web.Response:
        is_api = request.path.startswith(base + "/api/")
        q = known(request.match_info["queue"])
        name = request.match_info["action"]
        if name not in ACTIONS:
            raise web.HTTPNotFound(text=f"no action {name!r}")
        form = await read_form(request)
        if not authorized(request, form):
            log.warning("refused %s on %s: bad or missing token (from %s)", name, q, request.remote)
            if is_api:
                return json_response({"error": "a valid token is required"}, 403)
            raise web.HTTPForbidden(text="a valid token is required")
        try:
            result = await run_action(monitor, q, name, form)
        except (JobNotFound, QueueError, MonitorError, ValueError) as exc:
            if is_api:
                return json_response({"error": str(exc)}, 409)
            raise web.HTTPConflict(text=str(exc)) from None
        log.info("action %s on queue %s: %d job(s)", name, q, result.count)
        if is_api:
            return json_response(result)
        done = done_message(name, result)
        target = pages.Page(base, monitor.prefix, "", True, 0)
        if name in ("retry-job", "promote-job") and result.ids:
            raise web.HTTPSeeOther(target.url("queues", q, "jobs", result.ids[0], done=done))
        raise web.HTTPSeeOther(target.url("queues", q, done=done))

    # -- plumbing ---------------------------------------------------------------------

    @web.middleware
    async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        api = request.path.startswith(base + "/api/")
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400 or api:
                raise
            response = web.Response(text=pages.error_page(page(request), exc.status, exc.text or exc.reason),
                                    status=exc.status, content_type="text/html")
        except (MonitorError, RespConnectionError, RespError) as exc:
            log.warning("%s %s failed: %s", request.method, request.path, exc)
            message = f"cannot read Redis: {exc}"
            response = (json_response({"error": message}, 503) if api else web.Response(
                text=pages.error_page(page(request), 503, message), status=503, content_type="text/html"))
        add_security_headers(response)
        return response

    app = web.Application(middlewares=[headers])
    app[MONITOR_KEY] = monitor
    r = app.router
    r.add_get(base + "/", overview)
    if base:
        r.add_get(base, overview)
    r.add_get(base + "/queues/{queue}", queue)
    r.add_get(base + "/queues/{queue}/jobs", jobs)
    r.add_get(base + "/queues/{queue}/jobs/{job_id}", job)
    r.add_get(base + "/queues/{queue}/schedulers", schedulers)
    r.add_get(base + "/workers", workers)
    r.add_get(base + "/api/queues", api_queues)
    r.add_get(base + "/api/queues/{queue}", api_queue)
    r.add_get(base + "/api/queues/{queue}/jobs", api_jobs)
    r.add_get(base + "/api/queues/{queue}/jobs/{job_id}", api_job)
    r.add_get(base + "/api/queues/{queue}/schedulers", api_schedulers)
    r.add_get(base + "/api/queues/{queue}/migration", api_migration)
    r.add_get(base + "/api/workers", api_workers)
    r.add_static(base + "/static", STATIC)
    if allow_actions:
        r.add_post(base + "/queues/{queue}/actions/{action}", act)
        r.add_post(base + "/api/queues/{queue}/actions/{action}", act)
    if close_monitor:
        async def on_cleanup(app: web.Application) -> None:
            await monitor.close()

        app.on_cleanup.append(on_cleanup)
    return app

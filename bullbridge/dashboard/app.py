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

This module wires the routes; the handlers are the methods of
:class:`~bullbridge.dashboard.handlers.Dashboard`, the HTTP helpers (parameters,
token, security headers) live in :mod:`~bullbridge.dashboard.plumbing`, the
actions in :mod:`~bullbridge.dashboard.actions` and the HTML in
:mod:`~bullbridge.dashboard.pages`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from bullbridge.dashboard.handlers import Dashboard
from bullbridge.dashboard.plumbing import MAX_BODY_BYTES
from bullbridge.monitor.monitor import Monitor

STATIC = Path(__file__).parent / "static"
MONITOR_KEY: web.AppKey[Monitor] = web.AppKey("bullbridge_monitor", Monitor)


def create_app(
    monitor: Monitor,
    *,
    queues: Sequence[str] | None = None,
    allow_actions: bool = False,
    token: str | None = None,
    base_path: str = "",
    close_monitor: bool = True,
    allowed_hosts: Sequence[str] | None = None,
) -> web.Application:
    """The dashboard for ``monitor``'s prefix (``queues`` limits it to those queues).

    ``token`` (actions only) must have at least 16 characters. ``allowed_hosts`` are the
    ``Host`` names it answers by (default: loopback - ``localhost``, ``127.0.0.1``, ``::1``;
    ``["*"]`` for any, behind a proxy that checks them)."""
    dashboard = Dashboard(
        monitor,
        queues=queues,
        allow_actions=allow_actions,
        token=token,
        base_path=base_path,
        allowed_hosts=allowed_hosts,
    )
    app = web.Application(middlewares=[dashboard.error_pages_and_security_headers], client_max_size=MAX_BODY_BYTES)
    app[MONITOR_KEY] = monitor
    _add_routes(app.router, dashboard)
    if close_monitor:
        app.on_cleanup.append(dashboard.close_monitor)
    return app


def _add_routes(r: web.UrlDispatcher, d: Dashboard) -> None:
    """The table above, under ``d.base``; the POST routes only when actions are allowed."""
    base = d.base
    r.add_get(base + "/", d.overview)
    if base:
        r.add_get(base, d.overview)
    r.add_get(base + "/queues/{queue}", d.queue)
    r.add_get(base + "/queues/{queue}/jobs", d.jobs)
    r.add_get(base + "/queues/{queue}/jobs/{job_id}", d.job)
    r.add_get(base + "/queues/{queue}/schedulers", d.schedulers)
    r.add_get(base + "/workers", d.workers)
    r.add_get(base + "/api/queues", d.api_queues)
    r.add_get(base + "/api/queues/{queue}", d.api_queue)
    r.add_get(base + "/api/queues/{queue}/jobs", d.api_jobs)
    r.add_get(base + "/api/queues/{queue}/jobs/{job_id}", d.api_job)
    r.add_get(base + "/api/queues/{queue}/schedulers", d.api_schedulers)
    r.add_get(base + "/api/queues/{queue}/migration", d.api_migration)
    r.add_get(base + "/api/workers", d.api_workers)
    r.add_static(base + "/static", STATIC)
    if d.allow_actions:
        r.add_post(base + "/queues/{queue}/actions/{action}", d.act)
        r.add_post(base + "/api/queues/{queue}/actions/{action}", d.act)

"""The dashboard's request handlers: :class:`Dashboard`, one method per route, and its middleware.

:func:`bullbridge.dashboard.app.create_app` builds one and wires its methods to the URLs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from bullbridge.clock import now_ms
from bullbridge.connection.resp import RespConnectionError, RespError
from bullbridge.dashboard import pages
from bullbridge.dashboard.actions import ACTIONS, done_message, run_action
from bullbridge.dashboard.plumbing import (
    LOOPBACK_HOSTS,
    add_security_headers,
    check_token,
    header_token,
    host_allowed,
    html_response,
    int_param,
    json_response,
    offered_token,
    read_form,
    small_form,
    state_param,
    token_matches,
)
from bullbridge.errors import JobNotFound, QueueError
from bullbridge.monitor.actions import ActionResult
from bullbridge.monitor.monitor import Monitor
from bullbridge.monitor.reader import MonitorError
from bullbridge.redact import printable, redact

log = logging.getLogger("bullbridge.dashboard")

SERIES_MINUTES = 60
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 500
SCHEDULER_PAGE_SIZE = 50
QUEUE_PAGE_SCHEDULERS = 20
ACTION_ERRORS = (JobNotFound, QueueError, MonitorError, ValueError)
READ_ERRORS = (MonitorError, RespConnectionError, RespError)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Dashboard:
    """One dashboard: the monitor it reads, where it is mounted, which queues it shows, who may act.

    ``queues`` limits it to those queues (empty or ``None``: every queue of the prefix);
    actions need a ``token``.
    """

    def __init__(
        self,
        monitor: Monitor,
        *,
        queues: Sequence[str] | None,
        allow_actions: bool,
        token: str | None,
        base_path: str,
        allowed_hosts: Sequence[str] | None = None,
    ) -> None:
        if allow_actions:
            token = check_token(token)
        self.monitor = monitor
        self.base = base_path.rstrip("/")
        self.fixed = list(queues) if queues else None
        self.allow_actions = allow_actions
        self.token = token
        self.redis = monitor.redis_description
        self.allowed_hosts = frozenset(h.strip().lower().strip("[]") for h in (allowed_hosts or LOOPBACK_HOSTS))

    # -- what every handler needs -----------------------------------------------------

    def page(self) -> pages.Page:
        return pages.Page(
            base=self.base, prefix=self.monitor.prefix, redis=self.redis, actions=self.allow_actions, now_ms=now_ms()
        )

    def is_api(self, request: web.Request) -> bool:
        return request.path.startswith(self.base + "/api/")

    async def queue_names(self) -> list[str]:
        return self.fixed if self.fixed is not None else await self.monitor.queues()

    async def known_queue(self, request: web.Request) -> str:
        """The ``{queue}`` of the URL; 404 if this dashboard does not show it or it does not exist
        (so no page shows zeros for a typo, and no action creates keys for one)."""
        queue = request.match_info["queue"]
        if self.fixed is not None and queue not in self.fixed:
            raise web.HTTPNotFound(text=f"queue {queue!r} is not shown by this dashboard")
        if not await self.monitor.exists(queue):
            raise web.HTTPNotFound(text=f"no queue {queue!r} under prefix {self.monitor.prefix!r}")
        return queue

    # -- pages ------------------------------------------------------------------------

    async def overview(self, request: web.Request) -> web.Response:
        stats = await self.monitor.stats(await self.queue_names(), series_minutes=SERIES_MINUTES)
        return html_response(pages.overview(self.page(), stats))

    async def queue(self, request: web.Request) -> web.Response:
        q = await self.known_queue(request)
        stats = await self.monitor.queue_stats(q, series_minutes=SERIES_MINUTES)
        sample = await self.monitor.sample(q)
        workers = (await self.monitor.workers([q]))[q]
        sched = await self.monitor.schedulers(q, 0, QUEUE_PAGE_SCHEDULERS)
        return html_response(
            pages.queue_page(self.page(), stats, sample, workers, sched, flash=request.query.get("done", ""))
        )

    async def jobs(self, request: web.Request) -> web.Response:
        q = await self.known_queue(request)
        state = state_param(request)
        size = int_param(request, "size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        number = int_param(request, "page", 1, 1)
        listing = await self.monitor.jobs(q, state, (number - 1) * size, size)
        counts = await self.monitor.counts(q)
        return html_response(pages.jobs_page(self.page(), listing, counts))

    async def job(self, request: web.Request) -> web.Response:
        q = await self.known_queue(request)
        detail = await self.monitor.job(q, request.match_info["job_id"])
        if detail is None:
            raise web.HTTPNotFound(text=f"no job {request.match_info['job_id']!r} in queue {q!r}")
        return html_response(pages.job_page(self.page(), detail, flash=request.query.get("done", "")))

    async def schedulers(self, request: web.Request) -> web.Response:
        q = await self.known_queue(request)
        number = int_param(request, "page", 1, 1)
        sched = await self.monitor.schedulers(q, (number - 1) * SCHEDULER_PAGE_SIZE, SCHEDULER_PAGE_SIZE)
        return html_response(pages.schedulers_page(self.page(), q, sched, SCHEDULER_PAGE_SIZE))

    async def workers(self, request: web.Request) -> web.Response:
        return html_response(pages.workers_page(self.page(), await self.monitor.workers(await self.queue_names())))

    # -- JSON -------------------------------------------------------------------------

    async def api_queues(self, request: web.Request) -> web.Response:
        return json_response(await self.monitor.stats(await self.queue_names()))

    async def api_queue(self, request: web.Request) -> web.Response:
        q = await self.known_queue(request)
        minutes = int_param(request, "minutes", SERIES_MINUTES, 2, 24 * 60)
        return json_response(await self.monitor.queue_stats(q, series_minutes=minutes))

    async def api_jobs(self, request: web.Request) -> web.Response:
        q = await self.known_queue(request)
        state = state_param(request)
        start = int_param(request, "start", 0)
        count = int_param(request, "count", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        return json_response(await self.monitor.jobs(q, state, start, count))

    async def api_job(self, request: web.Request) -> web.Response:
        q = await self.known_queue(request)
        detail = await self.monitor.job(q, request.match_info["job_id"])
        if detail is None:
            return json_response({"error": "not found"}, 404)
        return json_response(detail)

    async def api_schedulers(self, request: web.Request) -> web.Response:
        q = await self.known_queue(request)
        start = int_param(request, "start", 0)
        count = int_param(request, "count", SCHEDULER_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        return json_response(await self.monitor.schedulers(q, start, count))

    async def api_workers(self, request: web.Request) -> web.Response:
        return json_response(await self.monitor.workers(await self.queue_names()))

    async def api_migration(self, request: web.Request) -> web.Response:
        q = await self.known_queue(request)
        since = request.query.get("since")
        report = await self.monitor.migration_report(
            q,
            since_ms=int(since) if since and since.isdigit() else None,
            sample_size=int_param(request, "sample", 10_000, 1, 100_000),
        )
        return json_response(report)

    # -- actions ----------------------------------------------------------------------

    async def act(self, request: web.Request) -> web.Response:
        """``POST .../actions/{action}``: check the token, run the action, answer in JSON or redirect."""
        name = request.match_info["action"]
        if name not in ACTIONS:
            raise web.HTTPNotFound(text=f"no action {name!r}")
        # The token is checked before the body is parsed: from the headers, or from a small
        # posted form (the HTML forms); any other body without a header token is never read.
        offered = header_token(request)
        if not offered and not small_form(request):
            return self.refused(request, name)
        if offered and not token_matches(offered, self.token or ""):
            return self.refused(request, name)
        form = await read_form(request)
        if not offered and not token_matches(form.get("token", ""), self.token or ""):
            return self.refused(request, name)
        q = await self.known_queue(request)
        try:
            result = await run_action(self.monitor, q, name, form)
        except ACTION_ERRORS as exc:
            return self.refuse(request, web.HTTPConflict, str(exc))
        log.info("action %s on queue %s: %d job(s)", name, q, result.count)
        if self.is_api(request):
            return json_response(result)
        raise web.HTTPSeeOther(self.landing_url(q, name, result))

    def refused(self, request: web.Request, action: str) -> web.Response:
        log.warning(
            "refused %s on %s: bad or missing token (from %s)",
            action,
            printable(request.match_info.get("queue", ""), single_line=True),
            request.remote,
        )
        return self.refuse(request, web.HTTPForbidden, "a valid token is required")

    def authorized(self, request: web.Request, form: dict[str, str]) -> bool:
        assert self.token is not None
        return token_matches(offered_token(request, form), self.token)

    def refuse(self, request: web.Request, error: type[web.HTTPError], message: str) -> web.Response:
        """``{"error": message}`` under ``/api``; elsewhere ``error``, which the middleware shows as a page."""
        if self.is_api(request):
            return json_response({"error": message}, error.status_code)
        raise error(text=message) from None

    def landing_url(self, queue: str, name: str, result: ActionResult) -> str:
        """Where a form action lands: the job it retried or promoted, else the queue; with what was done."""
        done = done_message(name, result)
        if name in ("retry-job", "promote-job") and result.ids:
            return self.page().url("queues", queue, "jobs", result.ids[0], done=done)
        return self.page().url("queues", queue, done=done)

    # -- plumbing ---------------------------------------------------------------------

    @web.middleware
    async def error_pages_and_security_headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The Host check (DNS rebinding), errors as HTML pages (JSON under ``/api`` when Redis
        cannot be read), and the security headers."""
        if not host_allowed(request, self.allowed_hosts):  # a plain answer: no page, nothing read
            shown = printable(request.host, single_line=True)
            log.warning("refused a request for Host %r (allowed: %s)", shown, ", ".join(sorted(self.allowed_hosts)))
            refused = web.Response(
                status=403,
                text=f"this dashboard does not answer for Host {shown!r}: start it with --allowed-host NAME\n",
            )
            add_security_headers(refused)
            return refused
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400 or self.is_api(request):
                raise
            response = self.error_page(exc.status, exc.text or exc.reason)
        except READ_ERRORS as exc:
            log.warning("%s %s failed: %s", request.method, request.path, exc)
            response = self.cannot_read(request, exc)
        add_security_headers(response)
        return response

    def error_page(self, status: int, message: str) -> web.Response:
        return html_response(pages.error_page(self.page(), status, message), status)

    def cannot_read(self, request: web.Request, exc: Exception) -> web.Response:
        """503: Redis could not be read."""
        message = f"cannot read Redis: {redact(exc)}"
        return json_response({"error": message}, 503) if self.is_api(request) else self.error_page(503, message)

    async def close_monitor(self, app: web.Application) -> None:
        await self.monitor.close()

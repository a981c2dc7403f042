"""The dashboard's HTML, rendered on the server from the monitor's dataclasses.

Every value from Redis goes through :func:`html.escape` (job data is user
input). Figures carry ``data-field`` attributes so tests and scripts can read
them without parsing layout.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from bullbridge.dashboard import charts
from bullbridge.monitor import format as fmt
from bullbridge.monitor.jobs import STATES, JobDetail, JobPage
from bullbridge.monitor.migration import LanguageStats
from bullbridge.monitor.monitor import QueueStats
from bullbridge.monitor.sample import FinishedSample, Percentiles
from bullbridge.monitor.throughput import MINUTE_MS
from bullbridge.monitor.workers import WorkerInfo
from bullbridge.scheduler.records import SchedulerPage

STATE_LABELS = {
    "waiting": "waiting",
    "active": "active",
    "delayed": "delayed",
    "prioritized": "prioritized",
    "waiting-children": "waiting-children",
    "paused": "paused (legacy list)",
    "completed": "completed",
    "failed": "failed",
}


@dataclass(frozen=True)
class Page:
    """What every page needs to know about the app."""

    base: str
    prefix: str
    redis: str
    actions: bool
    now_ms: int

    def url(self, *parts: str, **query: Any) -> str:
        path = self.base + "/" + "/".join(quote(p, safe="") for p in parts) if parts else self.base + "/"
        clean = {k: v for k, v in query.items() if v is not None}
        return path + ("?" + urlencode(clean) if clean else "")


def e(value: Any) -> str:
    return escape(str(value), quote=True)


def layout(page: Page, title: str, body: str, *, crumbs: Sequence[tuple[str, str]] = (), flash: str = "") -> str:
    trail = " / ".join(
        [
            f'<a href="{e(page.url())}">queues</a>',
            *(f'<a href="{e(href)}">{e(label)}</a>' if href else e(label) for label, href in crumbs),
        ]
    )
    mode = (
        '<span class="badge warn" data-field="mode">actions enabled</span>'
        if page.actions
        else '<span class="badge" data-field="mode">read-only</span>'
    )
    notice = f'<p class="flash" role="status">{e(flash)}</p>' if flash else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)} - bullbridge</title>
<link rel="stylesheet" href="{e(page.base)}/static/dashboard.css">
<script src="{e(page.base)}/static/dashboard.js" defer></script>
</head><body>
<header><a class="brand" href="{e(page.url())}">bullbridge</a>
<nav>{trail}</nav>
<span class="meta">prefix <code>{e(page.prefix)}</code> on <code>{e(page.redis)}</code> {mode}
<a href="{e(page.url("workers"))}">workers</a>
<label class="refresh"><input type="checkbox" id="autorefresh"> auto-refresh</label></span>
</header>
<main>
<h1>{e(title)}</h1>
{notice}
{body}
</main>
<footer>read at {e(fmt.timestamp(page.now_ms))}</footer>
</body></html>"""


def _pct(p: Percentiles) -> str:
    return f"{fmt.duration(p.p50)} / {fmt.duration(p.p95)}"


def _workers_cell(counts: dict[str, int]) -> str:
    return e(fmt.workers(counts))


def _spark(stats: QueueStats) -> str:
    series = list(reversed(stats.throughput.completed))
    return charts.sparkline(series, width=90, label=f"jobs completed per minute, last {len(series)} minutes")


# --- overview ---------------------------------------------------------------------------


def overview(page: Page, stats: Sequence[QueueStats]) -> str:
    total = {s: sum(q.counts[s] for q in stats) for s in ("waiting", "active", "delayed", "failed")}
    langs: dict[str, int] = {}
    for q in stats:
        for lang, n in q.workers.items():
            langs[lang] = langs.get(lang, 0) + n
    cards = "".join(
        f'<div class="card"><span class="n" data-field="total-{k}">{v:,}</span><span>{e(k)}</span></div>'
        for k, v in (("queues", len(stats)), *total.items())
    )
    cards += (
        f'<div class="card"><span class="n" data-field="total-workers">{e(fmt.workers(langs))}</span>'
        f"<span>workers</span></div>"
    )
    rows = []
    for s in stats:
        c = s.counts
        paused = ' <span class="badge warn">paused</span>' if s.paused else ""
        cells = [
            f'<td class="name"><a href="{e(page.url("queues", s.queue))}">{e(s.queue)}</a>{paused}</td>',
            *(
                f'<td class="num" data-field="{state}"><a href="{e(page.url("queues", s.queue, "jobs", state=state))}">'
                f"{c[state]:,}</a></td>"
                for state in ("waiting", "active", "delayed", "prioritized", "waiting-children", "completed", "failed")
            ),
            f'<td class="num" data-field="completed-per-minute">{e(fmt.rate(s.throughput.completed_per_minute))}</td>',
            f'<td class="num" data-field="failed-per-minute">{e(fmt.rate(s.throughput.failed_per_minute))}</td>',
            f'<td class="num" data-field="failure-rate">{e(fmt.percent(s.failure_rate))}</td>',
            f'<td class="num" data-field="wait">{e(_pct(s.wait))}</td>',
            f'<td class="num" data-field="processing">{e(_pct(s.processing))}</td>',
            f'<td class="num" data-field="oldest-waiting">{e(fmt.duration(s.oldest_waiting_age_ms))}</td>',
            f'<td data-field="workers">{_workers_cell(s.workers)}</td>',
            f"<td>{_spark(s)}</td>",
        ]
        rows.append(f'<tr data-queue="{e(s.queue)}">{"".join(cells)}</tr>')
    head = (
        "<tr><th>queue</th><th>waiting</th><th>active</th><th>delayed</th>"
        '<th title="prioritized">prio</th><th title="waiting-children">children</th><th>completed</th>'
        '<th>failed</th><th title="completed per minute">done/m</th><th title="failed per minute">fail/m</th>'
        '<th title="failure rate of the newest finished jobs">fail %</th><th>wait p50/p95</th>'
        '<th>proc. p50/p95</th><th title="age of the oldest waiting job">oldest</th><th>workers</th>'
        "<th>last hour</th></tr>"
    )
    empty = "" if stats else '<p class="empty">No queues under this prefix yet.</p>'
    body = (
        f'<section class="cards">{cards}</section>{empty}'
        f'<div class="scroll"><table id="queues" class="grid"><thead>{head}</thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        f'<p class="note">Failure rate and percentiles come from the newest finished jobs of each queue '
        f"(sample size per queue in its page); throughput from BullMQ's metrics keys when workers record "
        f"them, else from finish times.</p>"
    )
    return layout(page, "Queues", body)


# --- queue ------------------------------------------------------------------------------


def _language_table(languages: dict[str, LanguageStats]) -> str:
    if not languages:
        return '<p class="empty">No finished jobs yet.</p>'
    rows = "".join(
        f'<tr data-language="{e(lang)}"><td>{e(lang)}</td><td class="num" data-field="jobs">{s.jobs:,}</td>'
        f'<td class="num" data-field="share">{e(fmt.percent(s.share))}</td>'
        f'<td class="num" data-field="failure-rate">{e(fmt.percent(s.failure_rate))}</td>'
        f'<td class="num" data-field="processing-p50">{e(fmt.duration(s.processing.p50))}</td>'
        f'<td class="num" data-field="processing-p95">{e(fmt.duration(s.processing.p95))}</td>'
        f'<td class="num" data-field="wait-p95">{e(fmt.duration(s.wait.p95))}</td>'
        f'<td class="num" data-field="retried">{s.retried:,} ({e(fmt.percent(s.retry_rate))})</td></tr>'
        for lang, s in languages.items()
    )
    return (
        '<table id="languages" class="grid"><thead><tr><th>language</th><th>jobs</th><th>share</th>'
        "<th>failure rate</th><th>processing p50</th><th>processing p95</th><th>wait p95</th>"
        f"<th>retried</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def workers_table(workers: Sequence[WorkerInfo], *, with_queue: bool = False, page: Page | None = None) -> str:
    if not workers:
        return '<p class="empty">No worker connected.</p>'
    rows = []
    for w in sorted(workers, key=lambda w: (w.queue, w.language, w.name or "")):
        queue = ""
        if with_queue and page is not None:
            queue = f'<td><a href="{e(page.url("queues", w.queue))}">{e(w.queue)}</a></td>'
        rows.append(
            f'<tr data-language="{e(w.language)}">{queue}<td>{e(w.language)}</td>'
            f"<td>{e(w.name or '(unnamed)')}</td><td><code>{e(w.addr)}</code></td>"
            f'<td class="num">{e(fmt.duration(w.age_seconds * 1000))}</td>'
            f'<td class="num">{e(fmt.duration(w.idle_seconds * 1000))}</td></tr>'
        )
    head = ("<th>queue</th>" if with_queue else "") + (
        "<th>language</th><th>name</th><th>address</th><th>connected</th><th>idle</th>"
    )
    return f'<table class="grid workers"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def schedulers_table(page: Page, sched: SchedulerPage) -> str:
    if not sched.schedulers:
        return '<p class="empty">No job schedulers.</p>'
    rows = []
    for s in sched.schedulers:
        rule = fmt.schedule_rule(s.pattern, s.every)
        rows.append(
            f'<tr data-scheduler="{e(s.id)}"><td>{e(s.id)}</td><td>{e(s.name or "-")}</td><td><code>{e(rule)}</code>'
            f"{' ' + e(s.tz) if s.tz else ''}</td>"
            f'<td data-field="next" data-ms="{s.next_run_ms or ""}">{e(fmt.relative(s.next_run_ms, page.now_ms))}'
            f" <small>{e(fmt.timestamp(s.next_run_ms))}</small></td>"
            f'<td class="num">{e(fmt.number(s.iteration_count))}'
            f"{' / ' + e(fmt.number(s.limit)) if s.limit else ''}</td>"
            f"<td>{'legacy' if s.legacy else ''}</td></tr>"
        )
    return (
        '<table id="schedulers" class="grid"><thead><tr><th>id</th><th>job name</th><th>rule</th>'
        f"<th>next run</th><th>runs</th><th></th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def latency_series(sample: FinishedSample, minute_ms: int, minutes: int) -> tuple[list[float | None], ...]:
    """Per minute (oldest first): processing p50, processing p95, wait p95 of the sampled jobs."""
    buckets: list[list[tuple[int | None, int | None]]] = [[] for _ in range(minutes)]
    for job in sample.jobs:
        if job.finished_on is None:
            continue
        index = (minute_ms - (job.finished_on // MINUTE_MS) * MINUTE_MS) // MINUTE_MS
        if 0 <= index < minutes:
            buckets[minutes - 1 - index].append((job.processing_ms, job.wait_ms))
    p50: list[float | None] = []
    p95: list[float | None] = []
    w95: list[float | None] = []
    for bucket in buckets:
        proc = Percentiles.of(p for p, _ in bucket if p is not None)
        wait = Percentiles.of(w for _, w in bucket if w is not None)
        p50.append(proc.p50)
        p95.append(proc.p95)
        w95.append(wait.p95)
    return p50, p95, w95


def _actions_panel(page: Page, stats: QueueStats) -> str:
    if not page.actions:
        return ""
    q = stats.queue

    def form(action: str, label: str, confirm: str, extra: str = "", danger: bool = False) -> str:
        return (
            f'<form method="post" action="{e(page.url("queues", q, "actions", action))}" '
            f'data-confirm="{e(confirm)}" class="action">{extra}'
            f'<input type="password" name="token" placeholder="token" autocomplete="off" required>'
            f'<button type="submit" class="{"danger" if danger else ""}">{e(label)}</button></form>'
        )

    c = stats.counts
    pause = (
        form("resume", "resume", f"Resume queue {q}?")
        if stats.paused
        else form("pause", "pause", f"Pause queue {q} for every worker?")
    )
    age = (
        '<select name="state"><option>completed</option><option>failed</option></select>'
        '<input name="age" value="1d" size="5" aria-label="older than">'
    )
    return (
        '<section class="actions"><h2>Actions</h2>'
        + pause
        + form("retry", f"retry {c['failed']:,} failed", f"Move {c['failed']} failed jobs of {q} back to wait?")
        + form("promote", f"promote {c['delayed']:,} delayed", f"Run {c['delayed']} delayed jobs of {q} now?")
        + form("clean", "clean older than", f"Delete old jobs of {q}?", age, danger=True)
        + form("drain", "drain waiting", f"Delete every waiting job of {q}?", danger=True)
        + "</section>"
    )


def queue_page(
    page: Page,
    stats: QueueStats,
    sample: FinishedSample,
    workers: Sequence[WorkerInfo],
    sched: SchedulerPage,
    *,
    flash: str = "",
) -> str:
    q = stats.queue
    c = stats.counts
    tabs = "".join(
        f'<a class="state" href="{e(page.url("queues", q, "jobs", state=s))}" data-field="{s}">'
        f'<span class="n">{c[s]:,}</span> {e(STATE_LABELS[s])}</a>'
        for s in STATES
    )
    t = stats.throughput
    minutes = len(t.completed)
    throughput = charts.bar_chart(
        f"jobs finished per minute, last {minutes} minutes ({t.source})",
        [
            charts.Series("completed", charts.COMPLETED, list(reversed(t.completed))),
            charts.Series("failed", charts.FAILED, list(reversed(t.failed))),
        ],
        x_labels=(f"-{minutes} min", "now"),
    )
    p50, p95, w95 = latency_series(sample, t.minute_ms, minutes)
    latency = charts.line_chart(
        f"latency of sampled jobs per minute, last {minutes} minutes",
        [
            charts.Series("processing p50", charts.P50, p50),
            charts.Series("processing p95", charts.P95, p95),
            charts.Series("wait p95", charts.WAIT, w95),
        ],
        x_labels=(f"-{minutes} min", "now"),
        y_format=lambda v: fmt.duration(v),
    )
    paused = '<span class="badge warn" data-field="queue-paused">paused</span>' if stats.paused else ""
    figures = [
        ("completed-per-minute", "done / min", fmt.rate(t.completed_per_minute)),
        ("failed-per-minute", "failed / min", fmt.rate(t.failed_per_minute)),
        ("failure-rate", "failure rate", fmt.percent(stats.failure_rate)),
        ("wait-p50", "wait p50", fmt.duration(stats.wait.p50)),
        ("wait-p95", "wait p95", fmt.duration(stats.wait.p95)),
        ("wait-p99", "wait p99", fmt.duration(stats.wait.p99)),
        ("processing-p50", "processing p50", fmt.duration(stats.processing.p50)),
        ("processing-p95", "processing p95", fmt.duration(stats.processing.p95)),
        ("processing-p99", "processing p99", fmt.duration(stats.processing.p99)),
        ("oldest-waiting", "oldest waiting", fmt.duration(stats.oldest_waiting_age_ms)),
        ("workers", "workers", fmt.workers(stats.workers)),
    ]
    figure_html = "".join(
        f'<div class="card"><span class="n" data-field="{k}">{e(v)}</span><span>{e(label)}</span></div>'
        for k, label, v in figures
    )
    more_sched = (
        f'<p><a href="{e(page.url("queues", q, "schedulers"))}">all {sched.total:,} schedulers</a></p>'
        if sched.total > len(sched.schedulers)
        else ""
    )
    body = (
        f'<div id="queue" data-queue="{e(q)}">{paused}<nav class="states">{tabs}</nav>'
        f'<section class="cards">{figure_html}</section>'
        f'<p class="note">Latency and failure rate from the newest {stats.sample.size:,} finished jobs'
        f"{' (more exist)' if stats.sample.truncated else ''}; throughput over {t.window_minutes} minutes from "
        f"{'BullMQ metrics keys' if t.source == 'metrics' else 'finish times'}.</p>"
        f'<section class="charts"><figure>{throughput}</figure><figure>{latency}</figure></section>'
        f"<h2>By language</h2>{_language_table(stats.languages)}"
        f"<h2>Workers</h2>{workers_table(workers)}"
        f"<h2>Schedulers</h2>{schedulers_table(page, sched)}{more_sched}"
        f"{_actions_panel(page, stats)}</div>"
    )
    return layout(page, f"Queue {q}", body, crumbs=[(q, "")], flash=flash)


# --- jobs -------------------------------------------------------------------------------


def jobs_page(page: Page, jobs: JobPage, counts: dict[str, int]) -> str:
    q = jobs.queue
    tabs = "".join(
        f'<a class="state{" current" if s == jobs.state else ""}" '
        f'href="{e(page.url("queues", q, "jobs", state=s))}"><span class="n">{counts[s]:,}</span> {e(s)}</a>'
        for s in STATES
    )
    rows = []
    for j in jobs.jobs:
        outcome = j.failed_reason or (json.dumps(j.progress) if j.progress not in (0, None) else "")
        rows.append(
            f'<tr data-job="{e(j.id)}"><td><a href="{e(page.url("queues", q, "jobs", j.id))}">{e(j.id)}</a></td>'
            f"<td>{e(j.name)}</td><td>{e(fmt.timestamp(j.timestamp))}</td>"
            f"<td>{e(fmt.timestamp(j.processed_on))}</td><td>{e(fmt.timestamp(j.finished_on))}</td>"
            f'<td class="num">{j.attempts_made}</td>'
            f'<td data-field="language">{e(j.language)}{" / " + e(j.processed_by) if j.processed_by else ""}</td>'
            f'<td class="outcome">{e(outcome[:200])}</td></tr>'
        )
    size = jobs.count
    page_no = jobs.start // size + 1
    pages = max(1, -(-jobs.total // size))

    def goto(number: int) -> str:
        return e(page.url("queues", q, "jobs", state=jobs.state, page=number, size=size))

    prev_link = f'<a rel="prev" href="{goto(page_no - 1)}">previous</a>' if page_no > 1 else "<span>previous</span>"
    next_link = f'<a rel="next" href="{goto(page_no + 1)}">next</a>' if page_no < pages else "<span>next</span>"
    pager = (
        f'<nav class="pager">{prev_link} <span data-field="page">page {page_no} of {pages}</span> '
        f"({jobs.total:,} jobs) {next_link}</nav>"
    )
    table = (
        (
            '<table id="jobs" class="grid"><thead><tr><th>id</th><th>name</th><th>created</th><th>processed</th>'
            "<th>finished</th><th>attempts</th><th>worker</th><th>reason / progress</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
        if rows
        else f'<p class="empty">No {e(jobs.state)} jobs.</p>'
    )
    body = f'<nav class="states">{tabs}</nav>{pager}{table}{pager if rows else ""}'
    return layout(page, f"{q}: {jobs.state} jobs", body, crumbs=[(q, page.url("queues", q)), (jobs.state, "")])


def _pre(value: Any) -> str:
    return f"<pre>{e(json.dumps(value, indent=2, ensure_ascii=False, default=str))}</pre>"


def job_page(page: Page, job: JobDetail, *, flash: str = "") -> str:
    q = job.queue
    facts = [
        ("state", job.state),
        ("name", job.name),
        ("created", fmt.timestamp(job.timestamp)),
        ("processed", fmt.timestamp(job.processed_on)),
        ("finished", fmt.timestamp(job.finished_on)),
        ("waited", fmt.duration(job.wait_ms)),
        ("ran", fmt.duration(job.processing_ms)),
        ("attempts made", str(job.attempts_made)),
        ("attempts started", str(job.attempts_started)),
        ("stalled", str(job.stalled_counter)),
        ("worker", f"{job.worker_name or '-'} ({job.language})"),
        ("progress", json.dumps(job.progress, ensure_ascii=False)),
    ]
    if job.delay:
        facts.append(("delay", fmt.duration(job.delay)))
    if job.priority:
        facts.append(("priority", str(job.priority)))
    if job.repeat_job_key:
        facts.append(("scheduler", job.repeat_job_key))
    if job.deduplication_id:
        facts.append(("deduplication id", job.deduplication_id))
    dl = "".join(f'<dt>{e(k)}</dt><dd data-field="{e(k.replace(" ", "-"))}">{e(v)}</dd>' for k, v in facts)
    parent = ""
    if job.parent is not None or job.parent_key:
        pid = (job.parent or {}).get("id")
        pqueue = str((job.parent or {}).get("queueKey", "")).rsplit(":", 1)[-1]
        link = (
            f'<a href="{e(page.url("queues", pqueue, "jobs", str(pid)))}">{e(job.parent_key or pid)}</a>'
            if pid and pqueue
            else e(job.parent_key or "")
        )
        parent = f'<h2>Parent</h2><p data-field="parent">{link}</p>'
    children = ""
    if job.children.total:
        c = job.children.counts
        items = "".join(f"<li>pending <code>{e(k)}</code></li>" for k in job.children.unprocessed)
        items += "".join(
            f"<li>processed <code>{e(k)}</code> &rarr; <code>{e(json.dumps(v, default=str))}</code></li>"
            for k, v in job.children.processed.items()
        )
        items += "".join(f"<li>failed <code>{e(k)}</code></li>" for k in job.children.failed)
        items += "".join(f"<li>ignored <code>{e(k)}</code>: {e(v)}</li>" for k, v in job.children.ignored.items())
        children = (
            f'<h2>Children</h2><p data-field="children">{c["processed"]} processed, {c["unprocessed"]} '
            f"pending, {c['failed']} failed, {c['ignored']} ignored</p><ul>{items}</ul>"
        )
    failure = ""
    if job.failed_reason:
        failure = f'<h2>Failed reason</h2><p class="error" data-field="failed-reason">{e(job.failed_reason)}</p>'
    if job.stacktrace:
        failure += "<h2>Stacktrace</h2>" + "".join(f"<pre>{e(t)}</pre>" for t in job.stacktrace)
    logs = ""
    if job.log_count:
        logs = f'<h2>Logs ({job.log_count:,})</h2><pre data-field="logs">' + e("\n".join(job.logs)) + "</pre>"
    problems = ""
    if job.problems:
        problems = "<h2>Problems in this hash</h2><ul>" + "".join(f"<li>{e(p)}</li>" for p in job.problems) + "</ul>"
    actions = ""
    if page.actions:
        buttons = []
        if job.state == "failed":
            buttons.append(("retry-job", "retry"))
        if job.state == "delayed":
            buttons.append(("promote-job", "promote"))
        if job.state != "active":
            buttons.append(("remove-job", "remove"))
        actions = (
            '<section class="actions"><h2>Actions</h2>'
            + "".join(
                f'<form method="post" action="{e(page.url("queues", q, "actions", name))}" class="action" '
                f'data-confirm="{e(label.capitalize())} job {e(job.id)}?"><input type="hidden" name="job" '
                f'value="{e(job.id)}"><input type="password" name="token" placeholder="token" autocomplete="off" '
                f'required><button type="submit">{e(label)}</button></form>'
                for name, label in buttons
            )
            + "</section>"
        )
    returned = f"<h2>Return value</h2>{_pre(job.returnvalue)}" if job.returnvalue is not None else ""
    body = (
        f'<div id="job" data-job="{e(job.id)}"><dl class="facts">{dl}</dl>{failure}{returned}'
        f"<h2>Data</h2>{_pre(job.data)}<h2>Options</h2>{_pre(job.opts)}{parent}{children}{logs}{problems}"
        f"{actions}</div>"
    )
    return layout(
        page,
        f"Job {job.id}",
        body,
        crumbs=[(q, page.url("queues", q)), (job.state, page.url("queues", q, "jobs", state=job.state)), (job.id, "")],
        flash=flash,
    )


def schedulers_page(page: Page, queue: str, sched: SchedulerPage, size: int) -> str:
    page_no = sched.start // size + 1
    pages = max(1, -(-sched.total // size))
    nav = (
        '<nav class="pager">'
        + (
            f'<a rel="prev" href="{e(page.url("queues", queue, "schedulers", page=page_no - 1))}">previous</a>'
            if page_no > 1
            else "<span>previous</span>"
        )
        + f" <span>page {page_no} of {pages}</span> ({sched.total:,} schedulers) "
        + (
            f'<a rel="next" href="{e(page.url("queues", queue, "schedulers", page=page_no + 1))}">next</a>'
            if page_no < pages
            else "<span>next</span>"
        )
        + "</nav>"
    )
    return layout(
        page,
        f"{queue}: schedulers",
        nav + schedulers_table(page, sched),
        crumbs=[(queue, page.url("queues", queue)), ("schedulers", "")],
    )


def workers_page(page: Page, workers: dict[str, list[WorkerInfo]]) -> str:
    flat = [w for ws in workers.values() for w in ws]
    by_lang: dict[str, int] = {}
    for w in flat:
        by_lang[w.language] = by_lang.get(w.language, 0) + 1
    summary = ", ".join(f'<span data-field="workers-{e(k)}">{v}</span> {e(k)}' for k, v in sorted(by_lang.items()))
    return layout(
        page,
        "Workers",
        f"<p>{summary or 'No worker connected.'}</p>" + workers_table(flat, with_queue=True, page=page),
        crumbs=[("workers", "")],
    )


def error_page(page: Page, status: int, message: str) -> str:
    return layout(page, f"{status}", f'<p class="error">{e(message)}</p>')

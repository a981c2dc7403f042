"""The console table and the JSON file of a benchmark."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.procs import BENCH_DIR
from bench.suite import MIN_RUNS, Results, goals, summarize

RESULTS_DIR = BENCH_DIR / "results"
CASE_LABELS = {
    "inflight": "100 in flight",
    "bulk": "addBulk",
    "idle": "idle pickup",
    "steady": "steady rate",
    "sequential": "one at a time",
    "threads": "threads",
}
SYNC_PRODUCERS = {
    "node": "Node await queue.add",
    "bullbridge": "bullbridge await add",
    "sync": "bullbridge.sync add",
    "django": "Django @task.enqueue()",
}


def _num(value: float | None, digits: int = 0, suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{suffix}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 2) -> list[str]:
    """Columns sized to fit; the first ``left`` columns left-aligned, the rest right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i < left else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    return [line(header), *(line(r) for r in rows)]


def render(results: Results) -> str:
    cfg = results.config
    meta = results.meta
    v = meta.get("versions", {})
    rows = summarize(results)
    out = [
        f"bullbridge benchmark, {meta.get('started', '')}{'  [--quick: indicative only]' if cfg.quick else ''}",
        f"Redis {v.get('redis')} | Node {v.get('node')} + bullmq {v.get('bullmq_node')} | "
        f"Python {v.get('python')} + bullbridge {v.get('bullbridge')} (uvloop {v.get('uvloop')}) + "
        f"port bullmq {v.get('bullmq_port')} ({cfg.port_loop})",
        f"{meta.get('cpus')} CPUs; {meta.get('pinning')}",
    ]
    if cfg.profile_dir is not None:
        out.append(f"PROFILED into {cfg.profile_dir}: Python CPU and throughput figures are inflated")
    out += _drain_section(results, rows, "drain", f"DRAIN: {cfg.jobs:,} pre-filled no-op jobs per run")
    out += _drain_section(
        results, rows, "payload", f"PAYLOAD: {cfg.jobs:,} jobs of ~2 KB JSON each, the handler returns ~1 KB"
    )
    out += _drain_section(
        results,
        rows,
        "cpu",
        f"CPU-BOUND: {cfg.cpu_jobs:,} jobs of 10 ms pure Python/JavaScript, one pool process (Node: sandboxed "
        "child) per core of the client's (c = cores, so jobs/s here is per core x c); pool start-up included",
    )
    out += _drain_section(
        results, rows, "io", f"I/O-BOUND: {cfg.jobs:,} jobs, the handler awaits 5 ms; ideal = concurrency / 5 ms"
    )
    produce = [r for r in rows if r["suite"] == "produce"]
    if produce:
        out += [
            "",
            f"PRODUCE: {cfg.producer_jobs:,} no-op jobs per run from a connected, warmed-up producer; "
            f"{cfg.inflight} adds in flight, or addBulk of {cfg.bulk}; {cfg.runs} run(s), interleaved",
        ]
        out += _table(
            [
                "case",
                "producer",
                "ok",
                "jobs/s",
                "min-max",
                "spread",
                "x Node",
                "paired",
                "client us/job",
                "Redis us/job",
                "of Redis ceiling",
                "cmds/job",
                "peak RSS MB",
            ],
            [
                [
                    CASE_LABELS[r["case"]],
                    r["impl"],
                    f"{r['ok']}/{r['runs']}",
                    _num(r["jobs_per_s"]),
                    f"{_num(r['jobs_per_s_min'])}-{_num(r['jobs_per_s_max'])}",
                    _spread(r),
                    _vs_node(r),
                    _paired(r),
                    _num(r["client_cpu_us_per_job"], 1),
                    _num(r["redis_cpu_us_per_job"], 1),
                    _pct(r.get("of_redis_ceiling")),
                    _num(r["commands_per_job"], 1),
                    _num(r["peak_rss_mb"], 1),
                ]
                for r in produce
            ],
        )
    out += _sync_section(results, rows)
    latency = [r for r in rows if r["suite"] == "latency"]
    if latency:
        out += [
            "",
            f"LATENCY (ms): add -> handler start on one clock; idle = one job every {cfg.idle_interval_ms:g} "
            f"ms, steady = {cfg.steady_rate:g} jobs/s; worker concurrency {cfg.latency_concurrency}; "
            f"{cfg.latency_runs} run(s) pooled",
        ]
        out += _table(
            ["case", "worker", "ok", "samples", "p50", "p95", "p99", "max", "peak RSS MB"],
            [
                [
                    CASE_LABELS[r["case"]],
                    r["impl"],
                    f"{r['ok']}/{r['runs']}",
                    str(r["samples"]),
                    _num(r["p50_ms"], 2),
                    _num(r["p95_ms"], 2),
                    _num(r["p99_ms"], 2),
                    _num(r["max_ms"], 2),
                    _num(r["peak_rss_mb"], 1),
                ]
                for r in latency
            ],
        )
    out += _process_section(results, rows)
    goal_rows = goals(results)
    if goal_rows:
        out += ["", "GOALS, bullbridge"]
        out += _table(
            ["goal", "target", "measured", "result"],
            [
                [
                    g["goal"],
                    g["target"],
                    _num(g["measured"], 2, " " + g["unit"]),
                    _verdict(g["pass"]),
                ]
                for g in goal_rows
            ],
            left=2,
        )
    out += ["", *machine_lines([r.as_dict() for r in results.runs])]
    failed = [r for r in results.runs if not r.ok]
    if failed:
        out += ["", f"FAILED RUNS ({len(failed)}, left out of the figures above)"]
        for r in failed:
            out.append(f"  {r.suite} {r.case} {r.impl} run {r.run + 1}: " + " | ".join(r.problems)[:600])
    return "\n".join(out)


def machine_lines(runs: Sequence[dict[str, Any]]) -> list[str]:
    """What the machine did while each suite ran: the hypervisor's steal (CPU time taken by
    other guests), how busy all CPUs were, and the 1-minute load - so a spread is explained
    by the machine, or not. Runs measured before these were recorded have none of them."""
    out = ["MACHINE during the runs, per suite: median (max) of the runs"]
    rows = []
    for suite in dict.fromkeys(r["suite"] for r in runs):
        mine = [r for r in runs if r["suite"] == suite and r.get("steal_pct") is not None]
        if not mine:
            continue
        steal = sorted(r["steal_pct"] for r in mine)
        busy = sorted(r["busy_pct"] for r in mine)
        loads = [r["load1"] for r in mine if r.get("load1") is not None]
        rows.append(
            [
                suite,
                str(len(mine)),
                f"{statistics.median(steal):.1f} % ({steal[-1]:.1f} %)",
                f"{statistics.median(busy):.0f} % ({busy[-1]:.0f} %)",
                f"{min(loads):.1f}-{max(loads):.1f}" if loads else "-",
            ]
        )
    if not rows:
        return []
    return out + _table(["suite", "runs", "hypervisor steal", "all CPUs busy", "1-min load"], rows, left=2)


def _verdict(passed: bool | str | None) -> str:
    if passed is None:
        return "-"
    if isinstance(passed, str):
        return passed
    return "pass" if passed else "FAIL"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f} %"


def _spread(r: dict[str, Any]) -> str:
    """(max - min) / median of the runs' jobs/s."""
    return "-" if not r.get("jobs_per_s") else f"{r.get('spread', 0) * 100:.0f} %"


def _vs_node(r: dict[str, Any]) -> str:
    """The ratio, with '?' when either side's runs spread too much to trust it."""
    if r.get("vs_node") is None:
        return "-"
    return _num(r["vs_node"], 2) + ("" if r.get("vs_node_reliable") or r["impl"] == "node" else "?")


def _paired(r: dict[str, Any]) -> str:
    """The run-by-run ratio (median, min-max): see suite._paired."""
    if r.get("vs_node_paired") is None:
        return "-"
    lo, hi = r["vs_node_paired_range"]
    return f"{r['vs_node_paired']:.2f} ({lo:.2f}-{hi:.2f})"


def _drain_section(results: Results, rows: list[dict[str, Any]], suite: str, title: str) -> list[str]:
    """A worker table: the no-op drain, the payload and the I/O-bound rows."""
    cfg = results.config
    mine = [r for r in rows if r["suite"] == suite]
    if not mine:
        return []
    ceiling = next((r["redis_ceiling_jobs_per_s"] for r in mine if r.get("redis_ceiling_jobs_per_s")), None)
    out = [
        "",
        f"{title}; first job active -> last completed; {cfg.runs}+ run(s) per cell, interleaved"
        + ("" if suite == "cpu" else f", the process warmed up on {cfg.drain_warm:,} jobs first (not the port)")
        + "; medians of verified runs. "
        f"Redis ceiling here: {_num(ceiling)} jobs/s (one core at the lowest Redis us/job measured)",
    ]
    header = ["case", "worker", "ok", "jobs/s", "min-max", "spread", "x Node", "paired"]
    if suite == "io":
        header.append("of ideal")
    header += ["client us/job", "(sys)", "Redis us/job", "of Redis ceiling", "cmds/job", "scripts/job", "peak RSS MB"]

    def cells(r: dict[str, Any]) -> list[str]:
        row = [
            r["case"],
            r["impl"],
            f"{r['ok']}/{r['runs']}",
            _num(r["jobs_per_s"]),
            f"{_num(r['jobs_per_s_min'])}-{_num(r['jobs_per_s_max'])}",
            _spread(r),
            _vs_node(r),
            _paired(r),
        ]
        if suite == "io":
            ideal = int(r["case"][2:]) / 0.005
            row.append(_pct(r["jobs_per_s"] / ideal if r.get("jobs_per_s") else None))
        return [
            *row,
            _num(r["client_cpu_us_per_job"], 1),
            _num(r["client_cpu_sys_us_per_job"], 1),
            _num(r["redis_cpu_us_per_job"], 1),
            _pct(r.get("of_redis_ceiling")),
            _num(r["commands_per_job"], 1),
            _num(r["scripts_per_job"], 2),
            _num(r["peak_rss_mb"], 1),
        ]

    out += _table(header, [cells(r) for r in sorted(mine, key=lambda r: (int(r["case"][2:]), r["impl"] != "node"))])
    out.append(
        f"  spread = (max - min) / median of a cell's runs; '?' = a side spread by > {cfg.spread_limit * 100:.0f} %"
        f" even after up to {cfg.extra_runs} extra runs, or has < {MIN_RUNS} verified runs: not a result;"
        " paired = each run / Node's run of the same repetition, seconds apart: median (min-max)"
    )
    return out


def _process_section(results: Results, rows: list[dict[str, Any]]) -> list[str]:
    """The idle cost of one process serving many queues, and the time to first job."""
    cfg = results.config
    out: list[str] = []

    def span(r: dict[str, Any], name: str, digits: int) -> str:
        rng = r.get(f"{name}_range")
        return f"{_num(r.get(name), digits)} ({_num(rng[0], digits)}-{_num(rng[1], digits)})" if rng else "-"

    idle = [r for r in rows if r["suite"] == "idle"]
    if idle:
        out += [
            "",
            f"IDLE: one process serving {cfg.idle_queues} empty queues (a worker each, concurrency 1), measured "
            f"{cfg.idle_seconds:g} s after it is ready; medians (min-max) of {cfg.runs} run(s)",
        ]
        out += _table(
            ["case", "worker", "ok", "CPU % of a core", "Redis cmds/s", "connections", "RSS MB"],
            [
                [
                    r["case"],
                    r["impl"],
                    f"{r['ok']}/{r['runs']}",
                    span(r, "cpu_pct", 2),
                    span(r, "redis_cmds_per_s", 0),
                    _num(r.get("connections")),
                    span(r, "rss_mb", 1),
                ]
                for r in idle
            ],
        )
    startup = [r for r in rows if r["suite"] == "startup"]
    if startup:
        out += [
            "",
            "TIME TO FIRST JOB: process started cold (bullbridge: `bullbridge worker MODULE:ATTR --burst`; "
            f"Node: node + require('bullmq') + new Worker) -> first handler call, one job waiting; {cfg.runs} run(s)",
        ]
        out += _table(
            ["case", "worker", "ok", "ms"],
            [[r["case"], r["impl"], f"{r['ok']}/{r['runs']}", span(r, "first_job_ms", 0)] for r in startup],
        )
    return out


def _sync_section(results: Results, rows: list[dict[str, Any]]) -> list[str]:
    """Blocking adds (bullbridge.sync) beside the async ones and Node's."""
    cfg = results.config
    sync = [r for r in rows if r["suite"] == "sync"]
    if not sync:
        return []
    out = [
        "",
        f"SYNC: {cfg.sync_jobs:,} adds per run from a connected, warmed-up producer; one at a time "
        f"(latency = each add's own time), or {cfg.sync_threads} threads sharing one bullbridge.sync.Queue "
        f"beside the async Queue with {cfg.inflight} in flight; {cfg.runs} run(s), interleaved; "
        "x ref: one at a time vs Node's, threads vs the async 100 in flight",
    ]

    def label(r: dict[str, Any]) -> str:
        if r["case"] == "inflight-threads":
            return f"{cfg.sync_threads} in flight"
        return f"{cfg.sync_threads} threads" if r["case"] == "threads" else CASE_LABELS[r["case"]]

    def per_run(values: list[float | None]) -> str:
        present = [v for v in values if v is not None]
        return f"{_num(min(present), 3)}-{_num(max(present), 3)}" if present else "-"

    out += _table(
        [
            "case",
            "producer",
            "ok",
            "jobs/s",
            "min-max",
            "x ref",
            "p50 ms",
            "(runs)",
            "p99 ms",
            "(runs)",
            "client us/job",
        ],
        [
            [
                label(r),
                SYNC_PRODUCERS.get(r["impl"], r["impl"]),
                f"{r['ok']}/{r['runs']}",
                _num(r["jobs_per_s"]),
                f"{_num(r['jobs_per_s_min'])}-{_num(r['jobs_per_s_max'])}",
                _num(r.get("vs_ref"), 2),
                _num(r.get("p50_ms"), 3) if r.get("samples") else "-",
                per_run(r.get("p50_ms_per_run", [])) if r.get("samples") else "",
                _num(r.get("p99_ms"), 3) if r.get("samples") else "-",
                per_run(r.get("p99_ms_per_run", [])) if r.get("samples") else "",
                _num(r["client_cpu_us_per_job"], 1),
            ]
            for r in sync
        ],
    )
    return out


def write_json(results: Results, path: Path | None = None) -> Path:
    if path is None:
        RESULTS_DIR.mkdir(exist_ok=True)
        path = RESULTS_DIR / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    payload: dict[str, Any] = results.as_dict()
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    return path

"""The tables of docs/performance.md, from one results file of ``make bench``.

    .venv/bin/python -m bench.markdown bench/results/<timestamp>.json

Prints markdown: every figure of the page comes from that one run (the prose
around the tables is written by hand).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.report import machine_lines
from bench.suite import Results, goals, summarize

Row = dict[str, Any]


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f} %"


def _rate(row: Row | None, bold: bool = False) -> str:
    """jobs/s (min-max, spread), and the ratio to Node with '?' when it is not reliable."""
    if row is None or row.get("jobs_per_s") is None:
        return "-"
    text = f"{_num(row['jobs_per_s'])}/s"
    if bold:
        text = f"**{text}**"
    spread = f"{_num(row['jobs_per_s_min'])}-{_num(row['jobs_per_s_max'])}, {row['spread'] * 100:.0f} %"
    ratio = ""
    if row["impl"] != "node" and row.get("vs_node") is not None:
        ratio = f" {row['vs_node']:.2f}x{'' if row.get('vs_node_reliable') else '?'}"
    paired = ""
    if row.get("vs_node_paired") is not None:
        lo, hi = row["vs_node_paired_range"]
        paired = f"; paired {lo:.2f}-{hi:.2f}x"
    return f"{text}{ratio} <sub>({spread}; {row['ok']} runs{paired})</sub>"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def _cases(rows: list[Row], suite: str) -> list[str]:
    seen: list[str] = []
    for r in rows:
        if r["suite"] == suite and r["case"] not in seen:
            seen.append(r["case"])
    return sorted(seen, key=lambda c: int(c[2:]) if c.startswith("c=") else 0)


def worker_table(rows: list[Row], suite: str, impls: Sequence[str]) -> list[str]:
    by = {(r["case"], r["impl"]): r for r in rows if r["suite"] == suite}
    header = ["concurrency", *impls, "client CPU us/job (" + " / ".join(impls) + ")"]
    header += ["Redis CPU us/job", "of Redis ceiling (" + " / ".join(impls) + ")", "peak RSS MB"]
    out = []
    for case in _cases(rows, suite):
        cells = [case.removeprefix("c=")]
        cells += [_rate(by.get((case, impl)), bold=impl == "bullbridge") for impl in impls]
        cells.append(" / ".join(_num((by.get((case, i)) or {}).get("client_cpu_us_per_job")) for i in impls))
        cells.append(" / ".join(_num((by.get((case, i)) or {}).get("redis_cpu_us_per_job")) for i in impls))
        cells.append(" / ".join(_pct((by.get((case, i)) or {}).get("of_redis_ceiling")) for i in impls))
        cells.append(" / ".join(_num((by.get((case, i)) or {}).get("peak_rss_mb")) for i in impls))
        out.append(cells)
    return _table(header, out)


def render(data: dict[str, Any]) -> str:
    rows: list[Row] = data["summary"]
    impls = [i for i in ("node", "bullbridge", "port") if any(r["impl"] == i for r in rows)]
    two = [i for i in ("node", "bullbridge") if i in impls]
    out = [f"run {data['meta'].get('started')} - {data['meta'].get('finished')}, {data['meta'].get('pinning')}"]
    for suite, which in (("drain", impls), ("payload", two), ("io", two), ("cpu", two)):
        if any(r["suite"] == suite for r in rows):
            out += ["", f"### {suite}", "", *worker_table(rows, suite, which)]
    produce = [r for r in rows if r["suite"] in ("produce", "sync")]
    if produce:
        out += ["", "### producers", ""]
        out += _table(
            ["suite", "case", "producer", "jobs/s", "x ref", "client CPU us/job", "of Redis ceiling"],
            [
                [
                    r["suite"],
                    r["case"],
                    r["impl"],
                    _rate(r),
                    _num(r.get("vs_ref"), 2) if r.get("vs_ref") is not None else "-",
                    _num(r.get("client_cpu_us_per_job"), 1),
                    _pct(r.get("of_redis_ceiling")),
                ]
                for r in produce
            ],
        )
    latency = [r for r in rows if r["suite"] == "latency" or (r["suite"] == "sync" and r.get("samples"))]
    if latency:
        out += ["", "### latency", ""]
        out += _table(
            ["suite", "case", "impl", "p50 ms", "p99 ms", "samples"],
            [
                [
                    r["suite"],
                    r["case"],
                    r["impl"],
                    _num(r.get("p50_ms"), 2),
                    _num(r.get("p99_ms"), 2),
                    str(r["samples"]),
                ]
                for r in latency
            ],
        )
    for suite, names in (
        ("idle", ("cpu_pct", "redis_cmds_per_s", "connections", "rss_mb")),
        ("startup", ("first_job_ms",)),
    ):
        mine = [r for r in rows if r["suite"] == suite]
        if not mine:
            continue
        out += ["", f"### {suite}", ""]

        def cell(r: Row, name: str) -> str:
            rng = r.get(f"{name}_range")
            digits = 2 if name == "cpu_pct" else 0
            return f"{_num(r.get(name), digits)} ({_num(rng[0], digits)}-{_num(rng[1], digits)})" if rng else "-"

        out += _table(["case", "impl", *names], [[r["case"], r["impl"], *(cell(r, n) for n in names)] for r in mine])
    machine = machine_lines(data.get("runs") or [])
    if machine:
        out += ["", "### machine", "", "```", *machine, "```"]
    goals = data.get("goals") or []
    if goals:
        out += ["", "### goals", ""]
        out += _table(
            ["goal", "target", "measured", "result"],
            [
                [
                    g["goal"],
                    g["target"],
                    f"{_num(g['measured'], 2)} {g['unit']}" if g["measured"] is not None else "-",
                    g["pass"] if isinstance(g["pass"], str) else ("pass" if g["pass"] else "FAIL"),
                ]
                for g in goals
            ],
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m bench.markdown bench/results/<timestamp>.json\n")
        return 2
    data = json.loads(Path(args[0]).read_text())
    # Summaries are computed again by this version of the code (a newer column, an older run).
    results = Results.from_dict(data)
    data["summary"], data["goals"] = summarize(results), goals(results)
    print(render(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())

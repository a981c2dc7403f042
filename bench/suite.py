"""The whole benchmark: what runs, in which order, and the summary of the runs.

Runs are interleaved - for each repetition, every case runs once for every
implementation (A B C A B C ...) - so a noisy minute on a shared machine hits
all of them alike instead of one implementation's whole series.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from bench.harness import DJANGO_IMPL, IMPLS, SYNC_IMPL, Bench, RunResult, percentile
from bench.procs import Pinning

Progress = Callable[[str], None]

#: The ``sync`` suite, (case, producer) in run order: blocking adds one after another
#: beside Node's and the async Queue's sequential ``await add``; threads sharing one
#: blocking queue beside the async Queue with 100 adds in flight, and with as many in
#: flight as there are threads (``inflight-threads``: the same concurrency, no threads).
SYNC_CASES = (
    ("sequential", "node"),
    ("sequential", "bullbridge"),
    ("sequential", SYNC_IMPL),
    ("sequential", DJANGO_IMPL),
    ("inflight", "bullbridge"),
    ("inflight-threads", "bullbridge"),
    ("threads", SYNC_IMPL),
)
#: What each ``sync`` row is compared with (its "x ref" column).
SYNC_REFERENCE = {
    ("sequential", "bullbridge"): ("sequential", "node"),
    ("sequential", SYNC_IMPL): ("sequential", "node"),
    ("sequential", DJANGO_IMPL): ("sequential", "node"),
    ("threads", SYNC_IMPL): ("inflight", "bullbridge"),
}


@dataclass
class Config:
    jobs: int = 20_000
    runs: int = 3
    concurrency: tuple[int, ...] = (1, 10, 100)
    impls: tuple[str, ...] = IMPLS
    suites: tuple[str, ...] = ("drain", "payload", "io", "cpu", "produce", "latency", "sync", "idle", "startup")
    producer_jobs: int = 10_000
    sync_jobs: int = 8_000
    sync_threads: int = 8
    inflight: int = 100
    bulk: int = 1000
    producer_warm: int = 1000
    fill_batch: int = 1000
    idle_samples: int = 200
    idle_interval_ms: float = 50.0
    steady_rate: float = 200.0
    steady_seconds: float = 10.0
    latency_concurrency: int = 1
    latency_runs: int = 3
    latency_impls: tuple[str, ...] = ("node", "bullbridge")
    #: The workload rows (bench/README.md): ~2 KB of JSON in / ~1 KB out, and 5 ms I/O-bound handlers.
    payload_concurrency: tuple[int, ...] = (1, 10, 100)
    io_concurrency: tuple[int, ...] = (100, 1000)
    #: Jobs per run of the CPU-bound rows (10 ms of pure Python/JavaScript each).
    cpu_jobs: int = 500
    #: The idle cost: one process serving this many empty queues, measured for ``idle_seconds``.
    idle_queues: int = 200
    idle_seconds: float = 10.0
    #: Jobs each drain process drains from another queue before it is timed (Node and bullbridge).
    drain_warm: int = 1000
    #: A cell whose Node runs spread by more than ``spread_limit`` (max-min over the median)
    #: gets up to ``extra_runs`` more interleaved runs; a ratio whose either side still does is
    #: marked unreliable instead of pass/FAIL.
    spread_limit: float = 0.10
    extra_runs: int = 2
    warmup: int = 5
    pin: bool = True
    port_loop: str = "asyncio"
    redis_binary: str | None = None
    quick: bool = False
    profile_dir: Path | None = None

    @classmethod
    def quick_mode(cls, **overrides: Any) -> Config:
        """A smoke run in well under 30 s: 2,000 jobs, one run, c=10."""
        base = cls(
            jobs=2_000,
            runs=1,
            concurrency=(10,),
            producer_jobs=2_000,
            sync_jobs=1_000,
            payload_concurrency=(10,),
            io_concurrency=(100,),
            drain_warm=200,
            extra_runs=0,
            cpu_jobs=100,
            idle_queues=20,
            idle_seconds=2.0,
            idle_samples=20,
            steady_seconds=1.0,
            warmup=3,
            latency_runs=1,
            quick=True,
        )
        for key, value in overrides.items():
            setattr(base, key, value)
        return base

    def latency_impls_selected(self) -> tuple[str, ...]:
        return tuple(i for i in self.impls if i in self.latency_impls)


@dataclass
class Results:
    config: Config
    meta: dict[str, Any] = field(default_factory=dict)
    runs: list[RunResult] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "config": asdict(self.config),
            "summary": summarize(self),
            "goals": goals(self),
            "runs": [r.as_dict() for r in self.runs],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Results:
        """A saved run read back (``bench/results/*.json``), so its summary can be computed
        again by this version of the code."""
        known = {f.name for f in fields(Config)}
        config = Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in data["config"].items() if k in known})
        names = {f.name for f in fields(RunResult)}
        # load1 explicitly: its default reads today's load, which a run saved without it never had.
        runs = [
            RunResult(**{k: v for k, v in r.items() if k in names} | {"load1": r.get("load1")}) for r in data["runs"]
        ]
        return cls(config, data.get("meta", {}), runs)


async def run_suite(config: Config, progress: Progress | None = None, pinning: Pinning | None = None) -> Results:
    """Run every selected case; ``pinning`` as detected before the caller pinned itself."""
    say = progress or (lambda text: None)
    results = Results(config)
    async with Bench(
        pin=pinning if pinning is not None else config.pin,
        redis_binary=config.redis_binary,
        port_loop=config.port_loop,
        fill_batch=config.fill_batch,
        profile_dir=config.profile_dir,
    ) as bench:
        results.meta = {
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "pinning": bench.pinning.describe(),
            "versions": bench.versions,
            "argv": sys.argv[1:],
        }

        def record(result: RunResult) -> None:
            result.machine_during()
            results.runs.append(result)
            status = "ok" if result.ok else "FAILED: " + "; ".join(result.problems)[:200]
            rate = f"{result.jobs_per_s:,.0f} jobs/s" if result.jobs_per_s else ""
            lat = f"p50 {result.latency_ms['p50']:.2f} ms" if result.latency_ms else ""
            say(f"{result.suite} {result.case} {result.impl} run {result.run + 1}: {rate}{lat} {status}")

        await _run_cells(config, _cells(bench, config), results, record)
        if "sync" in config.suites:
            await _run_sync(bench, config, record)
        if "latency" in config.suites:
            steady = max(1, round(config.steady_rate * config.steady_seconds))
            cases = (
                ("idle", config.idle_samples, config.idle_interval_ms / 1000),
                ("steady", steady, 1 / config.steady_rate),
            )
            for run in range(config.latency_runs):
                for kind, samples, interval in cases:
                    for impl in config.latency_impls_selected():
                        record(
                            await bench.latency(
                                impl,
                                kind=kind,
                                samples=samples,
                                interval_s=interval,
                                concurrency=config.latency_concurrency,
                                warmup=config.warmup,
                                run=run,
                            )
                        )
        await _run_process_costs(bench, config, record)
        results.meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    return results


#: Verified runs on each side below which a ratio is not judged (a spread needs runs to show).
MIN_RUNS = 3

#: One cell of the throughput suites: (suite, case, implementations, run -> one measured run).
Cell = tuple[str, str, tuple[str, ...], Callable[[str, int], Awaitable[RunResult]]]


def _cells(bench: Bench, config: Config) -> list[Cell]:
    """The drain, workload and producer cells selected, in run order."""
    cells: list[Cell] = []
    python_node = tuple(i for i in config.impls if i in ("node", "bullbridge"))

    def drain(c: int, work: str) -> Callable[[str, int], Awaitable[RunResult]]:
        return lambda impl, run: bench.drain(
            impl, concurrency=c, jobs=config.jobs, run=run, work=work, warm=config.drain_warm
        )

    if "drain" in config.suites:
        cells += [("drain", f"c={c}", config.impls, drain(c, "noop")) for c in config.concurrency]
    if "payload" in config.suites:
        cells += [("payload", f"c={c}", python_node, drain(c, "payload")) for c in config.payload_concurrency]
    if "io" in config.suites:
        cells += [("io", f"c={c}", python_node, drain(c, "io")) for c in config.io_concurrency]
    if "cpu" in config.suites:  # one pool process (Node: one sandboxed child) per core of the client's
        cores = len(bench.pinning.client) if bench.pinning.client else (os.cpu_count() or 1)

        def cpu(impl: str, run: int) -> Awaitable[RunResult]:
            return bench.drain(impl, concurrency=cores, jobs=config.cpu_jobs, run=run, work="cpu")

        cells.append(("cpu", f"c={cores}", python_node, cpu))
    if "produce" in config.suites:
        for mode in ("inflight", "bulk"):

            def produce(impl: str, run: int, mode: str = mode) -> Awaitable[RunResult]:
                return bench.produce(
                    impl,
                    mode=mode,
                    jobs=config.producer_jobs,
                    inflight=config.inflight,
                    batch=config.bulk,
                    warm=config.producer_warm,
                    run=run,
                )

            cells.append(("produce", mode, config.impls, produce))
    return cells


async def _run_cells(config: Config, cells: list[Cell], results: Results, record: Callable[[RunResult], None]) -> None:
    """Every cell ``runs`` times, interleaved (each run: every cell, every implementation);
    then a cell whose Node runs spread by more than ``spread_limit`` runs again, all its
    implementations, up to ``extra_runs`` times."""
    for run in range(config.runs):
        for _suite, _case, impls, measure in cells:
            for impl in impls:
                record(await measure(impl, run))
    for suite, case, impls, measure in cells:
        if "node" not in impls:
            continue
        for extra in range(config.extra_runs):
            node_runs = [r for r in results.runs if (r.suite, r.case, r.impl) == (suite, case, "node")]
            if spread([r.jobs_per_s for r in node_runs if r.ok]) <= config.spread_limit:
                break
            for impl in impls:
                record(await measure(impl, config.runs + extra))


async def _run_process_costs(bench: Bench, config: Config, record: Callable[[RunResult], None]) -> None:
    """The idle cost and the time to first job, Node and bullbridge interleaved."""
    impls = tuple(i for i in config.impls if i in ("node", "bullbridge"))
    for run in range(config.runs):
        for impl in impls:
            if "startup" in config.suites:
                record(await bench.startup(impl, run=run))
            if "idle" in config.suites:
                record(await bench.idle(impl, queues=config.idle_queues, seconds=config.idle_seconds, run=run))


def spread(rates: Sequence[float | None]) -> float:
    """(max - min) / median of the rates present (0 for fewer than two)."""
    present = [r for r in rates if r]
    if len(present) < 2:
        return 0.0
    return (max(present) - min(present)) / statistics.median(present)


async def _run_sync(bench: Bench, config: Config, record: Callable[[RunResult], None]) -> None:
    """The ``sync`` suite: SYNC_CASES once per run, interleaved (Node and the async
    rows only when selected with --only)."""
    for run in range(config.runs):
        for case, impl in SYNC_CASES:
            if impl not in (SYNC_IMPL, DJANGO_IMPL) and impl not in config.impls:
                continue
            record(
                await bench.produce(
                    impl,
                    mode="inflight" if case.startswith("inflight") else case,
                    case=case,
                    jobs=config.sync_jobs,
                    inflight=config.sync_threads if case == "inflight-threads" else config.inflight,
                    threads=config.sync_threads,
                    warm=config.producer_warm,
                    run=run,
                    suite="sync",
                )
            )


# -- summary -------------------------------------------------------------------------------

THROUGHPUT_FIELDS = (
    "client_cpu_us_per_job",
    "client_cpu_sys_us_per_job",
    "redis_cpu_us_per_job",
    "commands_per_job",
    "scripts_per_job",
)


def _range(values: Sequence[float | None]) -> tuple[float, float] | None:
    present = [v for v in values if v is not None]
    return (min(present), max(present)) if present else None


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarize(results: Results) -> list[dict[str, Any]]:
    """One row per suite x case x implementation: medians over the verified runs."""
    rows: list[dict[str, Any]] = []
    keys: list[tuple[str, str, str]] = []
    for r in results.runs:
        key = (r.suite, r.case, r.impl)
        if key not in keys:
            keys.append(key)
    for suite, case, impl in keys:
        runs = [r for r in results.runs if (r.suite, r.case, r.impl) == (suite, case, impl)]
        good = [r for r in runs if r.ok]
        row: dict[str, Any] = {"suite": suite, "case": case, "impl": impl, "runs": len(runs), "ok": len(good)}
        if suite in ("idle", "startup"):
            names = sorted({name for r in good for name in r.figures})
            row.update({name: _median([r.figures.get(name) for r in good]) for name in names})
            row.update({f"{name}_range": _range([r.figures.get(name) for r in good]) for name in names})
        elif suite != "latency":
            row.update(_throughput(good))
        if suite in ("latency", "sync"):
            row.update(_latencies(good))
        peaks = [r.peak_rss_mb for r in good if r.peak_rss_mb]
        row["peak_rss_mb"] = max(peaks) if peaks else None
        rows.append(row)
    by_key = {(row["suite"], row["case"], row["impl"]): row for row in rows}
    _redis_ceiling(results, rows)
    limit = results.config.spread_limit
    for row in rows:
        node = by_key.get((row["suite"], row["case"], "node"))
        row["vs_node"] = _ratio(row, node) if row["suite"] not in ("latency", "idle", "startup") else None
        # A ratio is only as good as the noisier of its two sides.
        noisy = row.get("spread", 0) > limit or (node is not None and node.get("spread", 0) > limit)
        few = row["ok"] < MIN_RUNS or (node is not None and node["ok"] < MIN_RUNS)
        row["vs_node_reliable"] = row["vs_node"] is not None and not noisy and not few
        if row["vs_node"] is not None and row["impl"] != "node":
            row.update(_paired(results, row))
        if row["suite"] == "sync":
            ref = SYNC_REFERENCE.get((row["case"], row["impl"]))
            row["vs_ref"] = _ratio(row, by_key.get(("sync", *ref))) if ref else None
    return rows


def _paired(results: Results, row: dict[str, Any]) -> dict[str, Any]:
    """The ratio run by run: each verified run / Node's run of the same repetition (the two
    ran seconds apart, on the same machine speed; this VM's speed drifts over minutes).
    Its median and range; none when fewer than two repetitions have both."""
    mine, nodes = {}, {}
    for r in results.runs:
        if (r.suite, r.case) == (row["suite"], row["case"]) and r.ok and r.jobs_per_s:
            if r.impl == row["impl"]:
                mine[r.run] = r.jobs_per_s
            elif r.impl == "node":
                nodes[r.run] = r.jobs_per_s
    ratios = sorted(mine[k] / nodes[k] for k in mine if k in nodes)
    if len(ratios) < 2:
        return {}
    return {"vs_node_paired": statistics.median(ratios), "vs_node_paired_range": (ratios[0], ratios[-1])}


def _throughput(good: list[RunResult]) -> dict[str, Any]:
    """jobs/s (median, min, max) and the per-job figures (medians) of verified runs."""
    rates = [r.jobs_per_s for r in good if r.jobs_per_s]
    row: dict[str, Any] = {
        "jobs_per_s": statistics.median(rates) if rates else None,
        "jobs_per_s_min": min(rates) if rates else None,
        "jobs_per_s_max": max(rates) if rates else None,
        "spread": spread(rates),
        # Redis's core busy with this client: jobs/s x Redis CPU s per job, per run.
        "redis_busy": _median(
            [r.jobs_per_s * r.redis_cpu_us_per_job / 1e6 for r in good if r.jobs_per_s and r.redis_cpu_us_per_job]
        ),
    }
    for name in THROUGHPUT_FIELDS:
        row[name] = _median([getattr(r, name) for r in good])
    return row


def _latencies(good: list[RunResult]) -> dict[str, Any]:
    """Percentiles over the samples of every verified run pooled, and each run's p50."""
    pooled = sorted(v / 1000 for r in good for v in r.latencies_us)
    row: dict[str, Any] = {"samples": len(pooled)}
    for p in (50, 95, 99):
        row[f"p{p}_ms"] = percentile(pooled, p) if pooled else None
    row["max_ms"] = pooled[-1] if pooled else None
    row["p50_ms_per_run"] = [r.latency_ms.get("p50") for r in good]
    row["p99_ms_per_run"] = [r.latency_ms.get("p99") for r in good]
    return row


#: Suites whose jobs run the same BullMQ scripts: one Redis ceiling each.
CEILING_GROUPS = {"drain": "worker", "payload": "payload", "io": "worker", "produce": "producer", "sync": "producer"}


def _redis_ceiling(results: Results, rows: list[dict[str, Any]]) -> None:
    """Each throughput row as a share of Redis's ceiling in this run: the jobs/s one
    Redis core allows at the lowest Redis CPU per job measured for the same scripts
    (``CEILING_GROUPS``) in any verified run - where Redis spends least besides the
    scripts (big pipelines) - so 100 % is "Redis's core would be full"."""
    lowest: dict[str, float] = {}
    for r in results.runs:
        group = CEILING_GROUPS.get(r.suite)
        if group and r.ok and r.redis_cpu_us_per_job and (r.jobs >= 1000):
            lowest[group] = min(lowest.get(group, math.inf), r.redis_cpu_us_per_job)
    for row in rows:
        group = CEILING_GROUPS.get(row["suite"])
        floor = lowest.get(group or "")
        row["redis_ceiling_jobs_per_s"] = 1e6 / floor if floor else None
        row["of_redis_ceiling"] = row["jobs_per_s"] * floor / 1e6 if floor and row.get("jobs_per_s") else None


def _ratio(row: dict[str, Any], ref: dict[str, Any] | None) -> float | None:
    if ref is None or not ref.get("jobs_per_s") or not row.get("jobs_per_s"):
        return None
    return float(row["jobs_per_s"] / ref["jobs_per_s"])


# -- goals (docs/performance.md#against-the-goals) --------------------------------------------


def _judged(row: dict[str, Any], passed: bool) -> bool | str:
    """A ratio goal's result: pass/fail, or "unreliable" when either side's runs spread too much."""
    return passed if row.get("vs_node_reliable") else "unreliable"


def goals(results: Results) -> list[dict[str, Any]]:
    """bullbridge against its performance targets, where this run measured both sides."""
    rows = {(r["suite"], r["case"], r["impl"]): r for r in summarize(results)}
    out: list[dict[str, Any]] = []

    def add(goal: str, target: str, measured: float | None, passed: bool | str | None, unit: str) -> None:
        out.append(
            {
                "goal": goal,
                "target": target,
                "measured": measured,
                "unit": unit,
                "pass": passed if measured is not None else None,
            }
        )

    for c in results.config.concurrency:
        case = f"c={c}"
        bb = rows.get(("drain", case, "bullbridge"))
        if bb is None:
            continue
        ratio = bb.get("vs_node")
        add(f"drain c={c} vs Node", ">= 1.5x", ratio, _judged(bb, ratio is not None and ratio >= 1.5), "x")
        cpu = bb.get("client_cpu_us_per_job")
        limit = 120.0 if c == 1 else 60.0
        add(f"client CPU c={c}", f"<= {limit:.0f} us/job", cpu, cpu is not None and cpu <= limit, "us/job")
    for mode, label, target in (
        ("inflight", "producer 100 in flight vs Node", 1.5),
        ("bulk", "producer addBulk vs Node", 1.0),
    ):
        bb = rows.get(("produce", mode, "bullbridge"))
        if bb is not None:
            ratio = bb.get("vs_node")
            add(label, f">= {target:.1f}x", ratio, _judged(bb, ratio is not None and ratio >= target), "x")
    idle = rows.get(("latency", "idle", "bullbridge"))
    if idle is not None:
        p99 = idle.get("p99_ms")
        add("idle pickup p99", "<= 20 ms", p99, p99 is not None and p99 <= 20.0, "ms")
    steady, steady_node = rows.get(("latency", "steady", "bullbridge")), rows.get(("latency", "steady", "node"))
    if (
        steady is not None
        and steady_node is not None
        and steady.get("p50_ms") is not None
        and steady_node.get("p50_ms") is not None
    ):
        gap = steady["p50_ms"] - steady_node["p50_ms"]
        add("steady 200/s p50 minus Node's", "<= +0.5 ms", gap, gap <= 0.5, "ms")
    peaks = {
        impl: max(
            (
                r["peak_rss_mb"]
                for key, r in rows.items()
                if key[0] == "drain" and key[2] == impl and r.get("peak_rss_mb")
            ),
            default=None,
        )
        for impl in ("bullbridge", "node")
    }
    if peaks["bullbridge"] is not None and peaks["node"]:
        ratio = peaks["bullbridge"] / peaks["node"]
        add("peak RSS vs Node (drain)", "<= 0.5x", ratio, ratio <= 0.5, "x")
    return out

"""The migration report: how Python workers do next to Node ones on one queue.

For each language (from each finished job's ``pb``, see
:mod:`bullbridge.monitor.languages`): its share of the jobs processed, failure
rate, processing and wait percentiles, and retries (jobs whose ``attemptsMade``
is above 1), over the newest finished jobs of a period. This is the evidence a
team needs to move a queue from Node to Python, or back: run both side by
side, then compare.

The period is bounded like every monitor read: at most ``sample_size`` jobs
(default 10,000), the newest first; ``truncated`` says when the period held
more. A job counts for the language of its *last* attempt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from bullbridge.monitor.languages import LANGUAGES, NODE, PYTHON, display_worker_name
from bullbridge.monitor.sample import FinishedSample, Percentiles

DEFAULT_REPORT_SAMPLE = 10_000
TOP_WORKERS = 10


@dataclass(frozen=True)
class LanguageStats:
    """One language's share of a sample of finished jobs, and how those jobs went."""

    language: str
    jobs: int
    share: float
    completed: int
    failed: int
    failure_rate: float | None
    retried: int
    retry_rate: float | None
    processing: Percentiles
    wait: Percentiles
    #: Jobs per worker name (the busiest first, at most 10); ``""`` for unnamed workers.
    workers: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, language: str, sample: FinishedSample, total: int) -> LanguageStats:
        jobs = len(sample)
        failed = sample.failed
        retried = sum(1 for j in sample.jobs if j.attempts_made > 1)
        per_worker: dict[str, int] = {}
        for job in sample.jobs:
            name = display_worker_name(job.processed_by) or ""
            per_worker[name] = per_worker.get(name, 0) + 1
        top = dict(sorted(per_worker.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_WORKERS])
        return cls(
            language=language,
            jobs=jobs,
            share=round(jobs / total, 4) if total else 0.0,
            completed=jobs - failed,
            failed=failed,
            failure_rate=round(failed / jobs, 4) if jobs else None,
            retried=retried,
            retry_rate=round(retried / jobs, 4) if jobs else None,
            processing=sample.processing,
            wait=sample.wait,
            workers=top,
        )


def by_language(sample: FinishedSample) -> dict[str, LanguageStats]:
    """Per-language statistics of a sample, in display order (python, node, ...)."""
    groups = sample.by_language()
    total = len(sample)
    return {lang: LanguageStats.of(lang, groups[lang], total) for lang in LANGUAGES if lang in groups}


def _ratio(a: int | float | None, b: int | float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


@dataclass(frozen=True)
class Comparison:
    """Python relative to Node: ratios of processing percentiles (< 1 = Python
    faster), and differences of failure and retry rates (< 0 = Python fails less)."""

    processing_p50_ratio: float | None
    processing_p95_ratio: float | None
    failure_rate_delta: float | None
    retry_rate_delta: float | None


@dataclass(frozen=True)
class MigrationReport:
    """Python next to Node on one queue, over a period."""

    json_properties: ClassVar[tuple[str, ...]] = ("comparison",)

    queue: str
    generated_at: int
    since_ms: int | None
    sample_limit: int
    jobs: int
    truncated: bool
    oldest_finished_on: int | None
    newest_finished_on: int | None
    languages: dict[str, LanguageStats]
    #: Workers connected now, per language (from CLIENT LIST).
    live_workers: dict[str, int]

    def comparison(self) -> Comparison | None:
        """Python relative to Node (``None`` unless the sample holds both)."""
        py, node = self.languages.get(PYTHON), self.languages.get(NODE)
        if py is None or node is None:
            return None

        def delta(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else round(a - b, 4)

        return Comparison(
            processing_p50_ratio=_ratio(py.processing.p50, node.processing.p50),
            processing_p95_ratio=_ratio(py.processing.p95, node.processing.p95),
            failure_rate_delta=delta(py.failure_rate, node.failure_rate),
            retry_rate_delta=delta(py.retry_rate, node.retry_rate),
        )


def build_report(
    queue: str,
    sample: FinishedSample,
    *,
    generated_at: int,
    since_ms: int | None,
    sample_limit: int,
    live_workers: dict[str, int],
) -> MigrationReport:
    return MigrationReport(
        queue=queue,
        generated_at=generated_at,
        since_ms=since_ms,
        sample_limit=sample_limit,
        jobs=len(sample),
        truncated=sample.truncated,
        oldest_finished_on=sample.oldest_finished_on,
        newest_finished_on=sample.newest_finished_on,
        languages=by_language(sample),
        live_workers=live_workers,
    )

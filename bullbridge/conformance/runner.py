"""Run the conformance scenarios against one Redis and one Node BullMQ, and report.

:func:`check` is what ``bullbridge interop check`` runs: it starts a Node
driver on the user's ``node_modules``, runs the selected scenarios under a key
prefix of its own (``bbcheck-<random>``), deletes every key under that prefix
afterwards (``SCAN`` + ``UNLINK`` of its own keys only, so it is safe on a
shared Redis), and returns a :class:`CheckReport`: versions, one result per
scenario and direction, and known-difference notes.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from bullbridge.conformance.framework import (
    DIRECTIONS,
    SCENARIO_TIMEOUT,
    Scenario,
    ScenarioResult,
    run_scenario,
    select,
)
from bullbridge.conformance.known import known_differences, note_for
from bullbridge.redact import redact
from bullbridge.testing.interop import count_prefix, delete_prefix, new_prefix
from bullbridge.testing.node import NodeDriver


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclass
class CheckReport:
    """What ``bullbridge interop check`` found."""

    json_properties: ClassVar[tuple[str, ...]] = ("counts", "ok")

    node_bullmq: str
    bullmq_path: str
    node: str
    python_port: str
    bullbridge: str
    python: str
    redis: str
    redis_url: str
    prefix: str
    results: list[ScenarioResult] = field(default_factory=list)
    seconds: float = 0.0
    keys_left: int = 0

    @property
    def failed(self) -> list[ScenarioResult]:
        return [r for r in self.results if r.status in ("fail", "lost")]

    @property
    def ok(self) -> bool:
        return not self.failed and self.keys_left == 0

    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "fail": 0, "lost": 0, "known": 0, "n/a": 0}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def table(self) -> str:
        """The pass/fail table, one row per scenario, one column per direction."""
        rows: dict[str, dict[str, ScenarioResult]] = {}
        for r in self.results:
            rows.setdefault(r.scenario, {})[r.direction] = r
        width = max([len("scenario"), *(len(name) for name in rows)])
        head = f"{'scenario':<{width}}  " + "  ".join(f"{d:<6}" for d in DIRECTIONS) + "  notes"
        lines = [head, "-" * len(head)]
        for name, by_dir in rows.items():
            cells = "  ".join(f"{by_dir[d].status if d in by_dir else '-':<6}" for d in DIRECTIONS)
            notes = "; ".join(dict.fromkeys(f"{r.direction}: {_short(r.note)}" for r in by_dir.values() if r.note))
            lines.append(f"{name:<{width}}  {cells}  {notes}".rstrip())
        return "\n".join(lines)

    def render(self) -> str:
        """The whole human-readable report."""
        counts = self.counts()
        out = [
            f"bullbridge interop check: Node bullmq {self.node_bullmq} ({self.bullmq_path}), Node.js {self.node}",
            f"  Python {self.python}, bullbridge {self.bullbridge}, Python port bullmq {self.python_port}, "
            f"Redis {self.redis} at {self.redis_url} (key prefix {self.prefix}, removed)",
            "",
            self.table(),
            "",
        ]
        for r in self.results:
            if r.status in ("fail", "lost"):
                out.append(f"{r.status.upper()} {r.id}: {r.error}")
            elif r.status == "known":
                out.append(f"known difference {r.id}: {r.note} (saw: {r.error})")
            elif r.status == "n/a":
                out.append(f"not applicable {r.id}: {r.note}")
        if self.keys_left:
            out.append(f"FAIL cleanup: {self.keys_left} keys under {self.prefix}: were left in Redis")
        verdict = "OK" if self.ok else "FAILED"
        out.append(
            f"{verdict}: {counts['pass']} passed, {counts['fail']} failed, {counts['lost']} lost a job, "
            f"{counts['known']} known difference(s), {counts['n/a']} not applicable to this Node version "
            f"in {self.seconds:.1f} s"
        )
        return "\n".join(out).replace("\n\n\n", "\n\n")


def _port_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bullmq")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


async def _redis_version(client: Any) -> str:
    from bullbridge.connection import parse_info

    info = parse_info(await client.execute("INFO", "server"))
    return str(info.get("redis_version", "unknown"))


def _apply_known(result: ScenarioResult, s: Scenario, table: dict[str, str]) -> None:
    note = note_for(s.id, s.name, table)
    if note is None or result.status == "n/a":
        return
    result.note = note
    if result.status == "fail":  # a lost job is never excused
        result.status = "known"


async def check(
    redis_url: str,
    *,
    node_modules: str | Path | None = None,
    only: list[str] | None = None,
    slow: bool = False,
    concurrency: int = 1,
    timeout: float = SCENARIO_TIMEOUT,
    prefix: str | None = None,
    on_result: Callable[[ScenarioResult], None] | None = None,
) -> CheckReport:
    """Run the scenarios (all, or ``only`` these names/ids/groups) against the
    Redis at ``redis_url`` and the ``bullmq`` in ``node_modules`` (the slow ones only
    with ``slow``); ``concurrency`` scenarios at a time. Everything is written under ``prefix`` (default: a new
    ``bbcheck-...``) and deleted afterwards."""
    if not __debug__:
        raise RuntimeError("the conformance scenarios check with assert: run Python without -O")
    from bullbridge import __version__
    from bullbridge.connection import connect

    chosen = select(only, slow=slow)
    prefix = prefix or new_prefix("bbcheck")
    connector = connect(redis_url)
    # On Redis Cluster the prefix carries a {hash tag}: every key of the check is on one node.
    client = connector.fast("bullbridge-interop-check", route_key=f"{prefix}:check")
    started = time.monotonic()
    node = NodeDriver(redis_url, node_modules=node_modules, prefix=prefix)
    try:
        redis_version = await _redis_version(client)
        await node.start()
        report = CheckReport(
            node_bullmq=node.bullmq_version,
            bullmq_path=node.bullmq_path,
            node=node.node_version,
            python_port=_port_version(),
            bullbridge=__version__,
            python=sys.version.split()[0],
            redis=redis_version,
            redis_url=redact(redis_url),
            prefix=prefix,
        )
        table = known_differences(node.bullmq_version)
        gate = asyncio.Semaphore(max(1, concurrency))

        async def one(s: Scenario) -> ScenarioResult:
            async with gate:
                result = await run_scenario(s, redis_url, node, timeout)
            _apply_known(result, s, table)
            if on_result is not None:
                on_result(result)
            return result

        report.results = list(await asyncio.gather(*(one(s) for s in chosen)))
    finally:
        await node.close()
        try:
            await delete_prefix(client, prefix)
            left = await count_prefix(client, prefix)
        finally:
            await connector.close()
    report.keys_left = left
    report.seconds = round(time.monotonic() - started, 2)
    return report

"""Scenarios, their context, and running one.

A scenario is an ``async def(ctx)`` registered with :func:`scenario` under a
name and a direction - ``N->P`` (Node produces or sets up, Python consumes or
observes) or ``P->N`` (the reverse) - that raises ``AssertionError`` (or
anything) when the two languages disagree, and :class:`LostJob` when a job
vanished. Each one uses fresh queue names under the key prefix of the Node
driver it gets (``ctx.prefix``) and closes what it started, so scenarios can
share one Redis and one Node process.

``requires`` names the Node features a scenario needs
(:data:`bullbridge.compat.NODE_FEATURES`, e.g. ``job-schedulers`` from 5.16.0):
against a Node version without one, the scenario is *not applicable*
(``n/a``), not run. ``slow`` marks the few that take more than a few seconds
(the 10,000-job batch): the matrix runs them, the test suite and
``bullbridge interop check`` only when asked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bullbridge import Queue, Worker
from bullbridge.connection import connect
from bullbridge.connection.resp import RespClient
from bullbridge.testing.interop import eventually
from bullbridge.testing.node import NodeDriver

log = logging.getLogger("bullbridge.conformance")

N2P = "N->P"
P2N = "P->N"
DIRECTIONS = (N2P, P2N)

#: Upper bound of one scenario (each normally takes well under 3 s).
SCENARIO_TIMEOUT = 30.0

ScenarioFn = Callable[["Ctx"], Awaitable[None]]


class LostJob(AssertionError):
    """A job that was added is in no state any more: the one failure the matrix never accepts."""


@dataclass(frozen=True)
class Scenario:
    name: str
    direction: str
    title: str
    fn: ScenarioFn = field(repr=False, compare=False)
    #: The feature area, for the report ("jobs", "options", "flows"...).
    group: str = ""
    #: Node features it needs (names of bullbridge.compat.NODE_FEATURES).
    requires: tuple[str, ...] = ()
    #: Takes more than a few seconds: run by the matrix, elsewhere only when asked.
    slow: bool = False

    @property
    def id(self) -> str:
        """``name[direction]``, how reports and the known-differences table name it."""
        return f"{self.name}[{self.direction}]"

    def not_applicable(self, node_version: str) -> str | None:
        """Why this scenario does not apply to Node ``bullmq`` ``node_version`` (None: it does)."""
        from bullbridge.compat import missing_features

        missing = missing_features(node_version, self.requires)
        if not missing:
            return None
        return f"Node bullmq {node_version} lacks " + " and ".join(f.describe() for f in missing)


SCENARIOS: list[Scenario] = []


def scenario(
    name: str, direction: str, title: str, group: str = "", *, requires: tuple[str, ...] = (), slow: bool = False
) -> Callable[[ScenarioFn], ScenarioFn]:
    """Register the decorated ``async def(ctx)`` as a scenario."""
    from bullbridge.compat import NODE_FEATURES

    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    unknown = [r for r in requires if r not in NODE_FEATURES]
    if unknown:
        raise ValueError(f"unknown Node features {unknown} (bullbridge.compat.NODE_FEATURES)")

    def register(fn: ScenarioFn) -> ScenarioFn:
        area = group or fn.__module__.rsplit(".", 1)[-1]
        SCENARIOS.append(Scenario(name, direction, title, fn, area, tuple(requires), slow))
        return fn

    return register


#: Result statuses: pass; fail (a disagreement); lost (a job vanished: never
#: accepted); known (a failure bullbridge.compat lists); n/a (the Node version lacks a feature).
STATUSES = ("pass", "fail", "lost", "known", "n/a")


@dataclass
class ScenarioResult:
    json_properties: ClassVar[tuple[str, ...]] = ("id",)

    scenario: str
    direction: str
    status: str  # one of STATUSES
    seconds: float
    error: str | None = None
    note: str | None = None

    @property
    def id(self) -> str:
        return f"{self.scenario}[{self.direction}]"


def select(only: list[str] | None, scenarios: list[Scenario] | None = None, *, slow: bool = True) -> list[Scenario]:
    """Scenarios whose name, id or group is in ``only`` (all when empty - without
    the slow ones unless ``slow``); a ``ValueError`` names any that match nothing."""
    pool = SCENARIOS if scenarios is None else scenarios
    if not only:
        return [s for s in pool if slow or not s.slow]
    wanted = set(only)
    chosen = [s for s in pool if s.name in wanted or s.id in wanted or s.group in wanted]
    unknown = wanted - {s.name for s in pool} - {s.id for s in pool} - {s.group for s in pool}
    if unknown:
        raise ValueError(
            f"unknown scenarios: {', '.join(sorted(unknown))} (names: {', '.join(sorted({s.name for s in pool}))})"
        )
    return chosen


# --- waiting ------------------------------------------------------------------------------


#: Poll ``predicate`` (sync or async) until truthy and return its value, else
#: ``AssertionError`` naming ``what`` (and the last value) after ``timeout``
#: seconds: :func:`bullbridge.testing.interop.eventually`, under the name the
#: scenarios use.
wait_until = eventually


async def holds(predicate: Callable[[], Any], duration: float, what: str, interval: float = 0.02) -> None:
    """Poll ``predicate`` for ``duration`` seconds; AssertionError as soon as it is false."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if not value:
            raise AssertionError(what)
        await asyncio.sleep(interval)


# --- context ------------------------------------------------------------------------------


@dataclass
class Ctx:
    """What a scenario gets: Redis, the Node driver, a fresh queue, and closers.

    Everything lives under ``prefix`` - the Node driver's (it sends it with
    every command), ``bull`` for a driver without one - so the Python side
    built here (:meth:`python_queue`, :meth:`worker`) uses it too."""

    redis_url: str
    node: NodeDriver
    scenario: Scenario
    queue: str = ""
    _closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.queue:
            self.queue = self.queue_name()

    @property
    def node_version(self) -> tuple[int, int, int]:
        """The Node ``bullmq`` version under test, as a tuple (for version-dependent expectations)."""
        from bullbridge.compat import parse_version

        return parse_version(self.node.bullmq_version) or (0, 0, 0)

    @property
    def prefix(self) -> str:
        return self.node.prefix or "bull"

    def queue_name(self, role: str = "") -> str:
        base = f"{self.scenario.name}-{'n2p' if self.scenario.direction == N2P else 'p2n'}"
        return f"{base}{'-' + role if role else ''}-{uuid.uuid4().hex[:8]}"

    def key(self, queue: str, job_id: str) -> str:
        """A job's key, as ``getChildrenValues`` names children."""
        return f"{self.prefix}:{queue}:{job_id}"

    def on_close(self, closer: Callable[[], Awaitable[Any]]) -> None:
        self._closers.append(closer)

    async def raw(self) -> RespClient:
        """A plain Redis client (closed with the scenario), for reading what is stored."""
        connector = connect(self.redis_url)
        self.on_close(connector.close)
        return connector.fast("bullbridge-conformance")

    def python_queue(self, queue: str | None = None) -> Queue:
        p = Queue(queue or self.queue, connection=self.redis_url, prefix=self.prefix)
        self.on_close(p.close)
        return p

    async def worker(self, handlers: Any, queue: str | None = None, **settings: Any) -> Worker:
        """A started bullbridge worker (closed with the scenario)."""
        worker = Worker(queue or self.queue, handlers, connection=self.redis_url, prefix=self.prefix, **settings)
        self.on_close(lambda: worker.close(timeout=5))
        await worker.start()
        return worker

    async def node_worker(self, processor: str, queue: str | None = None, **opts: Any) -> str:
        """A started Node worker (closed with the scenario); its events are ``node.events[handle]``."""
        handle = await self.node.start_worker(queue or self.queue, processor, **opts)
        self.on_close(lambda: self.node.close_worker(handle, force=True))
        return handle

    async def node_counts(self, *states: str, queue: str | None = None) -> dict[str, int]:
        """Node's ``getJobCounts(...states)``, without the ``paused`` count Node < 6 adds
        to every ``waiting`` (6.0 folded paused jobs into waiting)."""
        counts: dict[str, int] = await self.node.queue_call(queue or self.queue, "getJobCounts", *states)
        if "paused" not in states:
            counts.pop("paused", None)
        return counts

    async def node_job(self, job_id: str, queue: str | None = None) -> dict[str, Any] | None:
        return await self.node.get_job(queue or self.queue, job_id)

    async def node_wait_state(
        self, job_id: str, state: str, queue: str | None = None, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Poll Node's view of a job until it is in ``state``."""
        last: list[Any] = [None]

        async def check() -> Any:
            job = await self.node_job(job_id, queue)
            last[0] = job
            return job if job is not None and job["state"] == state else None

        try:
            return await wait_until(check, timeout, f"job {job_id} {state} in Node's view")  # type: ignore[no-any-return]
        except AssertionError:
            seen = last[0]
            summary = None if seen is None else {k: seen.get(k) for k in ("state", "failedReason", "attemptsMade")}
            raise AssertionError(
                f"job {job_id} not {state} within {timeout} s as Node sees it (last: {summary})"
            ) from None

    async def not_lost(self, job_ids: list[str], queue: str | None = None) -> dict[str, str]:
        """Each job's state; :class:`LostJob` when one is in no state at all (its
        hash may survive, but nothing will ever run it)."""
        reader = self.python_queue(queue)
        states = {job_id: await reader.get_job_state(job_id) for job_id in job_ids}
        lost = [job_id for job_id, state in states.items() if state == "unknown"]
        if lost:
            raise LostJob(f"job(s) {', '.join(lost)} of queue {queue or self.queue} are in no state (states: {states})")
        return states

    async def close(self) -> None:
        for closer in reversed(self._closers):
            try:
                await asyncio.wait_for(closer(), 15)
            except Exception as exc:  # a scenario's cleanup must not fail the next one
                log.debug("closing after %s: %s", self.scenario.id, exc)
        self._closers.clear()


async def run_scenario(
    s: Scenario, redis_url: str, node: NodeDriver, timeout: float = SCENARIO_TIMEOUT
) -> ScenarioResult:
    """Run one scenario; a failure or error is reported, never raised. A scenario
    the Node version cannot run (a missing feature) is ``n/a``, not run."""
    reason = s.not_applicable(node.bullmq_version)
    if reason is not None:
        return ScenarioResult(s.name, s.direction, "n/a", 0.0, note=reason)
    ctx = Ctx(redis_url, node, s)
    started = time.monotonic()
    error: str | None = None
    status = "fail"
    try:
        await asyncio.wait_for(s.fn(ctx), timeout)
    except TimeoutError:
        error = f"timed out after {timeout:g} s"
    except LostJob as exc:
        error, status = f"LOST JOB: {exc}", "lost"
    except AssertionError as exc:
        error = str(exc) or "assertion failed"
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        await ctx.close()
    seconds = round(time.monotonic() - started, 3)
    return ScenarioResult(s.name, s.direction, status if error else "pass", seconds, error)


def js(value: Any) -> str:
    """A JSON value as a JavaScript literal."""
    return json.dumps(value, ensure_ascii=False)


DATA: dict[str, Any] = {
    "text": "wörld ✓ 日本語 🎉",
    "n": 21,
    "float": 2.5,
    "none": None,
    "yes": True,
    "empty": {},
    "nested": {"list": [1, "two", [3], {"four": 4}]},
}
RESULT: dict[str, Any] = {"ok": True, "items": [1, 2.5, "x", None], "text": "ünïcode ✓"}

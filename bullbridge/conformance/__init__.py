"""bullbridge's conformance scenarios: the core of its interop suite, shipped.

Every scenario runs real Node BullMQ (through the driver, with whatever
``bullmq`` the user's ``node_modules`` holds) against real bullbridge code on
one Redis, in both directions, and asserts what the *other* language observes:

| module | scenarios |
|---|---|
| ``jobs`` | data, return value, failure reason, progress, custom id, logs, UnrecoverableError, queue events |
| ``options`` | every job option as each side stores and reads it; priority, LIFO, delay, retries, removal, dedup |
| ``flows`` | a parent waiting for children in another queue, reading their values |
| ``schedulers`` | a job scheduler declared by one language, run by the other's workers |
| ``limits`` | global rate limit and concurrency, a limiter shared by both languages' workers, pause/resume |
| ``stalls`` | a worker killed mid-job; the other language's worker recovers the job |

``framework`` holds the pieces (:class:`Scenario`, :func:`scenario`, :class:`Ctx`,
:func:`run_scenario`), ``known`` reads the known differences per Node version
(``bullbridge.compat``), and
``runner`` what ``bullbridge interop check`` runs (:func:`check`). The
compatibility matrix (``compat/``) runs the same :data:`SCENARIOS` per version pair.
"""

from bullbridge.conformance import flows, jobs, limits, options, schedulers, stalls  # noqa: F401  (registers)
from bullbridge.conformance.framework import (
    DATA,
    DIRECTIONS,
    N2P,
    P2N,
    RESULT,
    SCENARIO_TIMEOUT,
    SCENARIOS,
    Ctx,
    Scenario,
    ScenarioFn,
    ScenarioResult,
    holds,
    js,
    run_scenario,
    scenario,
    select,
    wait_until,
)
from bullbridge.conformance.known import known_differences
from bullbridge.conformance.runner import CheckReport, check

#: The report's order of the feature areas.
GROUPS = ("jobs", "options", "flows", "schedulers", "limits", "stalls")
SCENARIOS.sort(key=lambda s: GROUPS.index(s.group) if s.group in GROUPS else len(GROUPS))

__all__ = [
    "DATA",
    "DIRECTIONS",
    "GROUPS",
    "N2P",
    "P2N",
    "RESULT",
    "SCENARIOS",
    "SCENARIO_TIMEOUT",
    "CheckReport",
    "Ctx",
    "Scenario",
    "ScenarioFn",
    "ScenarioResult",
    "check",
    "holds",
    "js",
    "known_differences",
    "run_scenario",
    "scenario",
    "select",
    "wait_until",
]

"""bullbridge's conformance scenarios: the core of its interop suite, shipped.

Every scenario runs real Node BullMQ (through the driver, with whatever
``bullmq`` the user's ``node_modules`` holds) against real bullbridge code on
one Redis, in both directions, and asserts what the *other* language observes:

| module | scenarios |
|---|---|
| ``jobs`` | data, results, failures, progress, ids, logs, events, moveToDelayed, discard, sandboxes, 10,000 jobs |
| ``options`` | every job option as each side stores and reads it; priority, LIFO, delay, retries, removal, dedup |
| ``dedup`` | every deduplication mode: throttle, extend, replace, keep-last-if-active, reschedule, releasing an id |
| ``getters`` | job counts, job lists, job states, per-minute metrics, log ranges, the queue's ``meta.version`` |
| ``admin`` | clean, drain, obliterate beside live workers; retry, promote, remove; priority, delay, data changes |
| ``pause`` | pause and resume in every combination of languages, with and without waiting jobs |
| ``flows`` | a parent waiting for children in another queue; each parent-failure policy; a reused completed child |
| ``schedulers`` | job schedulers (every, pattern, limit, end date, template update, removal) across languages |
| ``limits`` | global rate limit and concurrency, a shared limiter, a handler's own rate limit, the limits mixed |
| ``stalls`` | a worker killed mid-job: recovered by the other language, or failed past maxStalledCount |

``framework`` holds the pieces (:class:`Scenario`, :func:`scenario`, :class:`Ctx`,
:func:`run_scenario`), ``known`` reads the known differences per Node version
(``bullbridge.compat``), and
``runner`` what ``bullbridge interop check`` runs (:func:`check`). The
compatibility matrix (``compat/``) runs the same :data:`SCENARIOS` per version pair.
"""

from bullbridge.conformance import (  # noqa: F401  (registers)
    admin,
    dedup,
    flows,
    getters,
    jobs,
    limits,
    options,
    pause,
    schedulers,
    stalls,
)
from bullbridge.conformance.framework import (
    DATA,
    DIRECTIONS,
    N2P,
    P2N,
    RESULT,
    SCENARIO_TIMEOUT,
    SCENARIOS,
    STATUSES,
    Ctx,
    LostJob,
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
GROUPS = ("jobs", "options", "dedup", "getters", "admin", "pause", "flows", "schedulers", "limits", "stalls")
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
    "STATUSES",
    "CheckReport",
    "Ctx",
    "LostJob",
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

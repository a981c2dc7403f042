"""No lost job beside Node 5: the pause scenarios against a real Node bullmq 5.81.5.

Node 5 keeps a paused queue's jobs in a ``paused`` list and renames it over
``wait`` when it resumes; the port's scripts (Node 6.4.0's) push into ``wait``.
The first matrix lost the job a Python producer added while Node 5 had the
queue paused. bullbridge now runs Node 5's target list in front of the port's
scripts (bullbridge.protocol): every combination of who pauses, who adds and
who resumes - with and without a job waiting - runs every job, and an idle
worker picks up at once. ``make compat`` runs these against every Node version
of the matrix; this runs them in the suite against the newest 5.x.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bullbridge.conformance import SCENARIOS, Scenario, run_scenario
from bullbridge.testing.interop import new_prefix
from bullbridge.testing.node import NodeDriver

PAUSE = [s for s in SCENARIOS if s.group == "pause"]


@pytest.fixture(scope="module")
async def node5(redis_url: str, node5_modules: Path) -> AsyncIterator[NodeDriver]:
    driver = await NodeDriver(redis_url, node_modules=node5_modules, prefix=new_prefix("node5")).start()
    assert driver.bullmq_version.startswith("5.")
    yield driver
    await driver.close()


@pytest.mark.parametrize("scenario", PAUSE, ids=[s.id for s in PAUSE])
async def test_pause_scenario_beside_node5(scenario: Scenario, node5: NodeDriver, redis_url: str) -> None:
    result = await run_scenario(scenario, redis_url, node5)
    assert result.status == "pass", result.error


def test_every_pause_combination_is_covered() -> None:
    names = {s.name for s in PAUSE}
    assert names == {
        f"{name}{idle}"
        for name in ("pause_resume", "pause_by_producer", "pause_cross", "pause_cross_back")
        for idle in ("", "_idle")
    }
    assert {s.direction for s in PAUSE} == {"N->P", "P->N"}

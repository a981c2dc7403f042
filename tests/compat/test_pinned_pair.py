"""The compatibility matrix's scenarios against the pinned pair, in the normal suite.

``make compat`` runs the same scenarios (``bullbridge.conformance``) against every
version pair of ``compat/matrix.toml``; CI runs them here against the pinned
pair only: the Node ``bullmq`` of package.json (the session's Node driver) and
the port of requirements/dev.lock - all but the slow ones (the 10,000-job
batch, which the matrix runs). A scenario the known-differences table expects
to fail for this pair must fail (so a fix upstream is noticed); one the Node
version cannot run (a feature it lacks) is not applicable.
"""

from __future__ import annotations

import pytest

from bullbridge.compat import differences_for
from bullbridge.conformance import Scenario, run_scenario, select
from bullbridge.testing.node import NodeDriver

CHOSEN = select(None, slow=False)


@pytest.mark.parametrize("scenario", CHOSEN, ids=[s.id for s in CHOSEN])
async def test_scenario(scenario: Scenario, node: NodeDriver, redis_url: str) -> None:
    result = await run_scenario(scenario, redis_url, node)
    known = {d.scenario: d for d in differences_for(node.bullmq_version)}
    if scenario.not_applicable(node.bullmq_version):
        assert result.status == "n/a"
    elif scenario.id in known:
        assert result.status == "fail", (
            f"{scenario.id} passed with Node bullmq {node.bullmq_version}: the known difference "
            f"({known[scenario.id].summary}) no longer reproduces; update bullbridge.compat and run make compat"
        )
    else:
        assert result.status == "pass", result.error

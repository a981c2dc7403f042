"""Known differences: scenario failures expected for some Node BullMQ versions.

The compatibility matrix owns the list (:data:`bullbridge.compat.KNOWN_DIFFERENCES`,
checked against ``compat/matrix.json`` by its own tests); this module only asks
it which apply to the Node ``bullmq`` under check and the installed Python
port. A failure listed there is reported as ``known``, with the matrix's note,
and does not fail ``bullbridge interop check``.
"""

from __future__ import annotations

import logging

log = logging.getLogger("bullbridge.conformance.known")


def known_differences(node_version: str) -> dict[str, str]:
    """``{scenario id or name: note}`` of the differences the matrix lists for
    Node ``bullmq`` ``node_version`` beside the installed Python port."""
    try:
        from bullbridge.compat import differences_for
    except ImportError:  # pragma: no cover - a bullbridge without the matrix's table
        return {}
    try:
        return {str(d.scenario): str(d.summary) for d in differences_for(node_version)}
    except Exception as exc:  # a malformed table must not break the check
        log.warning("ignoring bullbridge.compat's known differences: %s", exc)
        return {}


def note_for(scenario_id: str, scenario_name: str, table: dict[str, str]) -> str | None:
    return table.get(scenario_id) or table.get(scenario_name)

"""``bullbridge.compat``'s table against the generated ``compat/matrix.json``, both ways."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bullbridge.compat import KNOWN_DIFFERENCES, TESTED_NODE, TESTED_PORT, differences_for, parse_version
from bullbridge.conformance import SCENARIOS
from compat.run import render_markdown

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def matrix() -> dict[str, Any]:
    return json.loads((ROOT / "compat" / "matrix.json").read_text())  # type: ignore[no-any-return]


def test_matrix_ran_every_current_scenario(matrix: dict[str, Any]) -> None:
    assert [s["id"] for s in matrix["scenarios"]] == [s.id for s in SCENARIOS], "scenarios changed: run make compat"
    for pair in matrix["pairs"]:
        assert pair["status"] == "ok", pair.get("error")
        assert [r["scenario"] for r in pair["results"]] == [s.id for s in SCENARIOS]


def test_every_failure_is_a_listed_difference_and_every_listed_one_reproduced(matrix: dict[str, Any]) -> None:
    for pair in matrix["pairs"]:
        failing = {r["scenario"] for r in pair["results"] if r["status"] != "pass"}
        listed = {d.scenario for d in differences_for(pair["node"], pair["python"])}
        assert failing == listed, (pair["node"], pair["python"], failing, listed)
        assert not [r for r in pair["results"] if r["status"] == "fail"]


def _version(text: str) -> tuple[int, int, int]:
    return parse_version(text) or (0, 0, 0)


def test_tested_versions_are_the_matrix_versions(matrix: dict[str, Any]) -> None:
    pairs = matrix["pairs"]
    assert tuple(sorted({p["node"] for p in pairs}, key=_version)) == TESTED_NODE
    assert tuple(sorted({p["python"] for p in pairs}, key=_version)) == TESTED_PORT
    assert len(TESTED_NODE) >= 2


def test_matrix_includes_the_pinned_versions(matrix: dict[str, Any]) -> None:
    node_pin = json.loads((ROOT / "package.json").read_text())["dependencies"]["bullmq"].lstrip("^~=")
    lock = (ROOT / "requirements" / "dev.lock").read_text().splitlines()
    port_pin = next(line.split("==")[1] for line in lock if line.lower().startswith("bullmq=="))
    assert node_pin in TESTED_NODE and port_pin in TESTED_PORT
    assert any(v.startswith("5.") for v in TESTED_NODE), "the latest Node 5.x belongs in the matrix"


def test_table_names_real_scenarios() -> None:
    ids = {s.id for s in SCENARIOS}
    for diff in KNOWN_DIFFERENCES:
        assert diff.scenario in ids
        assert diff.node[0] < diff.node[1] and diff.port[0] < diff.port[1]


def test_markdown_is_generated_from_the_json(matrix: dict[str, Any]) -> None:
    assert (ROOT / "compat" / "MATRIX.md").read_text() == render_markdown(matrix), (
        "MATRIX.md differs from matrix.json: regenerate both with make compat"
    )

"""``bullbridge.compat``'s table against the generated ``compat/matrix.json``, both ways."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bullbridge import doctor
from bullbridge.compat import EPOCHS, KNOWN_DIFFERENCES, TESTED_NODE, TESTED_PORT, differences_for, parse_version
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
        failing = {r["scenario"] for r in pair["results"] if r["status"] not in ("pass", "n/a")}
        not_applicable = {r["scenario"] for r in pair["results"] if r["status"] == "n/a"}
        listed = {d.scenario for d in differences_for(pair["node"], pair["python"])} - not_applicable
        assert failing == listed, (pair["node"], pair["python"], failing, listed)
        assert not [r for r in pair["results"] if r["status"] in ("fail", "lost")]


def test_no_cell_is_a_lost_job(matrix: dict[str, Any]) -> None:
    lost = [(p["node"], r["scenario"]) for p in matrix["pairs"] for r in p["results"] if r["status"] == "lost"]
    assert not lost, lost


def test_the_matrix_is_as_wide_as_a_fleet_needs(matrix: dict[str, Any]) -> None:
    """>= 7 Node versions on both sides of every protocol change, >= 60 scenarios both ways."""
    nodes = {p["node"] for p in matrix["pairs"]}
    assert len(nodes) >= 7, nodes
    for epoch in EPOCHS:
        assert {epoch.before, epoch.after} <= nodes, f"{epoch.name}: {epoch.before} / {epoch.after} not in the matrix"
    names = {s.name for s in SCENARIOS}
    assert len(names) >= 60
    assert all({f"{n}[N->P]", f"{n}[P->N]"} <= {s.id for s in SCENARIOS} for n in names)


def _version(text: str) -> tuple[int, int, int]:
    return parse_version(text) or (0, 0, 0)


def test_tested_versions_are_the_matrix_versions(matrix: dict[str, Any]) -> None:
    pairs = matrix["pairs"]
    assert tuple(sorted({p["node"] for p in pairs}, key=_version)) == TESTED_NODE
    assert tuple(sorted({p["python"] for p in pairs}, key=_version)) == TESTED_PORT


def test_matrix_includes_the_pinned_versions(matrix: dict[str, Any]) -> None:
    node_pin = json.loads((ROOT / "package.json").read_text())["dependencies"]["bullmq"].lstrip("^~=")
    lock = (ROOT / "requirements" / "dev.lock").read_text().splitlines()
    port_pin = next(line.split("==")[1] for line in lock if line.lower().startswith("bullmq=="))
    assert node_pin in TESTED_NODE and port_pin in TESTED_PORT
    assert any(v.startswith("5.") for v in TESTED_NODE), "the latest Node 5.x belongs in the matrix"
    assert matrix["versions"]["newest_node"] in TESTED_NODE, "the newest 6.x, resolved when make compat ran"


def test_every_known_difference_links_its_explanation_and_its_doctor_check() -> None:
    ids = {s.id for s in SCENARIOS}
    for diff in KNOWN_DIFFERENCES:
        assert diff.scenario in ids
        assert diff.node[0] < diff.node[1] and diff.port[0] < diff.port[1]
        page, _, anchor = diff.doc.partition("#")
        text = (ROOT / page).read_text()
        assert re.search(rf"^#+ {re.escape(anchor)}\b", text, re.M) or f'id="{anchor}"' in text, diff.doc
        assert diff.doctor in doctor.CHECKS, diff.doctor


def test_markdown_is_generated_from_the_json(matrix: dict[str, Any]) -> None:
    assert (ROOT / "compat" / "MATRIX.md").read_text() == render_markdown(matrix), (
        "MATRIX.md differs from matrix.json: regenerate both with make compat"
    )

"""examples/interop-service, run the way a user runs it: plain pytest in the project."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "interop-service"


def test_the_example_project_passes_and_its_contracts_hold(pytester: Any, inner: Any) -> None:
    shutil.copytree(
        EXAMPLE,
        pytester.path,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("node_modules", "__pycache__", ".pytest_cache"),
    )
    contracts = {p.name: p.read_text() for p in (pytester.path / "contracts").glob("*.json")}
    assert set(contracts) == {"invoice-from-node.json", "invoice-from-node.results.json", "welcome-from-python.json"}
    # The example's pytest.ini points at its own node_modules (after `npm install`); here bullbridge's.
    result = inner("-q")
    result.assert_outcomes(passed=7)
    assert {p.name: p.read_text() for p in (pytester.path / "contracts").glob("*.json")} == contracts

"""Fixtures for testing bullbridge's pytest plugin: pytester, inner pytest runs
against the suite's Redis, and an older Node BullMQ installed once per session."""

from __future__ import annotations

import importlib.metadata
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
OWN_NODE_MODULES = ROOT / "node_modules"


def plugin_args() -> list[str]:
    """``-p bullbridge.testing.plugin`` unless the package's pytest11 entry point loads it already."""
    registered = any(ep.name == "bullbridge" for ep in importlib.metadata.entry_points(group="pytest11"))
    return [] if registered else ["-p", "bullbridge.testing.plugin"]


INNER_INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""


@pytest.fixture
def inner(pytester: pytest.Pytester, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """Run pytest in a subprocess in pytester's folder, with the plugin, on this
    suite's Redis: ``inner("-k", "x")`` -> RunResult."""
    monkeypatch.setenv("BULLBRIDGE_REDIS_URL", redis_url)
    monkeypatch.delenv("NODE_PATH", raising=False)
    monkeypatch.delenv("BULLBRIDGE_NODE_MODULES", raising=False)
    monkeypatch.delenv("CI", raising=False)  # a CI runner's CI=true makes missing contracts fail (a test sets it)
    if not (pytester.path / "pytest.ini").exists():
        pytester.makefile(".ini", pytest=INNER_INI)

    def run(*args: str, node_modules: Path | None = OWN_NODE_MODULES) -> pytest.RunResult:
        extra = [f"--bullbridge-node-modules={node_modules}"] if node_modules else []
        return pytester.runpytest_subprocess(*plugin_args(), "-p", "no:cacheprovider", *extra, *args, timeout=120)

    return run


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path

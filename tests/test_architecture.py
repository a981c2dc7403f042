"""The package's layers, checked on its import graph.

Every ``import`` in ``bullbridge/`` is an edge - at module level, inside a
function, or under ``TYPE_CHECKING`` - so a lazy import cannot hide a cycle.
The layers (README "Architecture"):

* the library: everything an application imports (connection, codec,
  options, queue, worker, scheduler, monitor, manager...);
* test infrastructure: ``bullbridge.testing`` (private Redis, Node driver,
  pytest plugin, contracts), which the library never imports;
* tools: the CLI, the dashboard, ``doctor`` and the conformance scenarios of
  ``bullbridge interop check``, which may use both, and which neither imports.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bullbridge"

TOOLS = ("bullbridge.cli", "bullbridge.dashboard", "bullbridge.doctor", "bullbridge.conformance", "bullbridge.__main__")
TESTING = ("bullbridge.testing",)


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str:
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _imports(module: str, path: Path) -> Iterator[str]:
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # ``from pkg import sub`` imports the submodule when there is one.
            names = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in MODULES else origin for a in node.names]
        else:
            continue
        for name in names:
            if name == "bullbridge" or name.startswith("bullbridge."):
                target = _resolve(name)
                if target != module:
                    yield target


GRAPH = {module: set(_imports(module, path)) for module, path in MODULES.items()}


def _layer(module: str) -> str:
    if module.startswith(TOOLS):
        return "tools"
    if module.startswith(TESTING):
        return "testing"
    return "library"


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(GRAPH.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read() -> None:
    # The checks below are only as good as the graph: it must see the package's real edges.
    assert len(MODULES) > 80
    assert "bullbridge.connection.resp" in GRAPH["bullbridge.worker.engine"]
    assert "bullbridge.testing.node" in GRAPH["bullbridge.conformance.framework"]


def test_no_import_cycle() -> None:
    assert _cycles() == []


def test_the_library_imports_no_tool_and_no_test_helper() -> None:
    upward = sorted(
        f"{m} -> {t}"
        for m, targets in GRAPH.items()
        if _layer(m) == "library"
        for t in targets
        if _layer(t) != "library"
    )
    assert upward == []


def test_test_helpers_import_no_tool() -> None:
    upward = sorted(
        f"{m} -> {t}" for m, targets in GRAPH.items() if _layer(m) == "testing" for t in targets if _layer(t) == "tools"
    )
    assert upward == []


def test_a_cycle_or_an_upward_edge_would_be_seen() -> None:
    # The detectors themselves: a graph with a planted cycle and an upward edge.
    saved = {k: set(v) for k, v in GRAPH.items()}
    try:
        GRAPH["bullbridge.codec"].add("bullbridge.worker.engine")
        GRAPH["bullbridge.keys"].add("bullbridge.cli")
        assert _cycles()
        assert _layer("bullbridge.cli") == "tools" and "bullbridge.cli" in GRAPH["bullbridge.keys"]
    finally:
        GRAPH.clear()
        GRAPH.update(saved)

"""Both sides of a trace: OpenTelemetry in-memory exporters in Python and in Node.

The Node side is npm ``bullmq-otel`` on the OpenTelemetry JS SDK, loaded by
``otel_harness.js`` inside a Node driver of these tests' own (its global tracer
provider must not leak into the shared driver). The packages come from
``$BULLBRIDGE_OTEL_NODE_MODULES`` (a folder where they are installed), else the
checkout's ``node_modules`` when all are there (devDependencies), else one
``npm install --prefix <tmp>`` per session at the pinned versions below.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import opentelemetry.sdk  # noqa: F401 - in requirements/dev.lock: fail loudly, never skip
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from bullbridge.telemetry import OtelTelemetry
from bullbridge.testing.node import PROJECT_ROOT, NodeDriver

HARNESS = Path(__file__).with_name("otel_harness.js")

#: The Node packages, pinned (bullmq-otel 2.x is the line for bullmq >= 6).
NPM_PACKAGES = (
    "bullmq-otel@2.0.1",
    "@opentelemetry/api@1.10.0",
    "@opentelemetry/core@2.12.1",
    "@opentelemetry/sdk-trace-base@2.12.1",
    "@opentelemetry/context-async-hooks@2.12.1",
    "@opentelemetry/sdk-metrics@2.12.1",
)


@pytest.fixture(scope="session")
def otel_node_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("BULLBRIDGE_OTEL_NODE_MODULES")
    if given:
        return Path(given)
    checkout = PROJECT_ROOT / "node_modules"
    if all((checkout / spec.rsplit("@", 1)[0]).is_dir() for spec in NPM_PACKAGES):
        return PROJECT_ROOT  # installed as devDependencies by `npm ci`
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not on PATH: the telemetry interop tests install bullmq-otel with it")
    prefix = tmp_path_factory.mktemp("otel-npm")
    # --legacy-peer-deps: bullmq-otel's peer bullmq is the checkout's own, not a second copy.
    cmd = [
        npm,
        "install",
        "--prefix",
        str(prefix),
        "--no-audit",
        "--no-fund",
        "--no-save",
        "--loglevel=error",
        "--legacy-peer-deps",
        *NPM_PACKAGES,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        pytest.fail(f"npm install of {' '.join(NPM_PACKAGES)} failed:\n{done.stderr[-2000:]}")
    return prefix


@pytest.fixture(scope="session")
async def otel_node(redis_url: str, otel_node_modules: Path) -> AsyncIterator[NodeDriver]:
    driver = await NodeDriver(redis_url).start()
    await driver.call_producer(HARNESS, None, {"modules": str(otel_node_modules)}, export="setup")
    yield driver
    await driver.close()


Harness = Callable[..., Awaitable[Any]]


@pytest.fixture
async def harness(otel_node: NodeDriver) -> AsyncIterator[Harness]:
    """``await harness("add", queue=..., name=...)``: call a function of otel_harness.js."""

    async def call(fn: str, **args: Any) -> Any:
        return await otel_node.call_producer(HARNESS, None, args, export=fn, timeout=30)

    await call("reset")
    yield call
    await call("closeWorkers")


@dataclass
class PyOtel:
    """The Python side: an OtelTelemetry on its own providers and in-memory exporters."""

    telemetry: OtelTelemetry
    exporter: InMemorySpanExporter
    metrics: InMemoryMetricReader
    tracer: Tracer

    def spans(self) -> list[dict[str, Any]]:
        return [span_view(s) for s in self.exporter.get_finished_spans()]


@pytest.fixture
def py_otel() -> Iterator[PyOtel]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    telemetry = OtelTelemetry(tracer_provider=provider, meter_provider=meters, name="python-app")
    yield PyOtel(telemetry, exporter, reader, provider.get_tracer("python-http"))
    provider.shutdown()
    meters.shutdown()


def span_view(span: ReadableSpan) -> dict[str, Any]:
    """A Python span in the shape otel_harness.js gives Node's."""
    ctx = span.get_span_context()
    assert ctx is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "traceId": f"{ctx.trace_id:032x}",
        "spanId": f"{ctx.span_id:016x}",
        "traceFlags": int(ctx.trace_flags),
        "parentSpanId": f"{span.parent.span_id:016x}" if span.parent is not None else None,
        "attributes": {k: (list(v) if isinstance(v, tuple) else v) for k, v in (span.attributes or {}).items()},
        "events": [{"name": e.name, "attributes": dict(e.attributes or {})} for e in span.events],
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
    }


def traceparent(span: dict[str, Any]) -> str:
    """The W3C ``traceparent`` of a span (as either view gives it)."""
    return f"00-{span['traceId']}-{span['spanId']}-{span['traceFlags']:02x}"


def named(spans: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [s for s in spans if s["name"] == name]


def one(spans: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = named(spans, name)
    assert len(found) == 1, f"expected one span {name!r}, got {len(found)}: {[s['name'] for s in spans]}"
    return found[0]


from bullbridge.testing.interop import eventually as until  # noqa: E402,F401 - the one poll helper

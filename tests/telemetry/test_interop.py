"""One trace across languages: a span context carried through the queue, both ways.

Node side: npm ``bullmq-otel`` with the OpenTelemetry JS SDK (otel_harness.js);
Python side: :class:`bullbridge.telemetry.OtelTelemetry` on the Python SDK. Both
export to memory, so the tests read what a tracing backend would receive.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from typing import Any

from opentelemetry import baggage, context, trace
from opentelemetry.trace import SpanKind

from bullbridge import FlowJob, FlowProducer, Queue, Worker
from bullbridge.options import Telemetry
from tests.telemetry.conftest import Harness, PyOtel, named, one, traceparent, until

#: Any W3C traceparent (the Python SDK sets the "random trace id" flag too: ``-03``).
TRACEPARENT_RE = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


async def raw_opts(producer: Queue, job_id: str) -> str:
    """The job's ``opts`` field as stored (the Lua scripts' cjson, so key order is theirs)."""
    job = await producer.get_job(job_id)
    assert job is not None, job_id
    return job.fields[b"opts"].decode()


def tm_of(opts: str) -> str:
    return str(json.loads(opts)["tm"])


def make_worker(
    queue: str, redis_url: str, py_otel: PyOtel, handler: Any, name: str = "welcome", **settings: Any
) -> Worker:
    return Worker(queue, {name: handler}, connection=redis_url, telemetry=py_otel.telemetry, **settings)


async def test_node_producer_to_python_worker_continues_the_trace(
    harness: Harness, py_otel: PyOtel, redis_url: str, queue_name: str
) -> None:
    added = await harness("add", queue=queue_name, name="welcome", data={"to": "ada"})
    seen: dict[str, Any] = {}

    async def welcome(job: Any) -> dict[str, str]:
        with py_otel.tracer.start_as_current_span("send email") as span:
            seen["handler"] = span.get_span_context()
        return {"sent_to": job.data["to"]}

    worker = make_worker(queue_name, redis_url, py_otel, welcome)
    await worker.start()
    try:
        spans = await until(
            lambda: named(py_otel.spans(), f"process {queue_name}") and py_otel.spans(), what="the Python consumer span"
        )
    finally:
        await worker.close()
    node_spans = await harness("spans")
    outer = one(node_spans, "POST /signup")
    add = one(node_spans, f"add {queue_name}.welcome")
    assert add["kind"] == "PRODUCER" and add["parentSpanId"] == outer["spanId"]
    assert add["attributes"]["bullmq.job.id"] == added["id"]

    process = one(spans, f"process {queue_name}")
    assert process["kind"] == "CONSUMER"
    assert process["traceId"] == add["traceId"] == added["outer"]["traceId"]
    assert process["parentSpanId"] == add["spanId"]
    assert process["attributes"] == {
        "bullmq.queue.name": queue_name,
        "bullmq.queue.operation": "process",
        "bullmq.worker.id": worker.id,
        "bullmq.worker.name": worker.settings.wire_name,
        "bullmq.job.id": added["id"],
        "bullmq.job.name": "welcome",
        "bullmq.job.attempts.made": 1,
        "bullmq.job.attempt_finished_timestamp": process["attributes"]["bullmq.job.attempt_finished_timestamp"],
        "bullmq.job.processed.timestamp": process["attributes"]["bullmq.job.processed.timestamp"],
    }
    assert process["events"] == [{"name": "job completed", "attributes": {"bullmq.job.result": '{"sent_to":"ada"}'}}]
    complete = one(spans, f"complete {queue_name}")
    assert complete["kind"] == "INTERNAL" and complete["parentSpanId"] == process["spanId"]
    assert complete["attributes"]["bullmq.queue.operation"] == "complete"
    handler_span = one(spans, "send email")
    assert handler_span["parentSpanId"] == process["spanId"] and handler_span["traceId"] == add["traceId"]
    assert process["scope"] == "python-app"


async def test_node_stores_the_context_as_bullmq_otel_does(harness: Harness, producer: Queue, queue_name: str) -> None:
    added = await harness("add", queue=queue_name, name="welcome", opts={"attempts": 3})
    add = one(await harness("spans"), f"add {queue_name}.welcome")
    # bullmq-otel's getMetadata: JSON.stringify of the W3C carrier, stored in opts.tm.
    stored = await raw_opts(producer, added["id"])
    assert json.loads(stored) == {"attempts": 3, "tm": '{"traceparent":"%s"}' % traceparent(add)}  # noqa: UP031


async def test_python_producer_to_node_worker_continues_the_trace(
    harness: Harness, py_otel: PyOtel, redis_url: str, queue_name: str
) -> None:
    async with Queue(queue_name, connection=redis_url, telemetry=py_otel.telemetry) as producer:
        with py_otel.tracer.start_as_current_span("POST /signup", kind=SpanKind.SERVER):
            job = await producer.add("welcome", {"to": "ada"}, attempts=3)
        stored = await raw_opts(producer, job.id)
        await harness("startWorker", queue=queue_name, opts={"name": "node-worker"})
        await producer.result(job.id, timeout=10)
    spans = py_otel.spans()
    outer = one(spans, "POST /signup")
    add = one(spans, f"add {queue_name}.welcome")
    assert add["kind"] == "PRODUCER" and add["parentSpanId"] == outer["spanId"]
    assert add["attributes"] == {
        "bullmq.queue.name": queue_name,
        "bullmq.queue.operation": "add",
        "bullmq.job.name": "welcome",
        "bullmq.job.id": job.id,
    }
    # What Node's Queue.add + bullmq-otel store (test_baggage_and_tm_bytes_match_between_languages).
    assert json.loads(stored) == {"attempts": 3, "tm": '{"traceparent":"%s"}' % traceparent(add)}  # noqa: UP031

    node_spans = await until(lambda: _with_span(harness, f"process {queue_name}"), what="Node's consumer span")
    process = one(node_spans, f"process {queue_name}")
    assert process["kind"] == "CONSUMER"
    assert process["traceId"] == add["traceId"] and process["parentSpanId"] == add["spanId"]
    handler = one(node_spans, "handler")
    assert handler["parentSpanId"] == process["spanId"]


async def test_baggage_and_tm_bytes_match_between_languages(
    harness: Harness, py_otel: PyOtel, redis_url: str, queue_name: str
) -> None:
    # (No space in the values: opentelemetry-python writes one as "+", which JS reads back as "+".)
    bag = {"user": "ada", "plan": "pro"}
    node_added = await harness(
        "add", queue=queue_name, name="welcome", opts={"priority": 5, "attempts": 2}, baggage=bag
    )
    async with Queue(queue_name, connection=redis_url, telemetry=py_otel.telemetry) as producer:
        ctx = context.get_current()
        for key, value in bag.items():
            ctx = baggage.set_baggage(key, value, ctx)
        token = context.attach(ctx)
        try:
            with py_otel.tracer.start_as_current_span("POST /signup", kind=SpanKind.SERVER):
                py_job = await producer.add("welcome", {}, priority=5, attempts=2)
        finally:
            context.detach(token)
        node_opts = await raw_opts(producer, node_added["id"])
        py_opts = await raw_opts(producer, py_job.id)
    assert tm_of(node_opts).startswith('{"traceparent":"00-') and tm_of(node_opts).endswith(
        '","baggage":"user=ada,plan=pro"}'
    )
    assert TRACEPARENT_RE.sub("<traceparent>", py_opts) == TRACEPARENT_RE.sub("<traceparent>", node_opts)

    # ... and the baggage reaches the handler on the other side.
    seen: list[dict[str, object]] = []

    async def welcome(job: Any) -> None:
        seen.append(dict(baggage.get_all()))

    worker = make_worker(queue_name, redis_url, py_otel, welcome)
    await worker.start()
    try:
        await until(lambda: len(seen) == 2, what="both jobs")
    finally:
        await worker.close()
    assert seen == [bag, bag]


async def test_python_baggage_reaches_node_handler(
    harness: Harness, py_otel: PyOtel, redis_url: str, queue_name: str
) -> None:
    async with Queue(queue_name, connection=redis_url, telemetry=py_otel.telemetry) as producer:
        token = context.attach(baggage.set_baggage("tenant", "acme"))
        try:
            job = await producer.add("welcome", {"n": 1})
        finally:
            context.detach(token)
        await harness("startWorker", queue=queue_name)
        result = await producer.result(job.id, timeout=10)
    assert result == {"echoed": {"n": 1}, "baggage": {"tenant": "acme"}}


async def test_thread_handlers_run_inside_the_consumer_span(
    harness: Harness, py_otel: PyOtel, redis_url: str, queue_name: str
) -> None:
    await harness("add", queue=queue_name, name="welcome")
    seen: list[tuple[int, int]] = []

    def welcome(job: Any) -> None:  # a plain def: runs in the worker's thread pool
        span = trace.get_current_span()
        seen.append((threading.get_ident(), span.get_span_context().span_id))

    worker = make_worker(queue_name, redis_url, py_otel, welcome)
    await worker.start()
    try:
        await until(lambda: named(py_otel.spans(), f"process {queue_name}"), what="the consumer span")
    finally:
        await worker.close()
    process = one(py_otel.spans(), f"process {queue_name}")
    assert seen and seen[0][0] != threading.get_ident()
    assert f"{seen[0][1]:016x}" == process["spanId"]


async def test_bulk_both_ways(harness: Harness, py_otel: PyOtel, redis_url: str, queue_name: str) -> None:
    node = await harness("addBulk", queue=queue_name, jobs=[{"name": "a", "data": {}}, {"name": "b", "data": {}}])
    async with Queue(queue_name, connection=redis_url, telemetry=py_otel.telemetry) as producer:
        py_jobs = await producer.add_bulk(
            [
                ("a", {}),
                ("b", {}, {"telemetry": Telemetry(omit_context=True)}),
                ("c", {}, {"telemetry": Telemetry(metadata='{"custom":"1"}')}),
            ]
        )
        node_opts = [await raw_opts(producer, i) for i in node["ids"]]
        py_opts = [await raw_opts(producer, j.id) for j in py_jobs]
    node_bulk = one(await harness("spans"), f"addBulk {queue_name}")
    py_bulk = one(py_otel.spans(), f"addBulk {queue_name}")
    for span, names in ((node_bulk, ["a", "b"]), (py_bulk, ["a", "b", "c"])):
        assert span["kind"] == "PRODUCER"
        assert span["attributes"] == {
            "bullmq.queue.name": queue_name,
            "bullmq.queue.operation": "addBulk",
            "bullmq.job.bulk.names": names,
            "bullmq.job.bulk.count": len(names),
        }
    for opts, span in ((node_opts[0], node_bulk), (node_opts[1], node_bulk), (py_opts[0], py_bulk)):
        assert tm_of(opts) == '{"traceparent":"%s"}' % traceparent(span)  # noqa: UP031
    assert json.loads(py_opts[1]) == {"attempts": 0, "omc": True}  # (Node's addBulk adds "tm":false: telemetry.py)
    assert json.loads(py_opts[2]) == {"attempts": 0, "tm": '{"custom":"1"}'}  # a metadata given is kept, as in Node


async def test_omit_context_both_ways(harness: Harness, py_otel: PyOtel, redis_url: str, queue_name: str) -> None:
    node_added = await harness("add", queue=queue_name, name="welcome", opts={"telemetry": {"omitContext": True}})
    async with Queue(queue_name, connection=redis_url, telemetry=py_otel.telemetry) as producer:
        with py_otel.tracer.start_as_current_span("POST /signup"):
            py_job = await producer.add("welcome", telemetry=Telemetry(omit_context=True))
        stored = await raw_opts(producer, py_job.id)
        assert stored == await raw_opts(producer, node_added["id"])
        assert json.loads(stored) == {"attempts": 0, "omc": True}
        worker = make_worker(queue_name, redis_url, py_otel, _noop)
        await worker.start()
        try:
            await producer.result(node_added["id"], timeout=10)
            await producer.result(py_job.id, timeout=10)
        finally:
            await worker.close()
    processes = named(py_otel.spans(), f"process {queue_name}")
    py_add = one(py_otel.spans(), f"add {queue_name}.welcome")
    assert len(processes) == 2
    for process in processes:  # no stored context: each attempt starts a trace of its own
        assert process["parentSpanId"] is None and process["traceId"] != py_add["traceId"]


async def test_completions_retries_and_failures_are_recorded_like_node(
    harness: Harness, py_otel: PyOtel, redis_url: str, queue_name: str
) -> None:
    """The same jobs run on a Node worker and on a Python worker: their spans agree
    (names, kinds, attributes, events, the INTERNAL span that finishes each attempt)."""
    jobs: dict[str, dict[str, Any]] = {
        "ok": {},
        "delayed": {"attempts": 2, "backoff": {"type": "fixed", "delay": 50}},
        "retried": {"attempts": 2},
    }
    shapes: dict[str, Any] = {}
    reasons: dict[str, list[str]] = {}
    for lang in ("node", "python"):
        queue = f"{queue_name}-{lang}"
        ids = {kind: (await harness("add", queue=queue, name=kind, opts=opts))["id"] for kind, opts in jobs.items()}
        async with Queue(queue, connection=redis_url) as producer:
            if lang == "node":
                await harness("startWorker", queue=queue, fail="boom", opts={"name": "node-worker"})
            else:

                async def run(job: Any) -> dict[str, Any]:
                    if job.name != "ok":
                        raise RuntimeError("boom")
                    return {"echoed": job.data}

                worker = Worker(queue, run, connection=redis_url, telemetry=py_otel.telemetry)
                await worker.start()
            for kind, job_id in ids.items():
                outcome = await producer.wait_for(job_id, timeout=10)
                assert outcome.state == ("completed" if kind == "ok" else "failed")
            if lang == "python":
                await worker.close()

        async def all_attempts(queue: str = queue, lang: str = lang) -> list[dict[str, Any]] | None:
            # (the queue's event can reach us before Node's worker ends its span)
            spans = await harness("spans") + (py_otel.spans() if lang == "python" else [])
            return spans if len(named(spans, f"process {queue}")) == 5 else None

        spans = await until(all_attempts, what=f"{lang}'s five attempts")
        node_spans = [s for s in spans if s["scope"] != "python-app"]
        shapes[lang], reasons[lang] = {}, []
        for kind in jobs:
            add = one(node_spans, f"add {queue}.{kind}")
            attempts = sorted(
                (s for s in spans if s["parentSpanId"] == add["spanId"]),
                key=lambda s: s["attributes"]["bullmq.job.attempts.made"],
            )
            assert [a["name"] for a in attempts] == [f"process {queue}"] * (1 if kind == "ok" else 2)
            assert {a["kind"] for a in attempts} == {"CONSUMER"}
            shapes[lang][kind] = [
                {
                    "attributes": sorted(attempt["attributes"]),
                    "attempts_made": attempt["attributes"]["bullmq.job.attempts.made"],
                    "events": [(e["name"], sorted(e["attributes"])) for e in attempt["events"]],
                    "inner": [
                        (s["name"].replace(queue, "Q"), s["kind"], sorted(s["attributes"]))
                        for s in spans
                        if s["parentSpanId"] == attempt["spanId"] and s["name"] != "handler"
                    ],
                }
                for attempt in attempts
            ]
            reasons[lang] += [
                e["attributes"]["bullmq.job.failed.reason"]
                for a in attempts
                for e in a["events"]
                if e["name"] == "job failed"
            ]
    assert shapes["python"] == shapes["node"]
    assert [[i[0] for a in shapes["python"][kind] for i in a["inner"]] for kind in jobs] == [
        ["complete Q"],
        ["delay Q", "fail Q"],
        ["retry Q", "fail Q"],
    ]
    assert [a["attempts_made"] for a in shapes["python"]["retried"]] == [1, 2]
    # The reason is each side's failedReason: Node's err.message, bullbridge's "Class: message".
    assert set(reasons["node"]) == {"boom"} and set(reasons["python"]) == {"RuntimeError: boom"}


async def test_node_flow_processed_in_python_is_one_trace(
    harness: Harness, py_otel: PyOtel, redis_url: str, queue_name: str
) -> None:
    parent_q, child_q = f"{queue_name}-parent", f"{queue_name}-child"
    # (bullmq 6.7 stores a node's context only when the node has opts: `opts: {}` suffices.)
    flow = {
        "name": "report",
        "queueName": parent_q,
        "opts": {},
        "children": [{"name": "part", "queueName": child_q, "data": {"n": n}, "opts": {}} for n in (1, 2)],
    }
    added = await harness("addFlow", flow=flow)
    tree = added["tree"]

    async def part(job: Any) -> int:
        return int(job.data["n"])

    async def report(job: Any) -> int:
        return sum((await job.children_values()).values())

    workers = [
        make_worker(child_q, redis_url, py_otel, part, name="part"),
        make_worker(parent_q, redis_url, py_otel, report, name="report"),
    ]
    for worker in workers:
        await worker.start()
    try:
        async with Queue(parent_q, connection=redis_url) as producer:
            assert await producer.result(tree["id"], timeout=10) == 3
        await until(lambda: len(named(py_otel.spans(), f"process {parent_q}")) == 1, what="the parent's span")
    finally:
        for worker in workers:
            await worker.close()
    node_spans = await harness("spans")
    add_flow = one(node_spans, f"addFlow {parent_q}")
    assert add_flow["attributes"]["bullmq.flow.name"] == "report"
    node_by_job = {
        s["attributes"]["bullmq.job.id"]: s
        for s in named(node_spans, f"addNode {parent_q}") + named(node_spans, f"addNode {child_q}")
    }
    assert node_by_job[tree["id"]]["parentSpanId"] == add_flow["spanId"]
    py_spans = py_otel.spans()
    processes = named(py_spans, f"process {child_q}") + named(py_spans, f"process {parent_q}")
    assert len(processes) == 3
    for process in processes:  # one trace, each job's attempt under the span that added it
        assert process["traceId"] == add_flow["traceId"] == added["outer"]["traceId"]
        assert process["parentSpanId"] == node_by_job[process["attributes"]["bullmq.job.id"]]["spanId"]
    for child in tree["children"]:
        assert node_by_job[child["id"]]["parentSpanId"] == node_by_job[tree["id"]]["spanId"]


async def test_python_flow_processed_in_node_is_one_trace(
    harness: Harness, py_otel: PyOtel, redis_url: str, queue_name: str
) -> None:
    parent_q, child_q = f"{queue_name}-parent", f"{queue_name}-child"
    async with FlowProducer(redis_url, telemetry=py_otel.telemetry) as flows:
        with py_otel.tracer.start_as_current_span("POST /reports", kind=SpanKind.SERVER):
            node = await flows.add(
                FlowJob("report", parent_q, children=[FlowJob("part", child_q, {"n": n}) for n in (1, 2)])
            )
    await harness("startWorker", queue=child_q)
    await harness("startWorker", queue=parent_q)
    async with Queue(parent_q, connection=redis_url) as producer:
        await producer.result(node.id, timeout=10)
    py_spans = py_otel.spans()
    outer = one(py_spans, "POST /reports")
    add_flow = one(py_spans, f"addFlow {parent_q}")
    assert add_flow["kind"] == "PRODUCER" and add_flow["parentSpanId"] == outer["spanId"]
    assert add_flow["attributes"] == {
        "bullmq.queue.name": parent_q,
        "bullmq.queue.operation": "addFlow",
        "bullmq.flow.name": "report",
    }
    add_nodes = {
        s["attributes"]["bullmq.job.id"]: s
        for s in named(py_spans, f"addNode {parent_q}") + named(py_spans, f"addNode {child_q}")
    }
    assert add_nodes[node.id]["parentSpanId"] == add_flow["spanId"]
    assert add_nodes[node.id]["attributes"] == {
        "bullmq.queue.name": parent_q,
        "bullmq.queue.operation": "addNode",
        "bullmq.job.name": "report",
        "bullmq.job.id": node.id,
    }
    for child in node.children:
        assert add_nodes[child.id]["parentSpanId"] == add_nodes[node.id]["spanId"]
    node_spans = await until(lambda: _with_span(harness, f"process {parent_q}"), what="Node's parent span")
    processes = named(node_spans, f"process {child_q}") + named(node_spans, f"process {parent_q}")
    assert len(processes) == 3
    for process in processes:
        assert process["traceId"] == outer["traceId"]
        assert process["parentSpanId"] == add_nodes[process["attributes"]["bullmq.job.id"]]["spanId"]


async def test_python_bulk_flows_span(py_otel: PyOtel, redis_url: str, queue_name: str) -> None:
    async with FlowProducer(redis_url, telemetry=py_otel.telemetry) as flows:
        await flows.add_bulk([FlowJob("one", queue_name), FlowJob("two", queue_name)])
    spans = py_otel.spans()
    bulk = one(spans, "addBulkFlows")
    assert bulk["attributes"] == {
        "bullmq.queue.name": "",
        "bullmq.queue.operation": "addBulkFlows",
        "bullmq.job.bulk.count": 2,
        "bullmq.job.bulk.names": "one,two",
    }
    assert [s["parentSpanId"] for s in named(spans, f"addNode {queue_name}")] == [bulk["spanId"]] * 2


async def _noop(job: Any) -> None:
    await asyncio.sleep(0)


async def _with_span(harness: Harness, name: str) -> list[dict[str, Any]] | None:
    spans: list[dict[str, Any]] = await harness("spans")
    return spans if named(spans, name) else None

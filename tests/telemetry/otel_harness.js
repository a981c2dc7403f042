// The Node side of bullbridge's telemetry interop tests: npm `bullmq-otel` on the
// OpenTelemetry JS SDK, with in-memory exporters, inside the test's own Node driver.
//
// Called through the driver's `producer.call` (`fn(queue, args, ctx)`): `setup` once
// with `args.modules` (the folder `npm install --prefix` filled), then `add`,
// `addBulk`, `addFlow`, `startWorker`, `recordCounts`, `spans`, `metrics`, `reset`, `closeWorkers`.
// Every Queue / FlowProducer / Worker here gets `telemetry: new BullMQOtel(...)`,
// exactly as a Node service enables BullMQ's tracing.
'use strict';

const state = globalThis.__bullbridgeOtel || (globalThis.__bullbridgeOtel = { workers: [] });

function load(dir, name) {
  return require(require.resolve(name, { paths: [dir] }));
}

exports.setup = async (_queue, args) => {
  if (state.ready) return { versions: state.versions };
  const dir = args.modules;
  const api = load(dir, '@opentelemetry/api');
  const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = load(dir, '@opentelemetry/sdk-trace-base');
  const { AsyncLocalStorageContextManager } = load(dir, '@opentelemetry/context-async-hooks');
  const { CompositePropagator, W3CTraceContextPropagator, W3CBaggagePropagator } = load(dir, '@opentelemetry/core');
  const {
    MeterProvider, InMemoryMetricExporter, PeriodicExportingMetricReader, AggregationTemporality,
  } = load(dir, '@opentelemetry/sdk-metrics');
  const { BullMQOtel } = load(dir, 'bullmq-otel');

  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  api.trace.setGlobalTracerProvider(provider);
  api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  // What NodeSDK registers by default: W3C trace context, then baggage.
  api.propagation.setGlobalPropagator(new CompositePropagator({
    propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
  }));
  const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 3600000 });
  api.metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));

  const fs = require('node:fs');
  const path = require('node:path');
  const version = name => JSON.parse(fs.readFileSync(path.join(dir, 'node_modules', name, 'package.json'), 'utf8')).version;
  const versions = {};
  for (const name of ['bullmq-otel', '@opentelemetry/api', '@opentelemetry/sdk-trace-base',
    '@opentelemetry/core', '@opentelemetry/context-async-hooks', '@opentelemetry/sdk-metrics']) {
    versions[name] = version(name);
  }
  Object.assign(state, { api, exporter, reader, metricExporter, BullMQOtel, versions, ready: true });
  return { versions };
};

function telemetry() {
  return new state.BullMQOtel({ tracerName: 'node-app', enableMetrics: true });
}

// Run `fn` inside an outer span (the "HTTP handler"), with optional baggage.
async function inOuterSpan(args, fn) {
  const { api } = state;
  let ctx = api.context.active();
  if (args.baggage) {
    const entries = {};
    for (const [k, v] of Object.entries(args.baggage)) entries[k] = { value: v };
    ctx = api.propagation.setBaggage(ctx, api.propagation.createBaggage(entries));
  }
  const tracer = api.trace.getTracer('node-http');
  return api.context.with(ctx, () => tracer.startActiveSpan(
    args.outer || 'POST /signup', { kind: api.SpanKind.SERVER }, async span => {
      try {
        const result = await fn();
        return { result, outer: { traceId: span.spanContext().traceId, spanId: span.spanContext().spanId } };
      } finally {
        span.end();
      }
    }));
}

exports.add = async (_queue, args, ctx) => {
  const queue = new ctx.Queue(args.queue, { telemetry: telemetry() });
  const { result, outer } = await inOuterSpan(args, () => queue.add(args.name, args.data || {}, args.opts || {}));
  return { id: result.id, outer };
};

exports.addBulk = async (_queue, args, ctx) => {
  const queue = new ctx.Queue(args.queue, { telemetry: telemetry() });
  const { result, outer } = await inOuterSpan(args, () => queue.addBulk(args.jobs));
  return { ids: result.map(job => job.id), outer };
};

exports.addFlow = async (_queue, args, ctx) => {
  const flows = new ctx.FlowProducer({ telemetry: telemetry() });
  const ids = node => ({ id: node.job.id, queue: node.job.queueName, children: (node.children || []).map(ids) });
  const { result, outer } = await inOuterSpan(args, () => flows.add(args.flow));
  return { tree: ids(result), outer };
};

// A worker with BullMQOtel. Its processor starts a span of its own ("handler"), so the
// test sees that user code runs inside the consumer span; `fail` makes it throw (but for jobs named "ok").
exports.startWorker = async (_queue, args, ctx) => {
  const { api } = state;
  const worker = new ctx.bullmq.Worker(args.queue, async job => {
    const tracer = api.trace.getTracer('node-handler');
    return tracer.startActiveSpan('handler', async span => {
      try {
        if (args.fail && job.name !== 'ok') throw new Error(args.fail);
        return { echoed: job.data, baggage: Object.fromEntries(
          (api.propagation.getActiveBaggage() || api.propagation.createBaggage()).getAllEntries()
            .map(([k, v]) => [k, v.value])) };
      } finally {
        span.end();
      }
    });
  }, { connection: ctx.connection, prefix: ctx.prefix, telemetry: telemetry(), ...(args.opts || {}) });
  state.workers.push(worker);
  await worker.waitUntilReady();
  return { id: worker.id };
};

exports.closeWorkers = async () => {
  const workers = state.workers.splice(0);
  await Promise.allSettled(workers.map(w => w.close()));
  return workers.length;
};

const KINDS = ['INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];

exports.spans = async () => state.exporter.getFinishedSpans().map(span => {
  const parent = span.parentSpanContext || (span.parentSpanId ? { spanId: span.parentSpanId } : undefined);
  return {
    name: span.name,
    kind: KINDS[span.kind],
    traceId: span.spanContext().traceId,
    spanId: span.spanContext().spanId,
    traceFlags: span.spanContext().traceFlags,
    parentSpanId: parent ? parent.spanId : null,
    attributes: span.attributes,
    events: span.events.map(e => ({ name: e.name, attributes: e.attributes || {} })),
    scope: (span.instrumentationScope || span.instrumentationLibrary || {}).name,
  };
});

exports.metrics = async () => {
  await state.reader.forceFlush();
  const batches = state.metricExporter.getMetrics();
  const last = batches[batches.length - 1];
  const out = [];
  for (const scope of (last ? last.scopeMetrics : [])) {
    for (const metric of scope.metrics) {
      out.push({
        name: metric.descriptor.name,
        unit: metric.descriptor.unit,
        description: metric.descriptor.description,
        scope: scope.scope.name,
        points: metric.dataPoints.map(p => ({
          attributes: p.attributes,
          value: typeof p.value === 'number' ? p.value : { count: p.value.count, sum: p.value.sum },
        })),
      });
    }
  }
  return out;
};

// Node's Queue.recordJobCountsMetric: the bullmq.queue.jobs gauge.
exports.recordCounts = async (_queue, args, ctx) => {
  const queue = new ctx.Queue(args.queue, { telemetry: telemetry() });
  return queue.recordJobCountsMetric(...(args.states || []));
};

exports.reset = async () => {
  state.exporter.reset();
  return true;
};

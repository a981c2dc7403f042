#!/usr/bin/env node
// The Node side of bullbridge's benchmark (bench/README.md), on the real npm
// `bullmq` in node_modules. One script, four modes:
//
//   node node_bench.js helper  '{"url": ...}'   long-lived: fills queues with addBulk and
//                                                verifies runs (JSON lines on stdin/stdout)
//   node node_bench.js drain   '{"url", "queue", "jobs", "concurrency"}'
//   node node_bench.js produce '{"url", "queue", "jobs", "pattern": "inflight"|"bulk"|"sequential", "inflight", "batch", "warm"}'
//   node node_bench.js latency '{"url", "queue", "samples", "concurrency"}'
//
// Measured modes talk to the harness in JSON lines: they print {"event": "ready"},
// wait for "go" on stdin (drain, produce), print {"event": "done", ...} with their
// own figures, wait for "quit", close and exit. CPU is the process's own
// (getrusage: every thread), peak RSS is VmHWM from /proc/self/status, times
// are CLOCK_MONOTONIC in microseconds (the Python side reads the same clock).
// stdout carries the protocol only: console output goes to stderr.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const { Queue, Worker, Job } = require('bullmq');
const IORedis = require('ioredis');

for (const name of ['log', 'info', 'warn', 'debug']) {
  console[name] = (...args) => process.stderr.write(args.map(String).join(' ') + '\n');
}

function send(msg) {
  process.stdout.write(JSON.stringify(msg) + '\n');
}

function connectionFromUrl(url) {
  const u = new URL(url);
  return {
    host: u.hostname || '127.0.0.1',
    port: Number(u.port || 6379),
    db: Number((u.pathname || '/0').slice(1) || 0),
    maxRetriesPerRequest: null,
  };
}

const cpuTimes = () => process.cpuUsage();
const cpuReport = (start, end) => ({
  cpu_s: (end.user + end.system - start.user - start.system) / 1e6,
  cpu_sys_s: (end.system - start.system) / 1e6,
});
const monoUs = () => Number(process.hrtime.bigint() / 1000n);

function memoryKb() {
  const text = fs.readFileSync('/proc/self/status', 'utf8');
  const field = name => {
    const m = text.match(new RegExp(`^${name}:\\s+(\\d+)\\s+kB`, 'm'));
    return m ? Number(m[1]) : 0;
  };
  return { peak_rss_kb: field('VmHWM'), rss_kb: field('VmRSS') };
}

// -- stdin: one line at a time; stdin closing (the harness died) ends the process --

const lines = [];
const lineWaiters = [];
const input = readline.createInterface({ input: process.stdin });
input.on('line', line => {
  const waiter = lineWaiters.shift();
  if (waiter) waiter(line.trim());
  else lines.push(line.trim());
});
input.on('close', () => process.exit(3));

function nextLine() {
  if (lines.length) return Promise.resolve(lines.shift());
  return new Promise(resolve => lineWaiters.push(resolve));
}

async function expectLine(word) {
  const line = await nextLine();
  if (line !== word) throw new Error(`expected ${JSON.stringify(word)} on stdin, got ${JSON.stringify(line)}`);
}

// -- workloads: what a drained job carries and what its handler does (the same in child.py) --
//   noop:    data {i}; the handler returns nothing
//   payload: data {i, items: 12 order lines} (~2 KB of JSON); the handler returns ~1 KB
//   io:      data {i}; the handler awaits a 5 ms timer (an I/O-bound handler)

function payloadData(i) {
  const items = [];
  for (let k = 0; k < 12; k++) {
    items.push({
      sku: `SKU-${String(i * 12 + k).padStart(8, '0')}`, name: `Item number ${k} of order ${i}`,
      qty: (k % 4) + 1, price: 1.25 * (k + 1), tags: ['retail', 'eu-west', k % 2 ? 'gift' : 'standard'],
      warehouse: { id: `W${k % 5}`, zone: 'north' },
    });
  }
  return { i, customer: { id: `C${i}`, email: `user${i}@example.com`, tier: 'gold' }, currency: 'EUR', items };
}

function payloadResult(data) {
  const lines = data.items.map(it => ({ sku: it.sku, total: it.qty * it.price, status: 'reserved', eta: '2026-12-05' }));
  return { i: data.i, order: `O-${data.i}`, lines, note: 'reserved in the primary warehouse; ships within 24 h' };
}

function handlerFor(work, onStart) {
  if (work === 'payload') return async job => { onStart(); return payloadResult(job.data); };
  if (work === 'io') return async () => { onStart(); await new Promise(resolve => setTimeout(resolve, 5)); };
  return async () => { onStart(); };
}

// The CPUs this process may run on (its affinity, as the harness pinned it).
function cpuCount() {
  try {
    const text = fs.readFileSync('/proc/self/status', 'utf8');
    const m = text.match(/^Cpus_allowed_list:\s*(\S+)/m);
    if (m) {
      return m[1].split(',').reduce((n, part) => {
        const [lo, hi] = part.split('-').map(Number);
        return n + (hi === undefined ? 1 : hi - lo + 1);
      }, 0);
    }
  } catch (e) { /* not Linux */ }
  return require('node:os').cpus().length;
}

// Warm-up, as a long-lived service is warm: drain `warm` jobs of the same kind from
// another queue (filled by the helper) with a worker of the same settings, then close it.
async function warmUp(a, connection) {
  if (!a.warm) return;
  let done = 0;
  let finish;
  const finished = new Promise(resolve => { finish = resolve; });
  const worker = new Worker(a.warm_queue, handlerFor(a.work, () => {}), { connection, concurrency: a.concurrency });
  worker.on('completed', () => { done += 1; if (done === a.warm) finish(); });
  worker.on('failed', () => { done += 1; if (done === a.warm) finish(); });
  await finished;
  await worker.close();
}

// -- measured modes ---------------------------------------------------------------

async function drain(a) {
  const connection = connectionFromUrl(a.url);
  await warmUp(a, connection);
  send({ event: 'ready', pid: process.pid });
  await expectLine('go');
  let first = null;
  let firstCpu = null;
  let completed = 0;
  let failed = 0;
  let end = null;
  let endCpu = null;
  let finish;
  const finished = new Promise(resolve => { finish = resolve; });
  const settle = () => {
    if (completed + failed === a.jobs) {
      end = monoUs();
      endCpu = cpuTimes();
      finish();
    }
  };
  const onStart = () => {
    if (first === null) {
      first = monoUs();
      firstCpu = cpuTimes();
    }
  };
  let worker;
  if (a.work === 'cpu') {
    // Sandboxed processors, one child process per core (the client's CPUs), as BullMQ runs CPU-bound work.
    const cores = cpuCount();
    worker = new Worker(a.queue, path.join(__dirname, 'node_cpu_processor.js'), { connection, concurrency: cores });
    worker.on('active', onStart);
  } else {
    worker = new Worker(a.queue, handlerFor(a.work, onStart), { connection, concurrency: a.concurrency });
  }
  worker.on('completed', () => { completed += 1; settle(); });
  worker.on('failed', () => { failed += 1; settle(); });
  worker.on('error', err => console.warn(`worker error: ${err && err.message}`));
  await finished;
  send({
    event: 'done', completed, failed, first_us: first, end_us: end,
    ...(firstCpu && endCpu ? cpuReport(firstCpu, endCpu) : { cpu_s: 0, cpu_sys_s: 0 }), ...memoryKb(),
  });
  await expectLine('quit');
  await worker.close();
}

async function addJobs(queue, a, count, latencies) {
  if (a.pattern === 'sequential') {
    // One add after another, each timed (us), as sequential code awaits it.
    for (let i = 0; i < count; i++) {
      const t0 = process.hrtime.bigint();
      await queue.add('noop', { i });
      if (latencies) latencies.push(Number((process.hrtime.bigint() - t0) / 1000n));
    }
  } else if (a.pattern === 'inflight') {
    let next = 0;
    const loop = async () => {
      while (next < count) {
        const i = next++;
        await queue.add('noop', { i });
      }
    };
    await Promise.all(Array.from({ length: a.inflight }, loop));
  } else {
    for (let start = 0; start < count; start += a.batch) {
      const batch = [];
      for (let i = start; i < Math.min(count, start + a.batch); i++) batch.push({ name: 'noop', data: { i } });
      await queue.addBulk(batch);
    }
  }
}

async function produce(a) {
  const connection = connectionFromUrl(a.url);
  const queue = new Queue(a.queue, { connection });
  // Warm up as a long-lived service would be: the same adds on another queue
  // (code compiled, scripts cached in Redis), and this queue's connection up.
  const warm = new Queue(`${a.queue}-warm`, { connection });
  await addJobs(warm, a, a.warm);
  await warm.close();
  await queue.getJobCounts('wait');
  send({ event: 'ready', pid: process.pid });
  await expectLine('go');
  const latencies = [];
  const t0 = monoUs();
  const c0 = cpuTimes();
  await addJobs(queue, a, a.jobs, latencies);
  const t1 = monoUs();
  const c1 = cpuTimes();
  send({
    event: 'done', first_us: t0, end_us: t1, added: a.jobs, latencies_us: latencies, ...cpuReport(c0, c1),
    ...memoryKb(),
  });
  await expectLine('quit');
  await queue.close();
}

async function latency(a) {
  const connection = connectionFromUrl(a.url);
  const latencies = [];
  let completed = 0;
  let failed = 0;
  let finish;
  const finished = new Promise(resolve => { finish = resolve; });
  const settle = () => { if (completed + failed === a.samples) finish(); };
  const worker = new Worker(a.queue, async job => {
    latencies.push(monoUs() - job.data.t);
  }, { connection, concurrency: a.concurrency });
  worker.on('completed', () => { completed += 1; settle(); });
  worker.on('failed', () => { failed += 1; settle(); });
  worker.on('error', err => console.warn(`worker error: ${err && err.message}`));
  await worker.waitUntilReady();
  send({ event: 'ready', pid: process.pid });
  await finished;
  send({ event: 'done', completed, failed, latencies_us: latencies, ...memoryKb() });
  await expectLine('quit');
  await worker.close();
}

// One process serving `queues` empty queues, a Worker each (concurrency 1); the harness
// measures it while it waits.
async function idle(a) {
  const connection = connectionFromUrl(a.url);
  const workers = [];
  for (let k = 0; k < a.queues; k++) {
    const worker = new Worker(`${a.queue}-${k}`, async () => {}, { connection, concurrency: 1 });
    worker.on('error', err => console.warn(`worker error: ${err && err.message}`));
    workers.push(worker);
  }
  await Promise.all(workers.map(w => w.waitUntilReady()));
  send({ event: 'ready', pid: process.pid, ...memoryKb() });
  await expectLine('quit');
  await Promise.all(workers.map(w => w.close()));
}

// Time to first job: started cold by the harness, one job waiting; the handler
// returns the CLOCK_MONOTONIC time (us) it first ran, then the process exits.
async function startup(a) {
  const connection = connectionFromUrl(a.url);
  let finish;
  const finished = new Promise(resolve => { finish = resolve; });
  const worker = new Worker(a.queue, async () => monoUs(), { connection, concurrency: 1 });
  worker.on('completed', () => finish());
  await finished;
  await worker.close();
}

// -- the helper: fill and verify, on one shared connection --------------------------

const COUNT_TYPES = ['active', 'completed', 'delayed', 'failed', 'paused', 'prioritized', 'waiting',
  'waiting-children'];

function bullmqVersion() {
  let dir = path.dirname(require.resolve('bullmq'));
  while (dir !== path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8'));
      if (pkg.name === 'bullmq') return pkg.version;
    }
    dir = path.dirname(dir);
  }
  return 'unknown';
}

async function fill(client, m) {
  const queue = new Queue(m.queue, { connection: client });
  const t0 = monoUs();
  const ids = [];
  for (let start = 0; start < m.jobs; start += m.batch) {
    const batch = [];
    for (let i = start; i < Math.min(m.jobs, start + m.batch); i++) {
      batch.push({ name: 'noop', data: m.work === 'payload' ? payloadData(i) : { i } });
    }
    for (const job of await queue.addBulk(batch)) ids.push(Number(job.id));
  }
  await queue.close();
  const first = ids[0];
  const contiguous = ids.every((id, k) => id === first + k);
  return { first_id: first, last_id: ids[ids.length - 1], contiguous, seconds: (monoUs() - t0) / 1e6 };
}

function pick(n, count) {
  const out = new Set();
  while (out.size < Math.min(n, count)) out.add(Math.floor(Math.random() * n));
  return [...out];
}

function checkFinished(job, problems, work) {
  const id = job.id;
  if (!job.finishedOn || !job.processedOn) {
    problems.push(`job ${id}: finishedOn/processedOn missing (${job.finishedOn}/${job.processedOn})`);
  } else if (job.finishedOn < job.processedOn || job.processedOn + 5 < job.timestamp) {
    problems.push(`job ${id}: times out of order (timestamp ${job.timestamp}, processedOn ${job.processedOn}, ` +
      `finishedOn ${job.finishedOn})`);
  }
  if (work === 'payload') {
    const want = job.data && job.data.items ? JSON.stringify(payloadResult(job.data)) : null;
    if (want === null || JSON.stringify(job.returnvalue) !== want) {
      problems.push(`job ${id}: returnvalue ${JSON.stringify(job.returnvalue).slice(0, 200)} is not the handler's`);
    }
  } else if (job.returnvalue !== null && job.returnvalue !== undefined) {
    problems.push(`job ${id}: returnvalue ${JSON.stringify(job.returnvalue)}, expected null (a no-op handler)`);
  }
  if (job.failedReason) problems.push(`job ${id}: failedReason ${JSON.stringify(job.failedReason)}`);
  if (job.name !== 'noop' || typeof (job.data && job.data.i) !== 'number') {
    problems.push(`job ${id}: name/data not as added (${job.name}, ${JSON.stringify(job.data)})`);
  }
}

// m: {queue, kind: completed|waiting|latency, expect, first_id, last_id, sample}; for waiting jobs
// added another way, state ('prioritized'), name and shape ('django': data {args: [i], kwargs: {}}).
async function verify(client, m) {
  const queue = new Queue(m.queue, { connection: client });
  const problems = [];
  const counts = await queue.getJobCounts(...COUNT_TYPES);
  const want = m.kind === 'waiting' ? (m.state || 'waiting') : 'completed';
  const name = m.name || 'noop';
  const indexOf = data => (m.shape === 'django' ? data && data.args && data.args[0] : data && data.i);
  for (const type of COUNT_TYPES) {
    const expected = type === want ? m.expect : 0;
    if (counts[type] !== expected) problems.push(`${counts[type]} ${type}, expected ${expected}`);
  }
  const sampled = [];
  if (m.kind === 'completed') {
    // Every job that was added is in the completed set...
    const keyCompleted = `${queue.opts.prefix || 'bull'}:${m.queue}:completed`;
    let missing = 0;
    for (let start = m.first_id; start <= m.last_id; start += 2000) {
      const pipe = client.pipeline();
      for (let id = start; id <= Math.min(m.last_id, start + 1999); id++) pipe.zscore(keyCompleted, String(id));
      for (const [err, score] of await pipe.exec()) if (err || score === null) missing += 1;
    }
    if (missing) problems.push(`${missing} of the added jobs are not in the completed set`);
    // ... and a sample reads back as Node expects: the newest ones and random ones.
    sampled.push(...await queue.getJobs(['completed'], 0, Math.max(0, Math.floor(m.sample / 2) - 1)));
    const span = m.last_id - m.first_id + 1;
    for (const k of pick(span, Math.ceil(m.sample / 2))) {
      const job = await Job.fromId(queue, String(m.first_id + k));
      if (!job) problems.push(`job ${m.first_id + k} is gone`);
      else sampled.push(job);
    }
    for (const job of sampled) checkFinished(job, problems, m.work);
  } else if (m.kind === 'waiting') {
    // Every job reads back with its data, each index exactly once.
    const keyBase = `${queue.opts.prefix || 'bull'}:${m.queue}:`;
    const ids = m.state === 'prioritized'
      ? await client.zrange(`${keyBase}prioritized`, 0, -1)
      : await client.lrange(`${keyBase}wait`, 0, -1);
    const seen = new Set();
    let bad = 0;
    for (let start = 0; start < ids.length; start += 2000) {
      const pipe = client.pipeline();
      for (const id of ids.slice(start, start + 2000)) pipe.hmget(`${keyBase}${id}`, 'name', 'data');
      for (const [err, reply] of await pipe.exec()) {
        let i = null;
        try {
          if (!err && reply[0] === name) i = indexOf(JSON.parse(reply[1]));
        } catch (e) {
          i = null;
        }
        if (!Number.isInteger(i) || i < 0 || i >= m.expect || seen.has(i)) bad += 1;
        else seen.add(i);
      }
    }
    if (bad || seen.size !== m.expect) problems.push(`${bad} waiting jobs unreadable or duplicated; ` +
      `${seen.size} of ${m.expect} distinct indices`);
    sampled.push(...await queue.getJobs([m.state === 'prioritized' ? 'prioritized' : 'wait'], 0, m.sample - 1));
    for (const job of sampled) {
      if (job.name !== name || typeof indexOf(job.data) !== 'number' || !job.timestamp) {
        problems.push(`job ${job.id}: not as added (${job.name}, ${JSON.stringify(job.data)})`);
      }
    }
  }
  await queue.close();
  return { ok: problems.length === 0, problems: problems.slice(0, 20), counts, sampled: sampled.length };
}

async function helper(a) {
  const client = new IORedis(connectionFromUrl(a.url));
  await client.ping();
  send({ event: 'ready', pid: process.pid, node: process.version, bullmq: bullmqVersion() });
  for (;;) {
    const line = await nextLine();
    if (!line) continue;
    const m = JSON.parse(line);
    if (m.cmd === 'quit') break;
    try {
      let result;
      if (m.cmd === 'fill') result = await fill(client, m);
      else if (m.cmd === 'verify') result = await verify(client, m);
      else throw new Error(`unknown command ${m.cmd}`);
      send({ ok: true, result });
    } catch (err) {
      send({ ok: false, error: String((err && err.stack) || err) });
    }
  }
  await client.quit();
}

const MODES = { helper, drain, produce, latency, idle, startup };

async function main() {
  const [mode, json] = process.argv.slice(2);
  if (!MODES[mode]) throw new Error(`usage: node_bench.js ${Object.keys(MODES).join('|')} '<json>'`);
  await MODES[mode](JSON.parse(json || '{}'));
  process.exit(0);
}

main().catch(err => {
  process.stderr.write(`${(err && err.stack) || err}\n`);
  process.exit(1);
});

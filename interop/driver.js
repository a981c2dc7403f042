#!/usr/bin/env node
// The Node side of bullbridge's interop suite.
//
// A long-lived process that Python tests command over stdin/stdout in JSON
// lines, using the real npm `bullmq` (whatever version node_modules holds):
//
//   request:  {"id": 1, "cmd": "queue.add", "queue": "q", "name": "n", "data": {...}, "opts": {...}}
//   reply:    {"id": 1, "ok": true, "result": ...}  |  {"id": 1, "ok": false, "error": "...", "stack": "..."}
//   push:     {"push": "worker", "handle": "w1", "event": "completed", ...}  (worker / queue events)
//
// stdout carries the protocol only: console.log/info/warn are sent to stderr.
'use strict';

const readline = require('node:readline');
const bullmq = require('bullmq');
const { Queue, Worker, QueueEvents, FlowProducer } = bullmq;

const out = process.stdout;
for (const name of ['log', 'info', 'warn', 'debug']) {
  console[name] = (...args) => process.stderr.write(args.map(String).join(' ') + '\n');
}

function send(msg) {
  out.write(JSON.stringify(msg) + '\n');
}

function connectionFromUrl(url) {
  const u = new URL(url || 'redis://127.0.0.1:6379/0');
  const opts = {
    host: u.hostname || '127.0.0.1',
    port: Number(u.port || 6379),
    db: Number((u.pathname || '/0').slice(1) || 0),
    maxRetriesPerRequest: null,
  };
  if (u.password) opts.password = decodeURIComponent(u.password);
  if (u.username) opts.username = decodeURIComponent(u.username);
  return opts;
}

const REDIS_URL = process.env.BULLBRIDGE_REDIS_URL || process.env.REDIS_URL;
const connection = connectionFromUrl(REDIS_URL);
const queues = new Map();
const workers = new Map();
const listeners = new Map();
const shared = {}; // state processors may use across jobs
let handleCounter = 0;

function prefixOf(msg) {
  return msg.prefix || 'bull';
}

function getQueue(name, prefix = 'bull', extra = {}) {
  const key = `${prefix}\u0000${name}`;
  if (!queues.has(key)) {
    queues.set(key, new Queue(name, { connection, prefix, ...extra }));
  }
  return queues.get(key);
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

// A processor is the source of a JS function `async (job, token, signal) => ...`;
// `sleep`, `shared`, `bullmq` and `handle` are in scope.
function compileProcessor(source, handle) {
  // eslint-disable-next-line no-new-func
  const factory = new Function('sleep', 'shared', 'bullmq', 'handle', `return (${source});`);
  return factory(sleep, shared, bullmq, handle);
}

// The state is read before the hash, so a caller waiting for state X always
// sees X's data (or newer) in the same answer.
async function jobJson(job, stateFirst) {
  if (!job) return null;
  const json = job.toJSON();
  json.state = stateFirst !== undefined ? stateFirst : await job.getState();
  json.queueQualifiedName = job.queueQualifiedName;
  return json;
}

function errorJson(err) {
  return { message: err && err.message, name: err && err.name, stack: err && err.stack };
}

function safe(value) {
  // JSON-able copy (drops functions, cycles become strings).
  try {
    return JSON.parse(JSON.stringify(value === undefined ? null : value));
  } catch (e) {
    return String(value);
  }
}

const commands = {
  async ping() {
    return {
      bullmq: require('bullmq/package.json').version,
      node: process.version,
      pid: process.pid,
    };
  },

  async 'queue.add'(m) {
    const job = await getQueue(m.queue, prefixOf(m)).add(m.name, m.data, m.opts || {});
    return { id: job.id };
  },

  async 'queue.addBulk'(m) {
    const jobs = await getQueue(m.queue, prefixOf(m)).addBulk(m.jobs);
    return jobs.map(j => j.id);
  },

  // Any Queue method: {"cmd": "queue.call", "queue": "q", "method": "getJobCounts", "args": [...]}
  async 'queue.call'(m) {
    const q = getQueue(m.queue, prefixOf(m));
    if (typeof q[m.method] !== 'function') throw new Error(`Queue has no method ${m.method}`);
    const result = await q[m.method](...(m.args || []));
    if (result && typeof result === 'object' && typeof result.toJSON === 'function' && result.queue) {
      return jobJson(result);
    }
    if (Array.isArray(result) && result.length && result[0] && result[0].queue && result[0].toJSON) {
      return Promise.all(result.map(jobJson));
    }
    return safe(result);
  },

  async 'job.get'(m) {
    const q = getQueue(m.queue, prefixOf(m));
    const state = await q.getJobState(m.jobId);
    const job = await q.getJob(m.jobId);
    return jobJson(job, state);
  },

  // Any Job method on a fetched job.
  async 'job.call'(m) {
    const job = await getQueue(m.queue, prefixOf(m)).getJob(m.jobId);
    if (!job) throw new Error(`no job ${m.jobId} in ${m.queue}`);
    return safe(await job[m.method](...(m.args || [])));
  },

  async 'flow.add'(m) {
    const flow = new FlowProducer({ connection, prefix: prefixOf(m) });
    try {
      const tree = await flow.add(m.flow);
      const ids = node => ({
        id: node.job.id,
        queue: node.job.queueName,
        children: (node.children || []).map(ids),
      });
      return ids(tree);
    } finally {
      await flow.close();
    }
  },

  async 'worker.start'(m) {
    const handle = m.handle || `w${++handleCounter}`;
    const processor = compileProcessor(m.processor || 'async job => job.data', handle);
    const opts = { connection, prefix: prefixOf(m), ...(m.opts || {}) };
    if (m.backoffStrategy) {
      opts.settings = { ...(opts.settings || {}), backoffStrategy: compileProcessor(m.backoffStrategy, handle) };
    }
    const worker = new Worker(m.queue, processor, opts);
    const push = (event, extra) => send({ push: 'worker', handle, event, queue: m.queue, ...extra });
    worker.on('active', job => push('active', { jobId: job.id, name: job.name, attemptsMade: job.attemptsMade }));
    worker.on('completed', (job, result) =>
      push('completed', { jobId: job.id, name: job.name, returnvalue: safe(result), data: safe(job.data),
                          attemptsMade: job.attemptsMade }));
    worker.on('failed', (job, err) =>
      push('failed', { jobId: job && job.id, name: job && job.name, failedReason: err && err.message,
                       attemptsMade: job && job.attemptsMade }));
    worker.on('progress', (job, progress) => push('progress', { jobId: job.id, progress: safe(progress) }));
    worker.on('stalled', jobId => push('stalled', { jobId }));
    worker.on('error', err => push('error', { error: errorJson(err) }));
    worker.on('drained', () => push('drained', {}));
    workers.set(handle, worker);
    await worker.waitUntilReady();
    return { handle, id: worker.id };
  },

  async 'worker.close'(m) {
    const worker = workers.get(m.handle);
    if (!worker) return false;
    await worker.close(!!m.force);
    workers.delete(m.handle);
    return true;
  },

  async 'worker.pause'(m) {
    await workers.get(m.handle).pause(!!m.doNotWaitActive);
    return true;
  },

  async 'worker.resume'(m) {
    workers.get(m.handle).resume();
    return true;
  },

  async 'events.subscribe'(m) {
    const handle = m.handle || `e${++handleCounter}`;
    const qe = new QueueEvents(m.queue, { connection, prefix: prefixOf(m), lastEventId: m.lastEventId });
    const names = m.events || ['added', 'waiting', 'active', 'progress', 'completed', 'failed', 'delayed',
                               'stalled', 'retries-exhausted', 'removed', 'drained', 'deduplicated'];
    for (const name of names) {
      qe.on(name, args => send({ push: 'events', handle, event: name, queue: m.queue, args: safe(args) }));
    }
    listeners.set(handle, qe);
    await qe.waitUntilReady();
    return { handle };
  },

  async 'events.close'(m) {
    const qe = listeners.get(m.handle);
    if (qe) await qe.close();
    listeners.delete(m.handle);
    return true;
  },

  // Arbitrary async code, for what no command covers:
  // {"cmd": "eval", "code": "return (await queue('q').getJobCounts())"}
  async eval(m) {
    // eslint-disable-next-line no-new-func
    const fn = new Function('bullmq', 'connection', 'queue', 'shared', 'sleep', 'args', 'workers',
      `return (async () => { ${m.code} })();`);
    const queueFn = (name, prefix = 'bull') => getQueue(name, prefix);
    return safe(await fn(bullmq, connection, queueFn, shared, sleep, m.args || {}, workers));
  },

  async 'shared.get'(m) {
    return safe(m.key ? shared[m.key] : shared);
  },

  async close() {
    await Promise.allSettled([...workers.values()].map(w => w.close()));
    await Promise.allSettled([...listeners.values()].map(l => l.close()));
    await Promise.allSettled([...queues.values()].map(q => q.close()));
    workers.clear();
    listeners.clear();
    queues.clear();
    return true;
  },
};

async function handle(line) {
  let msg;
  try {
    msg = JSON.parse(line);
  } catch (e) {
    send({ id: null, ok: false, error: `bad JSON: ${e.message}` });
    return;
  }
  const fn = commands[msg.cmd];
  if (!fn) {
    send({ id: msg.id, ok: false, error: `unknown command ${msg.cmd}` });
    return;
  }
  try {
    const result = await fn(msg);
    send({ id: msg.id, ok: true, result: result === undefined ? null : result });
  } catch (err) {
    send({ id: msg.id, ok: false, error: (err && err.message) || String(err), stack: err && err.stack });
  }
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', line => {
  if (line.trim()) handle(line);
});
rl.on('close', async () => {
  await commands.close().catch(() => {});
  process.exit(0);
});
process.on('unhandledRejection', err => {
  process.stderr.write(`unhandled rejection: ${err && err.stack}\n`);
});
send({ push: 'ready', bullmq: require('bullmq/package.json').version });

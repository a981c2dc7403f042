#!/usr/bin/env node
// The Node side of bullbridge's interop tests (and of the pytest plugin).
//
// A long-lived process that Python commands over stdin/stdout in JSON lines,
// using the real npm `bullmq`:
//
//   request:  {"id": 1, "cmd": "queue.add", "queue": "q", "name": "n", "data": {...}, "opts": {...}}
//   reply:    {"id": 1, "ok": true, "result": ...}  |  {"id": 1, "ok": false, "error": "...", "stack": "..."}
//   push:     {"push": "worker", "handle": "w1", "event": "completed", ...}  (worker / queue events)
//
// Which `bullmq` it loads (the user's, so their pinned version is what runs):
//   1. $BULLBRIDGE_NODE_MODULES: a node_modules folder, or a project folder holding one
//      (an error when bullmq is not there);
//   2. each folder of $NODE_PATH;
//   3. the driver's own resolution (bullbridge's checkout: its node_modules).
//
// User code runs in two shapes:
//   * a processor module, exactly what BullMQ's sandboxed processors export:
//     `module.exports = async (job, token, signal) => ...` (or `export default`,
//     or a named export): {"cmd": "worker.start", "module": "/abs/processor.js", "export": "name"};
//   * a producer module: `module.exports = async (queue, args, ctx) => queue.add(...)`, where
//     `queue` is a Queue on the test's queue and prefix, `args` is what the test passed and
//     `ctx` = {Queue, FlowProducer, queue(name), connection, prefix, bullmq}: classes that
//     always use the test's Redis and prefix. {"cmd": "producer.call", "module": ..., "queue": ..., "args": ...}
//
// stdout carries the protocol only: console.log/info/warn are sent to stderr.
'use strict';

const path = require('node:path');
const fs = require('node:fs');
const readline = require('node:readline');
const { pathToFileURL } = require('node:url');
const { spawnSync } = require('node:child_process');

const out = process.stdout;
for (const name of ['log', 'info', 'warn', 'debug']) {
  console[name] = (...args) => process.stderr.write(args.map(String).join(' ') + '\n');
}

function send(msg) {
  out.write(JSON.stringify(msg) + '\n');
}

// --- which bullmq ------------------------------------------------------------------

// `require.resolve(..., {paths: [p]})` looks in p/node_modules and up; a folder
// that *is* a node_modules folder is searched from its parent.
function searchRoot(dir) {
  const abs = path.resolve(dir);
  return path.basename(abs) === 'node_modules' ? path.dirname(abs) : abs;
}

function packageRoot(entry) {
  let dir = path.dirname(entry);
  while (dir !== path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest)) {
      try {
        if (JSON.parse(fs.readFileSync(manifest, 'utf8')).name === 'bullmq') return dir;
      } catch (e) {
        // not JSON: keep walking up
      }
    }
    dir = path.dirname(dir);
  }
  return path.dirname(entry);
}

function resolveBullmq() {
  const explicit = process.env.BULLBRIDGE_NODE_MODULES;
  if (explicit) {
    const found = [];
    for (const dir of explicit.split(path.delimiter).filter(Boolean)) {
      try {
        return { entry: require.resolve('bullmq', { paths: [searchRoot(dir)] }), from: 'BULLBRIDGE_NODE_MODULES' };
      } catch (e) {
        found.push(dir);
      }
    }
    throw new Error(`bullmq is not installed in ${found.join(', ')} (BULLBRIDGE_NODE_MODULES): ` +
                    'run `npm install bullmq` in your Node project, or point bullbridge at its node_modules');
  }
  for (const dir of (process.env.NODE_PATH || '').split(path.delimiter).filter(Boolean)) {
    try {
      return { entry: require.resolve('bullmq', { paths: [searchRoot(dir)] }), from: 'NODE_PATH' };
    } catch (e) {
      // next folder
    }
  }
  try {
    return { entry: require.resolve('bullmq'), from: 'driver' };
  } catch (e) {
    throw new Error('bullmq not found: install it in your Node project (npm install bullmq) and point ' +
                    'bullbridge at its node_modules (pytest --bullbridge-node-modules DIR, the ini option ' +
                    'bullbridge_node_modules, $BULLBRIDGE_NODE_MODULES or $NODE_PATH)');
  }
}

let resolved;
try {
  resolved = resolveBullmq();
} catch (err) {
  process.stderr.write(`bullbridge driver: ${err.message}\n`);
  send({ push: 'fatal', error: err.message });
  process.exit(3);
}
const bullmq = require(resolved.entry);
const BULLMQ_ROOT = packageRoot(resolved.entry);
const BULLMQ_VERSION = JSON.parse(fs.readFileSync(path.join(BULLMQ_ROOT, 'package.json'), 'utf8')).version;
const { Queue, Worker, QueueEvents, FlowProducer } = bullmq;

// redis+cluster://h1:p1,h2:p2 gives one ioredis Cluster (loaded from beside bullmq),
// shared by every BullMQ object; queues then need a {hash tag} in name or prefix.
function connectionFromUrl(url) {
  if (url && url.startsWith('redis+cluster://')) {
    const IORedis = require(require.resolve('ioredis', { paths: [BULLMQ_ROOT] }));
    const nodes = url.slice('redis+cluster://'.length).split('/')[0].split(',').map(hostPort => {
      const [host, port] = hostPort.split(':');
      return { host, port: Number(port) };
    });
    return new IORedis.Cluster(nodes, { redisOptions: { maxRetriesPerRequest: null } });
  }
  // redis+sentinel://s1:p1,s2:p2/<master>: ioredis's own Sentinel support.
  if (url && url.startsWith('redis+sentinel://')) {
    const [hosts, name] = url.slice('redis+sentinel://'.length).split('/');
    const sentinels = hosts.split(',').map(hostPort => {
      const [host, port] = hostPort.split(':');
      return { host, port: Number(port) };
    });
    return { sentinels, name, maxRetriesPerRequest: null };
  }
  const u = new URL(url || 'redis://127.0.0.1:6379/0');
  const opts = {
    host: u.hostname || '127.0.0.1',
    port: Number(u.port || 6379),
    db: Number((u.pathname || '/0').slice(1) || 0),
    maxRetriesPerRequest: null,
  };
  if (u.password) opts.password = decodeURIComponent(u.password);
  if (u.username) opts.username = decodeURIComponent(u.username);
  if (u.protocol === 'rediss:') opts.tls = {};
  return opts;
}

const REDIS_URL = process.env.BULLBRIDGE_REDIS_URL || process.env.REDIS_URL;
const connection = connectionFromUrl(REDIS_URL);
const queues = new Map();
const workers = new Map();
const listeners = new Map();
const extraClosers = new Set(); // Queues/FlowProducers user code made through ctx
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
// `sleep`, `shared`, `bullmq`, `handle` and `workers` (handle -> Worker) are in scope.
function compileProcessor(source, handle) {
  // eslint-disable-next-line no-new-func
  const factory = new Function('sleep', 'shared', 'bullmq', 'handle', 'workers', `return (${source});`);
  return factory(sleep, shared, bullmq, handle, workers);
}

// --- user modules ------------------------------------------------------------------

// The user's module files loaded so far: an error raised in one of them names its file and line.
const userFiles = new Set();

function fileOf(text) {
  return text.startsWith('file://') ? decodeURIComponent(new URL(text).pathname) : text;
}

// `file:line` in the user's code where `err` was raised: a CommonJS SyntaxError's stack starts
// with it; an ES module's SyntaxError has none, so `node --check` finds it; any other error names
// it in a stack frame (the innermost frame in one of the user's files).
function userLocation(err, file) {
  const files = file ? [file] : [...userFiles];
  const lines = String((err && err.stack) || '').split('\n');
  const head = /^(\S+?):(\d+)$/.exec(lines[0]);
  if (head && files.includes(fileOf(head[1]))) return `${fileOf(head[1])}:${head[2]}`;
  for (const line of lines) {
    const frame = /\(?((?:file:\/\/)?\/[^():]+):(\d+):\d+\)?$/.exec(line.trim());
    if (frame && files.includes(fileOf(frame[1]))) return `${fileOf(frame[1])}:${frame[2]}`;
  }
  if (err && err.name === 'SyntaxError' && file) {
    const checked = spawnSync(process.execPath, ['--check', file], { encoding: 'utf8', timeout: 10000 });
    const at = /^(\S+?):(\d+)$/m.exec(checked.stderr || '');
    if (at && fileOf(at[1]) === file) return `${file}:${at[2]}`;
  }
  return null;
}

// The error, its message prefixed with `file:line: SyntaxError: ` when it was raised in user code.
function located(err, file) {
  if (!err || typeof err !== 'object' || typeof err.message !== 'string') return err;
  const where = userLocation(err, file);
  if (where && !err.message.startsWith(where)) {
    try {
      err.message = `${where}: ${err.name || 'Error'}: ${err.message}`;
    } catch (e) {
      // a frozen error: reported as it is
    }
  }
  return err;
}

async function loadModule(file) {
  const abs = path.resolve(file);
  if (!fs.existsSync(abs)) throw new Error(`no such module: ${abs}`);
  userFiles.add(abs);
  try {
    try {
      return require(abs);
    } catch (err) {
      if (err && (err.code === 'ERR_REQUIRE_ESM' || err.code === 'ERR_REQUIRE_ASYNC_MODULE')) {
        return await import(pathToFileURL(abs).href);
      }
      throw err;
    }
  } catch (err) {
    throw located(err, abs);
  }
}

// The function a module exports: `module.exports = fn`, `export default fn`,
// `exports.default = fn` (TypeScript output), or the named export `name`.
async function moduleFunction(file, name) {
  const mod = await loadModule(file);
  let fn;
  if (name) {
    fn = mod && (mod[name] || (mod.default && mod.default[name]));
    if (typeof fn !== 'function') {
      const names = mod && typeof mod === 'object' ? Object.keys(mod).join(', ') : typeof mod;
      throw new Error(`${file} has no exported function ${name} (exports: ${names || 'none'})`);
    }
    return fn;
  }
  fn = typeof mod === 'function' ? mod : mod && mod.default;
  if (typeof fn === 'function') return fn;
  if (fn && typeof fn.default === 'function') return fn.default;
  const names = mod && typeof mod === 'object' ? Object.keys(mod) : [];
  const only = names.filter(n => typeof mod[n] === 'function');
  if (only.length === 1) return mod[only[0]];
  throw new Error(`${file} exports no function (module.exports = async job => ..., ` +
                  `or name one with export=...; exports: ${names.join(', ') || 'none'})`);
}

// Queue and FlowProducer classes bound to the test's Redis and prefix, whatever
// options user code passes; closed after the call that made them.
function boundClasses(prefix) {
  class TestQueue extends Queue {
    constructor(name, opts = {}) {
      super(name, { ...opts, connection, prefix });
      extraClosers.add(this);
    }
  }
  class TestFlowProducer extends FlowProducer {
    constructor(opts = {}) {
      super({ ...opts, connection, prefix });
      extraClosers.add(this);
    }
  }
  return { Queue: TestQueue, FlowProducer: TestFlowProducer };
}

function looksLikeJob(value) {
  return value && typeof value === 'object' && typeof value.toJSON === 'function' &&
    'id' in value && 'name' in value && 'queueName' in value;
}

function summarize(value) {
  if (looksLikeJob(value)) {
    return { id: value.id, name: value.name, queue: value.queueName, data: safe(value.data),
             opts: safe(value.opts) };
  }
  if (value && typeof value === 'object' && looksLikeJob(value.job)) {
    // A FlowProducer JobNode: {job, children}.
    return { ...summarize(value.job), children: (value.children || []).map(summarize) };
  }
  if (Array.isArray(value)) return value.map(summarize);
  return safe(value);
}

// --- JSON --------------------------------------------------------------------------

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

function receivedJson(job) {
  return { jobId: job.id, name: job.name, data: safe(job.data), opts: safe(job.opts),
           attemptsMade: job.attemptsMade, attemptsStarted: job.attemptsStarted, timestamp: job.timestamp };
}

// --- commands ----------------------------------------------------------------------

const commands = {
  async ping() {
    return {
      bullmq: BULLMQ_VERSION,
      bullmqPath: BULLMQ_ROOT,
      bullmqFrom: resolved.from,
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

  // A job as Node's Queue reads it, with its state, logs and Node's parsed options
  // (job.opts: long names), for asserting on what Node saw.
  async 'job.view'(m) {
    const q = getQueue(m.queue, prefixOf(m));
    const state = await q.getJobState(m.jobId);
    const job = await q.getJob(m.jobId);
    if (!job) return null;
    const json = await jobJson(job, state);
    json.parsedOpts = safe(job.opts);
    json.parsedData = safe(job.data);
    json.logs = (await q.getJobLogs(m.jobId)).logs;
    return json;
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

  // A worker. The processor is `processor` (JS source), or the function a user
  // module exports: `module` (a path), `export` (a name; default: the module's
  // function), `sandboxed` (run the file in BullMQ's own child process instead).
  // `report: true` pushes a `received` event (data, opts, attempts) per job.
  async 'worker.start'(m) {
    const handle = m.handle || `w${++handleCounter}`;
    const push = (event, extra) => send({ push: 'worker', handle, event, queue: m.queue, ...extra });
    let processor;
    if (m.module && m.sandboxed) {
      if (m.export) throw new Error('a sandboxed processor is the module itself: export= is not supported');
      processor = path.resolve(m.module);
      if (!fs.existsSync(processor)) throw new Error(`no such module: ${processor}`);
    } else if (m.module) {
      const fn = await moduleFunction(m.module, m.export);
      processor = m.report ? async (job, token, signal) => {
        push('received', receivedJson(job));
        return fn(job, token, signal);
      } : fn;
    } else {
      const fn = compileProcessor(m.processor || 'async job => job.data', handle);
      processor = m.report ? async (job, token, signal) => {
        push('received', receivedJson(job));
        return fn(job, token, signal);
      } : fn;
    }
    const opts = { connection, prefix: prefixOf(m), ...(m.opts || {}) };
    if (m.backoffStrategy) {
      opts.settings = { ...(opts.settings || {}), backoffStrategy: compileProcessor(m.backoffStrategy, handle) };
    }
    if (m.backoffModule) {
      opts.settings = { ...(opts.settings || {}),
                        backoffStrategy: await moduleFunction(m.backoffModule, m.backoffExport) };
    }
    const worker = new Worker(m.queue, processor, opts);
    if (m.report && m.sandboxed) worker.on('active', job => push('received', receivedJson(job)));
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

  // Call a user's producer function: `fn(queue, args, ctx)` (see the header).
  // Returns what it returned; Jobs (and flow nodes) as {id, name, queue, data, opts}.
  async 'producer.call'(m) {
    const fn = await moduleFunction(m.module, m.export);
    const prefix = prefixOf(m);
    const bound = boundClasses(prefix);
    const before = new Set(extraClosers);
    const ctx = {
      ...bound,
      queue: name => getQueue(name, prefix),
      connection,
      prefix,
      bullmq,
      shared,
    };
    try {
      const result = await fn(m.queue ? getQueue(m.queue, prefix) : undefined, m.args, ctx);
      return summarize(result);
    } finally {
      const made = [...extraClosers].filter(c => !before.has(c));
      await Promise.allSettled(made.map(c => c.close()));
      for (const c of made) extraClosers.delete(c);
    }
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
  // (`queue(name)` uses the message's prefix, 'bull' without one.)
  async eval(m) {
    // eslint-disable-next-line no-new-func
    const fn = new Function('bullmq', 'connection', 'queue', 'shared', 'sleep', 'args', 'workers',
      `return (async () => { ${m.code} })();`);
    const queueFn = (name, prefix = prefixOf(m)) => getQueue(name, prefix);
    return safe(await fn(bullmq, connection, queueFn, shared, sleep, m.args || {}, workers));
  },

  async 'shared.get'(m) {
    return safe(m.key ? shared[m.key] : shared);
  },

  async close() {
    await Promise.allSettled([...workers.values()].map(w => w.close()));
    await Promise.allSettled([...listeners.values()].map(l => l.close()));
    await Promise.allSettled([...queues.values()].map(q => q.close()));
    await Promise.allSettled([...extraClosers].map(c => c.close()));
    workers.clear();
    listeners.clear();
    queues.clear();
    extraClosers.clear();
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
    located(err, null); // an error thrown by the user's producer names its file and line
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
send({ push: 'ready', bullmq: BULLMQ_VERSION, bullmqPath: BULLMQ_ROOT, bullmqFrom: resolved.from,
       node: process.version });

// The Node workers of the layer:
//   notifications - stays in Node;
//   email         - being migrated: served here AND by the Python worker
//                   (examples/layer15/emails.py), same job names, data and results.
//
//   node interop/layer15/workers.js     (SIGTERM/SIGINT: active jobs get 30 s to finish)
'use strict';

const os = require('node:os');
const { Queue, Worker } = require('bullmq');
const { connection, prefix, QUEUES, RETRY, EMAIL_PRIORITY } = require('./common');

const TEMPLATES = {
  'password-reset': 'Reset your password, {name}.',
  welcome: 'Welcome aboard, {name}!',
  newsletter: 'This week at Example, {name}...',
};

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
const between = (low, high) => low + Math.random() * (high - low);

// Stands in for the mail provider: 20-60 ms a message, 2 % of calls fail transiently.
async function deliver(to, body) {
  await sleep(between(20, 60));
  if (Math.random() < 0.02) throw new Error(`421 4.7.0 try again later (${to})`);
  return `<${Math.floor(Math.random() * 2 ** 48).toString(16)}@mail.example.com>`;
}

const emailQueue = new Queue(QUEUES.email, { connection, prefix, defaultJobOptions: RETRY });

async function email(job) {
  if (job.name === 'send') {
    const { to, template } = job.data;
    await job.updateProgress(10);
    const body = TEMPLATES[template].replace('{name}', job.data.name || to);
    await job.updateProgress(50);
    const messageId = await deliver(to, body);
    await job.updateProgress(100);
    return { to, template, message_id: messageId };
  }
  if (job.name === 'newsletter') {
    // One send per subscriber, delayed at random within spread_ms (an hour).
    const { issue, audience, spread_ms: spread } = job.data;
    const sends = Array.from({ length: audience }, (_, i) => ({
      name: 'send',
      data: { to: `reader${i}@example.com`, template: 'newsletter', issue },
      opts: { priority: EMAIL_PRIORITY.newsletter, delay: Math.floor(Math.random() * spread) },
    }));
    await emailQueue.addBulk(sends);
    return { issue, queued: sends.length };
  }
  throw new Error(`unknown email job ${job.name}`);
}

async function notification(job) {
  await sleep(between(5, 20)); // stands in for the push provider
  return { user: job.data.user, device: job.data.device, delivered: true };
}

const name = `node-${os.hostname()}-${process.pid}`;
const workers = [
  new Worker(QUEUES.email, email, {
    connection, prefix, name, concurrency: 5, limiter: { max: 100, duration: 60_000 },
  }),
  new Worker(QUEUES.notifications, notification, { connection, prefix, name, concurrency: 10 }),
];
for (const worker of workers) {
  worker.on('failed', (job, err) => {
    if (job && job.attemptsMade >= (job.opts.attempts || 1)) console.warn(`${job.queueName} ${job.id} failed: ${err.message}`);
  });
  worker.on('error', err => console.error(`worker error: ${err.message}`));
}
Promise.all(workers.map(w => w.waitUntilReady())).then(
  () => console.log(`node workers ready on ${workers.map(w => w.name).join(', ')}`));

let closing = false;
async function shutdown(signal) {
  if (closing) process.exit(1); // a second signal: stop now (BullMQ's stall check recovers the jobs)
  closing = true;
  const started = Date.now();
  console.log(`${signal}: no new jobs; active ones have 30 s to finish`);
  const deadline = setTimeout(() => {
    console.log('drain timeout: exiting with jobs still active');
    process.exit(1);
  }, 30_000);
  await Promise.all(workers.map(w => w.close()));
  await emailQueue.close();
  await connection.quit();
  clearTimeout(deadline);
  console.log(`node workers stopped in ${Date.now() - started} ms`);
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

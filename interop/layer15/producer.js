// The Node API's side of the layer: adds its jobs at a steady pace, as the seed's services do.
//
//   node interop/layer15/producer.js [--seconds 60] [--scale 1] [--newsletter 0] [--spread 3600]
//
// At --scale 1 it offers about 2,000 jobs a minute (PER_MINUTE). --newsletter N first adds
// one newsletter job for N readers, whose emails are spread over --spread seconds.
// Prints what it added as its last line: `added {"email": 90, ...}`.
'use strict';

const { Queue } = require('bullmq');
const { connection, prefix, QUEUES, RETRY, EMAIL_PRIORITY } = require('./common');

const PER_MINUTE = {
  [QUEUES.notifications]: 900,
  [QUEUES.analytics]: 900,
  [QUEUES.images]: 120,
  [QUEUES.dataSync]: 12, // each sync fans out 5 batches: 72 jobs a minute
  [QUEUES.email]: 90, // under the email worker's 100/min rate limit
};

const pick = items => items[Math.floor(Math.random() * items.length)];
let serial = 0;

// One job for each queue: [name, data, opts].
const JOBS = {
  [QUEUES.email]: () => {
    const template = Math.random() < 0.2 ? 'password-reset' : 'welcome';
    return ['send', { to: `user${++serial}@example.com`, template }, { priority: EMAIL_PRIORITY[template] }];
  },
  [QUEUES.images]: () => ['process', { image: `uploads/${++serial}.png`, size: 96,
    operations: ['blur', 'sharpen', 'thumbnail'] }, {}],
  [QUEUES.dataSync]: () => ['sync', { source: pick(['crm', 'billing', 'inventory']), records: 500,
    batch_size: 100 }, {}],
  [QUEUES.analytics]: () => ['track', { event: pick(['page_view', 'signup', 'purchase']), user: ++serial,
    at: Date.now() }, {}],
  [QUEUES.notifications]: () => ['push', { user: ++serial, device: pick(['ios', 'android']),
    title: 'You have a new message' }, {}],
};

function options(argv) {
  const opts = { seconds: 60, scale: 1, newsletter: 0, spread: 3600 };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in opts) || Number.isNaN(Number(argv[i + 1]))) throw new Error(`usage: producer.js [--${Object.keys(opts).join(' N] [--')} N]`);
    opts[key] = Number(argv[i + 1]);
  }
  return opts;
}

async function main() {
  const opts = options(process.argv.slice(2));
  const queues = Object.fromEntries(Object.keys(PER_MINUTE).map(
    name => [name, new Queue(name, { connection, prefix, defaultJobOptions: RETRY })]));
  const added = Object.fromEntries(Object.keys(PER_MINUTE).map(name => [name, 0]));
  if (opts.newsletter > 0) {
    await queues[QUEUES.email].add('newsletter', { issue: 'demo', audience: opts.newsletter,
      spread_ms: opts.spread * 1000 });
    added[QUEUES.email] += 1;
  }
  console.log(`adding ~${Math.round(Object.values(PER_MINUTE).reduce((a, b) => a + b) * opts.scale)} jobs/min `
    + `for ${opts.seconds} s`);
  const tick = 100;
  const credit = Object.fromEntries(Object.keys(PER_MINUTE).map(name => [name, 0]));
  const started = Date.now();
  for (let n = 1; Date.now() - started < opts.seconds * 1000; n++) {
    const adds = [];
    for (const [name, perMinute] of Object.entries(PER_MINUTE)) {
      credit[name] += (perMinute * opts.scale * tick) / 60_000;
      for (; credit[name] >= 1; credit[name] -= 1) {
        const [jobName, data, jobOpts] = JOBS[name]();
        adds.push(queues[name].add(jobName, data, jobOpts));
        added[name] += 1;
      }
    }
    await Promise.all(adds);
    const wait = started + n * tick - Date.now();
    if (wait > 0) await new Promise(resolve => setTimeout(resolve, wait));
  }
  await Promise.all(Object.values(queues).map(q => q.close()));
  await connection.quit();
  console.log(`added ${JSON.stringify(added)}`);
}

main().catch(err => {
  console.error(err);
  process.exit(1);
});

// Node side of the chaos run:
//   node node_worker.js <redisUrl> <queue,queue> <logFile> <minMs,maxMs> <lockMs>
// Records "start|end queue jobId node pid epochMs" around each handler's work; SIGTERM closes gracefully.
'use strict';
const fs = require('node:fs');
const { Worker } = require('bullmq');

const [url, queueList, logFile, handlerMs = '50,300', lockArg = '2000'] = process.argv.slice(2);
const [low, high] = handlerMs.split(',').map(Number);
const lockDuration = Number(lockArg);
const u = new URL(url);
const connection = { host: u.hostname, port: Number(u.port), maxRetriesPerRequest: null };
const fd = fs.openSync(logFile, 'a');
const sleep = ms => new Promise(r => setTimeout(r, ms));
const record = (kind, queue, job) => fs.writeSync(fd, `${kind} ${queue} ${job.id} node ${process.pid} ${Date.now()}\n`);

const workers = queueList.split(',').map(queue => new Worker(queue, async job => {
  record('start', queue, job);
  await sleep(low + Math.random() * (high - low));  // the work: long enough to be caught by a kill
  record('end', queue, job);
  return 'node';
}, { connection, concurrency: 8, lockDuration, stalledInterval: lockDuration / 2, maxStalledCount: 1000,
     name: `chaos-node-${process.pid}` }));
for (const w of workers) w.on('error', () => {});

let closing = false;
process.on('SIGTERM', async () => {
  if (closing) return;
  closing = true;
  await Promise.all(workers.map(w => w.close()));
  process.exit(0);
});
process.stdout.write('ready\n');

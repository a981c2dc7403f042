// Node side of the chaos run: node node_worker.js <redisUrl> <queue,queue> <logFile>
// Appends "queue jobId node pid epochMs" per handler start; SIGTERM closes gracefully.
'use strict';
const fs = require('node:fs');
const { Worker } = require('bullmq');

const [url, queueList, logFile] = process.argv.slice(2);
const u = new URL(url);
const connection = { host: u.hostname, port: Number(u.port), maxRetriesPerRequest: null };
const fd = fs.openSync(logFile, 'a');
const sleep = ms => new Promise(r => setTimeout(r, ms));

const workers = queueList.split(',').map(queue => new Worker(queue, async job => {
  fs.writeSync(fd, `${queue} ${job.id} node ${process.pid} ${Date.now()}\n`);
  await sleep(2 + Math.random() * 18);
  return 'node';
}, { connection, concurrency: 8, lockDuration: 2000, stalledInterval: 1000, maxStalledCount: 1000,
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

// The CPU-bound workload of `python -m bench --suites cpu` for Node: a sandboxed
// processor (BullMQ runs it in child processes), 10 ms of pure JavaScript a job
// (bench/cpu_app.py burns the same in Python).
'use strict';

const CPU_JOB_MS = 10;

module.exports = async () => {
  const start = process.cpuUsage();
  let n = 0;
  for (;;) {
    const used = process.cpuUsage(start);
    if ((used.user + used.system) / 1000 >= CPU_JOB_MS) break;
    n += 1;
  }
  return null;
};

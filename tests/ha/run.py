"""The HA run: Sentinel failovers and Cluster resharding under load, bullbridge beside Node.

    python -m tests.ha.run [--jobs 2000] [--rate 200] [--only failover,kill,reshard] [--json]

(``make ha``; ``tests/ha/test_ha_short.py`` is the short version CI runs.) Every fault
runs twice, on a fresh Redis each time: once with a bullbridge producer and worker, once
with a Node BullMQ producer and worker (``bullbridge/testing/node.py``), the same jobs at
the same rate, the same fault at the same moment. Then the jobs are read back from the
master that survived:

* **lost**: adds the producer was told had succeeded (acknowledged) whose job never ended
  completed on the surviving master;
* **twice**: jobs whose handler started more than once;
* **gap**: the longest pause between two handler starts from the fault on (the worker's
  outage as its users see it);
* **ids reused**: job ids acknowledged for two different adds;
* **uncertain / errors**: what the producer was told instead of an acknowledgement.

Faults: ``kill`` (``kill -9`` of the master; the sentinels fail over after 1 s down),
``failover`` (``SENTINEL FAILOVER`` while jobs flow, the default ``min-replicas-to-write 0``),
``failover-minrep`` (the same with ``min-replicas-to-write 1``), ``reshard`` (the queue's
slot moved to another master of a 3-master cluster, one key per ``MIGRATE``, while the
queue drains; twice). Workers run with a 5 s lock and a 2 s stall check on both sides, so
a job whose worker lost its lock is recovered within the run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from bullbridge import FlowJob, FlowProducer, Queue, Worker, connect
from bullbridge.connection.cluster import slot_of
from bullbridge.connection.resp import Endpoint, RespConnection
from bullbridge.errors import BullbridgeError
from bullbridge.testing.node import NodeDriver
from bullbridge.testing.redis_server import PrivateCluster, PrivateSentinel

log = logging.getLogger("tests.ha")

QUEUE = "ha"
CLUSTER_QUEUE = "{ha}"
HANDLER_MS = 10
LOCK_MS = 5000
STALLED_MS = 2000
#: How long the run waits for every acknowledged job to end completed (a stall recovery is
#: 5 s lock + 2 s check; the slowest measured settle was well under this).
SETTLE_S = 40.0


@dataclass
class Outcome:
    client: str
    fault: str
    jobs: int
    acked: int = 0
    lost: int = 0
    twice: int = 0
    gap_s: float = 0.0
    ids_reused: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    first_errors: list[str] = field(default_factory=list)
    reconnects: int | None = None
    seconds: float = 0.0
    flows: int = 0
    flows_completed: int = 0
    kids_twice: int = 0


# --- the faults ------------------------------------------------------------------------


def sentinel_fault(group: PrivateSentinel, fault: str) -> Callable[[], None]:
    def run() -> None:
        if fault == "kill":
            assert group.master is not None and group.master.process is not None
            group.master.process.kill()
        else:
            group.failover(wait_sync=False)

    return run


async def move_slot(cluster: PrivateCluster, slot: int) -> None:
    """Move ``slot`` from its master to the next one: IMPORTING/MIGRATING, one key per
    ``MIGRATE``, then ``SETSLOT NODE`` everywhere - as ``redis-cli --cluster reshard`` does."""
    conns = {}
    try:
        for node in cluster.nodes:
            conn = RespConnection(Endpoint(port=node.port, command_timeout=10))
            await conn.open()
            conns[node.port] = conn
        ids = {p: (await c.execute("CLUSTER", "MYID")).decode() for p, c in conns.items()}
        owner = next(
            int(e[2][1]) for e in await conns[cluster.nodes[0].port].execute("CLUSTER", "SLOTS") if e[0] <= slot <= e[1]
        )
        ports = [n.port for n in cluster.nodes]
        target = ports[(ports.index(owner) + 1) % len(ports)]
        src, dst = conns[owner], conns[target]
        await dst.execute("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[owner])
        await src.execute("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target])
        while keys := await src.execute("CLUSTER", "GETKEYSINSLOT", slot, 1):
            await src.execute("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", keys[0])
            await asyncio.sleep(0.001)  # the scenario: a slow, key-by-key migration while the queue drains
        for conn in conns.values():
            await conn.execute("CLUSTER", "SETSLOT", slot, "NODE", ids[target])
    finally:
        for conn in conns.values():
            conn.close()


# --- what happened ---------------------------------------------------------------------


async def read_back(
    url: str, queue: str, outcome: Outcome, acked: dict[int, str], runs: dict[int, int], settle: float = SETTLE_S
) -> None:
    """Wait until every acknowledged job ended completed (or ``settle`` seconds), then count."""
    deadline = time.monotonic() + settle
    done: set[int] = set()
    async with Queue(queue, connection=url, timeout=15) as reader:
        while time.monotonic() < deadline:
            with contextlib.suppress(BullbridgeError):
                jobs = await reader.get_jobs(["completed"])
                done = {int(j.data["i"]) for j in jobs if isinstance(j.data, dict) and "i" in j.data}
                if set(acked) <= done:
                    break
            await asyncio.sleep(0.5)  # polling Redis for the drain, with the deadline above
    outcome.acked = len(acked)
    outcome.lost = len(set(acked) - done)
    outcome.twice = sum(1 for n in runs.values() if n > 1)
    by_id = collections.Counter(acked.values())
    outcome.ids_reused = sum(n - 1 for n in by_id.values() if n > 1)


def longest_gap(starts: list[float], since: float) -> float:
    later = sorted(t for t in starts if t >= since - 0.5)
    return max((b - a for a, b in itertools.pairwise(later)), default=0.0)


# --- bullbridge ------------------------------------------------------------------------


async def run_bullbridge(
    url: str,
    queue: str,
    fault: str,
    jobs: int,
    rate: float,
    inject: Callable[[], Awaitable[None]],
    flows: int = 0,
) -> Outcome:
    """``flows``: that many flows (a parent, 3 children that work 300 ms) are added just
    before the fault, which lands once their children are running."""
    outcome = Outcome("bullbridge", fault, jobs, flows=flows)
    runs: collections.Counter[int] = collections.Counter()
    kid_runs: collections.Counter[tuple[int, int]] = collections.Counter()
    starts: list[float] = []

    async def handle(job: Any) -> int:
        runs[job.data["i"]] += 1
        starts.append(time.time())
        await asyncio.sleep(HANDLER_MS / 1000)  # the work
        return int(job.data["i"])

    async def kid(job: Any) -> str:
        kid_runs[(job.data["flow"], job.data["kid"])] += 1
        await asyncio.sleep(0.3)  # the work, long enough to be mid-run when the fault lands
        return "kid"

    async def parent(job: Any) -> int:
        return len(await job.children_values())

    connector = connect(url)
    worker = Worker(
        queue,
        {"x": handle, "kid": kid, "parent": parent},
        connection=connector,
        concurrency=10,
        lock_duration=LOCK_MS,
        stalled_interval=STALLED_MS,
    )
    await worker.start()
    acked: dict[int, str] = {}
    errors: collections.Counter[str] = collections.Counter()
    began = time.monotonic()
    fault_at = time.time()
    async with Queue(queue, connection=connector, timeout=15) as producer:

        async def add(i: int) -> None:
            try:
                acked[i] = (await producer.add("x", {"i": i})).id
            except BullbridgeError as exc:
                errors[type(exc).__name__] += 1
                if len(outcome.first_errors) < 3:
                    outcome.first_errors.append(str(exc))

        pending = []
        parents: list[str] = []
        fault_task: asyncio.Future[None] | None = None
        for i in range(jobs):
            if i == jobs // 3:
                if flows:
                    parents = await start_flows(connector, queue, flows, kid_runs)
                fault_at = time.time()
                fault_task = asyncio.ensure_future(inject())
            await asyncio.sleep(max(0.0, began + i / rate - time.monotonic()))  # the rate is the scenario
            pending.append(asyncio.ensure_future(add(i)))
        await asyncio.gather(*pending)
        if fault_task is not None:
            await fault_task
    await read_back(url, queue, outcome, acked, runs)
    if parents:
        outcome.flows_completed = await completed(url, queue, parents)
        outcome.kids_twice = sum(1 for n in kid_runs.values() if n > 1)
    outcome.reconnects = sum(c.reconnects for c in connector._clients)
    await worker.close(timeout=10)
    await connector.close()
    outcome.errors = dict(errors)
    outcome.gap_s = round(longest_gap(starts, fault_at), 2)
    outcome.seconds = round(time.monotonic() - began, 1)
    return outcome


async def start_flows(
    connector: Any, queue: str, flows: int, kid_runs: collections.Counter[tuple[int, int]]
) -> list[str]:
    """Add the flows and return the parents' ids once every child has started."""
    async with FlowProducer(connector, timeout=15) as producer:
        nodes = await producer.add_bulk(
            FlowJob(
                "parent", queue, {"flow": k}, children=[FlowJob("kid", queue, {"flow": k, "kid": c}) for c in range(3)]
            )
            for k in range(flows)
        )
    deadline = time.monotonic() + 10  # failure detector: children start within ms when the worker is idle
    while len(kid_runs) < 3 * flows and time.monotonic() < deadline:
        await asyncio.sleep(0.01)  # polling the handlers' own record, with the deadline above
    return [node.job.id for node in nodes]


async def completed(url: str, queue: str, ids: list[str]) -> int:
    deadline = time.monotonic() + SETTLE_S
    async with Queue(queue, connection=url, timeout=15) as reader:
        while True:
            states = await asyncio.gather(*(reader.get_job_state(i) for i in ids))
            done = sum(1 for st in states if st == "completed")
            if done == len(ids) or time.monotonic() > deadline:
                return done
            await asyncio.sleep(0.2)  # polling Redis for the parents, with the deadline above


# --- Node ------------------------------------------------------------------------------

NODE_RUN = """
const { Worker, Queue } = bullmq;
shared.runs = {}; shared.starts = []; shared.acked = {}; shared.errors = {}; shared.first = [];
const w = new Worker(args.queue, async job => {
  const i = job.data.i; shared.runs[i] = (shared.runs[i] || 0) + 1; shared.starts.push(Date.now());
  await sleep(args.handlerMs); return i;
}, { connection, concurrency: 10, lockDuration: args.lockMs, stalledInterval: args.stalledMs });
w.on('error', () => {});
shared.worker = w;
const q = new Queue(args.queue, { connection });
q.on('error', () => {});
const t0 = Date.now(); const pend = [];
const fail = e => {
  const k = (e && e.message || String(e)).split(/[ :]/)[0] || 'Error';
  shared.errors[k] = (shared.errors[k] || 0) + 1;
  if (shared.first.length < 3) shared.first.push(String(e && e.message || e));
};
for (let i = 0; i < args.n; i++) {
  const d = t0 + i * 1000 / args.rate - Date.now(); if (d > 0) await sleep(d);
  const added = Promise.race([q.add('x', { i }), sleep(15000).then(() => { throw new Error('TIMEOUT after 15 s'); })]);
  pend.push(added.then(j => { shared.acked[i] = j.id; }, fail));
}
await Promise.all(pend);
await q.close();
return true;
"""


async def run_node(
    url: str,
    queue: str,
    fault: str,
    jobs: int,
    rate: float,
    inject: Callable[[], Awaitable[None]],
    settle: float = SETTLE_S,
) -> Outcome:
    """``settle``: how long to wait for Node's acknowledged jobs to end completed (the jobs
    a failover lost never do: a short CI run waits less and still counts them lost)."""
    outcome = Outcome("node", fault, jobs)
    async with NodeDriver(url, call_timeout=120) as node:
        began = time.monotonic()
        args = {"queue": queue, "n": jobs, "rate": rate, "handlerMs": HANDLER_MS, "lockMs": LOCK_MS}
        producing = asyncio.ensure_future(node.eval(NODE_RUN, timeout=jobs / rate + 60, stalledMs=STALLED_MS, **args))
        await asyncio.sleep(jobs / 3 / rate)  # the fault lands a third into the run, as on the bullbridge side
        fault_at = time.time()
        await inject()
        await producing
        state = await node.eval(
            "return {runs: shared.runs, acked: shared.acked, errors: shared.errors, first: shared.first}"
        )
        acked = {int(k): str(v) for k, v in state["acked"].items()}
        outcome.errors = dict(state.get("errors") or {})
        outcome.first_errors = list(state.get("first") or [])
        runs = {int(k): int(v) for k, v in state["runs"].items()}
        await read_back(url, queue, outcome, acked, runs, settle)
        state = await node.eval(
            "const s = shared.starts; await shared.worker.close(); return {runs: shared.runs, starts: s}", timeout=30
        )
        outcome.twice = sum(1 for n in state["runs"].values() if n > 1)
        outcome.gap_s = round(longest_gap([t / 1000 for t in state["starts"]], fault_at), 2)
        outcome.seconds = round(time.monotonic() - began, 1)
    return outcome


# --- the scenarios ---------------------------------------------------------------------


async def sentinel_scenario(
    client: str, fault: str, jobs: int, rate: float, *, flows: int = 0, settle: float = SETTLE_S
) -> Outcome:
    """One run of ``fault`` on a fresh Sentinel group; ``flows`` (bullbridge only) are in
    flight when it lands; ``settle`` bounds Node's wait for its jobs."""
    group = PrivateSentinel(min_replicas=1 if fault == "failover-minrep" else 0)
    await asyncio.to_thread(group.start)
    try:
        act = sentinel_fault(group, "kill" if fault == "kill" else "failover")

        async def inject() -> None:
            await asyncio.to_thread(act)

        if client == "bullbridge":
            return await run_bullbridge(group.url, QUEUE, fault, jobs, rate, inject, flows=flows)
        return await run_node(group.url, QUEUE, fault, jobs, rate, inject, settle=settle)
    finally:
        await asyncio.to_thread(group.stop)


async def reshard_scenario(client: str, jobs: int, rate: float) -> Outcome:
    cluster = PrivateCluster()
    await asyncio.to_thread(cluster.start)
    try:
        slot = slot_of(f"bull:{CLUSTER_QUEUE}:wait")

        async def inject() -> None:
            await move_slot(cluster, slot)
            await move_slot(cluster, slot)

        run = run_bullbridge if client == "bullbridge" else run_node
        return await run(cluster.url, CLUSTER_QUEUE, "reshard", jobs, rate, inject)
    finally:
        await asyncio.to_thread(cluster.stop)


FAULTS = ("kill", "failover", "failover-minrep", "reshard")


async def run_all(faults: list[str], clients: list[str], jobs: int, rate: float) -> list[Outcome]:
    outcomes = []
    for fault in faults:
        for client in clients:
            if fault == "reshard":
                outcome = await reshard_scenario(client, jobs, rate)
            else:
                outcome = await sentinel_scenario(client, fault, jobs, rate)
            print(f"  {fault:16} {client:10} {_cell(outcome)}", file=sys.stderr, flush=True)
            outcomes.append(outcome)
    return outcomes


def _cell(o: Outcome) -> str:
    errors = sum(o.errors.values())
    extra = f", {errors} errors ({', '.join(f'{k} {v}' for k, v in o.errors.items())})" if errors else ""
    reused = f", {o.ids_reused} ids reused" if o.ids_reused else ""
    return f"{o.lost} / {o.twice} / {o.gap_s:.2f} s{reused}{extra}"


def table(outcomes: list[Outcome]) -> str:
    rows = ["| fault | bullbridge lost / twice / gap | Node lost / twice / gap |", "|---|---|---|"]
    by_fault: dict[str, dict[str, Outcome]] = collections.defaultdict(dict)
    for o in outcomes:
        by_fault[o.fault][o.client] = o
    for fault, cells in by_fault.items():
        bb, nd = cells.get("bullbridge"), cells.get("node")
        rows.append(f"| {fault} | {_cell(bb) if bb else '-'} | {_cell(nd) if nd else '-'} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--only", default=",".join(FAULTS), help="faults, comma-separated: " + ", ".join(FAULTS))
    parser.add_argument("--clients", default="bullbridge,node")
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    outcomes = asyncio.run(run_all(opts.only.split(","), opts.clients.split(","), opts.jobs, opts.rate))
    print(json.dumps([asdict(o) for o in outcomes], indent=1) if opts.json else table(outcomes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

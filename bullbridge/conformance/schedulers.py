"""Job schedulers both ways: declared in one language, run by workers of the other."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from bullbridge.conformance.framework import N2P, P2N, Ctx, holds, scenario, wait_until

# --- schedulers --------------------------------------------------------------------------------

EVERY_MS = 200


@scenario("scheduler", N2P, "a job scheduler upserted by Node fires on a Python worker", requires=("job-schedulers",))
async def scheduler_n2p(ctx: Ctx) -> None:
    await ctx.node.eval(
        "await queue(args.q).upsertJobScheduler('tick', { every: args.every },"
        " { name: 'tick', data: { from: 'node' } });",
        q=ctx.queue,
        every=EVERY_MS,
    )
    ctx.on_close(lambda: ctx.node.queue_call(ctx.queue, "removeJobScheduler", "tick"))
    runs: list[tuple[str, Any]] = []

    async def tick(job: Any) -> None:
        runs.append((str(job.id), job.data))

    await ctx.worker({"tick": tick})
    await wait_until(lambda: len(runs) >= 3, 10, f"3 scheduled runs on Python (ran {runs})")
    ids = [job_id for job_id, _ in runs]
    assert len(set(ids)) == len(ids), f"an iteration ran twice: {ids}"
    assert all("tick" in job_id for job_id in ids), ids
    assert all(data == {"from": "node"} for _, data in runs), runs


@scenario(
    "scheduler",
    P2N,
    "a job scheduler declared in Python (bullbridge.scheduler.sync) fires on a Node worker",
    requires=("job-schedulers",),
)
async def scheduler_p2n(ctx: Ctx) -> None:
    from bullbridge.scheduler import Declaration, Schedule, sync

    await sync(
        Declaration(
            f"compat-{uuid.uuid4().hex[:6]}",
            (
                Schedule(
                    id="tick", queue=ctx.queue, every=EVERY_MS, name="tick", data={"from": "python"}, prefix=ctx.prefix
                ),
            ),
        ),
        ctx.redis_url,
    )
    ctx.on_close(lambda: ctx.node.queue_call(ctx.queue, "removeJobScheduler", "tick"))
    handle = await ctx.node_worker("async job => ({ id: job.id, data: job.data })")
    events = await ctx.node.wait_event(handle, "completed", count=3, timeout=10)
    ids = [e["jobId"] for e in events]
    assert len(set(ids)) == len(ids) and all("tick" in i for i in ids), ids
    assert all(e["returnvalue"]["data"] == {"from": "python"} for e in events)


# --- the schedule's kinds and bounds -----------------------------------------------------------


class _Runs:
    """Where the consumer's runs of a scheduler's jobs are collected."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.python: list[tuple[str, Any, float]] = []
        self.handle = ""

    async def python_worker(self) -> None:
        async def tick(job: Any) -> None:
            self.python.append((str(job.id), job.data, time.time() * 1000))

        await self.ctx.worker({"tick": tick})

    async def node_worker(self) -> None:
        self.handle = await self.ctx.node_worker("async job => ({ data: job.data, at: Date.now() })")

    def runs(self) -> list[tuple[str, Any, float]]:
        if not self.handle:
            return list(self.python)
        return [
            (str(e["jobId"]), e["returnvalue"]["data"], float(e["returnvalue"]["at"]))
            for e in self.ctx.node.events[self.handle]
            if e.event == "completed"
        ]


async def _node_upsert(ctx: Ctx, repeat: dict[str, Any], data: Any, scheduler_id: str = "tick") -> None:
    await ctx.node.eval(
        "await queue(args.q).upsertJobScheduler(args.id, args.repeat, { name: 'tick', data: args.data });",
        q=ctx.queue,
        id=scheduler_id,
        repeat=repeat,
        data=data,
    )
    ctx.on_close(lambda: ctx.node.queue_call(ctx.queue, "removeJobScheduler", scheduler_id))


async def _python_upsert(ctx: Ctx, data: Any, scheduler_id: str = "tick", **schedule: Any) -> None:
    await ctx.python_queue().upsert_job_scheduler(scheduler_id, name="tick", data=data, **schedule)
    ctx.on_close(lambda: ctx.python_queue().remove_job_scheduler(scheduler_id))


@scenario(
    "scheduler_pattern",
    N2P,
    "a cron-pattern scheduler (every second) upserted by Node fires on a Python worker on whole seconds",
    requires=("job-schedulers",),
)
async def scheduler_pattern_n2p(ctx: Ctx) -> None:
    runs = _Runs(ctx)
    await _node_upsert(ctx, {"pattern": "* * * * * *", "tz": "UTC"}, {"from": "node"})
    await runs.python_worker()
    await _pattern_runs(runs)


@scenario(
    "scheduler_pattern",
    P2N,
    "a cron-pattern scheduler (every second) upserted by Python fires on a Node worker on whole seconds",
    requires=("job-schedulers",),
)
async def scheduler_pattern_p2n(ctx: Ctx) -> None:
    runs = _Runs(ctx)
    await _python_upsert(ctx, {"from": "python"}, pattern="* * * * * *", tz="UTC")
    await runs.node_worker()
    await _pattern_runs(runs)


async def _pattern_runs(runs: _Runs) -> None:
    await wait_until(lambda: len(runs.runs()) >= 2, 10, f"2 runs of the every-second pattern (ran {runs.runs()})")
    ids = [job_id for job_id, _, _ in runs.runs()]
    assert len(set(ids)) == len(ids), f"an iteration ran twice: {ids}"
    millis = [int(i.rsplit(":", 1)[-1]) for i in ids[:2]]
    assert all(m % 1000 == 0 for m in millis) and millis[1] - millis[0] == 1000, f"iteration ids {ids}"


LIMIT = 3


@scenario(
    "scheduler_limit",
    N2P,
    "a scheduler limited to 3 runs by Node: a Python worker runs exactly 3",
    requires=("job-schedulers",),
)
async def scheduler_limit_n2p(ctx: Ctx) -> None:
    runs = _Runs(ctx)
    await _node_upsert(ctx, {"every": EVERY_MS, "limit": LIMIT}, {"from": "node"})
    await runs.python_worker()
    await _limited(runs)


@scenario(
    "scheduler_limit",
    P2N,
    "a scheduler limited to 3 runs by Python: a Node worker runs exactly 3",
    requires=("job-schedulers",),
)
async def scheduler_limit_p2n(ctx: Ctx) -> None:
    runs = _Runs(ctx)
    await _python_upsert(ctx, {"from": "python"}, every=EVERY_MS, limit=LIMIT)
    await runs.node_worker()
    await _limited(runs)


async def _limited(runs: _Runs) -> None:
    await wait_until(lambda: len(runs.runs()) >= LIMIT, 10, f"{LIMIT} runs (ran {runs.runs()})")
    await holds(lambda: len(runs.runs()) == LIMIT, 3 * EVERY_MS / 1000, f"more than {LIMIT} runs: {runs.runs()}")


END_AFTER_MS = 700


@scenario(
    "scheduler_end_date",
    N2P,
    "a scheduler with an end date set by Node: a Python worker's runs stop at it",
    requires=("job-schedulers",),
)
async def scheduler_end_date_n2p(ctx: Ctx) -> None:
    runs = _Runs(ctx)
    end = int(time.time() * 1000) + END_AFTER_MS
    await _node_upsert(ctx, {"every": EVERY_MS, "endDate": end}, {"from": "node"})
    await runs.python_worker()
    await _ended(runs, end)


@scenario(
    "scheduler_end_date",
    P2N,
    "a scheduler with an end date set by Python: a Node worker's runs stop at it",
    requires=("job-schedulers",),
)
async def scheduler_end_date_p2n(ctx: Ctx) -> None:
    runs = _Runs(ctx)
    end = int(time.time() * 1000) + END_AFTER_MS
    await _python_upsert(ctx, {"from": "python"}, every=EVERY_MS, end_date=end)
    await runs.node_worker()
    await _ended(runs, end)


async def _ended(runs: _Runs, end: int) -> None:
    await wait_until(lambda: runs.runs(), 10, "a first run")
    await wait_until(lambda: time.time() * 1000 > end + 3 * EVERY_MS, 10, "the end date passes")
    # Node checks the end date when it schedules the next iteration, against the time
    # then: one iteration due up to a period past the end date still runs (Node's own rule).
    late = [i for i, _, _ in runs.runs() if int(i.rsplit(":", 1)[-1]) > end + EVERY_MS]
    assert not late, f"iterations due more than a period after the end date {end} ran: {late}"
    settled = len(runs.runs())
    await holds(lambda: len(runs.runs()) == settled, 2 * EVERY_MS / 1000, f"runs went on: {runs.runs()}")


@scenario(
    "scheduler_update",
    N2P,
    "Node updates a scheduler's template while a Python worker runs it: later runs carry the new data",
    requires=("job-schedulers",),
)
async def scheduler_update_n2p(ctx: Ctx) -> None:
    runs = _Runs(ctx)
    await _node_upsert(ctx, {"every": EVERY_MS}, {"v": 1})
    await runs.python_worker()
    await wait_until(lambda: len(runs.runs()) >= 2, 10, "2 runs with the first template")
    await _node_upsert(ctx, {"every": EVERY_MS}, {"v": 2})
    await _updated(runs)


@scenario(
    "scheduler_update",
    P2N,
    "Python updates a scheduler's template while a Node worker runs it: later runs carry the new data",
    requires=("job-schedulers",),
)
async def scheduler_update_p2n(ctx: Ctx) -> None:
    runs = _Runs(ctx)
    await _python_upsert(ctx, {"v": 1}, every=EVERY_MS)
    await runs.node_worker()
    await wait_until(lambda: len(runs.runs()) >= 2, 10, "2 runs with the first template")
    await _python_upsert(ctx, {"v": 2}, every=EVERY_MS)
    await _updated(runs)


async def _updated(runs: _Runs) -> None:
    seen = len(runs.runs())
    await wait_until(lambda: len(runs.runs()) >= seen + 3, 10, "3 more runs after the update")
    data = [d for _, d, _ in runs.runs()]
    switched = data.index({"v": 2})
    assert all(d == {"v": 1} for d in data[:switched]) and all(d == {"v": 2} for d in data[switched:]), data
    assert switched <= seen + 1, f"the new template took effect only at run {switched + 1}: {data}"


@scenario(
    "scheduler_remove",
    N2P,
    "Node removes a scheduler a Python worker is running: the runs stop",
    requires=("job-schedulers",),
)
async def scheduler_remove_n2p(ctx: Ctx) -> None:
    runs = _Runs(ctx)
    await _node_upsert(ctx, {"every": EVERY_MS}, {"from": "node"})
    await runs.python_worker()
    await wait_until(lambda: len(runs.runs()) >= 2, 10, "2 runs")
    assert await ctx.node.queue_call(ctx.queue, "removeJobScheduler", "tick")
    await _stopped(ctx, runs)


@scenario(
    "scheduler_remove",
    P2N,
    "Python removes a scheduler a Node worker is running: the runs stop",
    requires=("job-schedulers",),
)
async def scheduler_remove_p2n(ctx: Ctx) -> None:
    runs = _Runs(ctx)
    await _python_upsert(ctx, {"from": "python"}, every=EVERY_MS)
    await runs.node_worker()
    await wait_until(lambda: len(runs.runs()) >= 2, 10, "2 runs")
    assert await ctx.python_queue().remove_job_scheduler("tick")
    await _stopped(ctx, runs)


async def _stopped(ctx: Ctx, runs: _Runs) -> None:
    # A run already fetched may finish; nothing after that.
    await asyncio.sleep(EVERY_MS / 1000)  # one period: an iteration in flight lands (the window, not a sync)
    settled = len(runs.runs())
    await holds(lambda: len(runs.runs()) == settled, 3 * EVERY_MS / 1000, f"runs went on: {runs.runs()}")
    assert await ctx.python_queue().get_job_scheduler("tick") is None
    assert await ctx.node_counts("delayed", "waiting") == {"delayed": 0, "waiting": 0}


# --- legacy repeatable jobs (Node < 6's `repeat` option) ---------------------------------------

REPEAT_MS = 300


async def _repeat_state(ctx: Ctx) -> dict[str, Any]:
    """What Node reads of the queue's one repeatable job: its key and next run
    (getRepeatableJobs), and the pending iteration (the delayed job)."""
    return await ctx.node.eval(  # type: ignore[no-any-return]
        "const q = queue(args.q); const [r] = await q.getRepeatableJobs();"
        " const [d] = await q.getDelayed(); return { key: r && r.key, next: r && r.next,"
        " delayed: d && { id: d.id, opts: d.opts, rjk: d.repeatJobKey } };",
        q=ctx.queue,
    )


def _same_shape(python: dict[str, Any], node: dict[str, Any]) -> None:
    """The iteration a Python worker scheduled against the one a Node worker scheduled
    just before it: the same repeatable key and id scheme, the same options but for the
    moment they were written, the count one up, the run one period later."""
    p, n = python["delayed"], node["delayed"]
    assert p is not None and n is not None, f"an iteration was not scheduled: python {python}, node {node}"
    p_millis, n_millis = (int(str(d["id"]).rsplit(":", 1)[-1]) for d in (p, n))
    assert p_millis - n_millis == REPEAT_MS, f"Node's next run {n_millis}, then Python's {p_millis}"
    assert python["next"] == p_millis and node["next"] == n_millis, (python, node)
    assert str(p["id"]).rsplit(":", 1)[0] == str(n["id"]).rsplit(":", 1)[0], (p["id"], n["id"])
    assert p["rjk"] == n["rjk"] == python["key"], (p["rjk"], n["rjk"])
    moment = {"timestamp", "delay", "jobId", "prevMillis"}
    assert {k: v for k, v in p["opts"].items() if k not in moment} | {"repeat": None} == {
        k: v for k, v in n["opts"].items() if k not in moment
    } | {"repeat": None}, (p["opts"], n["opts"])
    assert p["opts"].keys() == n["opts"].keys(), (sorted(p["opts"]), sorted(n["opts"]))
    p_repeat, n_repeat = dict(p["opts"]["repeat"]), dict(n["opts"]["repeat"])
    assert p_repeat.pop("count") == n_repeat.pop("count") + 1 and p_repeat == n_repeat, (p["opts"], n["opts"])
    if "prevMillis" in n["opts"]:
        assert p["opts"]["prevMillis"] == p_millis


@scenario(
    "legacy_repeat",
    N2P,
    "a repeatable job (repeat option) added by Node 5, run by a Node worker and then a Python worker: "
    "Python schedules the next iteration as Node did",
    requires=("legacy-repeat",),
)
async def legacy_repeat_n2p(ctx: Ctx) -> None:
    await ctx.node.add(ctx.queue, "tick", {"from": "node"}, {"repeat": {"every": REPEAT_MS}})
    ctx.on_close(lambda: _remove_repeatables(ctx))
    handle = await ctx.node_worker("async job => 1")
    await ctx.node.wait_event(handle, "completed", timeout=10)
    await ctx.node.close_worker(handle)
    by_node = await _repeat_state(ctx)
    runs: list[str] = []
    captured: list[dict[str, Any]] = []

    async def tick(job: Any) -> None:
        runs.append(str(job.id))
        captured.append(await _repeat_state(ctx))  # the next iteration is added before the handler runs

    await ctx.worker({"tick": tick})
    await wait_until(lambda: len(runs) >= 2, 10, f"2 iterations run on Python (ran {runs})")
    assert runs[0] == by_node["delayed"]["id"], (runs, by_node)
    _same_shape(captured[0], by_node)
    assert len(set(runs)) == len(runs), f"an iteration ran twice: {runs}"


@scenario(
    "legacy_repeat",
    P2N,
    "a repeatable job added by Node 5, iterations scheduled by a Python worker, then run and continued by Node",
    requires=("legacy-repeat",),
)
async def legacy_repeat_p2n(ctx: Ctx) -> None:
    await ctx.node.add(ctx.queue, "tick", {"from": "node"}, {"repeat": {"every": REPEAT_MS}})
    ctx.on_close(lambda: _remove_repeatables(ctx))
    runs: list[str] = []

    async def tick(job: Any) -> None:
        runs.append(str(job.id))

    worker = await ctx.worker({"tick": tick})
    await wait_until(lambda: len(runs) >= 2, 10, f"2 iterations on Python (ran {runs})")
    await worker.close(timeout=5)
    by_python = await _repeat_state(ctx)
    assert by_python["delayed"] is not None, "the Python worker left no next iteration"
    handle = await ctx.node_worker("async job => job.opts.repeat.count")
    events = await ctx.node.wait_event(handle, "completed", count=2, timeout=10)
    assert events[0]["jobId"] == by_python["delayed"]["id"], (events[0].data, by_python)
    counts = [e["returnvalue"] for e in events]
    assert counts[1] == counts[0] + 1, f"Node's next iteration does not follow the Python-scheduled one: {counts}"


async def _remove_repeatables(ctx: Ctx) -> None:
    await ctx.node.eval(
        "const q = queue(args.q); for (const r of await q.getRepeatableJobs()) await q.removeRepeatableByKey(r.key);",
        q=ctx.queue,
    )

"""Every deduplication mode across languages: throttle (a ttl), debounce by
extending the ttl, debounce by replacing a delayed job, keep-last-if-active,
reschedule (Node 6.7), and releasing a deduplication id by hand. One language
adds the first job, the other the duplicate; the simple mode is ``dedup``
(:mod:`bullbridge.conformance.options`)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from bullbridge.conformance.framework import N2P, P2N, Ctx, holds, scenario, wait_until

FAR = 600_000
TTL_MS = 1_500


def _dedup_id() -> str:
    return f"d-{uuid.uuid4().hex[:6]}"


async def _pttl(ctx: Ctx, dedup_id: str) -> int:
    client = await ctx.raw()
    return int(await client.execute("PTTL", f"{ctx.prefix}:{ctx.queue}:de:{dedup_id}"))


# --- throttle: a ttl ---------------------------------------------------------------------------


@scenario(
    "dedup_throttle",
    N2P,
    "a deduplication ttl set by Node: a Python add inside it is deduplicated, after it not",
    requires=("deduplication",),
)
async def dedup_throttle_n2p(ctx: Ctx) -> None:
    dedup_id = _dedup_id()
    first = await ctx.node.add(ctx.queue, "x", {"n": 1}, {"deduplication": {"id": dedup_id, "ttl": TTL_MS}})
    producer = ctx.python_queue()
    inside = await producer.add("x", {"n": 2}, deduplication={"id": dedup_id, "ttl": TTL_MS})
    assert inside.id == first, f"inside the ttl Python's add got {inside.id}, not Node's {first}"
    client = await ctx.raw()
    await client.execute("PEXPIRE", f"{ctx.prefix}:{ctx.queue}:de:{dedup_id}", 1)  # the ttl runs out
    await wait_until(lambda: _gone(ctx, dedup_id), 5, "the deduplication key expires")
    after = await producer.add("x", {"n": 3}, deduplication={"id": dedup_id, "ttl": TTL_MS})
    assert after.id != first
    assert await producer.get_deduplication_job_id(dedup_id) == after.id


async def _gone(ctx: Ctx, dedup_id: str) -> bool:
    return await _pttl(ctx, dedup_id) == -2


@scenario(
    "dedup_throttle",
    P2N,
    "a deduplication ttl set by Python: a Node add inside it is deduplicated, after it not",
    requires=("deduplication",),
)
async def dedup_throttle_p2n(ctx: Ctx) -> None:
    dedup_id = _dedup_id()
    producer = ctx.python_queue()
    first = await producer.add("x", {"n": 1}, deduplication={"id": dedup_id, "ttl": TTL_MS})
    inside = await ctx.node.add(ctx.queue, "x", {"n": 2}, {"deduplication": {"id": dedup_id, "ttl": TTL_MS}})
    assert inside == first.id, f"inside the ttl Node's add got {inside}, not Python's {first.id}"
    assert 0 < await _pttl(ctx, dedup_id) <= TTL_MS
    client = await ctx.raw()
    await client.execute("PEXPIRE", f"{ctx.prefix}:{ctx.queue}:de:{dedup_id}", 1)
    await wait_until(lambda: _gone(ctx, dedup_id), 5, "the deduplication key expires")
    after = await ctx.node.add(ctx.queue, "x", {"n": 3}, {"deduplication": {"id": dedup_id, "ttl": TTL_MS}})
    assert after != first.id
    assert await producer.get_deduplication_job_id(dedup_id) == after


# --- debounce: extend, replace -----------------------------------------------------------------


async def _extended(ctx: Ctx, dedup_id: str, add_again: Any, first: str) -> None:
    before = await _pttl(ctx, dedup_id)
    await asyncio.sleep(0.2)  # let the ttl run down a little: the extension is what is measured
    again = await add_again()
    assert again == first, f"the duplicate got {again}, not {first}"
    after = await _pttl(ctx, dedup_id)
    # Kind 2: an extended ttl starts again at TTL_MS; without extend it would be <= before - 200.
    assert after > before - 100 and after > TTL_MS - 150, f"ttl not extended: {before} ms, then {after} ms"


@scenario(
    "dedup_extend",
    N2P,
    "Node's debounce (ttl + extend) is extended by a Python duplicate",
    requires=("dedup-replace-extend",),
)
async def dedup_extend_n2p(ctx: Ctx) -> None:
    dedup_id = _dedup_id()
    opts = {"id": dedup_id, "ttl": TTL_MS, "extend": True}
    first = await ctx.node.add(ctx.queue, "x", {}, {"deduplication": opts})

    async def again() -> str:
        return (await ctx.python_queue().add("x", {}, deduplication=opts)).id

    await _extended(ctx, dedup_id, again, first)


@scenario(
    "dedup_extend",
    P2N,
    "Python's debounce (ttl + extend) is extended by a Node duplicate",
    requires=("dedup-replace-extend",),
)
async def dedup_extend_p2n(ctx: Ctx) -> None:
    dedup_id = _dedup_id()
    opts = {"id": dedup_id, "ttl": TTL_MS, "extend": True}
    first = (await ctx.python_queue().add("x", {}, deduplication=opts)).id

    async def again() -> str:
        return await ctx.node.add(ctx.queue, "x", {}, {"deduplication": opts})

    await _extended(ctx, dedup_id, again, first)


@scenario(
    "dedup_replace",
    N2P,
    "Node's delayed job replaced by a Python duplicate (debounce with replace): only the new data runs, on Python",
    requires=("dedup-replace-extend",),
)
async def dedup_replace_n2p(ctx: Ctx) -> None:
    dedup_id = _dedup_id()
    old = await ctx.node.add(
        ctx.queue, "x", {"v": 1}, {"delay": FAR, "deduplication": {"id": dedup_id, "replace": True}}
    )
    producer = ctx.python_queue()
    new = await producer.add("x", {"v": 2}, delay=200, deduplication={"id": dedup_id, "replace": True})
    assert new.id != old and await producer.get_job(old) is None, "the delayed job was not replaced"
    seen: list[Any] = []

    async def handle(job: Any) -> None:
        seen.append(job.data)

    await ctx.worker(handle)
    await wait_until(lambda: seen, 10, "the replacing job runs")
    await holds(lambda: seen == [{"v": 2}], 0.3, f"ran {seen}, not only the new data")


@scenario(
    "dedup_replace",
    P2N,
    "Python's delayed job replaced by a Node duplicate (debounce with replace): only the new data runs, on Node",
    requires=("dedup-replace-extend",),
)
async def dedup_replace_p2n(ctx: Ctx) -> None:
    dedup_id = _dedup_id()
    producer = ctx.python_queue()
    old = await producer.add("x", {"v": 1}, delay=FAR, deduplication={"id": dedup_id, "replace": True})
    new = await ctx.node.add(
        ctx.queue, "x", {"v": 2}, {"delay": 200, "deduplication": {"id": dedup_id, "replace": True}}
    )
    assert new != old.id and await producer.get_job(old.id) is None, "the delayed job was not replaced"
    handle = await ctx.node_worker("async job => job.data")
    events = await ctx.node.wait_event(handle, "completed", timeout=10)
    assert [e["returnvalue"] for e in events] == [{"v": 2}]


# --- keep the last duplicate while the first is active ---------------------------------------


@scenario(
    "dedup_keep_last",
    N2P,
    "keepLastIfActive: Node's job active on a Python worker, a Python duplicate runs once it finishes",
    requires=("dedup-keep-last-if-active",),
)
async def dedup_keep_last_n2p(ctx: Ctx) -> None:
    dedup_id = _dedup_id()
    release = asyncio.Event()
    seen: list[Any] = []

    async def handle(job: Any) -> None:
        seen.append(job.data)
        if job.data["v"] == 1:
            await asyncio.wait_for(release.wait(), 20)

    await ctx.worker(handle, concurrency=2)
    first = await ctx.node.add(ctx.queue, "x", {"v": 1}, {"deduplication": {"id": dedup_id, "keepLastIfActive": True}})
    await wait_until(lambda: seen, 10, "the first job starts")
    producer = ctx.python_queue()
    for v in (2, 3):
        dup = await producer.add("x", {"v": v}, deduplication={"id": dedup_id, "keep_last_if_active": True})
        assert dup.id == first, f"a duplicate of an active job got its own id {dup.id}"
    await holds(lambda: len(seen) == 1, 0.2, f"a duplicate ran beside the active job: {seen}")
    release.set()
    await wait_until(lambda: len(seen) == 2, 10, f"the kept duplicate runs after the first (ran {seen})")
    assert seen == [{"v": 1}, {"v": 3}], seen


@scenario(
    "dedup_keep_last",
    P2N,
    "keepLastIfActive: Python's job active on a Node worker, a Node duplicate runs once it finishes",
    requires=("dedup-keep-last-if-active",),
)
async def dedup_keep_last_p2n(ctx: Ctx) -> None:
    dedup_id = _dedup_id()
    handle = await ctx.node_worker(
        "async job => { if (job.data.v === 1) while (!(shared.release || {})[job.queueName]) await sleep(10);"
        " return job.data.v }",
        concurrency=2,
    )
    producer = ctx.python_queue()
    first = await producer.add("x", {"v": 1}, deduplication={"id": dedup_id, "keep_last_if_active": True})
    await ctx.node.wait_event(handle, "active", timeout=10)
    for v in (2, 3):
        dup = await ctx.node.add(
            ctx.queue, "x", {"v": v}, {"deduplication": {"id": dedup_id, "keepLastIfActive": True}}
        )
        assert dup == first.id, f"a duplicate of an active job got its own id {dup}"
    await ctx.node.eval("shared.release = shared.release || {}; shared.release[args.q] = true;", q=ctx.queue)
    events = await ctx.node.wait_event(handle, "completed", count=2, timeout=10)
    assert [e["returnvalue"] for e in events] == [1, 3], [e["returnvalue"] for e in events]


# --- reschedule (Node 6.7) ---------------------------------------------------------------------

RESCHEDULED_MS = 300


@scenario(
    "dedup_reschedule",
    N2P,
    "reschedule: a Python duplicate moves Node's delayed job to its own delay; the job keeps its id and data",
    requires=("deduplication",),
)
async def dedup_reschedule_n2p(ctx: Ctx) -> None:
    dedup_id = _dedup_id()
    first = await ctx.node.add(ctx.queue, "x", {"v": 1}, {"delay": FAR, "deduplication": {"id": dedup_id}})
    seen: list[tuple[str, Any, float]] = []

    async def handle(job: Any) -> None:
        seen.append((str(job.id), job.data, time.time() * 1000))

    await ctx.worker(handle)
    added_at = time.time() * 1000
    dup = await ctx.python_queue().add(
        "x", {"v": 2}, delay=RESCHEDULED_MS, deduplication={"id": dedup_id, "reschedule": True}
    )
    assert dup.id == first
    await wait_until(lambda: seen, 10, "the rescheduled job runs")
    job_id, data, at = seen[0]
    assert (job_id, data) == (first, {"v": 1}), seen
    assert at - added_at >= RESCHEDULED_MS - 5, f"ran {at - added_at:.0f} ms after the duplicate"


@scenario(
    "dedup_reschedule",
    P2N,
    "reschedule: a Node duplicate moves Python's delayed job to its own delay; the job keeps its id and data",
    requires=("dedup-reschedule",),
)
async def dedup_reschedule_p2n(ctx: Ctx) -> None:
    dedup_id = _dedup_id()
    producer = ctx.python_queue()
    first = await producer.add("x", {"v": 1}, delay=FAR, deduplication={"id": dedup_id})
    handle = await ctx.node_worker("async job => ({ data: job.data, at: Date.now() })")
    added_at = time.time() * 1000
    dup = await ctx.node.add(
        ctx.queue, "x", {"v": 2}, {"delay": RESCHEDULED_MS, "deduplication": {"id": dedup_id, "reschedule": True}}
    )
    assert dup == first.id
    events = await ctx.node.wait_event(handle, "completed", timeout=10)
    assert events[0]["jobId"] == first.id and events[0]["returnvalue"]["data"] == {"v": 1}, events[0].data
    assert events[0]["returnvalue"]["at"] - added_at >= RESCHEDULED_MS - 5


# --- releasing a deduplication id by hand -----------------------------------------------------


@scenario(
    "dedup_remove_key",
    N2P,
    "Node's removeDeduplicationKey lets a Python add with the same id create a second job",
    requires=("dedup-remove-key",),
)
async def dedup_remove_key_n2p(ctx: Ctx) -> None:
    dedup_id = _dedup_id()
    producer = ctx.python_queue()
    first = await producer.add("x", {}, deduplication=dedup_id)
    assert (await producer.add("x", {}, deduplication=dedup_id)).id == first.id
    await ctx.node.queue_call(ctx.queue, "removeDeduplicationKey", dedup_id)
    second = await producer.add("x", {}, deduplication=dedup_id)
    assert second.id != first.id
    assert await ctx.node.queue_call(ctx.queue, "getDeduplicationJobId", dedup_id) == second.id


@scenario(
    "dedup_remove_key",
    P2N,
    "Python's remove_deduplication_key lets a Node add with the same id create a second job",
    requires=("deduplication",),
)
async def dedup_remove_key_p2n(ctx: Ctx) -> None:
    dedup_id = _dedup_id()
    first = await ctx.node.add(ctx.queue, "x", {}, {"deduplication": {"id": dedup_id}})
    assert await ctx.node.add(ctx.queue, "x", {}, {"deduplication": {"id": dedup_id}}) == first
    assert await ctx.python_queue().remove_deduplication_key(dedup_id)
    second = await ctx.node.add(ctx.queue, "x", {}, {"deduplication": {"id": dedup_id}})
    assert second != first
    assert await ctx.python_queue().get_deduplication_job_id(dedup_id) == second

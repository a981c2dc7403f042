"""Flows both ways: a parent in one queue waits for children in another, whose
return values it reads, whichever language added the flow and ran its jobs."""

from __future__ import annotations

from typing import Any

from bullbridge.conformance.framework import N2P, P2N, Ctx, scenario


@scenario("flow", N2P, "a flow added by Node: children run on Python, the parent on Node reads their values")
async def flow_n2p(ctx: Ctx) -> None:
    parent_q, child_q = ctx.queue_name("parent"), ctx.queue_name("child")
    tree = await ctx.node.call(
        "flow.add",
        flow={
            "name": "parent",
            "queueName": parent_q,
            "data": {},
            "children": [{"name": "child", "queueName": child_q, "data": {"n": n}} for n in (1, 2)],
        },
    )
    parent_id = tree["id"]
    assert (await ctx.node_wait_state(parent_id, "waiting-children", parent_q))["state"] == "waiting-children"

    async def child(job: Any) -> Any:
        return {"n10": job.data["n"] * 10}

    await ctx.worker({"child": child}, queue=child_q)
    await ctx.node_worker(
        "async job => { const v = await job.getChildrenValues();"
        " return { keys: Object.keys(v).sort(), values: Object.values(v).map(x => x.n10).sort((a, b) => a - b) } }",
        queue=parent_q,
    )
    parent = await ctx.node_wait_state(parent_id, "completed", parent_q)
    child_keys = sorted(ctx.key(child_q, c["id"]) for c in tree["children"])
    assert parent["returnvalue"] == {"keys": child_keys, "values": [10, 20]}, parent["returnvalue"]


@scenario("flow", P2N, "a flow added by Python: children run on Node, the parent on Python reads their values")
async def flow_p2n(ctx: Ctx) -> None:
    from bullbridge.flows import FlowJob, FlowProducer

    parent_q, child_q = ctx.queue_name("parent"), ctx.queue_name("child")
    async with FlowProducer(ctx.redis_url, prefix=ctx.prefix) as flows:
        tree = await flows.add(
            FlowJob("parent", parent_q, {}, children=[FlowJob("child", child_q, {"n": n}) for n in (1, 2)])
        )
    parents = ctx.python_queue(parent_q)
    assert await parents.get_job_state(tree.id) == "waiting-children"
    seen = await ctx.node.get_job(child_q, tree.children[0].id)
    assert seen is not None and seen["parentKey"] == tree.key, seen and seen.get("parentKey")
    await ctx.node_worker("async job => ({ n10: job.data.n * 10 })", queue=child_q)

    async def parent(job: Any) -> Any:
        values = await job.children_values()
        return {"keys": sorted(values), "values": sorted(v["n10"] for v in values.values())}

    await ctx.worker({"parent": parent}, queue=parent_q)
    result = await parents.result(tree.id, timeout=10)
    assert result == {"keys": sorted(c.key for c in tree.children), "values": [10, 20]}, result

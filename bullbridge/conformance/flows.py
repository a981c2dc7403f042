"""Flows both ways: a parent in one queue waits for children in another, whose
return values it reads, whichever language added the flow and ran its jobs."""

from __future__ import annotations

import asyncio
from typing import Any

from bullbridge.conformance.framework import N2P, P2N, Ctx, holds, scenario


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


# --- what a child's final failure does to its parent ------------------------------------------

#: Each parent-failure policy: Node's option, bullbridge's, and the parent's fate.
POLICIES = {
    "fail": ("failParentOnFailure", "fail_parent_on_failure"),
    "ignore": ("ignoreDependencyOnFailure", "ignore_dependency_on_failure"),
    "remove": ("removeDependencyOnFailure", "remove_dependency_on_failure"),
    "continue": ("continueParentOnFailure", "continue_parent_on_failure"),
}
_REQUIRES = {
    "fail": (),
    "ignore": ("ignore-dependency-on-failure",),
    "remove": ("remove-dependency-on-failure",),
    "continue": ("continue-parent-on-failure",),
}


#: A Node parent processor: counts its runs; with a child still pending (continueParentOnFailure)
#: it lets go of it (Node's job.removeUnprocessedChildren) so that it can complete.
NODE_PARENT = (
    "async job => { shared.parentRan = shared.parentRan || {};"
    " shared.parentRan[job.queueName] = (shared.parentRan[job.queueName] || 0) + 1;"
    " if ((await job.getDependencies()).unprocessed.length) await job.removeUnprocessedChildren();"
    " return Object.keys(await job.getChildrenValues()).length }"
)


async def _policy_n2p(ctx: Ctx, policy: str) -> None:
    """Node adds the flow (a failing child with the policy, a good child, and - for
    'continue' - a child nobody runs); a Python worker runs the children; the parent
    runs on Node unless the policy fails it."""
    parent_q, child_q, idle_q = ctx.queue_name("parent"), ctx.queue_name("child"), ctx.queue_name("idle")
    node_opt, _ = POLICIES[policy]
    children: list[dict[str, Any]] = [
        {"name": "bad", "queueName": child_q, "data": {}, "opts": {node_opt: True}},
        {"name": "good", "queueName": child_q, "data": {}},
    ]
    if policy == "continue":
        # "good" first: the parent runs the moment "bad" fails, and a "good" still active then
        # would be a dependency it cannot let go of (its finish refused: pending dependencies).
        children = [children[1], children[0], {"name": "never", "queueName": idle_q, "data": {}}]
    bad_at = 1 if policy == "continue" else 0
    tree = await ctx.node.call(
        "flow.add", flow={"name": "parent", "queueName": parent_q, "data": {}, "children": children}
    )

    async def good(job: Any) -> str:
        return "good"

    async def bad(job: Any) -> None:
        raise ValueError("child says no")

    await ctx.worker({"good": good, "bad": bad}, queue=child_q)
    handle = await ctx.node_worker(NODE_PARENT, queue=parent_q)
    if policy == "fail":
        parent = await ctx.node_wait_state(tree["id"], "failed", parent_q)
        assert tree["children"][bad_at]["id"] in str(parent["failedReason"]), parent["failedReason"]
        assert not await ctx.node.eval("return (shared.parentRan || {})[args.q] || 0;", q=parent_q)
        return
    await ctx.node.wait_event(handle, "completed", timeout=10)
    deps = await ctx.python_queue(parent_q).get_dependencies(tree["id"])
    bad_key = ctx.key(child_q, tree["children"][bad_at]["id"])
    if policy == "ignore":
        assert bad_key in deps.ignored, f"the ignored failure is not recorded: {deps}"
    if policy == "remove":
        assert bad_key not in deps.ignored and bad_key not in deps.failed, deps


async def _policy_p2n(ctx: Ctx, policy: str) -> None:
    """Python adds the flow; a Node worker runs the children; the parent runs on Python."""
    from bullbridge.flows import FlowJob, FlowProducer

    parent_q, child_q, idle_q = ctx.queue_name("parent"), ctx.queue_name("child"), ctx.queue_name("idle")
    _, py_opt = POLICIES[policy]
    children = [FlowJob("bad", child_q, {}, opts={py_opt: True}), FlowJob("good", child_q, {})]
    if policy == "continue":  # "good" first, as in the N2P direction
        children = [children[1], children[0], FlowJob("never", idle_q, {})]
    bad_at = 1 if policy == "continue" else 0
    async with FlowProducer(ctx.redis_url, prefix=ctx.prefix) as flows:
        tree = await flows.add(FlowJob("parent", parent_q, {}, children=children))
    await ctx.node_worker(
        "async job => { if (job.name === 'bad') throw new Error('child says no'); return 'good' }", queue=child_q
    )
    parents = ctx.python_queue(parent_q)
    ran: list[str] = []

    async def parent(job: Any) -> int:
        ran.append(str(job.id))
        if policy == "continue":  # the parent runs with a child still pending: it lets go of it
            await job.remove_unprocessed_children()
        return len(await job.children_values())

    await ctx.worker({"parent": parent}, queue=parent_q)
    if policy == "fail":
        outcome = await parents.wait_for(tree.id, timeout=10)
        assert outcome.state == "failed" and tree.children[bad_at].id in str(outcome.failed_reason), outcome
        assert not ran, "the parent's handler ran although a child failed it"
        return
    await parents.result(tree.id, timeout=10)
    deps = await parents.get_dependencies(tree.id)
    bad_key = tree.children[bad_at].key
    if policy == "ignore":
        assert bad_key in deps.ignored, f"the ignored failure is not recorded: {deps}"
        node_view = await ctx.node.call("job.call", queue=parent_q, jobId=tree.id, method="getDependencies")
        if "ignored" in node_view:  # Node's getDependencies lists ignored failures from 5.5x
            assert bad_key in node_view["ignored"], node_view
    if policy == "remove":
        assert bad_key not in deps.ignored and bad_key not in deps.failed, deps


def _register_policies() -> None:
    for policy in POLICIES:
        node_opt, py_opt = POLICIES[policy]
        fate = {
            "fail": "the parent fails",
            "ignore": "the parent runs, the failure recorded as ignored",
            "remove": "the parent runs without that child",
            "continue": "the parent runs at once, a sibling still pending",
        }[policy]

        def bind(fn: Any, p: str) -> Any:
            async def run(ctx: Ctx) -> None:
                await fn(ctx, p)

            run.__module__ = __name__
            return run

        scenario(
            f"flow_{policy}",
            N2P,
            f"{node_opt} set by Node, the child failed by a Python worker: {fate}",
            requires=_REQUIRES[policy],
        )(bind(_policy_n2p, policy))
        scenario(
            f"flow_{policy}",
            P2N,
            f"{py_opt} set by Python, the child failed by a Node worker: {fate}",
            requires=_REQUIRES[policy],
        )(bind(_policy_p2n, policy))


_register_policies()


# --- a completed child reused by a new flow --------------------------------------------------


@scenario(
    "flow_completed_child",
    N2P,
    "a Node flow reusing a completed child: the parent waits for the new sibling (Python runs it), then reads both",
    requires=("deferred-parent-release",),
)
async def flow_completed_child_n2p(ctx: Ctx) -> None:
    parent_q, child_q = ctx.queue_name("parent"), ctx.queue_name("child")
    done_id = "done-" + ctx.queue[-8:]
    await ctx.node.add(child_q, "child", {"n": 1}, {"jobId": done_id})
    gate = asyncio.Event()

    async def child(job: Any) -> int:
        if job.id != done_id:
            await asyncio.wait_for(gate.wait(), 20)
        return int(job.data["n"])

    await ctx.worker({"child": child}, queue=child_q)
    await ctx.node_wait_state(done_id, "completed", child_q)
    tree = await ctx.node.call(
        "flow.add",
        flow={
            "name": "parent",
            "queueName": parent_q,
            "data": {},
            "children": [
                {"name": "child", "queueName": child_q, "data": {"n": 1}, "opts": {"jobId": done_id}},
                {"name": "child", "queueName": child_q, "data": {"n": 2}},
            ],
        },
    )
    await holds(
        lambda: _state_is(ctx, tree["id"], parent_q, "waiting-children"),
        0.3,
        "the parent left waiting-children before its new child ran",
    )
    gate.set()
    handle = await ctx.node_worker(
        "async job => Object.values(await job.getChildrenValues()).sort((a, b) => a - b)", queue=parent_q
    )
    events = await ctx.node.wait_event(handle, "completed", timeout=10)
    assert events[0]["returnvalue"] == [1, 2], events[0]["returnvalue"]


async def _state_is(ctx: Ctx, job_id: str, queue: str, state: str) -> bool:
    return await ctx.python_queue(queue).get_job_state(job_id) == state


@scenario(
    "flow_completed_child",
    P2N,
    "a Python flow reusing a completed child: the parent waits for the new sibling (Node runs it), then reads both",
)
async def flow_completed_child_p2n(ctx: Ctx) -> None:
    from bullbridge.flows import FlowJob, FlowProducer

    parent_q, child_q = ctx.queue_name("parent"), ctx.queue_name("child")
    done_id = "done-" + ctx.queue[-8:]
    children = ctx.python_queue(child_q)
    await children.add("child", {"n": 1}, job_id=done_id)
    await ctx.node_worker(
        "async job => { if (job.id !== args_done) { while (!(shared.release || {})[job.queueName]) await sleep(10) }"
        " return job.data.n }".replace("args_done", repr(done_id)),
        queue=child_q,
    )
    assert await children.result(done_id, timeout=10) == 1
    async with FlowProducer(ctx.redis_url, prefix=ctx.prefix) as flows:
        tree = await flows.add(
            FlowJob(
                "parent",
                parent_q,
                {},
                children=[
                    FlowJob("child", child_q, {"n": 1}, opts={"job_id": done_id}),
                    FlowJob("child", child_q, {"n": 2}),
                ],
            )
        )
    await holds(
        lambda: _state_is(ctx, tree.id, parent_q, "waiting-children"),
        0.3,
        "the parent left waiting-children before its new child ran",
    )
    await ctx.node.eval("shared.release = shared.release || {}; shared.release[args.q] = true;", q=child_q)

    async def parent(job: Any) -> list[int]:
        return sorted((await job.children_values()).values())

    await ctx.worker({"parent": parent}, queue=parent_q)
    assert await ctx.python_queue(parent_q).result(tree.id, timeout=10) == [1, 2]

"""Pausing and resuming a queue, in every combination of languages.

Each scenario has a *consumer* - the Python worker in ``N->P``, a Node worker
in ``P->N`` - and a *producer*, the other language, which adds the jobs. Who
pauses and who resumes varies by name:

==========================  ===========  ============
scenario                    pauses       resumes
==========================  ===========  ============
``pause_resume``            consumer     consumer
``pause_by_producer``       producer     producer
``pause_cross``             consumer     producer
``pause_cross_back``        producer     consumer
==========================  ===========  ============

The plain names start with a job already waiting when the queue is paused (a
Node < 6 pause moves it to its ``paused`` list); the ``_idle`` ones pause an
empty queue with the consumer's worker already idle, and then want the job
picked up within a second of the resume (no waiting for a worker's
``drainDelay``). Every job added - before or during the pause - must run
after the resume, on the consumer; one that is in no state any more is a
*lost job* (:class:`~bullbridge.conformance.framework.LostJob`): that is what
Node 5 used to do to a job the Python port added while Node 5 had the queue
paused (bullbridge.protocol).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bullbridge.conformance.framework import N2P, P2N, Ctx, LostJob, holds, scenario, wait_until

#: How long a paused queue must hold its jobs (the window is the subject, not a sync).
HOLD_S = 0.3
#: After the resume: a job waiting before the pause and the one added during it
#: run within this (a failure detector: they normally run in a few ms) ...
RUN_AFTER_RESUME_S = 5.0
#: ... and an idle worker picks the one job up within this: "at once", not after
#: the 5 s drainDelay an idle worker waits without a marker (kind 3 bound: a
#: loaded machine picks up within ~50 ms; the failure it detects is 5 s).
IDLE_PICKUP_S = 1.5

Side = str  # "python" | "node"


class _Case:
    """One pause scenario: who consumes, who pauses and resumes, and the jobs so far."""

    def __init__(self, ctx: Ctx, pauser: str, resumer: str) -> None:
        self.ctx = ctx
        # In N->P the consumer is Python and the producer Node; in P->N the reverse.
        consumer, producer = ("python", "node") if ctx.scenario.direction == N2P else ("node", "python")
        roles = {"consumer": consumer, "producer": producer}
        self.consumer, self.producer = consumer, producer
        self.pauser, self.resumer = roles[pauser], roles[resumer]
        self.ran: list[str] = []
        self.handle = ""
        self.added: list[str] = []

    async def add(self, when: str) -> str:
        if self.producer == "node":
            job_id = await self.ctx.node.add(self.ctx.queue, "x", {"when": when})
        else:
            job_id = (await self.ctx.python_queue().add("x", {"when": when})).id
        self.added.append(job_id)
        return job_id

    async def start_consumer(self) -> None:
        if self.consumer == "python":

            async def handle(job: Any) -> str:
                self.ran.append(str(job.id))
                return "python"

            await self.ctx.worker({"x": handle})
        else:
            self.handle = await self.ctx.node_worker("async job => 'node'")

    def runs(self) -> list[str]:
        if self.consumer == "python":
            return list(self.ran)
        return [str(e["jobId"]) for e in self.ctx.node.events[self.handle] if e.event == "active"]

    async def act(self, side: Side, what: str) -> None:
        if side == "node":
            await self.ctx.node.queue_call(self.ctx.queue, what)
        elif what == "pause":
            await self.ctx.python_queue().pause()
        else:
            await self.ctx.python_queue().resume()

    async def hold(self) -> None:
        await holds(lambda: not self.runs(), HOLD_S, f"a job ran while the {self.pauser} side had the queue paused")

    async def all_run(self, within: float, what: str) -> None:
        try:
            await wait_until(lambda: sorted(set(self.runs())) == sorted(self.added), within, what)
        except AssertionError:
            states = await self.ctx.not_lost(self.added)  # LostJob when one is in no state
            raise AssertionError(
                f"{what}: ran {self.runs()} of {self.added} (states: {states}; paused by {self.pauser}, "
                f"resumed by {self.resumer}, added by {self.producer}, run by {self.consumer})"
            ) from None


async def _busy(ctx: Ctx, pauser: str, resumer: str) -> None:
    case = _Case(ctx, pauser, resumer)
    await case.add("before")
    await case.act(case.pauser, "pause")
    await case.start_consumer()
    await case.add("during")
    await case.hold()
    await case.act(case.resumer, "resume")
    await case.all_run(RUN_AFTER_RESUME_S, "both jobs run after the resume")


async def _idle(ctx: Ctx, pauser: str, resumer: str) -> None:
    case = _Case(ctx, pauser, resumer)
    await case.start_consumer()
    await case.act(case.pauser, "pause")
    await case.add("during")
    await case.hold()
    await case.act(case.resumer, "resume")
    await case.all_run(IDLE_PICKUP_S, f"the job picked up by the idle {case.consumer} worker at once after the resume")


def _register(name: str, pauser: str, resumer: str) -> None:
    for direction in (N2P, P2N):
        consumer, producer = ("Python", "Node") if direction == N2P else ("Node", "Python")
        who = {"consumer": consumer, "producer": producer}
        busy_title = (
            f"{who[pauser]} pauses (a job waiting), {producer} adds, {who[resumer]} resumes: "
            f"held, then both run on {consumer}"
        )
        idle_title = (
            f"{who[pauser]} pauses an empty queue, {producer} adds, {who[resumer]} resumes: "
            f"an idle {consumer} worker picks the job up at once"
        )
        scenario(name, direction, busy_title)(_bind(_busy, pauser, resumer))
        scenario(f"{name}_idle", direction, idle_title)(_bind(_idle, pauser, resumer))


def _bind(
    fn: Callable[[Ctx, str, str], Awaitable[None]], pauser: str, resumer: str
) -> Callable[[Ctx], Awaitable[None]]:
    async def run(ctx: Ctx) -> None:
        await fn(ctx, pauser, resumer)

    run.__module__ = __name__
    return run


_register("pause_resume", "consumer", "consumer")
_register("pause_by_producer", "producer", "producer")
_register("pause_cross", "consumer", "producer")
_register("pause_cross_back", "producer", "consumer")

__all__ = ["HOLD_S", "IDLE_PICKUP_S", "LostJob"]

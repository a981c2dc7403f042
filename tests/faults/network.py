"""Network faults between a worker (or a producer) and Redis, bullbridge and Node side by side.

Each scenario puts a :class:`~bullbridge.testing.faultproxy.FaultProxy` between one
client and Redis, breaks one of its connections (or all of them), and measures how
long the client takes to *work again*: from the fault to a job - added at that
moment straight to Redis - recorded completed in Redis (a worker), or to an add that
Redis recorded (a producer). That figure includes noticing the dead link,
reconnecting and the job itself; a client that never notices hits ``cap``.

    python -m tests.faults.network [--cap 40] [--only blackhole] [--language node] [--held]

(part of ``make chaos``; ``--held``: only a job held past its lock across a black hole).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis

from bullbridge import Queue, Worker
from bullbridge.errors import BullbridgeError
from bullbridge.testing.faultproxy import FaultProxy, Link
from bullbridge.testing.node import NodeDriver
from bullbridge.testing.redis_server import PrivateRedis, uuid_hex

#: Faults x connections of the table, in order.
FAULTS = ("blackhole", "reset", "cut 2 s", "latency 50 ms", "latency 200 ms")
CONNECTIONS = ("worker blocking", "worker command", "worker command, idle", "producer")


@dataclass
class Measure:
    fault: str
    connection: str
    language: str
    seconds: float | None  # working again: None when not within the cap
    noticed: float | None = None  # the client's first new connection after the fault


async def client_links(admin: redis.Redis, proxy: FaultProxy) -> list[tuple[Link, dict[str, Any]]]:
    """The proxy's live links with what Redis says of each (``CLIENT LIST``: ``cmd``, ``name``)."""
    by_port = {int(c["addr"].rsplit(":", 1)[1]): c for c in await admin.client_list()}
    return [(link, by_port[link.upstream_port]) for link in proxy.open_links() if link.upstream_port in by_port]


async def find_link(admin: redis.Redis, proxy: FaultProxy, which: str, timeout: float = 10.0) -> Link:
    """The worker's blocking link (its last command BZPOPMIN) or its command link (the
    busiest other one: moveToActive, extendLock... run there)."""
    deadline = time.monotonic() + timeout  # a failure detector: a worker blocks within ms of starting
    while True:
        links = await client_links(admin, proxy)
        blocking = [(link, c) for link, c in links if c.get("cmd") == "bzpopmin"]
        others = [(link, c) for link, c in links if c.get("cmd") not in ("bzpopmin", "client|list", "client")]
        if which == "blocking" and blocking:
            return blocking[0][0]
        if which == "command" and blocking and others:
            return max(others, key=lambda lc: int(lc[1].get("tot-cmds", 0) or 0))[0]
        if which == "any" and links:
            return max(links, key=lambda lc: int(lc[1].get("tot-cmds", 0) or 0))[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no {which} link among {[c.get('cmd') for _, c in links]}")
        await asyncio.sleep(0.05)  # polling CLIENT LIST


async def wait_completed(admin: redis.Redis, key: str, cap: float) -> float | None:
    """Seconds until the job hash ``key`` has a ``finishedOn`` (Redis recorded it), or None."""
    started = time.monotonic()
    while time.monotonic() - started < cap:
        if await admin.hget(key, "finishedOn"):
            return time.monotonic() - started
        await asyncio.sleep(0.02)  # polling Redis for the recorded outcome
    return None


class Scenario:
    """One queue, one proxy, one worker (Python or Node) or producer behind it."""

    def __init__(self, server: PrivateRedis, language: str, cap: float) -> None:
        self.server = server
        self.language = language
        self.cap = cap
        self.queue = f"net-{uuid_hex()[:8]}"
        self.admin = redis.from_url(server.url, decode_responses=True)

    async def close(self) -> None:
        await self.admin.aclose()

    async def _worker(self, url: str) -> Callable[[], Awaitable[Any]]:
        if self.language == "python":
            worker = Worker(self.queue, {"x": _echo}, connection=url, concurrency=2)
            await worker.start()
            return lambda: worker.close(timeout=3)
        node = await NodeDriver(url).start()  # its every connection through the proxy
        await node.start_worker(self.queue, "async job => job.data", concurrency=2)
        return node.close

    async def worker_fault(self, fault: str, connection: str) -> Measure:
        which = connection.split()[1].rstrip(",")
        idle = connection.endswith("idle")
        with FaultProxy(self.server.port) as proxy:
            stop = await self._worker(proxy.url)
            async with Queue(self.queue, connection=self.server.url) as direct:
                try:
                    warm = await direct.add("x", {})  # the worker runs, both links up
                    assert await wait_completed(self.admin, f"bull:{self.queue}:{warm.id}", 20)
                    link = await find_link(self.admin, proxy, "blocking" if which == "blocking" else "command")
                    before = len(proxy.links)
                    started = time.monotonic()
                    await _inject(proxy, link, fault)
                    if idle and not fault.startswith("latency"):  # only the client's liveness can notice
                        await wait_new_link(proxy, before, self.cap)
                    job = await direct.add("x", {})
                    took = await wait_completed(self.admin, f"bull:{self.queue}:{job.id}", self.cap)
                    waited = None if took is None else time.monotonic() - started
                    return Measure(fault, connection, self.language, waited, noticed(proxy, before, started))
                finally:
                    proxy.latency(0)
                    proxy.restore()
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(stop(), 10)

    async def producer_fault(self, fault: str) -> Measure:
        with FaultProxy(self.server.port) as proxy:
            if self.language == "python":
                queue = Queue(self.queue, connection=proxy.url)
                add: Callable[[], Awaitable[Any]] = lambda: queue.add("x", {})  # noqa: E731
                close: Callable[[], Awaitable[Any]] = queue.close
            else:
                node = await NodeDriver(proxy.url).start()
                add = lambda: node.add(self.queue, "x", {})  # noqa: E731
                close = node.close
            try:
                await add()
                link = await find_link(self.admin, proxy, "any")
                before = len(proxy.links)
                started = time.monotonic()
                await _inject(proxy, link, fault)
                while time.monotonic() - started < self.cap:
                    with contextlib.suppress(BullbridgeError, TimeoutError, OSError):
                        left = self.cap - (time.monotonic() - started)
                        await asyncio.wait_for(add(), max(0.1, left))
                        took = time.monotonic() - started
                        return Measure(fault, "producer", self.language, took, noticed(proxy, before, started))
                    await asyncio.sleep(0.05)  # between a failed add and the next try
                return Measure(fault, "producer", self.language, None, noticed(proxy, before, started))
            finally:
                proxy.latency(0)
                proxy.restore()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(close(), 5)


async def _echo(job: Any) -> Any:
    return job.data


async def _inject(proxy: FaultProxy, link: Link, fault: str) -> None:
    if fault == "blackhole":
        link.blackhole()
    elif fault == "reset":
        link.reset()
    elif fault.startswith("cut"):
        proxy.cut()
        await asyncio.sleep(2.0)  # the outage itself: 2 s with every connection refused
        proxy.restore()
    elif fault.startswith("latency"):
        proxy.latency(int(fault.split()[1]) / 1000)


async def run(
    faults: tuple[str, ...] = FAULTS,
    connections: tuple[str, ...] = CONNECTIONS,
    languages: tuple[str, ...] = ("python", "node"),
    cap: float = 40.0,
    verbose: bool = False,
) -> list[Measure]:
    results: list[Measure] = []
    with PrivateRedis() as server:
        for fault in faults:
            for connection in connections:
                for language in languages:
                    scenario = Scenario(server, language, cap)
                    try:
                        if connection == "producer":
                            measure = await scenario.producer_fault(fault)
                        else:
                            measure = await scenario.worker_fault(fault, connection)
                    finally:
                        await scenario.close()
                    results.append(measure)
                    if verbose:
                        print(measure, flush=True)
    return results


def noticed(proxy: FaultProxy, before: int, started: float) -> float | None:
    """Seconds from the fault to the first connection opened after it (the client reconnecting)."""
    fresh = proxy.links[before:]
    return fresh[0].opened_at - started if fresh else None


async def wait_new_link(proxy: FaultProxy, before: int, cap: float) -> None:
    deadline = time.monotonic() + cap
    while len(proxy.links) <= before and time.monotonic() < deadline:
        await asyncio.sleep(0.02)  # polling the proxy for a reconnect


def table(results: list[Measure], cap: float) -> str:
    cell = {(m.fault, m.connection, m.language): m for m in results}
    lines = [
        "| fault | connection | bullbridge noticed | bullbridge working | Node noticed | Node working |",
        "|---|---|---:|---:|---:|---:|",
    ]

    def show(value: float | None, never: str) -> str:
        return never if value is None else f"{value:.2f}"

    for fault, connection in dict.fromkeys((m.fault, m.connection) for m in results):
        row = [fault, connection]
        # No new connection: under latency, none was needed; after a black hole or a reset, never noticed.
        unnoticed = "no reconnect" if fault.startswith("latency") else f"> {cap:g}"
        for language in ("python", "node"):
            m = cell.get((fault, connection, language))
            row.append("-" if m is None else show(m.noticed, unnoticed))
            row.append("-" if m is None else show(m.seconds, f"> {cap:g}"))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


#: How long the held job's handler works: past the 30 s lock, so a lock not renewed expires first.
HOLD_S = 35.0


@dataclass
class Held:
    language: str
    noticed: float | None  # the worker's first new connection after the black hole
    runs_by_others: int  # runs of the held job by the rescuer (a stall recovery)
    rerun_after: float | None  # seconds from the black hole to the rescuer's run
    finished_by: str  # the returnvalue Redis recorded ("held" or "rescuer"), "" if none


async def held_job(server: PrivateRedis, language: str) -> Held:
    """A job held (HOLD_S) by a worker whose command connection is black-holed
    right after the job starts; a Python rescuer on a direct connection checks
    for stalled jobs every 2 s. Kept lock: the rescuer never runs it."""
    queue = f"held-{uuid_hex()[:8]}"
    admin = redis.from_url(server.url, decode_responses=True)
    rescued: list[float] = []

    async def rescue(job: Any) -> str:
        rescued.append(time.monotonic())
        return "rescuer"

    with FaultProxy(server.port) as proxy:
        if language == "python":

            async def hold(job: Any) -> str:
                await asyncio.sleep(HOLD_S)  # the scenario: a long job
                return "held"

            subject = Worker(queue, {"x": hold}, connection=proxy.url)
            await subject.start()
            stop: Callable[[], Awaitable[Any]] = lambda: subject.close(timeout=1)  # noqa: E731
        else:
            node = await NodeDriver(proxy.url).start()
            processor = f"async job => {{ await new Promise(r => setTimeout(r, {HOLD_S * 1000:.0f})); return 'held'; }}"
            await node.start_worker(queue, processor)
            stop = node.close
        rescuer = Worker(queue, {"x": rescue}, connection=server.url, stalled_interval=2000)
        try:
            async with Queue(queue, connection=server.url) as direct:
                job = await direct.add("x", {})
                key = f"bull:{queue}:{job.id}"
                while not await admin.hget(key, "processedOn"):
                    await asyncio.sleep(0.05)  # polling Redis until the subject holds the job
                link = await find_link(admin, proxy, "command")
                before = len(proxy.links)
                started = time.monotonic()
                link.blackhole()
                await rescuer.start()  # only now, so the subject is the one that fetched the job
                await wait_completed(admin, key, HOLD_S + 10)
                finished_by = str(await admin.hget(key, "returnvalue") or "").strip('"')
                return Held(
                    language,
                    noticed(proxy, before, started),
                    len(rescued),
                    rescued[0] - started if rescued else None,
                    finished_by,
                )
        finally:
            await rescuer.close(timeout=1)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(stop(), 10)
            await admin.aclose()


def held_table(results: list[Held]) -> str:
    lines = [
        "| worker | noticed (s) | run again by another worker | recorded outcome |",
        "|---|---:|---|---|",
    ]
    for h in results:
        again = "no" if not h.runs_by_others else f"yes, {h.rerun_after:.1f} s after the black hole"
        lines.append(
            f"| {'bullbridge' if h.language == 'python' else 'Node'} | "
            f"{'never' if h.noticed is None else f'{h.noticed:.2f}'} | {again} | {h.finished_by or 'none'} |"
        )
    return "\n".join(lines)


async def run_held(languages: tuple[str, ...]) -> list[Held]:
    with PrivateRedis() as server:
        return [await held_job(server, language) for language in languages]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cap", type=float, default=40.0, help="seconds after which a client 'never' recovers")
    parser.add_argument("--only", action="append", help="a fault (repeatable)")
    parser.add_argument("--language", action="append", choices=("python", "node"))
    parser.add_argument("--connection", action="append", choices=CONNECTIONS)
    parser.add_argument("--held", action="store_true", help="only the job held across a black hole")
    args = parser.parse_args()
    faults = tuple(args.only) if args.only else FAULTS
    languages = tuple(args.language) if args.language else ("python", "node")
    if not args.held:
        results = asyncio.run(run(faults, tuple(args.connection or CONNECTIONS), languages, args.cap, verbose=True))
    print(f"a job held {HOLD_S:g} s (lock 30 s) while its worker's command connection is black-holed; a Python")
    print("worker on a direct connection checks for stalled jobs every 2 s")
    print(held_table(asyncio.run(run_held(languages))))
    if args.held:
        return 0
    print("network faults (seconds), bullbridge beside Node BullMQ. noticed: from the fault to the client's first")
    print("new connection; working: to a job added at that moment recorded completed (workers; 'idle': added")
    print("only once the client reconnected, or at the cap) or an add recorded (producers)")
    print(table(results, args.cap))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

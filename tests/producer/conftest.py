"""Helpers for the producer suite: raw Redis reads, a flow producer, waiting on Node."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from bullbridge.connection import connect
from bullbridge.connection.resp import RespClient
from bullbridge.flows import FlowProducer
from bullbridge.testing.node import NodeDriver


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[RespClient]:
    """A plain client for reading what is really stored."""
    connector = connect(redis_url)
    client = connector.fast("bullbridge-test-raw")
    yield client
    await connector.close()


@pytest.fixture
async def flow_producer(redis_url: str) -> AsyncIterator[FlowProducer]:
    fp = FlowProducer(redis_url)
    yield fp
    await fp.close()


async def queue_keys(raw: RespClient, queue: str, prefix: str = "bull") -> list[str]:
    """Every key of a queue (``<prefix>:<queue>:*``)."""
    cursor, found = b"0", []
    while True:
        cursor, keys = await raw.execute("SCAN", cursor, "MATCH", f"{prefix}:{queue}:*", "COUNT", 1000)
        found += [k.decode() for k in keys]
        if cursor in (b"0", 0):
            return sorted(found)


async def job_hash(raw: RespClient, key: str) -> dict[str, bytes]:
    flat = await raw.execute("HGETALL", key)
    return {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}


async def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll an async or sync predicate until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(0.01)
    raise AssertionError(f"{what} not reached within {timeout} s (last: {last!r})")


async def node_state(
    node: NodeDriver, queue: str, job_id: str, state: str, timeout: float = 10.0, prefix: str = "bull"
) -> dict[str, Any]:
    """Wait until Node sees the job in ``state``; returns Node's job JSON."""

    async def check() -> dict[str, Any] | None:
        job = await node.get_job(queue, job_id, prefix=prefix)
        return job if job is not None and job["state"] == state else None

    return await wait_until(check, timeout, f"job {job_id} of {queue} in state {state!r}")  # type: ignore[no-any-return]


@asynccontextmanager
async def node_worker(
    node: NodeDriver, queue: str, processor: str = "async job => job.data", **opts: Any
) -> AsyncIterator[str]:
    """A Node BullMQ worker on ``queue`` for the duration of the block; yields its handle."""
    handle = await node.start_worker(queue, processor, **opts)
    try:
        yield handle
    finally:
        await node.close_worker(handle, force=True)


async def node_order(
    node: NodeDriver, handle: str, count: int, event: str = "completed", timeout: float = 10.0
) -> list[str]:
    """Job ids in the order a Node worker reported ``event`` for them."""
    events = await node.wait_event(handle, event, count=count, timeout=timeout)
    return [str(e["jobId"]) for e in events]

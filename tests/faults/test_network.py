"""A network that breaks (docs/faults.md): a black-holed connection - no RST, no FIN,
nothing forwarded either way, as a NAT table that dropped it - through a real TCP
proxy (bullbridge.testing.faultproxy) between the client and Redis. The full table,
Node beside bullbridge and every fault: ``make chaos`` (tests/faults/network.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis.asyncio as redis

from bullbridge import Queue, Worker
from bullbridge.connection import ConnectionSettings
from bullbridge.connection.resp import BLOCK_MARGIN, WATCHDOG_TICK, Endpoint, RespClient
from bullbridge.errors import RedisUnavailable
from bullbridge.testing.faultproxy import FaultProxy
from bullbridge.testing.redis_server import PrivateRedis
from tests.faults.network import find_link, wait_completed
from tests.timing import record
from tests.worker.impls import wait_until

IDLE_PING = Endpoint.idle_ping or 0.0
STALL = Endpoint.stall_timeout or 0.0
#: The documented bound for noticing a black-holed command connection: idle for the PING
#: interval from the tick after the last reply, then the PING's deadline, then one more tick.
COMMAND_BOUND = IDLE_PING + STALL + 2 * WATCHDOG_TICK
#: ... with a command in flight: its stall, from the first tick that sees it, then one more tick.
IN_FLIGHT_BOUND = STALL + 2 * WATCHDOG_TICK
#: ... and a blocking one: the block time (drain_delay, 5 s) plus the margin, then the tick.
BLOCKING_BOUND = 5.0 + BLOCK_MARGIN + WATCHDOG_TICK
#: Kind 3 slack over those bounds: the overhead measured under load (reconnect, fetch, the
#: job, polling Redis) was 0.01-0.3 s; 2.5 s is > 3x that and keeps every bound <= 10 s.
SLACK = 2.5


@pytest.fixture
async def server_proxy(private_redis: PrivateRedis) -> Any:
    with FaultProxy(private_redis.port) as proxy:
        admin = redis.from_url(private_redis.url, decode_responses=True)
        try:
            yield private_redis, proxy, admin
        finally:
            await admin.aclose()


async def test_a_job_held_while_the_command_connection_is_black_holed_keeps_its_lock(server_proxy: Any) -> None:
    server, proxy, admin = server_proxy
    runs: list[str] = []
    release = asyncio.Event()
    back: list[float] = []
    stalled: list[str] = []

    async def hold(job: Any) -> str:
        runs.append(job.id)
        await release.wait()  # the scenario: a job held across the fault
        return "done"

    worker = Worker("netheld", {"x": hold}, connection=proxy.url)
    worker.on("reconnected", lambda name: back.append(time.monotonic()))
    worker.on("stalled", lambda job_id, *_: stalled.append(job_id))
    await worker.start()
    try:
        async with Queue("netheld", connection=server.url) as direct:
            # Told apart while the worker is idle (its blocking link then shows BZPOPMIN): once it
            # holds its only job both links may show the idle PING and look alike.
            link = await find_link(admin, proxy, "command")
            job = await direct.add("x", {})
            assert await wait_until(lambda: bool(runs), timeout=10), "job not started"  # failure detector
            started = time.monotonic()
            link.blackhole()
            # Wait past the bound (failure detector); the assertion below holds the bound itself.
            assert await wait_until(lambda: bool(back), timeout=COMMAND_BOUND + SLACK + 5), "never reconnected"
            noticed = back[0] - started
            release.set()
            took = await wait_completed(admin, f"bull:netheld:{job.id}", 10)  # failure detector
            assert took is not None, "the held job was not recorded completed"
            record("test_command_connection_black_holed", noticed=noticed, bound=COMMAND_BOUND)
            # Deadline (kind 3): idle PING 2 s + stall 5 s + two ticks, slack above.
            assert noticed < COMMAND_BOUND + SLACK, f"noticed after {noticed:.1f} s"
            fields = await admin.hgetall(f"bull:netheld:{job.id}")
            assert fields.get("returnvalue") == '"done"' and fields.get("atm") == "1", fields
            assert runs == [job.id] and not stalled, (runs, stalled)
    finally:
        release.set()
        await worker.close(timeout=3)


async def test_an_idle_worker_whose_blocking_connection_is_black_holed_picks_up_again(server_proxy: Any) -> None:
    server, proxy, admin = server_proxy
    worker = Worker("netblock", {"x": _echo}, connection=proxy.url)
    await worker.start()
    try:
        async with Queue("netblock", connection=server.url) as direct:
            warm = await direct.add("x", {})
            assert await wait_completed(admin, f"bull:netblock:{warm.id}", 10)  # failure detector
            link = await find_link(admin, proxy, "blocking")
            started = time.monotonic()
            link.blackhole()
            job = await direct.add("x", {})
            # Failure detector past the bound; the bound is asserted below.
            took = await wait_completed(admin, f"bull:netblock:{job.id}", BLOCKING_BOUND + SLACK + 5)
            assert took is not None, "not picked up after the blocking connection was black-holed"
            waited = time.monotonic() - started
            record("test_blocking_connection_black_holed", waited=waited, bound=BLOCKING_BOUND)
            # Deadline (kind 3): block 5 s + margin 2 s + tick 0.25 s, slack above.
            assert waited < BLOCKING_BOUND + SLACK, f"picked up after {waited:.1f} s"
    finally:
        await worker.close(timeout=3)


async def test_a_producer_on_a_black_holed_connection_raises_then_adds_again(server_proxy: Any) -> None:
    _, proxy, admin = server_proxy
    async with Queue("netprod", connection=proxy.url) as queue:
        await queue.add("warm", {})
        link = await find_link(admin, proxy, "any")
        link.blackhole()
        started = time.monotonic()
        with pytest.raises(RedisUnavailable, match=r"sent no reply for \d+\.\d s while a command waited") as caught:
            await queue.add("x", {})
        failed_after = time.monotonic() - started
        job = await queue.add("y", {})  # a new connection, at once
        assert await admin.hget(f"bull:netprod:{job.id}", "name") == "y"
        record("test_producer_black_holed", failed_after=failed_after, message=str(caught.value))
        # Deadline (kind 3): the stall timeout 5 s + two ticks, slack above.
        assert failed_after < IN_FLIGHT_BOUND + SLACK, failed_after


async def _echo(job: Any) -> Any:
    return job.data


def test_liveness_settings_come_from_the_url() -> None:
    endpoint = ConnectionSettings.from_url("redis://cache:6379/0?idle_ping=1&stall_timeout=0").endpoint()
    assert (endpoint.idle_ping, endpoint.stall_timeout) == (1.0, None)
    default = ConnectionSettings.from_url("redis://cache:6379/0").endpoint()
    assert (default.idle_ping, default.stall_timeout) == (2.0, 5.0)


async def test_an_idle_connection_pings_once_per_interval_not_every_tick(private_redis: PrivateRedis) -> None:
    """The idle PING is one command per ``idle_ping`` s of quiet. It once went out on every
    watchdog tick after the first (a PING answered within the tick left nothing to mark the
    quiet spell's new start): 200 idle queues then sent Redis 1,163 commands/s, not 360."""
    interval, idle_for = 0.5, 3.0
    admin = redis.from_url(private_redis.url, decode_responses=True)
    client = RespClient(Endpoint(port=private_redis.port, idle_ping=interval))
    try:
        await client.execute("SET", "idle-ping", "1")
        await admin.config_resetstat()
        await asyncio.sleep(idle_for)  # the scenario: a connection with nothing to do
        stats = await admin.info("commandstats")
        pings = int(stats.get("cmdstat_ping", {}).get("calls", 0))
    finally:
        await client.close()
        await admin.aclose()
    # Each PING follows >= `interval` s of quiet (plus up to a tick): at most idle_for / interval.
    # Every tick would be idle_for / WATCHDOG_TICK - interval / WATCHDOG_TICK = 10.
    assert 2 <= pings <= idle_for / interval, pings


async def test_an_idle_connection_watchdog_sleeps_until_its_ping_is_due(private_redis: PrivateRedis) -> None:
    """With nothing in flight the watchdog does not tick every 0.25 s: it sleeps until the
    idle PING is due (200 idle queues: 1.3 % of a core instead of 2.8 %); the next command
    sent wakes it, so the stall rule sees that command from the next tick, as before."""
    client = RespClient(Endpoint(port=private_redis.port, idle_ping=1.0))
    try:
        await client.execute("PING")
        conn = await client.connection()
        assert await wait_until(lambda: conn._dozing, 2.0)  # failure detector: the first tick dozes
        loop = asyncio.get_running_loop()
        assert conn._watchdog is not None and conn._watchdog.when() - loop.time() > WATCHDOG_TICK
        reply = conn.execute("ECHO", "awake")
        assert not conn._dozing and conn._watchdog.when() - loop.time() <= WATCHDOG_TICK
        assert await reply == b"awake"
    finally:
        await client.close()


async def test_a_slow_link_is_not_mistaken_for_a_dead_one(server_proxy: Any) -> None:
    """200 ms each way: jobs still run, idle PINGs still come back, nothing reconnects."""
    _, proxy, admin = server_proxy
    lost: list[str] = []
    proxy.latency(0.2)
    worker = Worker("netslow", {"x": _echo}, connection=proxy.url)
    worker.on("connectionLost", lambda name, exc: lost.append(name))
    await worker.start()
    try:
        async with Queue("netslow", connection=proxy.url) as queue:
            job = await queue.add("x", {})
            assert await wait_completed(admin, f"bull:netslow:{job.id}", 10)  # failure detector
            await asyncio.sleep(2.5)  # the scenario: idle past the 2 s PING interval on the slow link
            late = await queue.add("x", {})
            assert await wait_completed(admin, f"bull:netslow:{late.id}", 10)  # failure detector
        reconnects = worker.client.reconnects + worker.bclient.reconnects
        assert not lost and reconnects == 0, (lost, reconnects)
    finally:
        await worker.close(timeout=3)

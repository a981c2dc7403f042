"""Resolve the current master through Redis Sentinel, for the pipelining client.

redis-py's Sentinel support serves the redis-py client; this module gives the
same to :class:`~bullbridge.connection.resp.RespClient`: before every (re)connect it asks
the sentinels, in turn, which address is the master now, so workers and
producers follow a failover by themselves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import hiredis

from bullbridge.aio import cancel_and_wait
from bullbridge.connection.refusals import say_once
from bullbridge.connection.resp import Endpoint, RespConnection, RespConnectionError, RespError
from bullbridge.errors import ConfigurationError

if TYPE_CHECKING:
    from bullbridge.connection.settings import ConnectionSettings

log = logging.getLogger("bullbridge.connection.sentinel")


def master_resolver(settings: ConnectionSettings) -> Callable[[], Awaitable[Endpoint]]:
    """A coroutine function returning the master's :class:`Endpoint`."""
    master = settings.sentinel_master
    if not master:
        raise ConfigurationError("sentinel_master is required with sentinels: name the master in the URL")

    async def resolve() -> Endpoint:
        errors: list[str] = []
        for host, port in settings.sentinels:
            conn = RespConnection(
                Endpoint(
                    host=host,
                    port=port,
                    connect_timeout=settings.connect_timeout,
                    command_timeout=settings.connect_timeout,
                )
            )
            try:
                await conn.open()
                reply = await conn.execute("SENTINEL", "get-master-addr-by-name", master)
            except (RespConnectionError, RespError, OSError) as exc:
                errors.append(f"{host}:{port}: {exc}")
                continue
            finally:
                conn.close()
            if reply:
                address = (reply[0].decode(), int(reply[1]))
                log.debug("sentinel %s:%d says master %s is %s:%d", host, port, master, *address)
                return replace(settings.endpoint(host=address[0], port=address[1]), require_master=True)
            errors.append(f"{host}:{port}: does not know master {master!r}")
        raise RespConnectionError(f"no sentinel could name master {master!r}: {'; '.join(errors)}")

    return resolve


#: Sentinel events that say a failover of a master has begun, ended, or was given up
#: (published by the sentinel leading it; ``%@`` payloads: ``master <name> <ip> <port>`` or
#: ``slave <ip:port> <ip> <port> @ <name> <ip> <port>``).
FAILOVER_BEGINS = ("+failover-state-select-slave", "+selected-slave", "+failover-state-send-slaveof-noone")
FAILOVER_ENDS = ("+promoted-slave", "+switch-master")
FAILOVER_GIVEN_UP = (
    "-failover-abort-not-elected",
    "-failover-abort-no-good-slave",
    "-failover-abort-slave-timeout",
    "+failover-end-for-timeout",
)
#: Longest a failover may hold writes before the fence is lifted and the sentinels asked again.
FENCE_MAX = 10.0
#: How long a replica has to confirm the writes in flight on a master being demoted.
CONFIRM_MS = 200
#: After a sentinel announced a master, a poll that still names the old one is not believed for this long.
ANNOUNCED_WINS_FOR = 10.0


def parse_event(channel: str, payload: str, master: str) -> tuple[str, tuple[str, int] | None] | None:
    """``("begin" | "end" | "abort", address or None)`` for a failover event about ``master``
    (the address: the replica chosen, for a "begin" that names it; the new master, for an
    "end"); None for anything else."""
    parts = payload.split()
    if channel == "+switch-master":
        if len(parts) == 5 and parts[0] == master:
            return "end", (parts[3], int(parts[4]))
        return None
    if "@" in parts:
        at = parts.index("@")
        about, own = parts[at + 1 : at + 2], parts[2:4]
    else:
        about, own = parts[1:2], parts[2:4]
    if about != [master] or len(own) != 2:
        return None
    if channel in FAILOVER_BEGINS:  # the replica chosen, once the leader has chosen it
        return "begin", ((own[0], int(own[1])) if "@" in parts else None)
    if channel == "+promoted-slave":
        return "end", (own[0], int(own[1]))
    if channel in FAILOVER_GIVEN_UP:
        return "abort", None
    return None


class _Subscriber(asyncio.Protocol):
    """A sentinel's pub/sub connection: hands each message to ``on_message``."""

    def __init__(self, on_message: Callable[[str, str], None]) -> None:
        self._reader = hiredis.Reader()
        self._on_message = on_message
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
                self._on_message(reply[1].decode(), reply[2].decode())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class SentinelWatcher:
    """Follows the sentinels and moves every client off a master that lost its role.

    It subscribes to every sentinel's failover events: the moment the leading sentinel
    picks a replica to promote, clients on the old master are *fenced* - nothing new is
    sent there, commands in flight are delivered only once a replica confirms them
    (``WAIT``), else reported uncertain - and new commands wait for the promoted replica:
    its ``ROLE`` saying master (probed every 20 ms) or a sentinel announcing it
    (``+promoted-slave``, ``+switch-master``), whichever comes first; they go there at once.
    Once a second it also asks the sentinels who the master is (the fallback when no
    event arrives) and drops clients that sit anywhere else. Its :meth:`resolve` is every
    sentinel client's resolver."""

    #: Subscribe to the sentinels' events (False: polling only - the fallback, as a test runs it).
    listen = True

    def __init__(self, settings: ConnectionSettings, clients: Callable[[], list[Any]], interval: float = 1.0) -> None:
        self.settings = settings
        self._ask = master_resolver(settings)
        self._clients = clients
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self.master: tuple[str, int] | None = None
        self._announced_at = 0.0
        self.fenced_since: float | None = None
        #: The replica the leading sentinel chose to promote (``+selected-slave``), while fenced.
        self.candidate: tuple[str, int] | None = None
        self._probed_at = 0.0
        #: Failover events seen (``begin``/``end``/``abort``), for tests and the HA report.
        self.events: list[tuple[float, str, tuple[str, int] | None]] = []

    def start(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop yet: started by the next client made inside one
            return
        # A task of a loop that is gone (an earlier asyncio.run, a forked parent's) is left to it.
        if self._task is None or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._run())

    async def _run(self) -> None:
        sentinels = self.settings.sentinels if self.listen else ()
        subscribers = [asyncio.ensure_future(self._subscribe(host, port)) for host, port in sentinels]
        try:
            await self._poll()
        finally:
            for task in subscribers:
                await cancel_and_wait(task)

    # -- what clients connect to ------------------------------------------------------

    async def resolve(self) -> Endpoint:
        """The master to connect to: while a failover is fenced, wait (up to :data:`FENCE_MAX`)
        for the sentinels to announce the promoted replica; then the announced master, else
        the one the sentinels name when asked."""
        while self.fenced_since is not None:
            if time.monotonic() - self.fenced_since > FENCE_MAX:
                log.warning("no sentinel announced a new master within %g s; asking them again", FENCE_MAX)
                self.fenced_since = None
                break
            await self._probe_candidate()
            if self.fenced_since is not None:
                await asyncio.sleep(0.01)
        if self.master is not None and time.monotonic() - self._announced_at < ANNOUNCED_WINS_FOR:
            return replace(self.settings.endpoint(host=self.master[0], port=self.master[1]), require_master=True)
        asked_at = self._announced_at
        endpoint = await self._ask()
        if self._announced_at != asked_at and self.master is not None:  # an announcement came meanwhile: newer
            return replace(self.settings.endpoint(host=self.master[0], port=self.master[1]), require_master=True)
        self.master = (endpoint.host, endpoint.port)
        return endpoint

    async def _probe_candidate(self) -> None:
        """Announce the chosen replica ourselves the moment its ``ROLE`` says master: the
        sentinels say so only once their next ``INFO`` of it arrives, up to a second later.
        (Sentinel promotes it with ``REPLICAOF NO ONE`` and ``CLIENT KILL`` in one ``MULTI``,
        so a connection made once it is master is not cut.) One probe per 20 ms for all."""
        candidate, now = self.candidate, time.monotonic()
        if candidate is None or now - self._probed_at < 0.02:
            return
        self._probed_at = now
        where = self.settings.endpoint(host=candidate[0], port=candidate[1])
        probe = RespConnection(replace(where, command_timeout=1.0))
        try:
            await probe.open()
            endpoint = probe.endpoint
            if endpoint.password is not None:
                auth = (endpoint.username, endpoint.password) if endpoint.username else (endpoint.password,)
                await probe.execute("AUTH", *auth)
            role = await probe.execute("ROLE")
        except (RespConnectionError, RespError, OSError):
            return
        finally:
            probe.close()
        if role and role[0] == b"master" and self.candidate == candidate and self.fenced_since is not None:
            self._announce(candidate, "its ROLE says master")

    def _announce(self, address: tuple[str, int], source: str) -> None:
        old, self.master, self._announced_at = self.master, address, time.monotonic()
        self.fenced_since, self.candidate = None, None
        log.warning("%s is at %s:%d now (%s); moving clients there", self.settings.sentinel_master, *address, source)
        if old is not None and old != address:
            self._fence(old)

    # -- events -----------------------------------------------------------------------

    async def _subscribe(self, host: str, port: int) -> None:
        """Listen to one sentinel's failover events for as long as the watcher runs."""
        loop = asyncio.get_running_loop()
        channels = (*FAILOVER_BEGINS, *FAILOVER_ENDS, *FAILOVER_GIVEN_UP)
        delay = 0.1
        while True:
            transport = None
            try:
                transport, protocol = await asyncio.wait_for(
                    loop.create_connection(lambda: _Subscriber(self._on_event), host, port),
                    self.settings.connect_timeout,
                )
                transport.write(hiredis.pack_command(("SUBSCRIBE", *channels)))  # type: ignore[arg-type]
                delay = 0.1
                await protocol.lost
                say_once(
                    f"sentinel-sub:{host}:{port}",
                    "lost the failover events of sentinel %s:%d; resubscribing",
                    host,
                    port,
                )
            except (OSError, TimeoutError) as exc:
                say_once(
                    f"sentinel-sub:{host}:{port}", "cannot subscribe to sentinel %s:%d (%s); retrying", host, port, exc
                )
            finally:
                if transport is not None:
                    transport.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _on_event(self, channel: str, payload: str) -> None:
        parsed = parse_event(channel, payload, self.settings.sentinel_master or "")
        if parsed is None:
            return
        kind, address = parsed
        log.debug("sentinel event %s %s (master was %s)", channel, payload, self.master)
        now = time.monotonic()
        self.events.append((now, kind, address))
        if kind == "begin" and address is not None and address != self.master:
            self.candidate = address
        if kind == "begin" and self.fenced_since is None and self.master is not None:
            self.fenced_since = now
            log.warning(
                "sentinels are failing %s over: fencing writes to %s:%d", self.settings.sentinel_master, *self.master
            )
            self._fence(self.master)
        elif kind == "end" and address is not None and address != self.master:
            self._announce(address, f"announced by the sentinels: {channel}")
        elif kind == "end" and address is not None:
            self._announced_at, self.fenced_since, self.candidate = now, None, None
        elif kind == "abort":
            self.fenced_since, self.candidate = None, None

    def _fence(self, old: tuple[str, int]) -> None:
        for client in self._clients():
            current = client.current
            if client.connected and (current.host, current.port) == old:
                blocking = client.endpoint.command_timeout is None
                client.fence(None if blocking else CONFIRM_MS)

    # -- the fallback -----------------------------------------------------------------

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self.fenced_since is not None:
                if time.monotonic() - self.fenced_since <= FENCE_MAX:
                    continue
                log.warning("no sentinel announced a new master within %g s; asking them again", FENCE_MAX)
                self.fenced_since = None
            asked_at = self._announced_at
            try:
                asked = await self._ask()
            except (RespConnectionError, RespError, OSError) as exc:
                log.debug("sentinel watch: %s", exc)
                continue
            if self.fenced_since is not None or self._announced_at != asked_at:
                continue  # a failover began or ended while the sentinels were asked: their answer is stale
            if time.monotonic() - self._announced_at >= ANNOUNCED_WINS_FOR:
                self.master = (asked.host, asked.port)
            if self.master is None:
                continue
            for client in self._clients():
                current = client.current
                if client.connected and (current.host, current.port) != self.master:
                    say_once(
                        f"moved-off:{current.describe()}",
                        "%s is no longer the master (sentinels say %s:%d); moving its clients (said once per 5 s)",
                        current.describe(),
                        *self.master,
                    )
                    client.fence(None)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            await cancel_and_wait(task)

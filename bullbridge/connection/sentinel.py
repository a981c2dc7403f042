"""Resolve the current master through Redis Sentinel, for the pipelining client.

redis-py's Sentinel support serves the redis-py client; this module gives the
same to :class:`~bullbridge.connection.resp.RespClient`: before every (re)connect it asks
the sentinels, in turn, which address is the master now, so workers and
producers follow a failover by themselves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bullbridge.aio import cancel_and_wait
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


class SentinelWatcher:
    """Polls the sentinels and moves every client off a master that lost its role.

    A forced failover, or a network partition, can leave the old master alive
    and still calling itself master for a while: clients connected to it would
    keep reading and blocking there while writes go elsewhere. Once a second,
    the watcher asks the sentinels who the master is and drops the connections
    of clients that sit anywhere else (they reconnect through the resolver)."""

    def __init__(self, settings: ConnectionSettings, clients: Callable[[], list[Any]], interval: float = 1.0) -> None:
        self._resolve = master_resolver(settings)
        self._clients = clients
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop yet: started by the next client made inside one
            return
        # A task of a loop that is gone (an earlier asyncio.run, a forked parent's) is left to it.
        if self._task is None or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                master = await self._resolve()
            except (RespConnectionError, RespError, OSError) as exc:
                log.debug("sentinel watch: %s", exc)
                continue
            for client in self._clients():
                current = client.current
                if client.connected and (current.host, current.port) != (master.host, master.port):
                    log.warning(
                        "%s is no longer the master (sentinels say %s); moving %s",
                        current.describe(),
                        master.describe(),
                        client.name or "a client",
                    )
                    client.drop()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            await cancel_and_wait(task)

"""Resolve the current master through Redis Sentinel, for the pipelining client.

redis-py's Sentinel support serves the redis-py client; this module gives the
same to :class:`~bullbridge.resp.RespClient`: before every (re)connect it asks
the sentinels, in turn, which address is the master now, so workers and
producers follow a failover by themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from bullbridge.resp import Endpoint, RespConnection, RespConnectionError, RespError

if TYPE_CHECKING:
    from bullbridge.connection import ConnectionSettings

log = logging.getLogger("bullbridge.sentinel")


def master_resolver(settings: ConnectionSettings) -> Callable[[], Awaitable[Endpoint]]:
    """A coroutine function returning the master's :class:`Endpoint`."""
    master = settings.sentinel_master
    if not master:
        raise ValueError("sentinel_master is required with sentinels")

    async def resolve() -> Endpoint:
        errors: list[str] = []
        for host, port in settings.sentinels:
            conn = RespConnection(Endpoint(host=host, port=port, connect_timeout=settings.connect_timeout,
                                           command_timeout=settings.connect_timeout))
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
                return settings.endpoint(host=address[0], port=address[1])
            errors.append(f"{host}:{port}: does not know master {master!r}")
        raise RespConnectionError(f"no sentinel could name master {master!r}: {'; '.join(errors)}")

    return resolve

"""Redis Cluster for the pipelining client: pin each client to its queue's slot.

BullMQ on a cluster needs every key of a queue in one hash slot, so a queue
name or prefix carries a ``{tag}``. That makes routing simple: a client that
serves one queue talks to the master owning that queue's slot. The resolver
asks any known node (``CLUSTER SLOTS``) which master that is, on every
(re)connect; a ``MOVED`` reply (resharding, failover) makes the client drop
its connection, resolve again and retry - see :class:`~bullbridge.resp.RespClient`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from redis.crc import key_slot

from bullbridge.resp import Endpoint, RespConnection, RespConnectionError, RespError

if TYPE_CHECKING:
    from bullbridge.connection import ConnectionSettings

log = logging.getLogger("bullbridge.cluster")


def slot_of(key: str) -> int:
    """The hash slot of a key (CRC16 of its ``{tag}`` or of the whole key)."""
    return int(key_slot(key.encode()))


def slot_resolver(settings: ConnectionSettings, slot: int) -> Callable[[], Awaitable[Endpoint]]:
    """A coroutine function returning the endpoint of the master that owns ``slot``."""
    known: list[tuple[str, int]] = list(settings.cluster_nodes)

    async def resolve() -> Endpoint:
        errors: list[str] = []
        for host, port in list(known):
            probe = RespConnection(settings.endpoint(host=host, port=port))
            try:
                await probe.open()
                if settings.password is not None:
                    auth = (settings.username, settings.password) if settings.username else (settings.password,)
                    await probe.execute("AUTH", *auth)
                slots = await probe.execute("CLUSTER", "SLOTS")
            except (RespConnectionError, RespError, OSError) as exc:
                errors.append(f"{host}:{port}: {exc}")
                continue
            finally:
                probe.close()
            for entry in slots or []:
                start, end, master = entry[0], entry[1], entry[2]
                node = (master[0].decode() or host, int(master[1]))
                if node not in known:
                    known.append(node)
                if start <= slot <= end:
                    log.debug("slot %d is served by %s:%d", slot, *node)
                    return settings.endpoint(host=node[0], port=node[1])
            errors.append(f"{host}:{port}: no master serves slot {slot}")
        raise RespConnectionError(f"no cluster node could route slot {slot}: {'; '.join(errors)}")

    return resolve

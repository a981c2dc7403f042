"""Redis Cluster for the pipelining client: pin each client to its queue's slot.

BullMQ on a cluster needs every key of a queue in one hash slot, so a queue
name or prefix carries a ``{tag}``. That makes routing simple: a client that
serves one queue talks to the master owning that queue's slot. The resolver
asks any known node (``CLUSTER SLOTS``) which master that is, on every
(re)connect; a ``MOVED`` reply (resharding, failover) makes the client drop
its connection, resolve again and retry - see :class:`~bullbridge.connection.resp.RespClient`.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from bullbridge.connection.resp import Arg, Endpoint, RespClient, RespConnection, RespConnectionError, RespError

if TYPE_CHECKING:
    from bullbridge.connection.settings import ConnectionSettings

log = logging.getLogger("bullbridge.connection.cluster")


def hash_tag(key: str) -> str:
    """The part of a key Redis Cluster hashes: the first non-empty ``{...}``."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def queue_keys_share_slot(prefix: str, queue: str) -> bool:
    """Whether every key of a queue (``<prefix>:<queue>:<suffix>``) hashes alike.

    They do exactly when a ``{tag}`` sits in the prefix or in the queue name, so
    that the varying suffix is never what gets hashed."""
    probe_a = f"{prefix}:{queue}:wait"
    probe_b = f"{prefix}:{queue}:1234:lock"
    return hash_tag(probe_a) == hash_tag(probe_b) and hash_tag(probe_a) != probe_a


def slot_of(key: str) -> int:
    """The hash slot of a key: CRC16 (XMODEM, which ``binascii.crc_hqx`` computes)
    of its ``{tag}`` or of the whole key, modulo 16384 - as Redis computes it."""
    return binascii.crc_hqx(hash_tag(key).encode(), 0) % 16384


#: Where the first key sits in commands bullbridge's tools send (index in the args).
_KEY_INDEX = {"EVALSHA": 3, "EVAL": 3}
#: Commands without keys: any node answers.
_KEYLESS = frozenset(
    {
        "SCAN",
        "INFO",
        "TIME",
        "PING",
        "CLIENT",
        "SCRIPT",
        "CONFIG",
        "ROLE",
        "DBSIZE",
        "MULTI",
        "EXEC",
        "DISCARD",
        "WATCH",
        "UNWATCH",
        "COMMAND",
        "CLUSTER",
    }
)


def first_key(args: Sequence[Any]) -> str | None:
    """The key a command would be routed by, or None when it has none."""
    if not args:
        return None
    name = (args[0].decode() if isinstance(args[0], bytes) else str(args[0])).upper()
    if name in _KEYLESS:
        return None
    index = _KEY_INDEX.get(name, 1)
    if name in _KEY_INDEX and (len(args) <= 2 or int(args[2]) == 0):
        return None
    if len(args) <= index:
        return None
    key = args[index]
    return key.decode() if isinstance(key, bytes) else str(key)


class SlotRouter:
    """A client for tools that touch several queues on Redis Cluster (monitor,
    scheduler sync, test harnesses): each command goes to a pipelining client
    pinned to its first key's slot (created on first use); keyless commands go
    to the first one. Transactions route by their first keyed command. ``SCAN``
    sees one master only: name the queues you want on a cluster."""

    def __init__(self, make_client: Callable[[str], RespClient], name: str | None = None) -> None:
        self._make = make_client
        self._by_slot: dict[int, RespClient] = {}
        self._hooks: list[Any] = []
        self.name = name

    def _client(self, key: str | None) -> RespClient:
        slot = slot_of(key) if key is not None else next(iter(self._by_slot), 0)
        client = self._by_slot.get(slot)
        if client is None:
            client = self._make(key if key is not None else "bullbridge")
            for hook in self._hooks:
                client.add_on_connect(hook)
            self._by_slot[slot] = client
        return client

    def add_on_connect(self, hook: Any) -> None:
        self._hooks.append(hook)
        for client in self._by_slot.values():
            client.add_on_connect(hook)

    @property
    def connected(self) -> bool:
        return any(c.connected for c in self._by_slot.values())

    async def execute(self, *args: Arg, timeout: float | None = None) -> Any:
        return await self._client(first_key(args)).execute(*args, timeout=timeout)

    async def execute_many(
        self,
        commands: Sequence[Sequence[Arg]],
        *,
        transaction: bool = False,
        timeout: float | None = None,
        return_exceptions: bool = False,
    ) -> list[Any]:
        if transaction:
            key = next((k for k in (first_key(c) for c in commands) if k is not None), None)
            return await self._client(key).execute_many(commands, transaction=True, timeout=timeout)
        return list(
            await asyncio.gather(
                *(self.execute(*c, timeout=timeout) for c in commands), return_exceptions=return_exceptions
            )
        )

    def drop(self) -> None:
        for client in self._by_slot.values():
            client.drop()

    async def close(self) -> None:
        clients, self._by_slot = list(self._by_slot.values()), {}
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


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

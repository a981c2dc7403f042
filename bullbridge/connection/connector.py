"""The one connection factory.

Everything in bullbridge that talks to Redis gets its connection here, from a
single *source*: a URL, a dict of settings, a :class:`ConnectionSettings`, or an
existing redis-py asyncio client. :func:`connect` turns it into a
:class:`RedisConnector`, which hands out

* :meth:`RedisConnector.fast` - a pipelining :class:`~bullbridge.connection.resp.RespClient`
  for the hot paths (worker fetch/finish, producer add);
* :meth:`RedisConnector.blocking` - a RespClient for the worker's ``BZPOPMIN``,
  with no socket timeout of its own (each blocking call carries its deadline);
* :meth:`RedisConnector.server_info` - the server's version and memory policy,
  checked once per connector.

Traps it closes (each a section of docs/port-differences.md):

* a redis-py client without ``decode_responses=True`` is refused (the port
  silently turns every job's data into ``{}``: docs/port-differences.md#decode-responses);
* no socket timeout can fire during a blocking wait (redis-py 8's default 5 s
  equals the worker's 5 s block and made idle pickup 1-7.5 s late:
  docs/port-differences.md#idle-pickup);
* the Redis version is checked once: < 5.0 refused, < 6.2 warned, as Node does;
  and it decides whether sub-second block timeouts are available
  (docs/port-differences.md#timers);
* cluster sources give a cluster client, and :meth:`RedisConnector.check_queue`
  refuses a queue whose keys would not share one hash slot, saying how to fix it
  (docs/port-differences.md#cluster-hash-tag).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Union

from bullbridge.connection.cluster import SlotRouter, queue_keys_share_slot, slot_of, slot_resolver
from bullbridge.connection.resp import ConnectionEvents, RespClient, RespError
from bullbridge.connection.sentinel import SentinelWatcher
from bullbridge.connection.server import ServerInfo, check_server_info, parse_info
from bullbridge.connection.settings import DEFAULT_URL, ConnectionSettings, redis_url_from_env
from bullbridge.errors import ConfigurationError, ConnectionSetupError, CrossSlotError

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

log = logging.getLogger("bullbridge.connection")

#: Longest block a worker asks of BZPOPMIN (BullMQ's worker caps it at 10 s: its maximumBlockTimeout).
MAX_BLOCK_SECONDS = 10.0


# --- the connector -------------------------------------------------------------------

ConnectionSource = Union[str, Mapping[str, Any], ConnectionSettings, "Redis", "RedisCluster", "RedisConnector"]


@dataclass
class RedisConnector:
    """Hands out connections built from one source; closes what it created."""

    settings: ConnectionSettings
    _server_info: ServerInfo | None = field(default=None, repr=False)
    _info_lock: asyncio.Lock | None = field(default=None, repr=False)
    _info_lock_loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _clients: list[RespClient] = field(default_factory=list, repr=False)
    _sentinel_watch: SentinelWatcher | None = field(default=None, repr=False)
    events: ConnectionEvents = field(default_factory=ConnectionEvents)

    # -- clients ------------------------------------------------------------------

    def fast(
        self, name: str | None = None, *, retry_for: float | None = None, route_key: str | None = None
    ) -> RespClient:
        """A pipelining client for hot paths (one socket, many commands in flight).

        On Redis Cluster it serves the slot of ``route_key`` (a queue's keys all
        share one slot thanks to their hash tag) and follows ``MOVED``."""
        resolver = None
        if self.settings.is_cluster:
            if route_key is None:
                # Tools touching several queues: route each command by its key.
                return SlotRouter(
                    lambda key: self.fast(name, retry_for=retry_for, route_key=key),  # type: ignore[return-value]
                    name,
                )
            resolver = slot_resolver(self.settings, slot_of(route_key))
        elif self.settings.is_sentinel:
            resolver = self._watch_sentinels().resolve
        client = RespClient(
            self.settings.endpoint(),
            name=name,
            connect_retry_for=self.settings.retry_for if retry_for is None else retry_for,
            resolver=resolver,
            events=self.events,
        )
        self._clients.append(client)
        return client

    def blocking(self, name: str | None = None, *, route_key: str | None = None) -> RespClient:
        """A client for blocking commands: no connection-wide command deadline
        (each BZPOPMIN passes its own block time plus a margin)."""
        client = self.fast(name, route_key=route_key)
        client.endpoint = replace(client.endpoint, command_timeout=None)
        return client

    def abandon(self, client: RespClient) -> None:
        """Let go of a client made on an event loop that is gone (closed, or a
        forked parent's): released without that loop, and no longer this
        connector's to close (:meth:`RespClient.abandon`)."""
        client.abandon()
        if client in self._clients:
            self._clients.remove(client)

    def _watch_sentinels(self) -> SentinelWatcher:
        if self._sentinel_watch is None:
            self._sentinel_watch = SentinelWatcher(self.settings, lambda: list(self._clients))
        self._sentinel_watch.start()
        return self._sentinel_watch

    # -- checks -------------------------------------------------------------------

    async def server_info(self, client: RespClient | None = None) -> ServerInfo:
        """Check the server once (version, memory policy) and remember it.

        Asks through ``client`` when given (a worker's own connection), else
        through a short-lived client of its own."""
        if self._server_info is not None:
            return self._server_info
        if self._info_lock is None or self._info_lock_loop is not asyncio.get_running_loop():
            # A lock belongs to the loop it first waited on; a connector can outlive one loop.
            self._info_lock, self._info_lock_loop = asyncio.Lock(), asyncio.get_running_loop()
        async with self._info_lock:
            if self._server_info is None:
                own = client is None
                asking = self.fast("bullbridge-info", route_key="{bullbridge}") if client is None else client
                try:
                    info = parse_info(await asking.execute("INFO", "server"))
                    try:
                        info.update(parse_info(await asking.execute("INFO", "memory")))
                    except RespError:  # pragma: no cover - INFO sections restricted on some hosted Redis
                        pass
                finally:
                    if own:
                        self._clients.remove(asking)
                        await asking.close()
                self._server_info = check_server_info(info, self.settings.describe())
        return self._server_info

    def check_queue(self, prefix: str, queue: str) -> None:
        """On a cluster, refuse a queue whose keys would span hash slots."""
        if self.settings.is_cluster and not queue_keys_share_slot(prefix, queue):
            raise CrossSlotError(
                f"queue {queue!r} with prefix {prefix!r} cannot run on Redis Cluster: its keys would land "
                f"in different hash slots. Put a hash tag in the queue name (e.g. '{{{queue}}}', which "
                f"spreads queues over masters) or in the prefix (e.g. '{{{prefix}}}', one slot for all)"
            )

    async def close(self) -> None:
        if self._sentinel_watch is not None:
            await self._sentinel_watch.stop()
            self._sentinel_watch = None
        clients, self._clients = self._clients, []
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


def settings_from_redis_py(client: Any) -> ConnectionSettings:
    """Settings equivalent to an existing redis-py client (for our own sockets)."""
    from redis.asyncio.cluster import RedisCluster

    if isinstance(client, RedisCluster):
        nodes = tuple((n.host, int(n.port)) for n in client.get_nodes()) or (
            tuple((n.host, int(n.port)) for n in client.nodes_manager.startup_nodes.values())
        )
        kwargs = client.get_connection_kwargs() if hasattr(client, "get_connection_kwargs") else {}
        if not kwargs.get("decode_responses", getattr(client.encoder, "decode_responses", False)):
            raise _no_decode_error()
        return ConnectionSettings(
            cluster_nodes=nodes,
            host=nodes[0][0],
            port=nodes[0][1],
            username=kwargs.get("username"),
            password=kwargs.get("password"),
        )
    pool = getattr(client, "connection_pool", None)
    kwargs = dict(getattr(pool, "connection_kwargs", {}) or {})
    if not kwargs.get("decode_responses", False):
        raise _no_decode_error()
    return ConnectionSettings(
        host=kwargs.get("host", "127.0.0.1"),
        port=int(kwargs.get("port", 6379)),
        db=int(kwargs.get("db", 0)),
        username=kwargs.get("username"),
        password=kwargs.get("password"),
        unix_path=kwargs.get("path"),
        connect_timeout=float(kwargs.get("socket_connect_timeout") or 5.0),
    )


def _no_decode_error() -> ConnectionSetupError:
    return ConnectionSetupError(
        "this redis-py client was created without decode_responses=True: BullMQ's Python port would "
        "silently read every job's data as {} through it. Create it with "
        "redis.asyncio.Redis(..., decode_responses=True), or pass a URL instead"
    )


def connect(source: ConnectionSource | None = None, **overrides: Any) -> RedisConnector:
    """Build a :class:`RedisConnector` from a URL, dict, settings or redis-py client.

    No I/O happens here; connections open on first use. ``None`` means the
    configured URL (``BULLBRIDGE_REDIS_URL`` / ``REDIS_URL``) or localhost:6379.
    """
    if isinstance(source, RedisConnector):
        return source
    if source is None:
        source = redis_url_from_env() or DEFAULT_URL
    if isinstance(source, ConnectionSettings):
        return RedisConnector(replace(source, **overrides) if overrides else source)
    if isinstance(source, str):
        return RedisConnector(ConnectionSettings.from_url(source, **overrides))
    if isinstance(source, Mapping):
        settings = ConnectionSettings.from_mapping(source)
        return RedisConnector(replace(settings, **overrides) if overrides else settings)
    if _is_redis_py(source):
        settings = settings_from_redis_py(source)
        if overrides:
            settings = replace(settings, **overrides)
        return RedisConnector(settings)
    raise ConfigurationError(
        f"cannot connect from {type(source).__name__}: pass a URL, a dict, ConnectionSettings, "
        "or a redis.asyncio client"
    )


def _is_redis_py(obj: Any) -> bool:
    try:
        from redis import Redis as SyncRedis
        from redis.asyncio import Redis
        from redis.asyncio.cluster import RedisCluster
    except ImportError:  # pragma: no cover
        return False
    if isinstance(obj, SyncRedis):
        raise ConfigurationError("a synchronous redis.Redis client was given; bullbridge needs redis.asyncio.Redis")
    return isinstance(obj, (Redis, RedisCluster))

"""The one connection factory.

Everything in bullbridge that talks to Redis gets its connection here, from a
single *source*: a URL, a dict of settings, a :class:`ConnectionSettings`, or an
existing redis-py asyncio client. :func:`connect` turns it into a
:class:`RedisConnector`, which hands out

* :meth:`RedisConnector.fast` - a pipelining :class:`~bullbridge.resp.RespClient`
  for the hot paths (worker fetch/finish, producer add);
* :meth:`RedisConnector.blocking` - a RespClient for the worker's ``BZPOPMIN``,
  with no socket timeout of its own (each blocking call carries its deadline);
* :meth:`RedisConnector.redis_py` - a redis-py client (``decode_responses=True``)
  for the port's classes and for everything that is not hot.

Traps it closes, each measured in FINDINGS.md:

* a redis-py client without ``decode_responses=True`` is refused (the port
  silently turns every job's data into ``{}``);
* no socket timeout can fire during a blocking wait (redis-py 8's default 5 s
  equals the worker's 5 s block and made idle pickup 1-7.5 s late);
* the Redis version is checked once: < 5.0 refused, < 6.2 warned, as Node does;
  and it decides whether sub-second block timeouts are available;
* cluster sources give a cluster client, and :meth:`RedisConnector.check_queue`
  refuses a queue whose keys would not share one hash slot, saying how to fix it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Union
from urllib.parse import parse_qs, unquote, urlparse

from bullbridge.errors import ConfigurationError, ConnectionSetupError, CrossSlotError, RedisVersionError
from bullbridge.resp import ConnectionEvents, Endpoint, RespClient

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

log = logging.getLogger("bullbridge.connection")

MIN_REDIS = (5, 0, 0)
RECOMMENDED_REDIS = (6, 2, 0)
#: Longest block a worker asks of BZPOPMIN (BullMQ caps it at 10 s, #1658).
MAX_BLOCK_SECONDS = 10.0


@dataclass(frozen=True)
class ConnectionSettings:
    """Where Redis is and how long to wait for it.

    ``cluster_nodes`` makes it a Redis Cluster; ``sentinels`` with
    ``sentinel_master`` resolves the master through Sentinel.
    """

    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = None
    unix_path: str | None = None
    ssl: bool = False
    ssl_cert_reqs: str = "required"
    cluster_nodes: tuple[tuple[str, int], ...] = ()
    sentinels: tuple[tuple[str, int], ...] = ()
    sentinel_master: str | None = None
    connect_timeout: float = 5.0
    #: Deadline for one non-blocking command; a hung server fails it, never hangs it.
    command_timeout: float = 10.0
    #: How long a caller keeps retrying to (re)connect before giving up.
    retry_for: float = 10.0

    @property
    def is_cluster(self) -> bool:
        return bool(self.cluster_nodes)

    @property
    def is_sentinel(self) -> bool:
        return bool(self.sentinels)

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> ConnectionSettings:
        """Parse ``redis://``, ``rediss://``, ``unix://``, ``redis+cluster://h:p,h:p``
        and ``redis+sentinel://h:p,h:p/<master>[/<db>]`` URLs."""
        parsed = urlparse(url)
        scheme = parsed.scheme.lower()
        username = unquote(parsed.username) if parsed.username else None
        password = unquote(parsed.password) if parsed.password is not None else None
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        values: dict[str, Any] = {"username": username or None, "password": password}
        if scheme in ("redis", "rediss"):
            if "," in (parsed.netloc.rsplit("@", 1)[-1]):
                raise ConfigurationError(f"several hosts in {url!r}: use redis+cluster:// or redis+sentinel://")
            values["host"] = parsed.hostname or "127.0.0.1"
            values["port"] = parsed.port or 6379
            path = parsed.path.strip("/")
            values["db"] = _int(path or query.get("db", "0"), "db", url)
            values["ssl"] = scheme == "rediss"
        elif scheme == "unix":
            values["unix_path"] = parsed.path
            values["db"] = _int(query.get("db", "0"), "db", url)
        elif scheme in ("redis+cluster", "rediss+cluster"):
            values["cluster_nodes"] = _hosts(parsed.netloc.rsplit("@", 1)[-1], url)
            values["host"], values["port"] = values["cluster_nodes"][0]
            values["ssl"] = scheme.startswith("rediss")
        elif scheme in ("redis+sentinel", "rediss+sentinel"):
            values["sentinels"] = _hosts(parsed.netloc.rsplit("@", 1)[-1], url)
            parts = [p for p in parsed.path.split("/") if p]
            if not parts:
                raise ConfigurationError(f"{url!r}: name the master, e.g. redis+sentinel://h:26379/mymaster")
            values["sentinel_master"] = parts[0]
            values["db"] = _int(parts[1], "db", url) if len(parts) > 1 else 0
            values["ssl"] = scheme.startswith("rediss")
        else:
            raise ConfigurationError(
                f"unsupported Redis URL scheme {scheme!r} in {url!r} "
                "(redis, rediss, unix, redis+cluster, redis+sentinel)")
        for name in ("connect_timeout", "command_timeout", "retry_for"):
            if name in query:
                values[name] = float(query[name])
        values.update(overrides)
        return cls(**values)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ConnectionSettings:
        known = set(cls.__dataclass_fields__)
        data = dict(data)
        url = data.pop("url", None)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigurationError(
                f"unknown connection settings: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        for name in ("cluster_nodes", "sentinels"):
            if name in data:
                data[name] = tuple(_host_port(x) for x in data[name])
        return cls.from_url(url, **data) if url else cls(**data)

    def endpoint(self, host: str | None = None, port: int | None = None) -> Endpoint:
        return Endpoint(
            host=host or self.host,
            port=port or self.port,
            unix_path=self.unix_path,
            db=self.db,
            username=self.username,
            password=self.password,
            ssl=_ssl_context(self.ssl_cert_reqs) if self.ssl else None,
            connect_timeout=self.connect_timeout,
            command_timeout=self.command_timeout,
        )

    def describe(self) -> str:
        if self.cluster_nodes:
            return "cluster " + ",".join(f"{h}:{p}" for h, p in self.cluster_nodes)
        if self.sentinels:
            return f"sentinel master {self.sentinel_master}"
        return self.unix_path or f"{self.host}:{self.port}/{self.db}"


def _int(text: str, what: str, url: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigurationError(f"{what} must be a number in {url!r}, got {text!r}") from None


def _host_port(item: Any) -> tuple[str, int]:
    if isinstance(item, str):
        host, _, port = item.rpartition(":")
        return (host or "127.0.0.1", int(port))
    host, port = item
    return (str(host), int(port))


def _hosts(netloc: str, url: str) -> tuple[tuple[str, int], ...]:
    hosts = tuple(_host_port(part) for part in netloc.split(",") if part)
    if not hosts:
        raise ConfigurationError(f"no hosts in {url!r}")
    return hosts


def _ssl_context(cert_reqs: str) -> ssl_module.SSLContext:
    ctx = ssl_module.create_default_context()
    if cert_reqs == "none":
        ctx.check_hostname = False
        ctx.verify_mode = ssl_module.CERT_NONE
    return ctx


@dataclass(frozen=True)
class ServerInfo:
    """What the connector learned about the server once."""

    version: tuple[int, int, int]
    mode: str = "standalone"
    maxmemory_policy: str = "noeviction"

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))

    @property
    def fractional_block_timeouts(self) -> bool:
        """Redis >= 6.0 accepts ``BZPOPMIN key 0.25``; 5.x only whole seconds."""
        return self.version >= (6, 0, 0)

    @property
    def minimum_block_timeout(self) -> float:
        """Redis >= 7.0.8 can block for 1 ms; earlier versions treat tiny values as 0."""
        return 0.001 if self.version >= (7, 0, 8) else 0.002


def parse_version(text: str) -> tuple[int, int, int]:
    parts = [int("".join(ch for ch in p if ch.isdigit()) or 0) for p in text.split(".")[:3]]
    while len(parts) < 3:
        parts.append(0)
    return (parts[0], parts[1], parts[2])


def parse_info(text: str | bytes) -> dict[str, str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            key, _, value = line.partition(":")
            out[key] = value
    return out


def check_server_info(info: Mapping[str, Any], where: str) -> ServerInfo:
    """Refuse < 5.0, warn < 6.2 and on an evicting memory policy."""
    version_text = str(info.get("redis_version") or info.get("valkey_version") or "0.0.0")
    version = parse_version(version_text)
    if version < MIN_REDIS:
        raise RedisVersionError(
            f"Redis {version_text} at {where} is too old: BullMQ needs Redis >= 5.0.0 (Node BullMQ refuses it too)")
    if version < RECOMMENDED_REDIS:
        warnings.warn(
            f"Redis {version_text} at {where} is older than 6.2.0, which BullMQ recommends", stacklevel=3)
    policy = str(info.get("maxmemory_policy", "noeviction"))
    if policy != "noeviction":
        log.warning("Redis at %s has maxmemory-policy %s; BullMQ requires noeviction or jobs can vanish",
                    where, policy)
    mode = str(info.get("redis_mode", "standalone"))
    return ServerInfo(version=version, mode=mode, maxmemory_policy=policy)


# --- cluster slot check ------------------------------------------------------------


def hash_tag(key: str) -> str:
    """The part of a key Redis Cluster hashes: the first non-empty ``{...}``."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1:end]
    return key


def queue_keys_share_slot(prefix: str, queue: str) -> bool:
    """Whether every key of a queue (``<prefix>:<queue>:<suffix>``) hashes alike.

    They do exactly when a ``{tag}`` sits in the prefix or in the queue name, so
    that the varying suffix is never what gets hashed."""
    probe_a = f"{prefix}:{queue}:wait"
    probe_b = f"{prefix}:{queue}:1234:lock"
    return hash_tag(probe_a) == hash_tag(probe_b) and hash_tag(probe_a) != probe_a


# --- the connector -------------------------------------------------------------------

ConnectionSource = Union[str, Mapping[str, Any], ConnectionSettings, "Redis", "RedisCluster", "RedisConnector"]


@dataclass
class RedisConnector:
    """Hands out connections built from one source; closes what it created."""

    settings: ConnectionSettings
    _redis_py: Any = None
    _owns_redis_py: bool = True
    _server_info: ServerInfo | None = None
    _info_lock: asyncio.Lock | None = field(default=None, repr=False)
    _clients: list[RespClient] = field(default_factory=list, repr=False)
    _sentinel_watch: Any = field(default=None, repr=False)
    events: ConnectionEvents = field(default_factory=ConnectionEvents)

    # -- clients ------------------------------------------------------------------

    def fast(self, name: str | None = None, *, retry_for: float | None = None,
             route_key: str | None = None) -> RespClient:
        """A pipelining client for hot paths (one socket, many commands in flight).

        On Redis Cluster it serves the slot of ``route_key`` (a queue's keys all
        share one slot thanks to their hash tag) and follows ``MOVED``."""
        resolver = None
        if self.settings.is_cluster:
            if route_key is None:
                # Tools touching several queues: route each command by its key.
                from bullbridge.cluster import SlotRouter

                return SlotRouter(lambda key: self.fast(name, retry_for=retry_for, route_key=key),  # type: ignore[return-value]
                                  name)
            from bullbridge.cluster import slot_of, slot_resolver

            resolver = slot_resolver(self.settings, slot_of(route_key))
        elif self.settings.is_sentinel:
            resolver = self._sentinel_resolver()
            self._watch_sentinels()
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

    def redis_py(self) -> Any:
        """The redis-py asyncio client (shared; created on first use)."""
        if self._redis_py is None:
            self._redis_py = _make_redis_py(self.settings)
        return self._redis_py

    def _sentinel_resolver(self) -> Any:
        from bullbridge.sentinel import master_resolver

        return master_resolver(self.settings)

    def _watch_sentinels(self) -> None:
        if self._sentinel_watch is None:
            from bullbridge.sentinel import SentinelWatcher

            self._sentinel_watch = SentinelWatcher(self.settings, lambda: list(self._clients))
        self._sentinel_watch.start()

    # -- checks -------------------------------------------------------------------

    async def server_info(self) -> ServerInfo:
        """Check the server once (version, memory policy) and remember it."""
        if self._server_info is not None:
            return self._server_info
        if self._info_lock is None:
            self._info_lock = asyncio.Lock()
        async with self._info_lock:
            if self._server_info is None:
                client = self.redis_py()
                raw = await client.info()
                if self.settings.is_cluster and raw and all(isinstance(v, dict) for v in raw.values()):
                    raw = next(iter(raw.values()))
                self._server_info = check_server_info(raw, self.settings.describe())
        return self._server_info

    def check_queue(self, prefix: str, queue: str) -> None:
        """On a cluster, refuse a queue whose keys would span hash slots."""
        if self.settings.is_cluster and not queue_keys_share_slot(prefix, queue):
            raise CrossSlotError(
                f"queue {queue!r} with prefix {prefix!r} cannot run on Redis Cluster: its keys would land "
                f"in different hash slots. Put a hash tag in the queue name (e.g. '{{{queue}}}', which "
                f"spreads queues over masters) or in the prefix (e.g. '{{{prefix}}}', one slot for all)")

    async def close(self) -> None:
        if self._sentinel_watch is not None:
            await self._sentinel_watch.stop()
            self._sentinel_watch = None
        clients, self._clients = self._clients, []
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        if self._redis_py is not None and self._owns_redis_py:
            client, self._redis_py = self._redis_py, None
            try:
                await asyncio.wait_for(client.aclose(), 2.0)
            except Exception:  # pragma: no cover - closing a dead connection
                pass


def _make_redis_py(settings: ConnectionSettings) -> Any:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    common: dict[str, Any] = {
        "decode_responses": True,
        "username": settings.username,
        "password": settings.password,
        "socket_connect_timeout": settings.connect_timeout,
        # A deadline for ordinary commands; nothing blocking goes through redis-py.
        "socket_timeout": settings.command_timeout,
    }
    if settings.is_cluster:
        nodes = [ClusterNode(h, p) for h, p in settings.cluster_nodes]
        return RedisCluster(startup_nodes=nodes, ssl=settings.ssl, **common)
    if settings.is_sentinel:
        from redis.asyncio.sentinel import Sentinel

        sentinel = Sentinel(list(settings.sentinels), sentinel_kwargs={  # type: ignore[no-untyped-call]
            "socket_connect_timeout": settings.connect_timeout, "socket_timeout": settings.command_timeout})
        assert settings.sentinel_master is not None
        return sentinel.master_for(settings.sentinel_master, db=settings.db, **common)
    if settings.unix_path:
        return Redis(unix_socket_path=settings.unix_path, db=settings.db, **common)
    return Redis(host=settings.host, port=settings.port, db=settings.db, ssl=settings.ssl, **common)


def settings_from_redis_py(client: Any) -> ConnectionSettings:
    """Settings equivalent to an existing redis-py client (for our own sockets)."""
    from redis.asyncio.cluster import RedisCluster

    if isinstance(client, RedisCluster):
        nodes = tuple((n.host, int(n.port)) for n in client.get_nodes()) or (
            tuple((n.host, int(n.port)) for n in client.nodes_manager.startup_nodes.values()))
        kwargs = client.get_connection_kwargs() if hasattr(client, "get_connection_kwargs") else {}
        if not kwargs.get("decode_responses", getattr(client.encoder, "decode_responses", False)):
            raise _no_decode_error()
        return ConnectionSettings(cluster_nodes=nodes, host=nodes[0][0], port=nodes[0][1],
                                  username=kwargs.get("username"), password=kwargs.get("password"))
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
        "redis.asyncio.Redis(..., decode_responses=True), or pass a URL instead")


def connect(source: ConnectionSource | None = None, **overrides: Any) -> RedisConnector:
    """Build a :class:`RedisConnector` from a URL, dict, settings or redis-py client.

    No I/O happens here; connections open on first use. ``None`` means the
    configured URL (``BULLBRIDGE_REDIS_URL`` / ``REDIS_URL``) or localhost:6379.
    """
    if isinstance(source, RedisConnector):
        return source
    if source is None:
        from bullbridge.redis_server import redis_url_from_env

        source = redis_url_from_env() or "redis://127.0.0.1:6379/0"
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
        return RedisConnector(settings, _redis_py=source, _owns_redis_py=False)
    raise ConfigurationError(
        f"cannot connect from {type(source).__name__}: pass a URL, a dict, ConnectionSettings, "
        "or a redis.asyncio client")


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

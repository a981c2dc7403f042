"""Connections to Redis: where it is, what it is, and the clients that talk to it.

* :mod:`~bullbridge.connection.settings` - :class:`ConnectionSettings` from a URL or a mapping;
* :mod:`~bullbridge.connection.server` - the server's version and memory policy, checked once;
* :mod:`~bullbridge.connection.resp` - the pipelining RESP client every hot path uses;
* :mod:`~bullbridge.connection.cluster` / :mod:`~bullbridge.connection.sentinel` - routing
  on Redis Cluster and following a Sentinel master;
* :mod:`~bullbridge.connection.connector` - :func:`connect`, the one factory, and
  :class:`RedisConnector`, which hands out clients and closes them.
"""

from bullbridge.connection.connector import MAX_BLOCK_SECONDS, ConnectionSource, RedisConnector, connect
from bullbridge.connection.server import ServerInfo, check_server_info, parse_info, parse_version
from bullbridge.connection.settings import ConnectionSettings, redis_url_from_env

__all__ = [
    "MAX_BLOCK_SECONDS",
    "ConnectionSettings",
    "ConnectionSource",
    "RedisConnector",
    "ServerInfo",
    "check_server_info",
    "connect",
    "parse_info",
    "parse_version",
    "redis_url_from_env",
]

"""Where Redis is: :class:`ConnectionSettings`, parsed from a URL or a mapping.

``redis://``, ``rediss://``, ``unix://``, ``redis+cluster://h:p,h:p`` and
``redis+sentinel://h:p,h:p/<master>[/<db>]``; every timeout has a default, so
no call ever waits without a deadline. :func:`redis_url_from_env` is where a
URL comes from when the caller gives none.
"""

from __future__ import annotations

import os
import ssl as ssl_module
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from bullbridge.connection.resp import Endpoint
from bullbridge.errors import ConfigurationError
from bullbridge.redact import redact, remember

#: Environment variables naming the Redis to use, in order of precedence.
ENV_URLS = ("BULLBRIDGE_REDIS_URL", "REDIS_URL")
#: Used when neither the caller nor the environment names a Redis.
DEFAULT_URL = "redis://127.0.0.1:6379/0"


def redis_url_from_env() -> str | None:
    """The Redis URL the user configured (``BULLBRIDGE_REDIS_URL``, then ``REDIS_URL``), if any."""
    for name in ENV_URLS:
        value = os.environ.get(name)
        if value:
            return value
    return None


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
    password: str | None = field(default=None, repr=False)
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
    #: Liveness (docs/faults.md): PING a connection idle this long; drop one whose oldest
    #: command got no reply for ``stall_timeout`` (a black-holed link). 0 turns either off.
    idle_ping: float = 2.0
    stall_timeout: float = 5.0

    def __post_init__(self) -> None:
        remember(self.password)

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
        if not isinstance(url, str) or not url.strip():
            raise ConfigurationError(f"the Redis URL is empty ({url!r}): give one like redis://host:6379/0")
        try:
            parsed = urlparse(url)
            remember(unquote(parsed.password) if parsed.password is not None else None)
            return cls._from_parsed(url, parsed, overrides)
        except ConfigurationError:
            raise
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(
                f"malformed Redis URL {redact(url)!r} ({redact(exc)}): write it as redis://HOST:PORT/DB, "
                "with USER:PASSWORD@ before HOST when Redis needs them"
            ) from None

    @classmethod
    def _from_parsed(cls, url: str, parsed: Any, overrides: dict[str, Any]) -> ConnectionSettings:
        scheme = parsed.scheme.lower()
        username = unquote(parsed.username) if parsed.username else None
        password = unquote(parsed.password) if parsed.password is not None else None
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        values: dict[str, Any] = {"username": username or None, "password": password}
        if scheme in ("redis", "rediss"):
            if "," in (parsed.netloc.rsplit("@", 1)[-1]):
                raise ConfigurationError(f"several hosts in {redact(url)!r}: use redis+cluster:// or redis+sentinel://")
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
                raise ConfigurationError(f"{redact(url)!r}: name the master, e.g. redis+sentinel://h:26379/mymaster")
            values["sentinel_master"] = parts[0]
            values["db"] = _int(parts[1], "db", url) if len(parts) > 1 else 0
            values["ssl"] = scheme.startswith("rediss")
        else:
            raise ConfigurationError(
                f"unsupported Redis URL scheme {scheme!r} in {redact(url)!r} "
                "(redis, rediss, unix, redis+cluster, redis+sentinel)"
            )
        for name in ("connect_timeout", "command_timeout", "retry_for", "idle_ping", "stall_timeout"):
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
                f"unknown connection settings: {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
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
            idle_ping=self.idle_ping or None,
            stall_timeout=self.stall_timeout or None,
        )

    def masked_url(self) -> str:
        """The settings as a URL with the password shown as ``***`` (for start-up lines and reports)."""
        auth = (
            f"{self.username or ''}:***@"
            if self.password is not None
            else (f"{self.username}@" if self.username else "")
        )
        scheme = "rediss" if self.ssl else "redis"
        if self.cluster_nodes:
            return f"{scheme}+cluster://{auth}" + ",".join(f"{h}:{p}" for h, p in self.cluster_nodes)
        if self.sentinels:
            hosts = ",".join(f"{h}:{p}" for h, p in self.sentinels)
            return f"{scheme}+sentinel://{auth}{hosts}/{self.sentinel_master}/{self.db}"
        if self.unix_path:
            return f"unix://{auth}{self.unix_path}?db={self.db}"
        return f"{scheme}://{auth}{self.host}:{self.port}/{self.db}"

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
        raise ConfigurationError(f"{what} must be a number in {redact(url)!r}, got {text!r}") from None


def _host_port(item: Any) -> tuple[str, int]:
    if isinstance(item, str):
        host, _, port = item.rpartition(":")
        return (host or "127.0.0.1", int(port))
    host, port = item
    return (str(host), int(port))


def _hosts(netloc: str, url: str) -> tuple[tuple[str, int], ...]:
    hosts = tuple(_host_port(part) for part in netloc.split(",") if part)
    if not hosts:
        raise ConfigurationError(f"no hosts in {redact(url)!r}")
    return hosts


def _ssl_context(cert_reqs: str) -> ssl_module.SSLContext:
    ctx = ssl_module.create_default_context()
    if cert_reqs == "none":
        ctx.check_hostname = False
        ctx.verify_mode = ssl_module.CERT_NONE
    return ctx

"""What a Redis server is: its version, mode and memory policy, checked once.

Node BullMQ refuses Redis < 5.0.0 and warns below 6.2.0; so does bullbridge.
The version also decides what a blocking wait may ask for (sub-second
``BZPOPMIN`` timeouts from 6.0, 1 ms from 7.0.8).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bullbridge.errors import RedisVersionError

log = logging.getLogger("bullbridge.connection")

MIN_REDIS = (5, 0, 0)
RECOMMENDED_REDIS = (6, 2, 0)


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
            f"Redis {version_text} at {where} is too old: BullMQ needs Redis >= 5.0.0 (Node BullMQ refuses it too)"
        )
    if version < RECOMMENDED_REDIS:
        warnings.warn(f"Redis {version_text} at {where} is older than 6.2.0, which BullMQ recommends", stacklevel=3)
    policy = str(info.get("maxmemory_policy", "noeviction"))
    if policy != "noeviction":
        log.warning("Redis at %s has maxmemory-policy %s; BullMQ requires noeviction or jobs can vanish", where, policy)
    mode = str(info.get("redis_mode", "standalone"))
    return ServerInfo(version=version, mode=mode, maxmemory_policy=policy)

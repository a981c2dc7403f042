"""Who owns a job scheduler: bullbridge's records beside BullMQ's keys.

Ownership lives in keys BullMQ never reads (so Node tolerates them):

* ``<prefix>:<queue>:bullbridge:schedulers`` - a hash, scheduler id -> JSON
  ``{"owner": <declaration>, "expect": <scheduler state we wrote>, "synced": ms}``;
* ``<prefix>:bullbridge:declarations:<declaration>`` - a set of the queues where
  the declaration owns schedulers (so a schedule moved to another queue is
  still found and pruned);
* ``<prefix>:bullbridge:sync-lock:<declaration>`` - a short lock serialising
  syncs of one declaration.

``expect`` lets sync tell "still as we wrote it" from "changed by someone else"
(a Node ``upsertJobScheduler`` with the same id): only the former is ever
removed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from bullbridge.keys import Executes, QueueKeys

log = logging.getLogger("bullbridge.scheduler.ownership")


def owners_key(keys: QueueKeys) -> str:
    return f"{keys.base}bullbridge:schedulers"


def declarations_key(prefix: str, declaration: str) -> str:
    return f"{prefix}:bullbridge:declarations:{declaration}"


def lock_key(prefix: str, declaration: str) -> str:
    return f"{prefix}:bullbridge:sync-lock:{declaration}"


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class OwnerRecord:
    owner: str
    expect: dict[str, Any] = field(default_factory=dict)
    synced: int = 0

    def encode(self) -> bytes:
        return json.dumps(
            {"owner": self.owner, "expect": self.expect, "synced": self.synced}, separators=(",", ":"), sort_keys=True
        ).encode()

    @classmethod
    def decode(cls, scheduler_id: str, raw: Any) -> OwnerRecord | None:
        """The record stored for ``scheduler_id`` (``None`` when there is none, or it
        cannot be read: logged, and treated as no owner)."""
        if raw is None:
            return None
        try:
            value = json.loads(raw)
            return cls(str(value["owner"]), dict(value.get("expect") or {}), int(value.get("synced") or 0))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring unreadable ownership record %r in %s", scheduler_id, _text(raw)[:80])
            return None


async def owner_records(client: Executes, keys: QueueKeys) -> dict[str, OwnerRecord]:
    """Every ownership record of one queue, by scheduler id."""
    items = list(await client.execute("HGETALL", owners_key(keys)) or [])
    out: dict[str, OwnerRecord] = {}
    for key, raw in zip(items[::2], items[1::2]):
        record = OwnerRecord.decode(_text(key), raw)
        if record is not None:
            out[_text(key)] = record
    return out

"""Find the queues under a prefix with ``SCAN`` (never ``KEYS``, which blocks Redis).

A queue exists when it has a ``<prefix>:<queue>:meta`` hash (written by Node's
Queue and by the first pause/metrics/scheduler) or a ``<prefix>:<queue>:id``
counter (written by the first job added without a custom id). One SCAN with the
server-side pattern ``<prefix>:*:[mi][ed]*`` skips most job keys (numeric ids)
on the server; the exact suffixes are checked here. Queue names cannot contain
``:``, so ``<prefix>:a:b:meta`` is no queue.
"""

from __future__ import annotations

from collections.abc import Sequence

from bullbridge.errors import UnknownQueue
from bullbridge.keys import Executes, QueueKeys, glob_escape, scan

DEFAULT_SCAN_COUNT = 2000
#: The keys that mark a queue as existing.
QUEUE_MARKERS = ("meta", "id")
#: Any of these keys means the queue exists (a queue with custom ids only may lack ``id``).
EXISTENCE_KEYS = (
    "meta",
    "id",
    "wait",
    "active",
    "paused",
    "delayed",
    "prioritized",
    "waiting-children",
    "completed",
    "failed",
    "repeat",
    "events",
)


def queue_from_key(key: str, prefix: str, suffixes: Sequence[str] = QUEUE_MARKERS) -> str | None:
    """``<prefix>:<queue>:<suffix>`` -> ``<queue>`` for one of ``suffixes``, else ``None``."""
    head = prefix + ":"
    if not key.startswith(head):
        return None
    rest = key[len(head) :]
    for suffix in suffixes:
        if rest.endswith(":" + suffix):
            name = rest[: -len(suffix) - 1]
            if name and ":" not in name:
                return name
    return None


async def discover_queues(
    client: Executes, prefix: str = "bull", *, markers: Sequence[str] = QUEUE_MARKERS, count: int = DEFAULT_SCAN_COUNT
) -> list[str]:
    """Every queue under ``prefix`` that has one of the ``markers`` keys, sorted by
    name (a full SCAN: O(keys), in batches). ``markers=("repeat",)`` finds the
    queues that hold job schedulers."""
    if tuple(markers) == QUEUE_MARKERS:
        pattern = glob_escape(prefix) + ":*:[mi][ed]*"  # skips most job keys on the server
    else:
        pattern = glob_escape(prefix) + ":*:" + ("[" + "".join(sorted({m[0] for m in markers})) + "]*")
    found: set[str] = set()
    async for keys in scan(client, pattern, count=count):
        for raw in keys:
            key = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            name = queue_from_key(key, prefix, markers)
            if name is not None:
                found.add(name)
    return sorted(found)


async def queue_exists(client: Executes, keys: QueueKeys) -> bool:
    """Whether any of the queue's own keys exists (one ``EXISTS``; they share a slot on a cluster)."""
    return int(await client.execute("EXISTS", *(keys[kind] for kind in EXISTENCE_KEYS))) > 0


async def require_queue(client: Executes, keys: QueueKeys) -> None:
    """:class:`~bullbridge.errors.UnknownQueue` (listing the known queues) unless the queue exists,
    so that nothing reads zeros from, or writes keys for, a queue nobody created."""
    if not await queue_exists(client, keys):
        raise UnknownQueue(keys.name, keys.prefix, await discover_queues(client, keys.prefix))

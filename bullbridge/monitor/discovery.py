"""Find the queues under a prefix with ``SCAN`` (never ``KEYS``, which blocks Redis).

A queue exists when it has a ``<prefix>:<queue>:meta`` hash (written by Node's
Queue and by the first pause/metrics/scheduler) or a ``<prefix>:<queue>:id``
counter (written by the first job added without a custom id). One SCAN with the
server-side pattern ``<prefix>:*:[mi][ed]*`` skips most job keys (numeric ids)
on the server; the exact suffixes are checked here. Queue names cannot contain
``:``, so ``<prefix>:a:b:meta`` is no queue.
"""

from __future__ import annotations

from bullbridge.monitor.reader import Reader, text

DEFAULT_SCAN_COUNT = 2000
_GLOB_SPECIAL = set("*?[]\\")


def glob_escape(value: str) -> str:
    """Escape Redis glob metacharacters in a literal (a prefix such as ``{bull}`` is fine as is)."""
    return "".join("\\" + ch if ch in _GLOB_SPECIAL else ch for ch in value)


def queue_from_key(key: str, prefix: str) -> str | None:
    """``<prefix>:<queue>:meta`` or ``<prefix>:<queue>:id`` -> ``<queue>``, else ``None``."""
    head = prefix + ":"
    if not key.startswith(head):
        return None
    rest = key[len(head):]
    for suffix in (":meta", ":id"):
        if rest.endswith(suffix):
            name = rest[: -len(suffix)]
            if name and ":" not in name:
                return name
    return None


async def discover_queues(reader: Reader, prefix: str = "bull", *, count: int = DEFAULT_SCAN_COUNT) -> list[str]:
    """Every queue under ``prefix``, sorted by name (a full SCAN: O(keys), in batches)."""
    pattern = glob_escape(prefix) + ":*:[mi][ed]*"
    found: set[str] = set()
    cursor: bytes | str = b"0"
    while True:
        cursor, keys = await reader.execute("SCAN", cursor, "MATCH", pattern, "COUNT", count)
        for raw in keys:
            name = queue_from_key(text(raw) or "", prefix)
            if name is not None:
                found.add(name)
        if cursor in (b"0", "0", 0):
            break
    return sorted(found)

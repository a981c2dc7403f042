"""The Redis keys of one queue, named exactly as BullMQ names them.

``<prefix>:<queue>:<type>`` for the queue's structures, ``<prefix>:<queue>:<id>``
for a job hash. The list of types is the port's (``bullmq.queue_keys``);
``tests/test_scripts_parity.py`` checks every name against the port's own
``QueueKeys`` so they cannot drift. Not importing the port here keeps it (and
redis-py, ~20 MB) out of every worker and producer process.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bullbridge.errors import ConfigurationError

#: Worker names written by bullbridge start with ``bullbridge:``, in CLIENT LIST and
#: in each job's ``pb`` (processed-by) field: how the monitor tells languages apart.
PY_MARKER = "bullbridge"

#: BullMQ's queue structures (the port's ``QueueKeys.getKeys`` list, in its order).
KEY_TYPES = (
    "",
    "active",
    "wait",
    "waiting-children",
    "paused",
    "completed",
    "failed",
    "delayed",
    "repeat",
    "stalled",
    "limiter",
    "prioritized",
    "id",
    "stalled-check",
    "meta",
    "pc",
    "events",
    "marker",
    "de",
)


@dataclass(frozen=True)
class QueueKeys:
    """Key names of one queue. ``k["wait"]`` style access, plus job helpers."""

    name: str
    prefix: str = "bull"
    _keys: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigurationError("a queue needs a non-empty name")
        if ":" in self.name:
            raise ConfigurationError(f"queue name {self.name!r} contains ':', which BullMQ uses as its key separator")
        base = f"{self.prefix}:{self.name}"
        self._keys.update({kind: f"{base}:{kind}" for kind in KEY_TYPES})

    def __getitem__(self, kind: str) -> str:
        return self._keys[kind]

    @property
    def base(self) -> str:
        """``<prefix>:<queue>:``, the prefix the scripts put before job ids."""
        return self._keys[""]

    @property
    def qualified_name(self) -> str:
        """``<prefix>:<queue>``, how a parent refers to its queue."""
        return f"{self.prefix}:{self.name}"

    def job(self, job_id: str) -> str:
        return f"{self.base}{job_id}"

    def lock(self, job_id: str) -> str:
        return f"{self.base}{job_id}:lock"

    def logs(self, job_id: str) -> str:
        return f"{self.base}{job_id}:logs"

    def metrics(self, kind: str) -> str:
        return f"{self.base}metrics:{kind}"

    def client_name(self, worker_name: str | None = None) -> str:
        """The CLIENT SETNAME Node's ``getWorkers()`` recognises:
        ``<prefix>:<base64(queue)>`` or ``<prefix>:<base64(queue)>:w:<name>``."""
        encoded = base64.b64encode(self.name.encode()).decode()
        base = f"{self.prefix}:{encoded}"
        return f"{base}:w:{worker_name}" if worker_name else base


# --- finding keys ----------------------------------------------------------------------

#: Characters a Redis ``MATCH`` pattern treats as wildcards.
GLOB_SPECIAL = frozenset("*?[]\\")
#: Keys asked of the server per ``SCAN`` step.
SCAN_COUNT = 1000


class Executes(Protocol):
    """Anything that sends one Redis command and returns its reply."""

    async def execute(self, *args: Any) -> Any: ...


class Pipelines(Protocol):
    """Anything that sends several commands in one write and returns their replies
    in order: a :class:`~bullbridge.connection.resp.RespClient` (or cluster client),
    or the monitor's ``Reader``. Reads shared by the library and the monitor take one."""

    async def execute_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]: ...


def glob_escape(literal: str) -> str:
    """``literal`` with every glob metacharacter escaped, for a ``MATCH`` pattern
    (a prefix such as ``{bull}`` or ``my*app`` then matches only itself)."""
    return "".join("\\" + ch if ch in GLOB_SPECIAL else ch for ch in literal)


async def scan(client: Executes, pattern: str, *, count: int = SCAN_COUNT) -> AsyncIterator[list[bytes]]:
    """Batches of the keys matching ``pattern``, one per ``SCAN`` step - never
    ``KEYS``, which blocks Redis for as long as the whole keyspace takes.

    ``pattern`` is a glob: escape literal parts with :func:`glob_escape`."""
    cursor: Any = b"0"
    while True:
        cursor, keys = await client.execute("SCAN", cursor, "MATCH", pattern, "COUNT", count)
        if keys:
            yield list(keys)
        if cursor in (b"0", "0", 0):
            return


def prefix_pattern(prefix: str) -> str:
    """The ``MATCH`` pattern of every key under ``<prefix>:``."""
    if not prefix:
        raise ConfigurationError("an empty prefix would match every key")
    return glob_escape(prefix) + ":*"

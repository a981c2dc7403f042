"""The Redis keys of one queue, named exactly as BullMQ names them.

Built from the port's own ``QueueKeys`` so that the names cannot drift from
what the Lua scripts and Node expect: ``<prefix>:<queue>:<type>`` for the
queue's structures, ``<prefix>:<queue>:<id>`` for a job hash.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from bullmq.queue_keys import QueueKeys as PortQueueKeys

from bullbridge.errors import ConfigurationError


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
            raise ConfigurationError(
                f"queue name {self.name!r} contains ':', which BullMQ uses as its key separator")
        self._keys.update(PortQueueKeys(self.prefix).getKeys(self.name))

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

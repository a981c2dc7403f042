"""What the parts of a worker see of it.

:class:`~bullbridge.worker.context.ActiveJob` (a handler's view of its job),
the lock renewer and the stall checker (:mod:`bullbridge.worker.maintenance`)
and the telemetry hooks each need a few things of the worker that runs them.
They name those things here, as protocols, instead of importing the engine -
which imports them: the engine satisfies every protocol, and the import graph
stays a tree.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from bullbridge.connection.resp import RespClient
from bullbridge.job import Job
from bullbridge.keys import QueueKeys
from bullbridge.scripts import QueueScripts
from bullbridge.worker.events import WorkerEvent
from bullbridge.worker.settings import WorkerSettings

T = TypeVar("T")


class WorkerHost(Protocol):
    """A running worker, as its jobs and background duties use it."""

    id: str
    queue: str
    keys: QueueKeys
    qs: QueueScripts
    settings: WorkerSettings

    @property
    def client(self) -> RespClient: ...

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def loop_thread(self) -> int: ...

    def emit(self, event: WorkerEvent, *args: Any) -> None: ...

    def on(self, event: WorkerEvent, listener: Callable[..., Any] | None = None) -> Any: ...

    def note_progress(self, job: Job, progress: Any) -> None: ...

    async def run_in_thread(self, fn: Callable[..., T], *args: Any) -> T: ...

    async def run_in_process(self, fn: Callable[..., T], *args: Any) -> T: ...

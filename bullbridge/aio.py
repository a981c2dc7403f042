"""Small asyncio helpers shared by the background duties (lock renewal, stall
checks, heartbeats, watchers), and the loop affinity of objects that outlive
one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

from bullbridge.errors import EventLoopConflict


async def cancel_and_wait(task: asyncio.Future[Any] | None) -> None:
    """Cancel a background task and wait until it has stopped (its exception, if
    any, is consumed: the task is being discarded)."""
    if task is None or task.done():
        if task is not None and not task.cancelled():
            task.exception()
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


class LoopAffinity:
    """Which event loop an object's connections, locks and tasks belong to.

    asyncio ties each of them to the loop that made it, so an object kept
    across ``asyncio.run(...)`` calls (a module-level queue), or inherited by a
    forked child, would hand the new loop futures of the old one and fail with
    "attached to a different loop". Its owner calls :meth:`moved` before using
    that state: True means the loop changed since the last call and the owner
    must let go of what belonged to the old loop (without calling into it) and
    start afresh on this one."""

    __slots__ = ("_loop", "_pid", "what")

    def __init__(self, what: str) -> None:
        self.what = what
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def moved(self) -> bool:
        """Bind to the running loop; True when it replaces another one.

        Raises :class:`~bullbridge.errors.EventLoopConflict` when the previous
        loop is still running in another thread of this process: the object is
        being shared by two live loops, which no reconnection can make safe.
        (A forked child sees its parent's loop as running; the process id tells
        the two cases apart.)"""
        loop = asyncio.get_running_loop()
        previous = self._loop
        if loop is previous:
            return False
        pid = os.getpid()
        if previous is not None and self._pid == pid and previous.is_running() and not previous.is_closed():
            raise EventLoopConflict(
                f"{self.what} is in use by an event loop running in another thread: create one per event loop, "
                "or share a bullbridge.sync object between threads instead"
            )
        self._loop, self._pid = loop, pid
        return previous is not None

"""Small asyncio helpers shared by the background duties (lock renewal, stall
checks, heartbeats, watchers)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


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

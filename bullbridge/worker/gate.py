"""When the worker's slots may fetch, and who waits on Redis while they may not.

Each concurrency slot fetches for itself (``moveToActive``) and then keeps
going with BullMQ's fused "finish and fetch next". The gate keeps that
efficient and correct when there is nothing to fetch:

* a slot whose fetch came back empty *parks*; exactly one task, the waiter,
  blocks on the queue's marker (``BZPOPMIN``) for the whole worker, with a
  timeout that reaches the next delayed job to the millisecond (the port
  rounds it up to whole seconds: a 200 ms backoff became 1.1 s);
* when the marker fires the waiter wakes *one* slot; a slot that finds a job
  wakes the next, so the worker ramps up without a herd of empty fetches;
* when BullMQ answers "rate limited for N ms" (worker limiter, global rate
  limit, or a handler's ``rate_limit``) every slot parks and the waiter sleeps
  until the window opens, then wakes one - the port records the limit and then
  waits on a marker that never comes, stopping for good after 1-2 jobs;
* pause and close wake parked slots at once and unblock the ``BZPOPMIN``
  (``CLIENT UNBLOCK``) so no marker meant for another worker is swallowed.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from bullbridge.aio import cancel_and_wait
from bullbridge.clock import now_ms

log = logging.getLogger("bullbridge.worker")

BlockingWait = Callable[[float], Awaitable[Any]]
_WOKEN = object()  # the local timer fired first and a slot was already woken


def _consume_exception(fut: asyncio.Future[Any]) -> None:
    """A blocking wait abandoned at close may end with a connection error: read it
    so asyncio does not report "exception was never retrieved"."""
    if not fut.cancelled():
        fut.exception()


class FetchGate:
    def __init__(
        self,
        *,
        drain_delay: float,
        max_block: float,
        min_block: float,
        fractional: bool,
        max_rate_limit_delay: int,
        wait_marker: BlockingWait,
        unblock: Callable[[], Awaitable[None]],
    ) -> None:
        self.drain_delay = drain_delay
        self.max_block = max_block
        self.min_block = min_block
        self.fractional = fractional
        self.max_rate_limit_delay = max_rate_limit_delay
        self._wait_marker = wait_marker
        self._unblock = unblock
        self.drained = False
        self.block_until = 0
        self.limit_until = 0
        self.paused = False
        self.closing = False
        self._parked: deque[asyncio.Future[bool]] = deque()
        self._waiter: asyncio.Task[None] | None = None
        self._in_bzpop = False
        self._unblocking: asyncio.Future[None] | None = None
        self._stop_sleep = asyncio.Event()

    # -- slots --------------------------------------------------------------------

    def can_fetch_next(self) -> bool:
        """Whether a finishing slot may ask for its next job in the same call."""
        return not (self.closing or self.paused) and self.limit_until <= now_ms()

    async def ready(self) -> bool:
        """Wait until this slot should try a fetch; False means stop."""
        while True:
            if self.closing:
                return False
            if not self.paused and not self.drained and self.limit_until <= now_ms():
                return True
            fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self._parked.append(fut)
            self._ensure_waiter()
            try:
                if not await fut:
                    return False
            except asyncio.CancelledError:
                if fut in self._parked:
                    self._parked.remove(fut)
                raise
            if not self.paused and not self.closing:
                return True

    def on_fetch(self, found: bool, limit_ms: int, delay_until: int) -> None:
        """Record what a fetch (or fused fetch-next) answered."""
        if limit_ms > 0:
            self.limit_until = now_ms() + limit_ms
            self._ensure_waiter()
            return
        if found:
            if self.drained:
                self.drained = False
            self.wake_one()
        else:
            self.drained = True
            self.block_until = delay_until or 0

    def on_error(self) -> None:
        """After a failed fetch, let the next attempt go through the waiter."""
        self.drained = True

    # -- waking -------------------------------------------------------------------

    def wake_one(self) -> None:
        while self._parked:
            fut = self._parked.popleft()
            if not fut.done():
                fut.set_result(True)
                return

    def wake_all(self, value: bool = True) -> None:
        parked, self._parked = self._parked, deque()
        for fut in parked:
            if not fut.done():
                fut.set_result(value)

    def pause(self) -> None:
        self.paused = True
        self._interrupt()

    def resume(self) -> None:
        self.paused = False
        self.drained = False
        self.wake_all(True)

    def close(self) -> None:
        self.closing = True
        self._interrupt()
        self.wake_all(False)

    async def stop(self) -> None:
        """After close(): end the waiter and any unblock in flight (no task left behind)."""
        for task in (self._waiter, self._unblocking):
            await cancel_and_wait(task)

    def connection_restored(self) -> None:
        """After a reconnect, look for work at once (markers may have been missed)."""
        self.drained = False
        self.wake_all(True)

    def _interrupt(self) -> None:
        self._stop_sleep.set()
        if self._in_bzpop:
            self._unblocking = asyncio.ensure_future(self._safe_unblock())

    async def _safe_unblock(self) -> None:
        try:
            await self._unblock()
        except Exception as exc:  # pragma: no cover - best effort
            log.debug("CLIENT UNBLOCK failed: %s", exc)

    # -- the waiter -----------------------------------------------------------------

    def _ensure_waiter(self) -> None:
        if self._waiter is None or self._waiter.done():
            self._waiter = asyncio.ensure_future(self._wait_loop())

    def block_timeout(self) -> float:
        """Seconds to block on the marker: until the next delayed job, else drain_delay."""
        if self.block_until:
            delay = (self.block_until - now_ms()) / 1000
            if delay <= 0:
                return 0.0
            timeout = min(max(delay, self.min_block), self.max_block)
        else:
            timeout = max(self.drain_delay, self.min_block)
        if not self.fractional:
            import math

            timeout = float(math.ceil(timeout))
        return timeout

    async def _sleep(self, seconds: float) -> None:
        self._stop_sleep.clear()
        try:
            await asyncio.wait_for(self._stop_sleep.wait(), seconds)
        except TimeoutError:
            pass

    async def _block(self, timeout: float) -> Any:
        """BZPOPMIN the marker; when a delayed job is due first, wake on our own timer.

        Redis checks blocking timeouts only about every 100 ms (``hz 10``), so a
        200 ms backoff would start up to 100 ms late. A local timer fires at the
        due millisecond instead; the blocked command is then released with
        ``CLIENT UNBLOCK`` before the connection is used again."""
        blocked = asyncio.ensure_future(self._wait_marker(timeout))
        blocked.add_done_callback(_consume_exception)
        if not self.block_until:
            return await blocked
        due_in = max((self.block_until - now_ms()) / 1000, 0.0)
        done, _ = await asyncio.wait({blocked}, timeout=due_in)
        if done:
            return blocked.result()
        # Due: let a slot fetch now, then release the blocked connection.
        self.block_until = 0
        self.drained = False
        self.wake_one()
        await self._safe_unblock()
        try:
            await asyncio.wait_for(blocked, 1.0)
        except TimeoutError:
            pass
        return _WOKEN

    async def _wait_loop(self) -> None:
        backoff = 0.05
        while self._parked and not self.closing:
            if self.paused:
                await self._sleep(3600)
                continue
            now = now_ms()
            if self.limit_until > now:
                await self._sleep(min(self.limit_until - now, self.max_rate_limit_delay) / 1000)
                if self.limit_until <= now_ms():
                    self.limit_until = 0
                self.drained = False
                self.wake_one()
                await asyncio.sleep(0)
                continue
            if not self.drained:
                self.wake_one()
                await asyncio.sleep(0)
                continue
            timeout = self.block_timeout()
            if timeout > 0:
                self._in_bzpop = True
                try:
                    result = await self._block(timeout)
                    backoff = 0.05
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.debug("waiting on the marker failed: %s", exc)
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    result = None
                finally:
                    self._in_bzpop = False
                if self.closing or self.paused or result is _WOKEN:
                    continue
                if result:
                    marked = float(result[2])
                    # A marker scored inf/nan by a foreign writer reads as "due now", never as a crash.
                    score = int(marked) if math.isfinite(marked) else 0
                    if score > now_ms():
                        # A delayed job's marker: sleep until it is due (keep the earlier one).
                        if not self.block_until or score < self.block_until:
                            self.block_until = score
                        continue
                elif self.block_until and self.block_until > now_ms():
                    continue
            self.block_until = 0
            self.drained = False
            self.wake_one()
            await asyncio.sleep(0)

"""Run the same scenario on bullbridge's Worker or on the port's own ``bullmq.Worker``.

Each worker difference of docs/port-differences.md is tested twice: with
``impl="bullbridge"`` (must pass) and with ``impl="port"`` marked
``xfail(strict=True)``: the port's behaviour is shown beside ours, and the xfail
turns into a failure the day the port is fixed (or the day our test stops
detecting the difference).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bullbridge import Worker

Body = Callable[[Any], Awaitable[Any]]

PORT_XFAIL = "the port's Worker"


def impls(reason: str) -> Any:
    """Parametrize over bullbridge (must pass) and the port (xfail strict)."""
    return pytest.mark.parametrize(
        "impl",
        [
            "bullbridge",
            pytest.param("port", marks=pytest.mark.xfail(strict=True, reason=f"{PORT_XFAIL}: {reason}")),
        ],
    )


_CAMEL = {
    "concurrency": "concurrency",
    "lock_duration": "lockDuration",
    "stalled_interval": "stalledInterval",
    "max_stalled_count": "maxStalledCount",
    "drain_delay": "drainDelay",
    "name": "name",
}


class PyWorker:
    """A started worker of either implementation, running ``body(job)`` for every job."""

    def __init__(
        self,
        impl: str,
        queue: str,
        redis_url: str,
        body: Body,
        *,
        limiter: dict[str, int] | None = None,
        backoff_strategies: dict[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        self.impl = impl
        self.queue = queue
        self.redis_url = redis_url
        self.body = body
        self.limiter = limiter
        self.backoff_strategies = backoff_strategies or {}
        self.settings = settings
        self.errors: list[BaseException] = []
        self._worker: Any = None

    async def start(self) -> PyWorker:
        if self.impl == "bullbridge":
            from bullbridge.options import RateLimit

            body = self.body

            async def handler(job: Any) -> Any:
                return await body(job)

            self._worker = Worker(
                self.queue,
                handler,
                connection=self.redis_url,
                limiter=RateLimit(**self.limiter) if self.limiter else None,
                backoff_strategies=self.backoff_strategies,
                **self.settings,
            )
            self._worker.on("error", self.errors.append)
            await self._worker.start()
        else:
            import bullmq

            body = self.body

            async def processor(job: Any, token: str) -> Any:
                return await body(job)

            opts: dict[str, Any] = {"connection": self.redis_url}
            for key, value in self.settings.items():
                opts[_CAMEL[key]] = value
            if self.limiter:
                opts["limiter"] = self.limiter
            if self.backoff_strategies:
                ((_name, fn),) = self.backoff_strategies.items()
                opts["settings"] = {"backoffStrategy": fn}
            self._worker = bullmq.Worker(self.queue, processor, opts)
            self._worker.on("error", lambda err, *a: self.errors.append(err))
            await asyncio.sleep(0)
        return self

    async def close(self) -> None:
        if self._worker is None:
            return
        with contextlib.suppress(Exception, asyncio.TimeoutError, asyncio.CancelledError):
            if self.impl == "bullbridge":
                await asyncio.wait_for(self._worker.close(timeout=3), 10)
            else:
                await asyncio.wait_for(self._worker.close(force=True), 10)
        self._worker = None


async def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until true or ``timeout``; returns the last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return predicate()

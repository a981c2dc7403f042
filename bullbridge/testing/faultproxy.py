"""A loopback TCP proxy that breaks the network on demand (docs/faults.md).

Put it between clients and Redis (``FaultProxy(port).start()``, then connect to
``proxy.url``) and break one connection, or all of them:

* :meth:`Link.blackhole`: stop forwarding both ways and keep both sockets open,
  no RST, no FIN - what a NAT table or a load balancer that dropped an idle
  connection does. Bytes sent either way vanish.
* :meth:`Link.reset`: an RST to both sides (``SO_LINGER`` 0).
* :attr:`Link.delay` / :meth:`FaultProxy.latency`: add latency to every chunk,
  each way, in order (a queue per direction, not a slower pipe).
* :meth:`FaultProxy.cut` / :meth:`FaultProxy.restore`: reset every connection and
  refuse new ones (accepted, then reset) until restored.

It runs on a thread of its own with its own event loop, so a client under test
(and its loop) is measured, not the proxy. A real TCP hop: no mocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["FaultProxy", "Link"]

T = TypeVar("T")
_CHUNK = 65536


def _rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Link:
    """One proxied connection: the client's side and Redis's side."""

    def __init__(
        self, proxy: FaultProxy, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter, delay: float
    ) -> None:
        self.proxy = proxy
        self._client = client
        self._upstream = upstream
        #: The port Redis sees this connection come from (``addr=`` in ``CLIENT LIST``).
        self.upstream_port: int = upstream.get_extra_info("sockname")[1]
        self.client_port: int = client.get_extra_info("peername")[1]
        self.delay = delay
        self.blackholed_at: float | None = None
        self.closed = False
        self.opened_at = time.monotonic()

    def blackhole(self) -> None:
        """From now on forward nothing, either way; both sockets stay open."""
        self.proxy._call(self._blackhole)

    def _blackhole(self) -> None:
        if self.blackholed_at is None:
            self.blackholed_at = time.monotonic()

    def reset(self) -> None:
        """Reset both sides (RST, no FIN)."""
        self.proxy._call(self._reset)

    def _reset(self) -> None:
        _rst(self._client)
        _rst(self._upstream)
        self.closed = True

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        sender = asyncio.ensure_future(self._send(queue, writer))
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                if self.blackholed_at is None:
                    queue.put_nowait((time.monotonic() + self.delay, data))
        except (ConnectionError, OSError):
            pass
        finally:
            if self.blackholed_at is None:
                queue.put_nowait((0.0, b""))
                with contextlib.suppress(Exception):
                    await sender
            else:  # a black hole never closes the other side
                sender.cancel()

    async def _send(self, queue: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter) -> None:
        while True:
            due, data = await queue.get()
            if not data:
                self.closed = True
                writer.close()
                return
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # the injected latency itself
            if self.blackholed_at is not None:
                continue
            try:
                writer.write(data)
                await writer.drain()
            except (ConnectionError, OSError):
                return


class FaultProxy:
    """Listen on a free loopback port and forward to ``target_host:target_port``."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.links: list[Link] = []
        self.port = 0
        self._delay = 0.0
        self._cut = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> FaultProxy:
        ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="fault-proxy", daemon=True)
        self._thread.start()
        ready.result(10)  # a failure detector: binding a loopback port takes milliseconds
        return self

    def _run(self, ready: Future[None]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            self._server = loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as exc:  # pragma: no cover - no loopback port
            ready.set_exception(exc)
            return
        ready.set_result(None)
        loop.run_forever()
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()

    def _call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the proxy's loop and return its result (from any thread)."""
        loop = self._loop
        assert loop is not None, "the proxy is not started"
        done: Future[T] = Future()

        def run() -> None:
            try:
                done.set_result(fn())
            except BaseException as exc:  # pragma: no cover - reported to the caller
                done.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return done.result(10)  # a failure detector: the proxy's loop only forwards bytes

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            _rst(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _rst(writer)
            return
        link = Link(self, writer, up_writer, self._delay)
        with self._lock:
            self.links.append(link)
        with contextlib.suppress(asyncio.CancelledError):  # the proxy stopping
            await asyncio.gather(link._pump(reader, up_writer), link._pump(up_reader, writer), return_exceptions=True)

    # -- faults on every connection ------------------------------------------------

    def latency(self, seconds: float) -> None:
        """Add ``seconds`` each way to every connection, open and future (0 removes it)."""

        def set_all() -> None:
            self._delay = seconds
            for link in self.links:
                link.delay = seconds

        self._call(set_all)

    def cut(self) -> None:
        """Reset every connection and refuse new ones until :meth:`restore`."""

        def cut_all() -> None:
            self._cut = True
            for link in self.links:
                if not link.closed:
                    link._reset()

        self._call(cut_all)

    def restore(self) -> None:
        self._call(lambda: setattr(self, "_cut", False))

    def open_links(self) -> list[Link]:
        with self._lock:
            return [link for link in self.links if not link.closed and link.blackholed_at is None]

    def link_from(self, upstream_port: int) -> Link | None:
        """The live link whose Redis-side socket has this local port."""
        return next((link for link in self.open_links() if link.upstream_port == upstream_port), None)

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return

        def shut() -> None:
            if self._server is not None:
                self._server.close()
            for link in self.links:
                if not link.closed:
                    link._reset()
            loop.stop()

        loop.call_soon_threadsafe(shut)
        if self._thread is not None:
            self._thread.join(5)  # a failure detector: stopping a loop that only forwards bytes

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

"""Graceful shutdown: what SIGTERM and SIGINT mean to a bullbridge process.

The port installs no signal handling at all: SIGTERM kills active jobs (they
re-run ~11 s later through stall detection), and a process started in the
background by a shell ignores SIGINT. Here, in the pattern Kubernetes expects
(see ANCHORS.md, "Graceful shutdown"):

1. first SIGTERM or SIGINT: stop fetching at once and report not-ready; active
   jobs get until the drain deadline (default 25 s, below Kubernetes' 30 s
   grace) to finish;
2. at the deadline, or on a second signal: cancel the handlers still running
   and hand their jobs back to wait, so another worker (Python or Node) takes
   them at once, without a stall counted against them.

Handlers are installed with ``loop.add_signal_handler``, which also takes
SIGINT back from a shell that started us with it ignored.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("bullbridge.shutdown")

SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class GracefulShutdown:
    """Turns signals into two phases: ``on_drain`` once, then ``on_force`` once."""

    drain_timeout: float
    on_drain: Callable[[str], None]
    on_force: Callable[[str], None]
    signals: tuple[signal.Signals, ...] = SIGNALS
    requested: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str = ""
    forced: bool = False
    _installed: list[signal.Signals] = field(default_factory=list)
    _deadline: asyncio.TimerHandle | None = None

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self.signals:
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - not main thread/Windows
                log.debug("cannot handle %s here; shutdown must be requested in code", sig.name)
                continue
            self._installed.append(sig)

    def uninstall(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._installed:
            loop.remove_signal_handler(sig)
        self._installed.clear()
        if self._deadline is not None:
            self._deadline.cancel()

    def _on_signal(self, sig: signal.Signals) -> None:
        self.trigger(sig.name)

    def trigger(self, reason: str) -> None:
        """First call: start draining; second call: force."""
        if not self.requested.is_set():
            self.reason = reason
            self.requested.set()
            log.info(
                "%s: stopping - no new jobs; active jobs have %.0f s to finish (send it again to stop now)",
                reason,
                self.drain_timeout,
            )
            self.on_drain(reason)
            self._deadline = asyncio.get_running_loop().call_later(
                self.drain_timeout, self._force, f"drain deadline of {self.drain_timeout:g} s"
            )
        else:
            self._force(f"second {reason}")

    def _force(self, reason: str) -> None:
        if self.forced:
            return
        self.forced = True
        log.warning("%s: cancelling running jobs and handing them back to the queue", reason)
        self.on_force(reason)

"""What each side saw of a job, for assertions that explain themselves.

:class:`JobView` is one job as one language reads it back (Node through its
``Queue.getJob`` and ``getJobLogs``, Python through :class:`bullbridge.Job`):
data, options, state, return value, failure reason and stack, progress, logs.
Its :meth:`~JobView.assert_completed` and :meth:`~JobView.assert_failed` fail
with what went wrong on the other side (the Node stack of a failed Node
processor, the Python traceback of a failed handler), not just "False".

:class:`Received` is what a processor was *called with* (name, data, options,
attempts), recorded by the Node and Python workers the test harness starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

Side = Literal["node", "python"]

_ANY: Any = type("AnyValue", (), {"__repr__": lambda self: "ANY"})()


@dataclass(frozen=True)
class Received:
    """One call of a processor: what the handler's ``job`` held."""

    side: Side
    queue: str
    job_id: str
    name: str
    data: Any
    #: The options as that side's job object shows them (Node: ``job.opts``,
    #: long names; Python: the stored options, as BullMQ wrote them).
    opts: dict[str, Any]
    attempts_made: int


@dataclass(frozen=True)
class JobView:
    """One job as one side reads it back. ``exists`` is False when the job hash
    is gone (removed on completion): the outcome then comes from the event stream."""

    side: Side
    queue: str
    id: str
    state: str
    name: str = ""
    data: Any = None
    #: Node: ``job.opts`` (long names); Python: the stored options (BullMQ's compressed keys).
    opts: dict[str, Any] = field(default_factory=dict)
    returnvalue: Any = None
    failed_reason: str | None = None
    stacktrace: tuple[str, ...] = ()
    progress: Any = 0
    logs: tuple[str, ...] = ()
    attempts_made: int = 0
    timestamp: int = 0
    processed_on: int | None = None
    finished_on: int | None = None
    exists: bool = True

    @property
    def completed(self) -> bool:
        return self.state == "completed"

    @property
    def failed(self) -> bool:
        return self.state == "failed"

    def describe(self) -> str:
        """One paragraph: which job, its state, and why it failed (with the first stack)."""
        head = f"job {self.queue}:{self.id}" + (f" ({self.name})" if self.name else "")
        text = f"{head} is {self.state!r} as {self.side} reads it"
        if self.failed_reason:
            text += f"; failedReason: {self.failed_reason}"
        if self.attempts_made:
            text += f"; attempts made: {self.attempts_made}"
        if self.stacktrace:
            text += "\n" + self.stacktrace[-1].rstrip()
        return text

    def assert_completed(self, returnvalue: Any = _ANY) -> Any:
        """Fail unless the job completed (and returned ``returnvalue``, when given);
        returns the return value."""
        __tracebackhide__ = True
        if self.state != "completed":
            raise AssertionError(f"expected completed: {self.describe()}")
        if returnvalue is not _ANY and self.returnvalue != returnvalue:
            raise AssertionError(
                f"job {self.queue}:{self.id} ({self.name}) returned {self.returnvalue!r}, expected {returnvalue!r}"
            )
        return self.returnvalue

    def assert_failed(self, reason: str | re.Pattern[str] | None = None) -> str:
        """Fail unless the job failed (with ``reason``: a substring, or a pattern to
        search); returns the failed reason."""
        __tracebackhide__ = True
        if self.state != "failed":
            extra = f" (returned {self.returnvalue!r})" if self.state == "completed" else ""
            raise AssertionError(f"expected failed: {self.describe()}{extra}")
        actual = self.failed_reason or ""
        if isinstance(reason, re.Pattern):
            if not reason.search(actual):
                raise AssertionError(
                    f"job {self.queue}:{self.id} failed with {actual!r}, which does not match {reason.pattern!r}"
                )
        elif reason is not None and reason not in actual:
            raise AssertionError(f"job {self.queue}:{self.id} failed with {actual!r}, not {reason!r}")
        return actual


def view_from_node(queue: str, job_id: str, raw: dict[str, Any]) -> JobView:
    """A :class:`JobView` from the driver's ``job.view`` answer."""
    return JobView(
        side="node",
        queue=queue,
        id=str(raw.get("id", job_id)),
        state=str(raw.get("state", "unknown")),
        name=str(raw.get("name", "")),
        data=raw.get("parsedData", raw.get("data")),
        opts=dict(raw.get("parsedOpts") or raw.get("opts") or {}),
        returnvalue=raw.get("returnvalue"),
        failed_reason=raw.get("failedReason") or None,
        stacktrace=tuple(str(s) for s in raw.get("stacktrace") or ()),
        progress=raw.get("progress", 0),
        logs=tuple(str(s) for s in raw.get("logs") or ()),
        attempts_made=int(raw.get("attemptsMade") or 0),
        timestamp=int(raw.get("timestamp") or 0),
        processed_on=raw.get("processedOn"),
        finished_on=raw.get("finishedOn"),
    )

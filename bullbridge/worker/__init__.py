"""The worker engine: handlers, fetching, locks, retries (see :mod:`.engine`)."""

from bullbridge.worker.context import ActiveJob, CancelSignal, JobSnapshot, Sent
from bullbridge.worker.engine import Worker
from bullbridge.worker.handlers import Handler, RunIn
from bullbridge.worker.settings import WorkerSettings

__all__ = [
    "ActiveJob",
    "CancelSignal",
    "Handler",
    "JobSnapshot",
    "RunIn",
    "Sent",
    "Worker",
    "WorkerSettings",
]

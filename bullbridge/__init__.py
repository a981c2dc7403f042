"""bullbridge: Python services on the BullMQ queues Node.js services already use.

Built on BullMQ's own Lua scripts (from the official Python port), so the
protocol in Redis stays byte-for-byte BullMQ's. The names below are the
public API (docs/api.md); everything else is reachable from its module.
"""

from bullbridge.connection import connect
from bullbridge.errors import (
    BullbridgeError,
    ConfigurationError,
    CorruptJob,
    InvalidJobOptions,
    JobFailed,
    JobNotFound,
    JobTimeout,
    NotJsonSafe,
    QueueError,
    RedisUnavailable,
    UnrecoverableError,
)
from bullbridge.events import QueueEvents
from bullbridge.flows import FlowJob, FlowProducer
from bullbridge.job import Job
from bullbridge.manager import ManagerSettings, WorkerManager
from bullbridge.options import Backoff, Deduplication, JobOptions, KeepJobs, Parent, RateLimit
from bullbridge.queue import Queue
from bullbridge.runner import run, run_worker
from bullbridge.worker import ActiveJob, Worker

#: The one place the version is written (pyproject.toml reads it from here).
__version__ = "0.2.0"

__all__ = [  # noqa: RUF022 - grouped by what a caller is doing, not sorted
    # adding jobs and administering queues
    "FlowJob",
    "FlowProducer",
    "Queue",
    "QueueEvents",
    # running jobs
    "ActiveJob",
    "ManagerSettings",
    "Worker",
    "WorkerManager",
    "run",
    "run_worker",
    # a job and its options
    "Backoff",
    "Deduplication",
    "Job",
    "JobOptions",
    "KeepJobs",
    "Parent",
    "RateLimit",
    # connecting
    "connect",
    # errors: every one a BullbridgeError
    "BullbridgeError",
    "ConfigurationError",
    "CorruptJob",
    "InvalidJobOptions",
    "JobFailed",
    "JobNotFound",
    "JobTimeout",
    "NotJsonSafe",
    "QueueError",
    "RedisUnavailable",
    "UnrecoverableError",
    "__version__",
]

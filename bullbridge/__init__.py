"""bullbridge: Python services on the BullMQ queues Node.js services already use.

Built on BullMQ's own Lua scripts (from the official Python port), so the
protocol in Redis stays byte-for-byte BullMQ's. See README.md.
"""

from bullbridge.codec import JsonCodec
from bullbridge.connection import ConnectionSettings, RedisConnector, connect
from bullbridge.errors import (
    BullbridgeError,
    ConfigurationError,
    ConnectionSetupError,
    CorruptJob,
    CrossSlotError,
    InvalidJobOptions,
    JobFailed,
    JobNotFound,
    JobTimeout,
    NotJsonSafe,
    QueueError,
    RedisUnavailable,
    RedisVersionError,
    UnrecoverableError,
)
from bullbridge.events import QueueEvent, QueueEvents
from bullbridge.flows import FlowJob, FlowProducer
from bullbridge.job import Dependencies, EnqueuedJob, Job
from bullbridge.manager import ManagerSettings, WorkerManager
from bullbridge.options import Backoff, Deduplication, JobOptions, KeepJobs, Parent, RateLimit, Telemetry
from bullbridge.queue import JobSpec, Queue
from bullbridge.telemetry import OtelTelemetry
from bullbridge.worker import ActiveJob, CancelSignal, Worker, WorkerSettings

__version__ = "0.1.0"

__all__ = [
    "ActiveJob",
    "Backoff",
    "BullbridgeError",
    "CancelSignal",
    "ConfigurationError",
    "ConnectionSettings",
    "ConnectionSetupError",
    "CorruptJob",
    "CrossSlotError",
    "Deduplication",
    "Dependencies",
    "EnqueuedJob",
    "FlowJob",
    "FlowProducer",
    "InvalidJobOptions",
    "Job",
    "JobFailed",
    "JobNotFound",
    "JobOptions",
    "JobSpec",
    "JobTimeout",
    "JsonCodec",
    "KeepJobs",
    "ManagerSettings",
    "NotJsonSafe",
    "OtelTelemetry",
    "Parent",
    "Queue",
    "QueueError",
    "QueueEvent",
    "QueueEvents",
    "RateLimit",
    "RedisConnector",
    "RedisUnavailable",
    "RedisVersionError",
    "Telemetry",
    "UnrecoverableError",
    "Worker",
    "WorkerManager",
    "WorkerSettings",
    "__version__",
    "connect",
]

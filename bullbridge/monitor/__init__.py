"""Monitoring of BullMQ queues shared by Node and Python workers.

* :class:`Monitor` - read-only statistics: counts, throughput, failure rate,
  wait/processing percentiles, oldest waiting job, workers per language, job
  details, job lists, schedulers (read through :mod:`bullbridge.scheduler`,
  whose :class:`~bullbridge.scheduler.SchedulerInfo` they are), the migration report;
* :class:`QueueActions` (``Monitor.actions(queue)``) - retry, promote, clean,
  pause/resume, drain, through BullMQ's own scripts;
* :mod:`bullbridge.monitor.prometheus` - a Prometheus exporter (needs
  ``prometheus-client``; aiohttp or any ASGI server);
* :mod:`bullbridge.dashboard` - the web dashboard (needs ``aiohttp``).

The core package never imports this one, and this one imports neither
``prometheus_client`` nor ``aiohttp`` until those modules are used.
"""

from bullbridge.monitor.actions import ActionResult, QueueActions
from bullbridge.monitor.jobs import STATES, JobDetail, JobPage, JobSummary
from bullbridge.monitor.languages import LANGUAGES, NODE, PYTHON, PYTHON_PORT, UNKNOWN, language_of_job
from bullbridge.monitor.migration import LanguageStats, MigrationReport
from bullbridge.monitor.monitor import Monitor, QueueStats
from bullbridge.monitor.reader import MonitorError
from bullbridge.monitor.sample import FinishedJob, FinishedSample, Percentiles
from bullbridge.monitor.throughput import BullMetrics, Throughput
from bullbridge.monitor.workers import WorkerInfo

__all__ = [
    "LANGUAGES",
    "NODE",
    "PYTHON",
    "PYTHON_PORT",
    "STATES",
    "UNKNOWN",
    "ActionResult",
    "BullMetrics",
    "FinishedJob",
    "FinishedSample",
    "JobDetail",
    "JobPage",
    "JobSummary",
    "LanguageStats",
    "MigrationReport",
    "Monitor",
    "MonitorError",
    "Percentiles",
    "QueueActions",
    "QueueStats",
    "Throughput",
    "WorkerInfo",
    "language_of_job",
]

"""A BullMQ job read back as Django's ``TaskResult``.

| BullMQ state | ``TaskResult.status`` |
|---|---|
| ``waiting``, ``prioritized``, ``delayed`` (first run or a retry's backoff), ``waiting-children`` | ``READY`` |
| ``active`` | ``RUNNING`` |
| ``completed`` | ``SUCCESSFUL`` (``return_value`` is the job's ``returnvalue``) |
| ``failed`` | ``FAILED`` |

Times come from the job hash (``timestamp`` -> ``enqueued_at``, ``processedOn``
-> ``started_at``/``last_attempted_at``, ``finishedOn`` -> ``finished_at``);
``errors`` has one entry per failed attempt BullMQ kept (its ``stacktrace``
list), with the Python exception class a Python worker raised, or
:class:`bullbridge.errors.JobFailed` for a failure of another language.
"""

from __future__ import annotations

import builtins
import re
import sys
from datetime import UTC, datetime
from typing import Any

from django.apps import apps
from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

from bullbridge.contrib.django.compat import Task, TaskError, TaskResult, TaskResultStatus
from bullbridge.contrib.django.errors import NotATask, TaskNotFound
from bullbridge.job import Job

#: BullMQ state -> status (Django's TextChoices are untyped: hence Any).
STATUS: dict[str, Any] = {
    "active": TaskResultStatus.RUNNING,
    "completed": TaskResultStatus.SUCCESSFUL,
    "failed": TaskResultStatus.FAILED,
}

#: The exception class of an error that did not come from Python.
FOREIGN_ERROR = "bullbridge.errors.JobFailed"

#: The BullMQ priority of Django's priority 0. Django's -100..100 (higher first) is BullMQ's
#: 201..1 (1 first): every Django task is prioritized, so their order is Django's.
PRIORITY_OFFSET = 101

_EXCEPTION_LINE = re.compile(r"([A-Za-z_][\w.]*)(?:: |$)")


def find_task(name: str) -> Task[Any, Any]:
    """The ``@task`` a job's name (its dotted path) points at; :class:`~.errors.NotATask` otherwise.

    A job's name comes from Redis, so it is imported only from where tasks live: a
    module already imported, or one inside an installed app or the settings' package."""
    module = name.rpartition(".")[0]
    if not module:
        raise NotATask(f"job name {name!r} is not the dotted path of a Django task (e.g. 'myapp.tasks.send_welcome')")
    if module not in sys.modules and not any(module == r or module.startswith(r + ".") for r in _task_roots()):
        raise NotATask(
            f"job name {name!r} is not in an installed app or the settings' package, where bullbridge imports "
            "Django tasks from"
        )
    try:
        found = import_string(name)
    except ImportError as exc:
        raise NotATask(f"job name {name!r} is not the dotted path of a Django task ({exc})") from None
    if not isinstance(found, Task):
        raise NotATask(f"job name {name!r} is a {type(found).__name__}, not a Django task (decorate it with @task)")
    return found


def _task_roots() -> list[str]:
    roots = [config.name for config in apps.get_app_configs()]
    settings_module = getattr(settings, "SETTINGS_MODULE", None) or ""
    return [*roots, settings_module.rpartition(".")[0] or settings_module]


def bullmq_priority(priority: int) -> int:
    """BullMQ's priority for a Django task's: 100 -> 1, 0 -> 101, -100 -> 201."""
    return PRIORITY_OFFSET - priority


def moment(ms: int | None) -> datetime | None:
    """Epoch milliseconds as Django wants a datetime: aware (UTC) with ``USE_TZ``, naive local time without."""
    if ms is None:
        return None
    value = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return value if settings.USE_TZ else timezone.make_naive(value)


def task_result(backend: str, job: Job, state: str) -> TaskResult[Any]:
    """The ``TaskResult`` of a Django task's job in ``state`` (a BullMQ state), for the backend of that alias."""
    try:
        task = find_task(job.name)
    except NotATask as exc:
        raise TaskNotFound(f"job {job.id!r} of queue {job.queue!r} is not a Django task's: {exc}") from None
    changes: dict[str, Any] = {"queue_name": job.queue}
    if 1 <= job.priority < 2 * PRIORITY_OFFSET:
        changes["priority"] = PRIORITY_OFFSET - job.priority
    delay = job.opts.get("delay")  # as added (the hash's delay is the latest backoff's)
    if isinstance(delay, int) and delay > 0:
        changes["run_after"] = moment(job.timestamp + delay)
    data = job.data if isinstance(job.data, dict) else {}
    status: Any = STATUS.get(state, TaskResultStatus.READY)
    result: TaskResult[Any] = TaskResult(
        task=task.using(**changes),
        id=job.id,
        status=status,
        enqueued_at=moment(job.timestamp),
        started_at=moment(job.processed_on),
        last_attempted_at=moment(job.processed_on),
        finished_at=moment(job.finished_on)
        if status in (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)
        else None,
        args=list(data.get("args") or []),
        kwargs=dict(data.get("kwargs") or {}),
        backend=backend,
        errors=errors(job),
        worker_ids=[job.processed_by or "unknown"] * _attempts(job),
    )
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", job.returnvalue)
    return result


def _attempts(job: Job) -> int:
    return max(job.attempts_started, job.attempts_made)


def errors(job: Job) -> list[TaskError]:
    """One ``TaskError`` per stack trace BullMQ kept, else one for the ``failedReason``."""
    traces = job.stacktrace
    if not traces and job.failed_reason:
        traces = [job.failed_reason]
    return [TaskError(exception_class_path=exception_class_path(trace), traceback=trace) for trace in traces]


def exception_class_path(trace: str) -> str:
    """The dotted path of the exception a Python traceback ends with (``builtins.ValueError``,
    ``myapp.errors.Refused``); :data:`FOREIGN_ERROR` for anything else (a Node stack)."""
    if not trace.startswith("Traceback (most recent call last):"):
        return FOREIGN_ERROR
    for line in reversed(trace.splitlines()):
        if not line or line[0].isspace():
            continue
        found = _EXCEPTION_LINE.match(line)
        if not found:
            continue
        name = found.group(1)
        if "." in name and name.rsplit(".", 1)[1][:1].isupper():
            return name
        builtin = getattr(builtins, name, None)
        if isinstance(builtin, type) and issubclass(builtin, BaseException):
            return f"builtins.{name}"
    return FOREIGN_ERROR

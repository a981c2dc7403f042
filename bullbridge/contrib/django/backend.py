"""``BullMQBackend``: Django's task framework on BullMQ queues.

::

    TASKS = {
        "default": {
            "BACKEND": "bullbridge.contrib.django.BullMQBackend",
            "QUEUES": ["default", "emails"],          # BullMQ queue names
            "OPTIONS": {"CONNECTION": "redis://localhost:6379", "ENQUEUE_ON_COMMIT": True},
        }
    }

``my_task.enqueue(*args, **kwargs)`` adds one BullMQ job through
:class:`bullbridge.sync.Queue` (its validation, codec, timeout and fork safety;
no second implementation): the job's name is the task's dotted path, its data
``{"args": [...], "kwargs": {...}}`` (the :data:`JOB_SHAPE`, which a Node worker
reads as ``job.name`` and ``job.data``), its id the result's id. Django's
priority (-100..100, higher first) becomes BullMQ's (1 highest):
``101 - priority``, so every Django task is prioritized and their order is
Django's. ``run_after`` becomes BullMQ's delay. ``get_result`` reads the job
back (:mod:`.results`); the worker that runs the tasks is :mod:`.worker`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone

from bullbridge import sync
from bullbridge.contrib.django import results
from bullbridge.contrib.django.compat import BaseTaskBackend, Task, TaskResult, TaskResultStatus, task_enqueued
from bullbridge.contrib.django.errors import NotJsonArguments, TaskNotFound
from bullbridge.errors import ConfigurationError

#: The status of a task not run yet (Django's TextChoices are untyped: hence Any).
READY: Any = TaskResultStatus.READY

T = TypeVar("T")
P = ParamSpec("P")

#: What a Django task's BullMQ job looks like, for a worker in another language.
JOB_SHAPE = {
    "name": "the task's dotted path: 'myapp.tasks.send_welcome'",
    "data": {"args": "a JSON list", "kwargs": "a JSON object"},
    "id": "the TaskResult's id (a UUID)",
    "priority": "101 - the task's priority (Django 100 -> BullMQ 1, 0 -> 101, -100 -> 201)",
}

#: The backend's OPTIONS and their defaults.
DEFAULT_OPTIONS: dict[str, Any] = {
    "CONNECTION": None,  # a Redis URL or mapping; None: BULLBRIDGE_REDIS_URL, then REDIS_URL, then localhost
    "PREFIX": "bull",
    "TIMEOUT": 10.0,  # seconds a blocking call (an enqueue, a get_result) may take
    "ENQUEUE_ON_COMMIT": False,  # True (the default database) or a database alias
    "JOB_OPTIONS": None,  # default BullMQ job options: {"attempts": 3, "backoff": ..., "remove_on_complete": ...}
    "WORKER": None,  # settings of `bullbridge worker --django`'s workers: {"concurrency": 5, "handler_timeout": 60}
}


class BullMQBackend(BaseTaskBackend):
    """Django tasks as BullMQ jobs (see the module's docstring and docs/django.md)."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        given = dict(self.options or {})
        unknown = sorted(set(given) - set(DEFAULT_OPTIONS))
        if unknown:
            raise ConfigurationError(
                f"TASKS[{alias!r}]['OPTIONS'] has unknown key(s) {', '.join(unknown)} "
                f"(known: {', '.join(DEFAULT_OPTIONS)})"
            )
        self.config: dict[str, Any] = {**DEFAULT_OPTIONS, **given}
        self.on_commit = _on_commit_alias(alias, self.config["ENQUEUE_ON_COMMIT"])
        self._opened: dict[str, None] = {}  # the queues enqueued into, in order

    # -- enqueue ----------------------------------------------------------------------

    def enqueue(
        self,
        task: Task[P, T],
        args: P.args,  # type: ignore[valid-type]
        kwargs: P.kwargs,  # type: ignore[valid-type]
    ) -> TaskResult[T]:
        """Add the task's job now, or when the current transaction commits (``ENQUEUE_ON_COMMIT``);
        the result has its id either way (a rolled-back transaction drops the job)."""
        self.validate_task(task)
        try:
            result: TaskResult[T] = TaskResult(
                task=task,
                id=str(uuid.uuid4()),
                status=READY,
                enqueued_at=None,
                started_at=None,
                last_attempted_at=None,
                finished_at=None,
                args=list(args),
                kwargs=dict(kwargs),
                backend=self.alias,
                errors=[],
                worker_ids=[],
            )
        except (TypeError, ValueError) as exc:  # Django normalises the arguments to JSON
            raise NotJsonArguments(
                f"the arguments of task {task.module_path!r} cannot be sent as JSON ({exc}): "
                "pass ids, strings, numbers, lists and dicts"
            ) from None
        if self.on_commit is None:
            self._send(result)
        else:
            transaction.on_commit(lambda: self._send(result), using=self.on_commit)
        return result

    def _send(self, result: TaskResult[Any]) -> None:
        task = result.task
        options: dict[str, Any] = {"job_id": result.id, "priority": results.bullmq_priority(task.priority)}
        if task.run_after is not None:
            options["run_at"] = _aware(task.run_after)
        job = self.queue(task.queue_name).add(
            task.module_path, {"args": result.args, "kwargs": result.kwargs}, **options
        )
        object.__setattr__(result, "enqueued_at", results.moment(job.timestamp))
        task_enqueued.send(type(self), task_result=result)

    # -- results ----------------------------------------------------------------------

    def get_result(self, result_id: str) -> TaskResult[Any]:
        """The task's result as BullMQ has it now: status from the job's state
        (waiting/delayed/prioritized -> READY, active -> RUNNING, completed ->
        SUCCESSFUL, failed -> FAILED), times, errors and return value from its hash."""
        for name in self.queue_names():
            queue = self.queue(name)
            # The state first, then the hash: a hash read first could be a moment older than the
            # state (read before the job completed, so without its return value).
            state = queue.get_job_state(result_id)
            job = queue.get_job(result_id) if state != "unknown" else None
            if job is not None:
                return results.task_result(self.alias, job, state)
        raise TaskNotFound(f"no job {result_id!r} in the queues of task backend {self.alias!r} ({self._searched()})")

    def queue_names(self) -> list[str]:
        """The BullMQ queues this backend uses: its ``QUEUES``, then any other it enqueued into."""
        return [*sorted(self.queues), *(n for n in list(self._opened) if n not in self.queues)]

    def _searched(self) -> str:
        names = self.queue_names()
        return ", ".join(names) if names else "none: QUEUES is empty and nothing was enqueued here"

    # -- plumbing ---------------------------------------------------------------------

    def queue(self, name: str) -> sync.Queue:
        """The blocking queue for one BullMQ queue. Django makes a backend per thread; its queues
        are the process's, made once and shared by every thread (one connection, pipelined)."""
        key = (self.alias, name, *(repr(self.config[k]) for k in _QUEUE_OPTIONS))
        with _LOCK:
            queue = _QUEUES.get(key)
            if queue is None:
                queue = _QUEUES[key] = sync.Queue(
                    name,
                    self.config["CONNECTION"],
                    prefix=self.config["PREFIX"],
                    default_job_options=self.config["JOB_OPTIONS"],
                    timeout=self.config["TIMEOUT"],
                )
            self._opened.setdefault(name, None)
            return queue

    def worker_settings(self) -> Mapping[str, Any]:
        """``OPTIONS["WORKER"]``: the settings of the workers ``bullbridge worker --django`` runs."""
        return dict(self.config["WORKER"] or {})

    def close(self) -> None:
        """Close this backend's Redis connections, in every thread (the next call opens new ones)."""
        with _LOCK:
            mine = [k for k in _QUEUES if k[0] == self.alias]
            queues = [_QUEUES.pop(k) for k in mine]
        for queue in queues:
            queue.close()


#: The options that make a queue; a backend made from other settings gets other queues.
_QUEUE_OPTIONS = ("CONNECTION", "PREFIX", "JOB_OPTIONS", "TIMEOUT")
_QUEUES: dict[tuple[str, ...], sync.Queue] = {}
_LOCK = threading.Lock()


def _on_commit_alias(alias: str, value: Any) -> str | None:
    if value is False or value is None:
        return None
    aliases: list[str] = list(settings.DATABASES)
    if value is True and DEFAULT_DB_ALIAS in aliases:
        return str(DEFAULT_DB_ALIAS)
    if value is True:
        raise ConfigurationError(
            f"TASKS[{alias!r}]['OPTIONS']['ENQUEUE_ON_COMMIT'] needs a database to commit: "
            "configure DATABASES, or set it to False"
        )
    if isinstance(value, str) and value in aliases:
        return value
    raise ConfigurationError(
        f"TASKS[{alias!r}]['OPTIONS']['ENQUEUE_ON_COMMIT'] must be True, False or a database alias "
        f"({', '.join(aliases) or 'none configured'}), got {value!r}"
    )


def _aware(moment: datetime) -> datetime:
    """``run_after`` as an aware datetime (naive ones, allowed with ``USE_TZ = False``, are in Django's time zone)."""
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)

"""The worker that runs Django tasks from BullMQ queues: ``bullbridge worker --django mysite.settings``.

One :class:`~bullbridge.worker.Worker` per queue of every ``BullMQBackend`` in
``settings.TASKS`` (their ``QUEUES``), under one
:class:`~bullbridge.manager.WorkerManager` - so signals, the drain, health and
``--burst`` are ``bullbridge worker``'s. A job's name is its task's dotted
path; the task runs in the worker's thread pool (``task.call``: an ``async``
task gets an event loop of its own there, as in Django's ImmediateBackend),
between two ``close_old_connections()`` - what Django does around each request,
so a connection past ``CONN_MAX_AGE`` or broken by the last job is not reused.
Django's ``task_started`` and ``task_finished`` signals are sent. A job whose
name is no ``@task`` fails at once, without retries.

Each backend's ``OPTIONS["WORKER"]`` are the workers' settings
(``{"concurrency": 5, "handler_timeout": 60}``: :class:`~bullbridge.worker.WorkerSettings`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

from bullbridge.errors import ConfigurationError, UnrecoverableError
from bullbridge.manager import ManagerSettings, WorkerManager
from bullbridge.worker import ActiveJob

log = logging.getLogger("bullbridge.contrib.django")


def setup(settings_module: str | None = None) -> None:
    """Set ``DJANGO_SETTINGS_MODULE`` (when given) and ``django.setup()``, as ``manage.py`` does."""
    if settings_module:
        os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        raise ConfigurationError("no Django settings: pass --django mysite.settings (or set DJANGO_SETTINGS_MODULE)")
    module = os.environ["DJANGO_SETTINGS_MODULE"]
    import django

    try:
        django.setup()
    except ModuleNotFoundError as exc:
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            raise ConfigurationError(
                f"no Django settings module {module!r} (looked in {os.getcwd()} and the Python path): "
                "check --django, or run from your project's folder"
            ) from None
        raise


def worker_manager(aliases: Iterable[str] | None = None, queues: Iterable[str] | None = None) -> WorkerManager:
    """A manager with one worker per queue of the ``BullMQBackend`` task backends
    (``aliases``: these only; ``queues``: only these of their queues). What
    ``bullbridge worker --django mysite.settings`` runs; call it from your own
    factory to narrow it (``bullbridge worker --django mysite.settings mysite.workers:make``)."""
    from django.apps import apps

    if not apps.ready:
        setup()
    from bullbridge.contrib.django.backend import BullMQBackend
    from bullbridge.contrib.django.compat import task_backends

    backends = [task_backends[a] for a in (aliases if aliases is not None else task_backends.settings)]
    ours = [b for b in backends if isinstance(b, BullMQBackend)]
    if not ours:
        raise ConfigurationError(
            "settings.TASKS has no backend 'bullbridge.contrib.django.BullMQBackend' to run tasks for"
        )
    wanted = set(queues) if queues is not None else None
    first = ours[0]
    manager = WorkerManager(
        connection=first.config["CONNECTION"], settings=ManagerSettings.from_env(prefix=first.config["PREFIX"])
    )
    served: set[str] = set()
    for backend in ours:
        _check_same_redis(first, backend)
        if not backend.queues:
            raise ConfigurationError(f"task backend {backend.alias!r} has no QUEUES: list the queues its worker serves")
        for name in sorted(backend.queues):
            if name in served or (wanted is not None and name not in wanted):
                continue
            served.add(name)
            manager.worker(name, run_task, **backend.worker_settings())
    if not served:
        raise ConfigurationError(f"none of the queues {sorted(wanted or ())} is in a BullMQBackend's QUEUES")
    log.info("running Django tasks from queue(s) %s", ", ".join(sorted(served)))
    return manager


def _check_same_redis(first: Any, other: Any) -> None:
    for key in ("CONNECTION", "PREFIX"):
        if first.config[key] != other.config[key]:
            raise ConfigurationError(
                f"task backends {first.alias!r} and {other.alias!r} differ in OPTIONS[{key!r}]: run one worker "
                "per backend, each from a factory calling worker_manager(aliases=[...])"
            )


def run_task(job: ActiveJob) -> Any:
    """Run the Django task a job names (in a worker thread); its return value is the job's result."""
    from django.db import close_old_connections

    from bullbridge.contrib.django.compat import TaskContext, TaskResultStatus, task_finished, task_started
    from bullbridge.contrib.django.errors import NotATask
    from bullbridge.contrib.django.results import find_task, task_result

    try:
        task = find_task(job.name)
    except NotATask as exc:
        raise UnrecoverableError(str(exc)) from None
    result = task_result(task.backend, job, "active")
    sender = type(task.get_backend())
    close_old_connections()
    task_started.send(sender=sender, task_result=result)
    try:
        if task.takes_context:
            value = task.call(TaskContext(task_result=result), *result.args, **result.kwargs)
        else:
            value = task.call(*result.args, **result.kwargs)
    except BaseException:
        object.__setattr__(result, "status", TaskResultStatus.FAILED)
        task_finished.send(sender=sender, task_result=result)
        raise
    finally:
        close_old_connections()
    object.__setattr__(result, "status", TaskResultStatus.SUCCESSFUL)
    object.__setattr__(result, "_return_value", value)
    task_finished.send(sender=sender, task_result=result)
    return value

"""One import shim for the two homes of Django's task framework.

Django 6 ships it as ``django.tasks``; on Django 5.2 (and Python 3.11, which
Django 6 does not support) it is the ``django-tasks`` backport, which
``django.tasks`` was made from. The names bullbridge uses are the same in both
but one: the invalid-task error is ``InvalidTask`` in Django 6 and
``InvalidTaskError`` in the backport. ``django.tasks`` wins when it exists, so
the same settings work before and after an upgrade to Django 6.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bullbridge.errors import MissingDependency

if TYPE_CHECKING:  # typed against the backport, whose API Django 6 kept
    from django_tasks import TaskContext, TaskResult, TaskResultStatus, task_backends
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import Task, TaskError
    from django_tasks.exceptions import InvalidTaskError as InvalidTask
    from django_tasks.exceptions import TaskResultDoesNotExist
    from django_tasks.signals import task_enqueued, task_finished, task_started

    SOURCE = "django_tasks"
else:
    try:
        from django.tasks import TaskContext, TaskResult, TaskResultStatus, task_backends
        from django.tasks.backends.base import BaseTaskBackend
        from django.tasks.base import Task, TaskError
        from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
        from django.tasks.signals import task_enqueued, task_finished, task_started

        SOURCE = "django.tasks"
    except ImportError:
        try:
            from django_tasks import TaskContext, TaskResult, TaskResultStatus, task_backends
            from django_tasks.backends.base import BaseTaskBackend
            from django_tasks.base import Task, TaskError
            from django_tasks.exceptions import InvalidTaskError as InvalidTask
            from django_tasks.exceptions import TaskResultDoesNotExist
            from django_tasks.signals import task_enqueued, task_finished, task_started

            SOURCE = "django_tasks"
        except ImportError:
            raise MissingDependency(
                "bullbridge.contrib.django needs Django's task framework: Django 6 (django.tasks), "
                "or on Django 5.2 the backport: pip install 'bullbridge[django]'"
            ) from None

__all__ = [
    "SOURCE",
    "BaseTaskBackend",
    "InvalidTask",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_started",
]

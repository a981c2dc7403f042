"""Django's task framework on BullMQ queues (docs/django.md).

::

    TASKS = {
        "default": {
            "BACKEND": "bullbridge.contrib.django.BullMQBackend",
            "QUEUES": ["default", "emails"],
            "OPTIONS": {"CONNECTION": "redis://localhost:6379", "ENQUEUE_ON_COMMIT": True},
        }
    }

``@task`` functions then enqueue BullMQ jobs (named by the task's dotted path,
data ``{"args": [...], "kwargs": {...}}``) that ``bullbridge worker --django
mysite.settings`` runs - or a Node worker, reading the same name and data.
Uses ``django.tasks`` on Django 6, the ``django-tasks`` backport on Django 5.2.
"""

from bullbridge.contrib.django.backend import JOB_SHAPE, BullMQBackend
from bullbridge.contrib.django.errors import NotATask, NotJsonArguments, TaskNotFound

__all__ = ["JOB_SHAPE", "BullMQBackend", "NotATask", "NotJsonArguments", "TaskNotFound"]

"""The errors of the Django backend: each a :class:`~bullbridge.errors.BullbridgeError`
and the Django task framework's own class for the same thing, so code written for
any Django task backend catches them."""

from __future__ import annotations

from bullbridge.contrib.django.compat import InvalidTask, TaskResultDoesNotExist
from bullbridge.errors import BullbridgeError


class TaskNotFound(BullbridgeError, TaskResultDoesNotExist):
    """``get_result`` found no Django task's job with that id in the backend's queues."""


class NotATask(BullbridgeError, InvalidTask):
    """A job's name is not the dotted path of a Django ``@task``."""


class NotJsonArguments(BullbridgeError, TypeError, ValueError):
    """A task's arguments cannot be sent as JSON (Django's own check, as one sentence)."""

"""The test project's tasks: run by bullbridge's Python worker, except ``node_sum``
(queue ``node``), which the tests' Node worker serves."""

from __future__ import annotations

from typing import Any

from django.db import connection

from bullbridge.contrib.django.compat import TaskContext
from tests.contrib.djangoapp.models import Note

try:
    from django.tasks import task
except ImportError:
    from django_tasks import task


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def write_note(text: str) -> dict[str, Any]:
    note = Note.objects.create(text=text)
    return {"id": note.pk, "text": note.text}


@task
def fail(message: str) -> None:
    raise ValueError(message)


@task(takes_context=True)
def attempt(context: TaskContext, fail_first: bool) -> dict[str, Any]:
    if fail_first and context.attempt < 2:
        raise RuntimeError(f"attempt {context.attempt} fails")
    return {"attempt": context.attempt, "id": context.task_result.id}


@task
def connection_is_closed() -> bool:
    """True when the job started without the database connection an earlier job of this thread opened."""
    return connection.connection is None


@task
async def double(n: int) -> int:
    return n * 2


@task(queue_name="node")
def node_sum(*numbers: int) -> dict[str, Any]:
    # Only enqueued: a Node worker serves queue 'node'; a Python worker never runs this body.
    raise RuntimeError("the tests' Node worker serves queue 'node'")

"""The Django task backend as a producer: what ``@task`` ``enqueue`` writes (a job
Node reads), on-commit and rollback, priorities and ``run_after``, ``get_result``
before a worker runs the task, and its errors. Real Django (SQLite), real Redis."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.db import transaction
from django.utils import timezone

from bullbridge.contrib.django import BullMQBackend, NotJsonArguments, TaskNotFound
from bullbridge.contrib.django.compat import TaskResultDoesNotExist, TaskResultStatus
from bullbridge.errors import BullbridgeError, ConfigurationError, EventLoopConflict

# The project's modules are imported once Django is set up (the ``tasks`` fixture).


@pytest.fixture
def rconn(redis_url: str) -> Any:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def tasks(backend: Any) -> Any:
    from tests.contrib.djangoapp import tasks

    return tasks


def stored(rconn: redis.Redis, backend: Any, queue: str, job_id: str) -> dict[str, Any]:
    return rconn.hgetall(backend.queue(queue).keys.job(job_id))  # type: ignore[return-value]


def test_enqueue_writes_a_job_in_the_documented_shape(tasks: Any, backend: Any, rconn: redis.Redis) -> None:
    result = tasks.add.using(backend="now").enqueue(2, b=3)
    job = stored(rconn, backend, "default", result.id)
    assert job["name"] == "tests.contrib.djangoapp.tasks.add" == tasks.add.module_path
    assert json.loads(job["data"]) == {"args": [2], "kwargs": {"b": 3}}
    assert int(job["priority"]) == 101  # Django's default priority 0
    assert json.loads(job["opts"])["attempts"] == 2  # OPTIONS["JOB_OPTIONS"]
    assert result.status == TaskResultStatus.READY and result.enqueued_at is not None
    again = tasks.add.get_result(result.id)
    assert (again.status, again.args, again.kwargs, again.task.queue_name) == (
        TaskResultStatus.READY,
        [2],
        {"b": 3},
        "default",
    )
    assert again.enqueued_at == result.enqueued_at


def test_django_priorities_become_bullmq_priorities_in_order(tasks: Any, backend: Any, rconn: redis.Redis) -> None:
    low = tasks.add.using(backend="now", priority=-100).enqueue(1, 1)
    mid = tasks.add.using(backend="now").enqueue(1, 1)
    high = tasks.add.using(backend="now", priority=100).enqueue(1, 1)
    assert [int(stored(rconn, backend, "default", r.id)["priority"]) for r in (low, mid, high)] == [201, 101, 1]
    # BullMQ takes the prioritized set lowest score first: Django's highest priority first.
    assert rconn.zrange(backend.queue("default").keys["prioritized"], 0, -1) == [high.id, mid.id, low.id]
    assert tasks.add.get_result(high.id).task.priority == 100
    assert tasks.add.get_result(low.id).task.priority == -100


def test_run_after_is_a_bullmq_delay(tasks: Any, backend: Any, rconn: redis.Redis) -> None:
    when = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    result = tasks.add.using(backend="now", run_after=when).enqueue(1, 2)
    job = stored(rconn, backend, "default", result.id)
    # What the producer writes, exactly: the job runs at run_after.
    assert int(job["timestamp"]) + int(job["delay"]) == int(when.timestamp() * 1000)
    assert backend.queue("default").get_job_state(result.id) == "delayed"
    again = tasks.add.get_result(result.id)
    assert (again.status, again.task.run_after) == (TaskResultStatus.READY, when)


def test_enqueue_inside_atomic_is_sent_on_commit(tasks: Any, backend: Any) -> None:
    queue = backend.queue("default")
    with transaction.atomic():
        tasks.Note.objects.create(text="kept")
        result = tasks.write_note.enqueue("after commit")
        assert queue.get_job(result.id) is None  # not before the commit
        assert result.enqueued_at is None
    assert queue.get_job(result.id) is not None
    assert result.enqueued_at is not None  # the same result object, updated when sent
    # Outside a transaction (autocommit), on-commit means now.
    assert queue.get_job(tasks.add.enqueue(1, 2).id) is not None


def test_a_rolled_back_transaction_drops_the_job(tasks: Any, backend: Any) -> None:
    queue = backend.queue("default")
    before = tasks.Note.objects.count()
    with pytest.raises(RuntimeError, match="abort"), transaction.atomic():
        tasks.Note.objects.create(text="rolled back")
        dropped = tasks.write_note.enqueue("never sent")
        sent_anyway = tasks.add.using(backend="now").enqueue(1, 1)  # ENQUEUE_ON_COMMIT off: sent at once
        raise RuntimeError("abort")
    assert tasks.Note.objects.count() == before
    assert queue.get_job(dropped.id) is None
    assert queue.get_job(sent_anyway.id) is not None
    with pytest.raises(TaskResultDoesNotExist):
        tasks.write_note.get_result(dropped.id)
    # A later commit on the same connection does not resurrect it.
    with transaction.atomic():
        tasks.Note.objects.create(text="next")
    assert queue.get_job(dropped.id) is None
    assert queue.get_job_counts()["prioritized"] == 1  # sent_anyway, alone


def test_a_view_in_a_request_transaction(tasks: Any, backend: Any) -> None:
    from django.test import Client

    queue = backend.queue("default")
    client = Client()
    answer = client.post("/notes", {"text": "kept"}).json()
    assert tasks.Note.objects.filter(pk=answer["note"]).exists()
    assert queue.get_job(answer["task"]) is not None  # sent when the request committed
    before = (tasks.Note.objects.count(), queue.count())
    with pytest.raises(RuntimeError, match="the view fails after enqueueing"):
        client.post("/notes", {"text": "rolled back", "fail": "1"})
    assert (tasks.Note.objects.count(), queue.count()) == before  # neither the row nor the job


def test_get_result_of_an_unknown_id(tasks: Any, backend: Any) -> None:
    with pytest.raises(TaskNotFound, match=r"no job 'nope' in the queues of task backend 'default' \(default, node\)"):
        tasks.add.get_result("nope")
    assert issubclass(TaskNotFound, TaskResultDoesNotExist) and issubclass(TaskNotFound, BullbridgeError)


def test_a_job_of_no_task_has_no_result(tasks: Any, backend: Any) -> None:
    job = backend.queue("default").add("send", {"to": "ada"})  # a plain BullMQ job, e.g. from Node
    with pytest.raises(TaskNotFound, match="is not the dotted path of a Django task"):
        tasks.add.get_result(job.id)
    # A job's name comes from Redis: nothing outside the installed apps is imported for it.
    odd = backend.queue("default").add("antigravity.fly", {"args": [], "kwargs": {}})
    with pytest.raises(TaskNotFound, match="not in an installed app or the settings' package"):
        tasks.add.get_result(odd.id)
    assert "antigravity" not in sys.modules


def test_arguments_that_are_not_json(tasks: Any, backend: Any) -> None:
    with pytest.raises(NotJsonArguments, match=r"the arguments of task '.*\.add' cannot be sent as JSON \(Unsupported"):
        tasks.add.using(backend="now").enqueue({1, 2}, 3)
    assert issubclass(NotJsonArguments, TypeError) and issubclass(NotJsonArguments, BullbridgeError)


def test_options_are_checked(django_env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match=r"unknown key\(s\) CONECTION \(known: CONNECTION, PREFIX"):
        BullMQBackend("x", {"OPTIONS": {"CONECTION": "redis://localhost"}})
    with pytest.raises(ConfigurationError, match="must be True, False or a database alias \\(default\\)"):
        BullMQBackend("x", {"OPTIONS": {"ENQUEUE_ON_COMMIT": "replica"}})
    from django.test import override_settings

    # Django warns that overriding DATABASES is unusual: the backend only reads its names here.
    with pytest.warns(UserWarning, match="DATABASES"), override_settings(DATABASES={}):
        with pytest.raises(ConfigurationError, match="needs a database to commit"):
            BullMQBackend("x", {"OPTIONS": {"ENQUEUE_ON_COMMIT": True}})


def test_backends_of_different_threads_share_one_connection_per_queue(tasks: Any, backend: Any) -> None:
    # Django makes a backend per thread; the queue (and its connection) is the process's.
    from bullbridge.contrib.django.compat import task_backends

    other = asyncio.run(asyncio.to_thread(lambda: task_backends["default"]))
    assert other is not backend
    assert other.queue("default") is backend.queue("default")


async def test_aenqueue_from_async_code(tasks: Any, backend: Any) -> None:
    result = await tasks.add.using(backend="now").aenqueue(4, 5)  # Django runs enqueue in a thread
    assert (await tasks.add.aget_result(result.id)).args == [4, 5]
    with pytest.raises(EventLoopConflict, match=r"await bullbridge\.Queue"):
        tasks.add.using(backend="now").enqueue(1, 2)  # a blocking call on the loop's thread

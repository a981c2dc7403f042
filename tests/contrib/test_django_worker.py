"""``bullbridge worker --django tests.contrib.djangoapp.settings``: Django tasks run by
bullbridge's Python worker in a process of its own, with the results Django reads
back, the database connections closed around each job, and a clean exit on SIGTERM."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from bullbridge.contrib.django.compat import TaskResultStatus
from tests.contrib.conftest import ROOT, DjangoWorker, finished, poll


@pytest.fixture(scope="module")
def worker(django_env: dict[str, str]) -> Iterator[DjangoWorker]:
    """One worker process for the module; it must exit 0 on SIGTERM at the end."""
    proc = DjangoWorker(django_env)
    yield proc
    code, out = proc.stop()
    assert code == 0, out
    assert "running Django tasks from queue(s) default, node" in out


@pytest.fixture
def tasks(backend: Any, worker: DjangoWorker) -> Any:
    from tests.contrib.djangoapp import tasks

    return tasks


def test_a_python_worker_runs_django_tasks(tasks: Any) -> None:
    added = tasks.add.enqueue(2, b=3)
    noted = tasks.write_note.enqueue("from a worker")
    doubled = tasks.double.enqueue(21)  # an async task
    result = finished(tasks.add, added.id)
    assert (result.status, result.return_value, result.attempts) == (TaskResultStatus.SUCCESSFUL, 5, 1)
    assert result.started_at is not None and result.finished_at is not None
    assert result.enqueued_at <= result.started_at <= result.finished_at
    note = finished(tasks.write_note, noted.id).return_value
    assert tasks.Note.objects.get(pk=note["id"]).text == "from a worker"  # written by the worker's process
    assert finished(tasks.double, doubled.id).return_value == 42


def test_a_failing_task_is_failed_with_its_python_exception(tasks: Any) -> None:
    result = finished(tasks.fail, tasks.fail.enqueue("bad input").id)
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 2  # OPTIONS["JOB_OPTIONS"]: attempts 2, both failed
    assert [e.exception_class for e in result.errors] == [ValueError, ValueError]
    assert "bad input" in result.errors[-1].traceback and "tasks.py" in result.errors[-1].traceback
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value


def test_context_has_the_attempt(tasks: Any) -> None:
    result = finished(tasks.attempt, tasks.attempt.enqueue(fail_first=True).id)
    assert result.return_value == {"attempt": 2, "id": result.id}
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert [e.exception_class for e in result.errors] == [RuntimeError]  # the first attempt's


def test_database_connections_are_closed_around_each_job(tasks: Any) -> None:
    # Concurrency 1: both jobs run in the same worker thread, one after the other. The first
    # opens a connection; Django keeps it unless told (no request ends here), so it is closed
    # only because the worker calls close_old_connections() around each job (CONN_MAX_AGE 0).
    noted = tasks.write_note.enqueue("opens a connection")
    checked = tasks.connection_is_closed.enqueue()
    assert finished(tasks.write_note, noted.id).status == TaskResultStatus.SUCCESSFUL
    assert finished(tasks.connection_is_closed, checked.id).return_value is True


def test_a_job_that_names_no_task_fails_without_retries(tasks: Any, backend: Any) -> None:
    queue = backend.queue("default")
    job = queue.add("tests.contrib.djangoapp.tasks.missing", {"args": [], "kwargs": {}}, attempts=3)
    state = poll(lambda: queue.get_job_state(job.id) == "failed" and "failed", f"job {job.id} failed")
    stored = queue.get_job(job.id)
    assert stored is not None and state == "failed"
    assert stored.attempts_made == 1
    assert "is not the dotted path of a Django task" in (stored.failed_reason or "")


def test_the_worker_can_be_narrowed_to_some_queues(django_env: dict[str, str]) -> None:
    from bullbridge.contrib.django.worker import worker_manager

    assert [w.queue for w in worker_manager(queues=["node"]).workers] == ["node"]
    assert [w.queue for w in worker_manager(aliases=["now"]).workers] == ["default"]


def test_a_settings_module_that_does_not_exist_is_one_line(django_env: dict[str, str]) -> None:
    env = {**os.environ, **django_env}
    # A failure detector (kind 4): the command fails on startup, in about a second.
    done = subprocess.run(
        [sys.executable, "-m", "bullbridge", "worker", "--django", "nope.settings"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"bullbridge worker: no Django settings module 'nope.settings' (looked in {ROOT} and the Python path): "
        "check --django, or run from your project's folder"
    ]

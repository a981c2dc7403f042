"""A real Django project for the integration tests: ``tests.contrib.djangoapp``
(SQLite in a file of the session, the session's Redis, a BullMQ prefix of the
session's own), set up once in this process; ``django_env`` is the environment a
worker process needs to see the same project."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = "tests.contrib.djangoapp.settings"
QUEUES = ("default", "node")
T = TypeVar("T")


@pytest.fixture(scope="session")
def django_env(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Set Django up in this process (once) and return the variables its settings read;
    the task backends' connections are closed at the end of the session."""
    env = {
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "BULLBRIDGE_TEST_DJANGO_DB": str(tmp_path_factory.mktemp("django") / "db.sqlite3"),
        "BULLBRIDGE_TEST_DJANGO_REDIS": redis_url,
        "BULLBRIDGE_TEST_DJANGO_PREFIX": f"dj{uuid.uuid4().hex[:6]}",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        import django
        from django.core.management import call_command

        django.setup()  # reads the settings now: the variables can go again afterwards
        call_command("migrate", run_syncdb=True, verbosity=0)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    yield env
    from bullbridge.contrib.django.compat import task_backends

    for alias in ("default", "now"):
        task_backends[alias].close()


@pytest.fixture
def backend(django_env: dict[str, str]) -> Iterator[Any]:
    """The default task backend, its queues emptied before the test."""
    from bullbridge.contrib.django.compat import task_backends

    default = task_backends["default"]
    for name in QUEUES:
        default.queue(name).obliterate(force=True)
    yield default


def poll(check: Callable[[], T | None], what: str, timeout: float = 10.0) -> T:
    """Poll until ``check()`` returns something truthy; a failure detector (kind 4)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last: {value!r})")
        time.sleep(0.01)


def finished(task: Any, result_id: str, timeout: float = 10.0) -> Any:
    """The task's result once it has finished (a failure detector, kind 4: one job, >= 5 s)."""
    return poll(lambda: (r := task.get_result(result_id)).is_finished and r, f"task result {result_id}", timeout)


class DjangoWorker:
    """``bullbridge worker --django tests.contrib.djangoapp.settings [TARGET]`` in a process of its own."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bullbridge", "--log-level", "INFO", "worker", "--django", SETTINGS, *args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def stop(self) -> tuple[int, str]:
        """SIGTERM, then its exit code and output."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        # A failure detector (kind 4): an idle worker exits at once; its drain deadline is 25 s.
        out, _ = self.proc.communicate(timeout=30)
        return self.proc.returncode, out

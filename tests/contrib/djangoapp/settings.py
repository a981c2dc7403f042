"""Settings of the test project. The session fixture (tests/contrib/conftest.py)
sets the environment first: the SQLite file, the Redis URL and a BullMQ prefix
of the session's own, so a worker process started with ``--django`` sees the
same database and queues."""

import os

SECRET_KEY = "tests-only"
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["tests.contrib.djangoapp"]
ROOT_URLCONF = "tests.contrib.djangoapp.urls"
ALLOWED_HOSTS = ["testserver"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("BULLBRIDGE_TEST_DJANGO_DB", ":memory:"),
        # Django's default: a connection lives for one request (here: one job) unless told otherwise.
        "CONN_MAX_AGE": 0,
        "ATOMIC_REQUESTS": True,  # each request one transaction: its enqueues are sent at its commit
    }
}

_OPTIONS = {
    "CONNECTION": os.environ.get("BULLBRIDGE_TEST_DJANGO_REDIS"),
    "PREFIX": os.environ.get("BULLBRIDGE_TEST_DJANGO_PREFIX", "bull"),
    "JOB_OPTIONS": {"attempts": 2},
    "WORKER": {"concurrency": 1},
}

TASKS = {
    # Sent when the transaction commits (dropped when it rolls back).
    "default": {
        "BACKEND": "bullbridge.contrib.django.BullMQBackend",
        "QUEUES": ["default", "node"],
        "OPTIONS": {**_OPTIONS, "ENQUEUE_ON_COMMIT": True},
    },
    # Sent at once, transaction or not.
    "now": {
        "BACKEND": "bullbridge.contrib.django.BullMQBackend",
        "QUEUES": ["default"],
        "OPTIONS": _OPTIONS,
    },
}

"""Which language ran a job, and which language a worker connection belongs to.

Two sources, both BullMQ's own:

* a job hash's ``pb`` (processed-by) field, written by the ``moveToActive``
  script from the worker's ``name`` option. bullbridge workers call themselves
  ``bullbridge:<name>`` (:data:`bullbridge.keys.PY_MARKER`), so
  ``pb`` starting with ``bullbridge:`` means Python; any other ``pb`` is a named
  Node worker; no ``pb`` at all is an unnamed Node worker (or the plain Python
  port, which never sends a name: the two cannot be told apart from the job);
* a connection's CLIENT SETNAME (see :mod:`bullbridge.monitor.workers`).

The ``pb`` names the worker of the job's *last* attempt: a job that failed on a
Node worker and was retried by a Python one counts for Python.
"""

from __future__ import annotations

from bullbridge.keys import PY_MARKER

PYTHON = "python"
NODE = "node"
#: The official Python port's own workers (seen only in CLIENT LIST: they write no ``pb``).
PYTHON_PORT = "python-port"
#: A finished job that no worker ever took (e.g. failed while waiting for its children).
UNKNOWN = "unknown"

#: Display order.
LANGUAGES = (PYTHON, NODE, PYTHON_PORT, UNKNOWN)

_PY_PREFIX = PY_MARKER + ":"


def is_python_worker_name(name: str) -> bool:
    """Whether a worker name (``pb`` or the ``<name>`` of ``...:w:<name>``) is bullbridge's."""
    return name.startswith(_PY_PREFIX)


def language_of_job(pb: str | None, processed_on: int | None) -> str:
    """The language that ran a job's last attempt, from its ``pb`` and ``processedOn``."""
    if pb:
        return PYTHON if is_python_worker_name(pb) else NODE
    return NODE if processed_on is not None else UNKNOWN


def display_worker_name(pb: str | None) -> str | None:
    """A worker name without bullbridge's marker (``bullbridge:py1`` -> ``py1``)."""
    if pb and is_python_worker_name(pb):
        return pb[len(_PY_PREFIX) :]
    return pb

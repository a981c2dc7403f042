"""The events a worker emits, by name.

Where Node's ``Worker`` has the event, the name and arguments are Node's;
the rest are bullbridge's own, named in Node's style (camelCase):

==================  ==========================  ==============================================
event               arguments                   Node
==================  ==========================  ==============================================
``active``          job                         ``active``
``progress``        job, value                  ``progress``
``completed``       job, result                 ``completed`` - only once Redis recorded it
``failed``          job, exception, reason      ``failed``, for the final attempt only (Node
                                                emits it for every failed attempt)
``retrying``        job, exception, delay ms    - (Node: ``failed`` with attempts left)
``drained``         -                           ``drained``
``stalled``         job id                      ``stalled``
``lockLost``        job                         - (Node: an ``error`` "Lock mismatch")
``handedBack``      job                         - (a forced shutdown put the job back in wait)
``connectionLost``  connection name, error      - (Node: ``ioredis:close``)
``reconnected``     connection name             -
``paused``          -                           ``paused``
``resumed``         -                           ``resumed``
``closing``         -                           ``closing``
``closed``          -                           ``closed``
``error``           exception                   ``error``
==================  ==========================  ==============================================
"""

from __future__ import annotations

from typing import Literal, get_args

WorkerEvent = Literal[
    "active",
    "progress",
    "completed",
    "failed",
    "retrying",
    "drained",
    "stalled",
    "lockLost",
    "handedBack",
    "connectionLost",
    "reconnected",
    "paused",
    "resumed",
    "closing",
    "closed",
    "error",
]

#: Every worker event name, for validation and docs.
WORKER_EVENTS: tuple[str, ...] = get_args(WorkerEvent)

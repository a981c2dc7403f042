"""The events a worker emits, by name.

Where Node's ``Worker`` has the event, the name and arguments are Node's;
the rest are bullbridge's own, named in Node's style (camelCase).

Every attempt a worker takes ends in exactly one of ``completed``, ``failed``,
``retrying``, ``lockLost``, ``finishFailed``, ``handedBack`` - or in none when the
handler moved the job itself (``delay_until``, ``wait_for_children``,
``rate_limit``), as in Node. The first three fire only once the script's reply
says Redis recorded the outcome:

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
``lockLost``        job                         - (Node: ``lockRenewalFailed``, or an ``error``
                                                "Lock mismatch"/"Missing lock" from the finish):
                                                once per attempt; nothing else follows for it
``finishFailed``    job, FinishNotRecorded      - (Node: an ``error`` from ``moveToFinished``):
                                                the outcome could not be written (Redis
                                                unreachable, a script error); the job stays
                                                active until BullMQ's stall recovery
``handedBack``      job                         - (back in wait, no attempt counted: a forced
                                                shutdown, or its process pool was replaced)
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
    "finishFailed",
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

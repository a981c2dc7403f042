"""One blocking queue shared by many request threads: one connection, every job exactly once."""

from __future__ import annotations

import threading
from collections.abc import Callable

import redis

from bullbridge.sync import Queue

from .conftest import producer_connections, waiting_jobs

THREADS, PER_THREAD = 8, 1_000


def test_eight_threads_share_one_queue_and_one_connection(make_queue: Callable[..., Queue], rconn: redis.Redis) -> None:
    queue = make_queue()
    start = threading.Barrier(THREADS)
    returned: dict[int, list[str]] = {}
    errors: list[BaseException] = []

    def request_thread(t: int) -> None:
        try:
            start.wait(10)  # all threads add at once
            returned[t] = [queue.add("req", {"t": t, "i": i}).id for i in range(PER_THREAD)]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=request_thread, args=(t,), name=f"request-{t}") for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)  # a failure detector (kind 4): ~2 s idle, 8,000 adds
    assert not errors, errors[:3]
    assert not any(thread.is_alive() for thread in threads)

    stored = waiting_jobs(rconn, queue)
    # Every job present exactly once, with the data its own thread gave it...
    expected = {(t, i) for t in range(THREADS) for i in range(PER_THREAD)}
    assert len(stored) == THREADS * PER_THREAD
    assert sorted((d["t"], d["i"]) for d in stored.values()) == sorted(expected)
    # ...and each thread got back the ids of its own jobs (no reply crossed to another thread).
    for t, ids in returned.items():
        assert [stored[job_id] for job_id in ids] == [{"t": t, "i": i} for i in range(PER_THREAD)], t
    # One connection for all of them (commands pipelined), not one per thread.
    assert len(producer_connections(rconn, queue)) == 1

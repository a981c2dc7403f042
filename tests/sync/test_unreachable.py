"""A blocking call while Redis is down or hung returns within its timeout: never a hang."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bullbridge import FlowJob
from bullbridge.errors import JobTimeout, RedisUnavailable
from bullbridge.sync import FlowProducer, Queue
from bullbridge.testing.redis_server import PrivateRedis, free_port
from tests.timing import record

TIMEOUT = 0.3
#: Kind 3 (tests/README.md): the call's own 0.3 s deadline + 1 s, as the async producer's
#: test_unreachable. The overhead over the deadline measured <= 0.005 s idle and <= 0.008 s
#: with stress-ng --cpu 2 (96 calls); the slack is far above 3x that.
SLACK = 1.0


def fails_in_time(call: Callable[[], Any], error: type[Exception] = RedisUnavailable, deadline: float = TIMEOUT) -> str:
    started = time.monotonic()
    with pytest.raises(error) as info:
        call()
    took = time.monotonic() - started
    record("sync/test_unreachable.fails_in_time", timeout=deadline, took=took)
    assert took < deadline + SLACK, f"failed after {took:.2f} s"
    return str(info.value)


def test_dead_port_fails_every_kind_of_call_within_timeout() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with Queue("dead", connection=url, timeout=TIMEOUT) as queue, FlowProducer(url, timeout=TIMEOUT) as flows:
        message = fails_in_time(lambda: queue.add("x", {"a": 1}))
        assert "did not answer within 0.3 s" in message
        fails_in_time(lambda: queue.add_bulk([("x", {}), ("y", {})]))
        fails_in_time(lambda: queue.get_job("1"))
        fails_in_time(lambda: queue.get_job_counts())
        fails_in_time(lambda: queue.pause())
        # Waiting for a job first needs Redis: the queue's deadline applies, not the wait's.
        fails_in_time(lambda: queue.result("1", timeout=30))
        fails_in_time(lambda: queue.wait_for("1", timeout=None))
        fails_in_time(lambda: flows.add(FlowJob("p", "dead", children=[FlowJob("c", "dead")])))


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never answers (a hung or partitioned Redis)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, name="silent-server", daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    server.close()


def test_server_that_never_answers_fails_within_timeout(silent_server: int) -> None:
    with Queue("hung", connection=f"redis://127.0.0.1:{silent_server}/0", timeout=TIMEOUT) as queue:
        fails_in_time(lambda: queue.add("x", {}))
        fails_in_time(lambda: queue.count())


def test_redis_stopped_then_back(private_redis: PrivateRedis) -> None:
    with Queue("stop", connection=private_redis.url, timeout=TIMEOUT) as queue:
        assert queue.add("x", {}).id == "1"
        private_redis.stop()
        fails_in_time(lambda: queue.add("x", {}))
        private_redis.start()
        # Same port, a fresh empty server: the queue reconnects by itself.
        assert queue.add("x", {}).id == "1"


def test_a_wait_is_bounded_by_its_own_timeout(private_redis: PrivateRedis) -> None:
    with Queue("wait", connection=private_redis.url, timeout=TIMEOUT) as queue:
        job = queue.add("x", {})
        # No worker: the job cannot finish; the 0.2 s wait must end with JobTimeout (kind 3).
        fails_in_time(lambda: queue.result(job.id, timeout=0.2), JobTimeout, deadline=0.2)

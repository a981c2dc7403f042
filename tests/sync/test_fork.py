"""A blocking queue made before ``fork`` (gunicorn --preload, uWSGI, multiprocessing):
each process adds on a connection of its own, and reads back its own replies."""

from __future__ import annotations

import json
import os
import select
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil
import redis

from bullbridge.sync import Queue

from .conftest import client_port, producer_connections

PER_PROCESS = 300
#: A failure detector (kind 4): a child adds and reads back 300 jobs in < 1 s idle.
CHILD_TIMEOUT = 60.0


def own_ports(redis_port: int) -> set[int]:
    """Local ports of this process's TCP connections to Redis (its open descriptors)."""
    return {
        c.laddr.port
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == redis_port and c.status == psutil.CONN_ESTABLISHED
    }


def add_and_read_back(queue: Queue, who: str) -> dict[str, Any]:
    """Add jobs tagged with this process, then read each back by the id ``add`` returned."""
    ids = [queue.add("x", {"pid": os.getpid(), "who": who, "i": i}).id for i in range(PER_PROCESS)]
    read = []
    for job_id in ids:
        job = queue.get_job(job_id)
        read.append(job.data if job is not None else None)
    return {"ids": ids, "read": read}


@dataclass
class Child:
    pid: int
    report_fd: int
    release_fd: int

    def report(self) -> dict[str, Any]:
        data, deadline = b"", time.monotonic() + CHILD_TIMEOUT
        while True:
            ready, _, _ = select.select([self.report_fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"child {self.pid} did not report within {CHILD_TIMEOUT} s")
            chunk = os.read(self.report_fd, 1 << 16)
            if not chunk:
                break
            data += chunk
        report: dict[str, Any] = json.loads(data)
        assert "error" not in report, report.get("error")
        return report

    def release(self) -> int:
        os.write(self.release_fd, b"x")  # a byte, not EOF: a later child inherited this write end too
        os.close(self.release_fd)
        _, status = os.waitpid(self.pid, 0)
        os.close(self.report_fd)
        return os.waitstatus_to_exitcode(status)


def fork_child(queue: Queue, redis_port: int, name: str) -> Child:
    """A child that adds with the inherited queue, reports, then stays alive (so its
    connection shows in CLIENT LIST) until the parent closes ``release``."""
    report_r, report_w = os.pipe()
    release_r, release_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; never returns into pytest
        code = 0
        try:
            os.close(report_r)
            os.close(release_w)
            inherited = own_ports(redis_port)
            report = {"pid": os.getpid(), "inherited_ports": sorted(inherited), **add_and_read_back(queue, name)}
            report["ports"] = sorted(own_ports(redis_port))
        except BaseException:
            report, code = {"error": traceback.format_exc()}, 1
        try:
            os.write(report_w, json.dumps(report).encode())
            os.close(report_w)
            os.read(release_r, 1)
        finally:
            os._exit(code)
    os.close(report_w)
    os.close(release_r)
    return Child(pid, report_r, release_w)


def test_parent_and_two_children_each_add_on_their_own_connection(
    make_queue: Callable[..., Queue], rconn: redis.Redis, redis_url: str
) -> None:
    queue = make_queue()
    redis_port = int(rconn.connection_pool.connection_kwargs["port"])
    queue.add("before-fork", {})  # the parent's loop thread and connection are up and in use
    before = producer_connections(rconn, queue)
    assert len(before) == 1
    parent_port = client_port(before[0])
    assert parent_port in own_ports(redis_port)

    children = [fork_child(queue, redis_port, f"child-{k}") for k in range(2)]
    try:
        mine = add_and_read_back(queue, "parent")  # while the children add too
        reports = [child.report() for child in children]

        # No crossed replies: every process read back exactly the jobs it added.
        for who, result, pid in [("parent", mine, os.getpid())] + [
            (f"child-{k}", r, r["pid"]) for k, r in enumerate(reports)
        ]:
            assert result["read"] == [{"pid": pid, "who": who, "i": i} for i in range(PER_PROCESS)], who
        all_ids = mine["ids"] + [i for r in reports for i in r["ids"]]
        assert len(set(all_ids)) == 3 * PER_PROCESS
        assert rconn.llen(queue.keys["wait"]) == 1 + 3 * PER_PROCESS

        # No shared socket: three producer connections, one per process.
        producers = {client_port(c) for c in producer_connections(rconn, queue)}
        assert len(producers) == 3 and parent_port in producers
        for report in reports:
            # The inherited descriptor of the parent's connection was let go at fork, before any use...
            assert parent_port not in report["inherited_ports"]
            assert parent_port not in report["ports"]
            # ...and the child's queue connected on its own.
            assert len(producers & set(report["ports"])) == 1, (producers, report["ports"])
        child_ports = [p for r in reports for p in producers & set(r["ports"])]
        assert len(set(child_ports)) == 2 and parent_port not in child_ports
        assert own_ports(redis_port) & producers == {parent_port}
        # The parent's own connection was never disturbed: it still works.
        assert queue.add("after", {}).id not in all_ids
    finally:
        codes = [child.release() for child in children]
    assert codes == [0, 0]

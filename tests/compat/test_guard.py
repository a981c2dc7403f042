"""The version-skew guard: a queue's ``meta.version`` (written by Node) against the matrix."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from bullbridge.compat import (
    check_queue_versions,
    differences_for,
    is_tested,
    parse_meta_version,
    parse_version,
    recommended_node,
)
from bullbridge.conformance import wait_until
from bullbridge.connection import connect
from bullbridge.connection.resp import RespClient
from bullbridge.keys import QueueKeys
from bullbridge.testing.node import NodeDriver


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[RespClient]:
    connector = connect(redis_url)
    yield connector.fast("bullbridge:test-compat")
    await connector.close()


async def test_node5_queue_warns_once_naming_what_breaks(
    client: RespClient, queue_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    keys = QueueKeys(queue_name)
    await client.execute("HSET", keys["meta"], "version", "bullmq:5.81.5")  # as Node 5.81.5's Queue writes it
    with caplog.at_level(logging.WARNING, logger="bullbridge.compat"):
        first = await check_queue_versions(client, keys)
        again = await check_queue_versions(client, keys)
    assert len(first) == 2 and again == []
    assert "pause_resume[P->N]" in first[0] and "lost when Node resumes it" in first[0]
    assert "pause_resume_idle[P->N]" in first[1]
    assert all(queue_name in m and "bullmq 5.81.5" in m for m in first)
    warned = [r.getMessage() for r in caplog.records if r.name == "bullbridge.compat" and r.levelno == logging.WARNING]
    assert warned == first
    other = QueueKeys(queue_name + "-other")
    await client.execute("HSET", other["meta"], "version", "bullmq:5.0.0")
    assert len(await check_queue_versions(client, other)) == 2, "once per queue, not once per process"


async def test_a_queue_of_node_6_is_quiet(node: NodeDriver, client: RespClient, queue_name: str) -> None:
    keys = QueueKeys(queue_name)
    await node.queue_call(queue_name, "getJobCounts")  # Node's Queue writes meta.version when it connects
    await wait_until(lambda: client.execute("HGET", keys["meta"], "version"), 5, "Node writes meta.version")
    assert await client.execute("HGET", keys["meta"], "version") == f"bullmq:{node.bullmq_version}".encode()
    assert await check_queue_versions(client, keys) == []


async def test_no_version_other_libraries_and_untested_versions_are_quiet(client: RespClient, queue_name: str) -> None:
    assert await check_queue_versions(client, QueueKeys(queue_name)) == []
    for suffix, version in (("pro", "bullmq-pro:7.9.0"), ("old", "bullmq:4.17.0"), ("junk", "garbage")):
        keys = QueueKeys(f"{queue_name}-{suffix}")
        await client.execute("HSET", keys["meta"], "version", version)
        assert await check_queue_versions(client, keys) == []


def test_version_parsing_and_lookups() -> None:
    assert parse_version("6.7.0") == (6, 7, 0)
    assert parse_version("v5.81.5") == (5, 81, 5)
    assert parse_version("6.8.0-beta.1") == (6, 8, 0)
    assert parse_version("7") == (7, 0, 0)
    assert parse_version("next") is None
    assert parse_meta_version(b"bullmq:6.7.0") == ("bullmq", "6.7.0")
    assert parse_meta_version("bullmq-pro:7.9.0") == ("bullmq-pro", "7.9.0")
    assert parse_meta_version("6.7.0") is None and parse_meta_version(None) is None
    assert [d.scenario for d in differences_for("5.81.5", "3.4.4")] == ["pause_resume[P->N]", "pause_resume_idle[P->N]"]
    assert differences_for("6.7.0", "3.4.4") == [] and differences_for("5.81.5", "3.5.0") == []
    assert is_tested("5.1.0") and is_tested("6.9.9") and not is_tested("4.17.0")
    assert recommended_node("3.4.4") == "6.7.0"

"""The version-skew guard: a queue's ``meta.version`` (written by Node) against the matrix."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from bullbridge import compat
from bullbridge.compat import (
    KNOWN,
    PROVEN,
    UNSEEN,
    KnownDifference,
    check_queue_versions,
    differences_for,
    is_tested,
    pair_verdict,
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


async def test_a_listed_difference_warns_once_per_queue_naming_what_breaks(
    client: RespClient, queue_name: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard itself: the matrix lists no unsafe difference today (the Node 5 paused-list
    loss is handled by bullbridge.protocol), so one is listed for this test."""
    diff = KnownDifference(
        "pause_resume[P->N]",
        ((5, 0, 0), (6, 0, 0)),
        ((3, 4, 4), (3, 5, 0)),
        "a job would be lost",
        doc="docs/port-differences.md#node5-paused",
    )
    monkeypatch.setattr(compat, "KNOWN_DIFFERENCES", (diff,))
    keys = QueueKeys(queue_name)
    await client.execute("HSET", keys["meta"], "version", "bullmq:5.81.5")  # as Node 5.81.5's Queue writes it
    with caplog.at_level(logging.WARNING, logger="bullbridge.compat"):
        first = await check_queue_versions(client, keys)
        again = await check_queue_versions(client, keys)
    assert len(first) == 1 and again == []
    assert "pause_resume[P->N]" in first[0] and "a job would be lost" in first[0] and "bullmq 5.81.5" in first[0]
    warned = [r.getMessage() for r in caplog.records if r.name == "bullbridge.compat" and r.levelno == logging.WARNING]
    assert warned == first
    other = QueueKeys(queue_name + "-other")
    await client.execute("HSET", other["meta"], "version", "bullmq:5.0.0")
    assert len(await check_queue_versions(client, other)) == 1, "once per queue, not once per process"


async def test_node5_queues_are_quiet_now(client: RespClient, queue_name: str) -> None:
    keys = QueueKeys(queue_name)
    await client.execute("HSET", keys["meta"], "version", "bullmq:5.81.5")
    assert await check_queue_versions(client, keys) == []


async def test_a_queue_of_node_6_is_quiet(node: NodeDriver, client: RespClient, queue_name: str) -> None:
    keys = QueueKeys(queue_name)
    await node.queue_call(queue_name, "getJobCounts")  # Node's Queue writes meta.version when it connects
    await wait_until(lambda: client.execute("HGET", keys["meta"], "version"), 5, "Node writes meta.version")
    assert await client.execute("HGET", keys["meta"], "version") == f"bullmq:{node.bullmq_version}".encode()
    assert await check_queue_versions(client, keys) == []


async def test_no_version_other_libraries_and_untested_versions_are_quiet(client: RespClient, queue_name: str) -> None:
    assert await check_queue_versions(client, QueueKeys(queue_name)) == []
    for suffix, version in (("pro", "bullmq-pro:7.9.0"), ("future", "bullmq:7.1.0"), ("junk", "garbage")):
        keys = QueueKeys(f"{queue_name}-{suffix}")
        await client.execute("HSET", keys["meta"], "version", version)
        assert await check_queue_versions(client, keys) == []
    old = QueueKeys(f"{queue_name}-old")
    await client.execute("HSET", old["meta"], "version", "bullmq:4.17.0")
    warned = await check_queue_versions(client, old)
    assert warned and all("bullmq 4.17.0" in m for m in warned)
    assert any("'0:<delay>' marker job id" in m for m in warned), warned


def test_version_parsing_and_lookups() -> None:
    assert parse_version("6.7.0") == (6, 7, 0)
    assert parse_version("v5.81.5") == (5, 81, 5)
    assert parse_version("6.8.0-beta.1") == (6, 8, 0)
    assert parse_version("7") == (7, 0, 0)
    assert parse_version("next") is None
    assert parse_meta_version(b"bullmq:6.7.0") == ("bullmq", "6.7.0")
    assert parse_meta_version("bullmq-pro:7.9.0") == ("bullmq-pro", "7.9.0")
    assert parse_meta_version("6.7.0") is None and parse_meta_version(None) is None
    assert differences_for("5.81.5", "3.4.4") == [] and differences_for("6.7.0", "3.4.4") == []
    tested = compat.TESTED_NODE
    assert is_tested(tested[0]) and not is_tested("5.63.2")
    assert recommended_node("3.4.4") == max(tested, key=lambda v: parse_version(v) or (0, 0, 0))


def test_pair_verdicts_prove_know_or_have_never_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compat, "TESTED_NODE", ("5.20.0", "5.60.0", "5.81.5", "6.7.0"))
    monkeypatch.setattr(compat, "KNOWN_DIFFERENCES", ())
    proven = pair_verdict("5.81.5", "3.4.4")
    assert proven.verdict == PROVEN and "passes" in proven.explain()
    unseen = pair_verdict("5.63.2", "3.4.4")
    assert unseen.verdict == UNSEEN and unseen.neighbours == ("5.60.0", "5.81.5")
    assert "same protocol epoch" in unseen.explain()
    across = pair_verdict("5.40.0", "3.4.4")  # between 5.20 and 5.60: the deduplication modes came in 5.56
    assert across.verdict == UNSEEN and "same protocol epoch" not in across.explain()
    assert pair_verdict("5.81.5", "3.3.0").verdict == UNSEEN, "another port version: never seen"
    diff = KnownDifference(
        "plain_job[N->P]",
        ((5, 0, 0), (5, 50, 0)),
        ((3, 4, 4), (3, 5, 0)),
        "breaks",
        doc="docs/port-differences.md#pre-5-protocol",
    )
    monkeypatch.setattr(compat, "KNOWN_DIFFERENCES", (diff,))
    known = pair_verdict("5.20.0", "3.4.4")
    assert (
        known.verdict == KNOWN
        and known.differences == (diff,)
        and "docs/port-differences.md#pre-5-protocol" in known.explain()
    )


def test_epochs_are_ordered_and_bracketed_by_tested_versions() -> None:
    assert list(compat.EPOCHS) == sorted(compat.EPOCHS, key=lambda e: e.since)
    for epoch in compat.EPOCHS:
        before, after = parse_version(epoch.before), parse_version(epoch.after)
        assert before is not None and after is not None and before < epoch.since <= after, epoch
    assert compat.epoch_of("5.81.5") == next(e for e in compat.EPOCHS if e.name == "deduplication modes")
    assert compat.epoch_of("3.15.8") is None

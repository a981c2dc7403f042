"""Fixtures of the doctor tests: a 3-master cluster (the harness's PrivateCluster)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bullbridge.testing.redis_server import PrivateCluster, PrivateRedis


@pytest.fixture
def redis_cluster() -> Iterator[list[PrivateRedis]]:
    """Three cluster-enabled redis-servers on loopback (16384 slots, no replicas)."""
    with PrivateCluster() as cluster:
        yield cluster.nodes

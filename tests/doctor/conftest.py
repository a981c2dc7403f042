"""Fixtures of the doctor tests: misconfigured private servers and a 3-master cluster."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from bullbridge.redis_server import PrivateRedis, find_redis_binary


@pytest.fixture
def redis_cluster() -> Iterator[list[PrivateRedis]]:
    """Three cluster-enabled redis-servers on loopback, joined by ``redis-cli --cluster create``
    (16384 slots over 3 masters, no replicas). About a second to start."""
    cli = shutil.which("redis-cli") or find_redis_binary("redis-cli")
    with ExitStack() as stack:
        nodes = [stack.enter_context(PrivateRedis(extra_args=(
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
        ))) for _ in range(3)]
        create = subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes), "--cluster-yes"],
            capture_output=True, text=True, timeout=60, check=False)
        if create.returncode != 0:
            pytest.fail(f"redis-cli --cluster create failed: {create.stdout[-800:]} {create.stderr[-800:]}")
        deadline = time.monotonic() + 20
        while True:
            states = [subprocess.run([cli, "-p", str(n.port), "CLUSTER", "INFO"], capture_output=True, text=True,
                                     timeout=10, check=False).stdout for n in nodes]
            if all("cluster_state:ok" in s for s in states):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"cluster not ok within 20 s: {states}")
            time.sleep(0.05)
        yield nodes

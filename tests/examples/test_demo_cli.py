"""``bullbridge demo``: the two-way exchange an installed wheel can run."""

from __future__ import annotations

import asyncio
import os
import sys

from bullbridge.connection import connect
from bullbridge.keys import scan


async def test_demo_exchanges_jobs_both_ways_and_leaves_no_keys(redis_url: str) -> None:
    env = {**os.environ, "BULLBRIDGE_REDIS_URL": redis_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bullbridge",
        "demo",
        "--jobs",
        "20",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)  # failure detector: the run takes ~3 s
    text = out.decode()
    assert proc.returncode == 0, text
    assert "Node->Python" in text and "Python->Node" in text and "all jobs completed" in text, text
    connector = connect(redis_url)
    try:
        left = [key async for batch in scan(connector.fast("test"), "bull:demo-*") for key in batch]
    finally:
        await connector.close()
    assert left == [], f"the demo left {len(left)} keys behind: {left[:5]}"

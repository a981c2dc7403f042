"""The matrix runner's command line over bullbridge's conformance scenarios.

The scenarios themselves - each an ``async def(ctx)`` run both ways, ``N->P``
(Node produces or sets up, Python consumes or observes) and ``P->N`` (the
reverse) - live in :mod:`bullbridge.conformance`, the library behind
``bullbridge interop check`` that ships to users. This module
adds only what the matrix needs beyond that library: running the scenarios
against one version pair, in the environment that holds it, and writing the
results as JSON for ``compat/run.py``.

``compat/run.py`` runs this module as ``python -m compat.scenarios`` once per
version pair, inside an environment that holds that pair (a temporary venv
with the port version under test; a temporary ``node_modules`` with the Node
version under test) and reads the JSON it writes.
``tests/compat/test_pinned_pair.py`` runs the same
:data:`bullbridge.conformance.SCENARIOS` against the pinned pair inside
the normal test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bullbridge.conformance import Scenario, run_scenario, select
from bullbridge.testing.node import DEFAULT_DRIVER, NodeDriver

log = logging.getLogger("bullbridge.compat.scenarios")


def chosen(only: list[str] | None) -> list[Scenario]:
    """:func:`select` for a command line: an unknown name exits with a message."""
    try:
        return select(only)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None


def port_version() -> str:
    from importlib.metadata import version

    return version("bullmq")


async def redis_version(redis_url: str) -> str:
    from bullbridge.connection import connect, parse_info

    connector = connect(redis_url)
    try:
        info = parse_info(await connector.fast("bullbridge-compat").execute("INFO", "server"))
        return info.get("redis_version", "unknown")
    finally:
        await connector.close()


async def run_all(
    redis_url: str, driver: Path, node_path: str | None, only: list[str] | None, expect_node: str | None
) -> dict[str, Any]:
    scenarios = chosen(only)
    node = NodeDriver(redis_url, driver=driver, node_path=node_path)
    await node.start()
    try:
        if expect_node and node.bullmq_version != expect_node:
            raise SystemExit(
                f"the Node driver loaded bullmq {node.bullmq_version}, not {expect_node}: "
                "check NODE_PATH and that the driver sits outside any node_modules tree"
            )
        info = await node.call("ping")
        results = []
        for s in scenarios:
            result = await run_scenario(s, redis_url, node)
            log.info("%-34s %s %.2fs %s", s.id, result.status, result.seconds, result.error or "")
            results.append(asdict(result))
        return {
            "node_bullmq": node.bullmq_version,
            "node": info["node"],
            "python_port": port_version(),
            "python": sys.version.split()[0],
            "redis": await redis_version(redis_url),
            "results": results,
        }
    finally:
        await node.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m compat.scenarios", description="Run the interop scenarios against one version pair"
    )
    parser.add_argument("--redis", required=True, metavar="URL")
    parser.add_argument("--driver", type=Path, default=DEFAULT_DRIVER, help="the Node driver script")
    parser.add_argument("--node-path", help="NODE_PATH for the driver (a node_modules holding bullmq)")
    parser.add_argument("--expect-node", metavar="VERSION", help="refuse to run unless the driver loads this bullmq")
    parser.add_argument("--only", action="append", help="scenario name, id or group (repeatable)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    chosen(args.only)  # an unknown name fails before Node starts
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("bullbridge.worker").setLevel(logging.ERROR)
    report = asyncio.run(run_all(args.redis, args.driver, args.node_path, args.only, args.expect_node))
    text = json.dumps(report, indent=2, ensure_ascii=False)
    if args.json:
        args.json.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

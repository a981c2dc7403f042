"""``python -m examples.layer15``: run the layer's workers until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import sys

from examples.layer15.app import make


async def main() -> int:
    return await make().run()  # 0 when every active job finished before the exit


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(main()))

"""``bullbridge demo``: jobs exchanged both ways, Node -> Python and Python -> Node.

It needs only what an installed wheel has, plus Node.js with npm ``bullmq``
(and ``ioredis``) where Node can find them; the whole reference app
(``examples/layer15``, ``make demo``) is part of a checkout. It runs on
``BULLBRIDGE_REDIS_URL`` when set, else on a private ``redis-server``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import click

from bullbridge.cli.build import command, option
from bullbridge.connection import redis_url_from_env
from bullbridge.errors import MissingDependency
from bullbridge.queue import Queue
from bullbridge.redact import redact
from bullbridge.testing.node import NodeDriver, NodeSetupError
from bullbridge.testing.redis_server import PrivateRedis
from bullbridge.worker import Worker


def register(root: click.Group) -> None:
    command(
        root,
        "demo",
        run,
        [
            option("--jobs", type=int, default=200, help="jobs in each direction (default 200)"),
            option("--quick", is_flag=True, hidden=True),  # the old name of this demo
        ],
        help="exchange jobs with Node BullMQ both ways (Node->Python, Python->Node) on a private Redis",
        description="Node enqueues jobs for a Python worker and Python for a Node worker, with a live bar and "
        "a summary. Uses BULLBRIDGE_REDIS_URL when set. The full reference app runs with "
        "`make demo` in a checkout.",
    )


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(run_demo(args.jobs))
    except NodeSetupError as exc:
        raise MissingDependency(
            f"the demo needs Node.js 20+ with npm bullmq ({exc}): run `npm install bullmq ioredis` in a folder, "
            "then BULLBRIDGE_NODE_MODULES=<that folder>/node_modules bullbridge demo"
        ) from None


@dataclass
class Direction:
    label: str
    total: int
    done: int = 0
    failed: int = 0
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None

    @property
    def wall(self) -> float:
        return (self.finished or time.perf_counter()) - self.started


def _bar(dirs: list[Direction], width: int = 24) -> str:
    parts = []
    for d in dirs:
        filled = int(width * d.done / d.total) if d.total else width
        parts.append(f"{d.label} [{'#' * filled}{'.' * (width - filled)}] {d.done}/{d.total}")
    return "  ".join(parts)


class _Live:
    """The live view: rich's progress bars on a terminal; a plain line a second otherwise (a log, CI)."""

    def __init__(self, out: TextIO, dirs: list[Direction]) -> None:
        self.out, self.dirs = out, dirs
        self.progress: Any = None
        self.tasks: list[Any] = []
        if out.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(file=out),
            )
            self.tasks = [self.progress.add_task(d.label, total=d.total) for d in dirs]
            self.progress.start()

    @property
    def interval(self) -> float:
        return 0.1 if self.progress is not None else 1.0

    def update(self) -> None:
        if self.progress is None:
            print(_bar(self.dirs), file=self.out, flush=True)
            return
        for task, d in zip(self.tasks, self.dirs):
            self.progress.update(task, completed=d.done + d.failed)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _summary(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    """The result table: rich's on a terminal, aligned plain text otherwise."""
    print(file=out)
    if out.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*rows[0])
        for row in rows[1:]:
            table.add_row(*row)
        Console(file=out).print(table)
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)), file=out)
        if i == 0:
            print("  ".join("-" * w for w in widths), file=out)


async def run_demo(jobs: int = 200, out: TextIO = sys.stdout) -> int:
    """The quick demo; returns the exit status (0 when every job completed)."""
    url = redis_url_from_env()
    server = None
    if url is None:
        server = PrivateRedis().start()
        url = server.url
    try:
        return await _demo(url, jobs, out)
    finally:
        if server is not None:
            server.stop()


async def _demo(url: str, jobs: int, out: TextIO) -> int:
    stamp = f"{int(time.time())}"
    n2p_queue, p2n_queue = f"demo-n2p-{stamp}", f"demo-p2n-{stamp}"
    n2p, p2n = Direction("Node->Python", jobs), Direction("Python->Node", jobs)
    print(f"bullbridge demo on {redact(url)}: {jobs} jobs each way", file=out)
    async with NodeDriver(url) as node:
        print(f"Node BullMQ {node.bullmq_version} ready", file=out)
        worker = Worker(n2p_queue, connection=url, concurrency=8, name="demo")

        @worker.handler("thumbnail")
        async def thumbnail(job: Any) -> dict[str, Any]:
            await job.update_progress(50)
            side = int(job.data["size"])
            return {"image": job.data["image"], "thumb": f"{side // 4}x{side // 4}"}

        def finished(job: Any, *_: Any) -> None:
            n2p.done += 1
            if n2p.done + n2p.failed >= n2p.total:
                n2p.finished = time.perf_counter()

        def failed(job: Any, *_: Any) -> None:
            n2p.failed += 1
            finished(job)
            n2p.done -= 1

        worker.on("completed", finished)
        worker.on("failed", failed)
        await worker.start()
        handle = await node.start_worker(
            p2n_queue, "async job => ({ to: job.data.to, words: job.data.body.split(' ').length })", concurrency=8
        )
        producer = Queue(p2n_queue, connection=url)
        try:
            await node.call(
                "queue.addBulk",
                queue=n2p_queue,
                jobs=[{"name": "thumbnail", "data": {"image": f"img-{i}.png", "size": 1024}} for i in range(jobs)],
            )
            enqueued = await producer.add_bulk(
                [("email", {"to": f"user{i}@example.com", "body": "hello from python"}) for i in range(jobs)]
            )
            results = asyncio.ensure_future(asyncio.gather(*(producer.wait_for(e.id, timeout=60) for e in enqueued)))
            live = _Live(out, [n2p, p2n])
            deadline = time.monotonic() + 120
            try:
                while time.monotonic() < deadline:
                    p2n.done = sum(1 for e in node.events[handle] if e.event == "completed")
                    p2n.failed = sum(1 for e in node.events[handle] if e.event == "failed")
                    if p2n.done + p2n.failed >= jobs and p2n.finished is None:
                        p2n.finished = time.perf_counter()
                    live.update()
                    if n2p.finished and p2n.finished:
                        break
                    await asyncio.sleep(live.interval)
            finally:
                live.stop()
            outcomes = await results
        finally:
            await node.close_worker(handle)
            await worker.close(timeout=10)
            # The demo's two queues were made for it: leave nothing behind in the user's Redis.
            for name in (n2p_queue, p2n_queue):
                async with Queue(name, connection=url) as queue:
                    await queue.obliterate(force=True)
            await producer.close()
    p2n_failed = sum(1 for o in outcomes if o.state != "completed")
    rows = [
        ("direction", "jobs", "completed", "failed", "wall s", "jobs/s"),
        *[
            (d.label, str(d.total), str(d.done), str(d.failed), f"{d.wall:.2f}", f"{d.done / d.wall:,.0f}")
            for d in (n2p, p2n)
        ],
    ]
    _summary(rows, out)
    ok = n2p.done == jobs and p2n.done == jobs and p2n_failed == 0
    print(f"\n{'all jobs completed' if ok else 'SOME JOBS DID NOT COMPLETE'}", file=out)
    return 0 if ok else 1

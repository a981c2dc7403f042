"""A worker in its own process, for tests that kill it or that it might kill.

    python -m tests.worker.proc_worker IMPL QUEUE REDIS_URL BEHAVIOUR [SETTINGS_JSON]

IMPL is ``bullbridge`` or ``port``; BEHAVIOUR is ``sleep:<seconds>`` (return
"py" after sleeping) or ``raise:<ExceptionName>`` (raise it on the first job,
succeed afterwards). Prints one JSON line per event (ready, start, done) on
stdout so the test can follow along.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import signal
import sys
from typing import Any


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def main(impl: str, queue: str, url: str, behaviour: str, settings: dict[str, Any]) -> None:
    kind, _, arg = behaviour.partition(":")
    raised = False

    async def body(job_id: str) -> str:
        nonlocal raised
        emit("start", id=job_id)
        if kind == "sleep":
            await asyncio.sleep(float(arg))
        elif kind == "raise" and not raised:
            raised = True
            exc = getattr(builtins, arg, None) or getattr(asyncio, arg)
            raise exc(3) if arg == "SystemExit" else exc()
        emit("done", id=job_id)
        return "py"

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    if impl == "bullbridge":
        from bullbridge import Worker

        async def handler(job: Any) -> str:
            return await body(job.id)

        worker = Worker(queue, handler, connection=url, **settings)
        await worker.start()
        emit("ready")
        await stop.wait()
        await worker.close(timeout=5)
    else:
        import bullmq

        async def processor(job: Any, token: str) -> str:
            return await body(job.id)

        opts = {"connection": url, **settings}
        port_worker = bullmq.Worker(queue, processor, opts)
        emit("ready")
        await stop.wait()
        await port_worker.close(force=True)


if __name__ == "__main__":
    extra = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], extra))

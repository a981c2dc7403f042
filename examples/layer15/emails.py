"""The email worker: transactional emails by priority, at most 100 a minute,
and the weekly newsletter fanned out over an hour.

Node's email worker (``interop/layer15/workers.js``) serves the same queue with
the same job names while the queue moves to Python: both read the same data and
return the same shape, so either may take any job.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from bullbridge import ActiveJob, Queue
from bullbridge.queue import JobSpec

TEMPLATES = {
    "password-reset": "Reset your password, {name}.",
    "welcome": "Welcome aboard, {name}!",
    "newsletter": "This week at Example, {name}...",
}
#: BullMQ priorities (lower runs first): in a backlog, password resets overtake the newsletter.
PRIORITY = {"password-reset": 1, "welcome": 5, "newsletter": 10}


class TransientSmtpError(Exception):
    """The mail provider said "try again later": the job is retried with backoff."""


async def deliver(to: str, body: str) -> str:
    """Stands in for your mail provider: 20-60 ms a message, 2 % of calls fail transiently."""
    await asyncio.sleep(random.uniform(0.02, 0.06))
    if random.random() < 0.02:
        raise TransientSmtpError(f"421 4.7.0 try again later ({to})")
    return f"<{random.getrandbits(64):016x}@mail.example.com>"


async def send(job: ActiveJob) -> dict[str, Any]:
    to, template = job.data["to"], job.data["template"]
    job.update_progress(10)  # progress writes go out in order, before the job completes: no need to await
    body = TEMPLATES[template].format(name=job.data.get("name") or to)
    job.update_progress(50)
    message_id = await deliver(to, body)
    job.update_progress(100)
    return {"to": to, "template": template, "message_id": message_id}


def handlers(emails: Queue) -> dict[str, Any]:
    """The email queue's handlers; ``emails`` adds the newsletter's ``send`` jobs."""

    async def newsletter(job: ActiveJob) -> dict[str, Any]:
        """One ``send`` per subscriber, each delayed at random within ``spread_ms``
        (an hour), so the issue trickles out under the rate limit."""
        audience = [f"reader{i}@example.com" for i in range(job.data["audience"])]  # your subscriber store
        spread = int(job.data["spread_ms"])
        sent = await emails.add_bulk(
            JobSpec(
                "send",
                {"to": to, "template": "newsletter", "issue": job.data["issue"]},
                {"priority": PRIORITY["newsletter"], "delay": random.randrange(spread)},
            )
            for to in audience
        )
        return {"issue": job.data["issue"], "queued": len(sent)}

    return {"send": send, "newsletter": newsletter}

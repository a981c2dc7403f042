"""The Python half of the example: a billing worker fed by the Node API, and a
welcome-email producer feeding the Node email service.

Run for real with ``python billing.py`` (``REDIS_URL`` or localhost).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from bullbridge import Queue, Worker

BILLING_QUEUE = "billing"  # Node API -> this worker
EMAIL_QUEUE = "email"  # this service -> the Node email worker

VAT = {"DE": 0.19, "FR": 0.20, "NL": 0.21}


async def handle_invoice(job: Any) -> dict[str, Any]:
    """Turn an order from the Node API into an invoice."""
    data = job.data
    country = data["customer"]["country"]
    if country not in VAT:
        raise ValueError(f"no VAT rate for country {country!r}")
    net = int(data["amountCents"])
    vat = round(net * VAT[country])
    await job.update_progress(100)
    return {
        "invoice": f"INV-{data['orderId']}",
        "net": net,
        "vat": vat,
        "total": net + vat,
        "currency": data["currency"],
    }


HANDLERS = {"invoice": handle_invoice}


async def send_welcome(producer: Queue, user: dict[str, str]) -> str:
    """Ask the Node email service to send a welcome email; returns the job id."""
    job = await producer.add(
        "welcome",
        {"to": user["email"], "name": user["name"], "template": "welcome"},
        attempts=5,
        backoff=2000,
        remove_on_complete=100,
    )
    return job.id


async def main() -> None:
    url = os.environ.get("REDIS_URL", "redis://localhost:6379")
    worker = Worker(BILLING_QUEUE, HANDLERS, connection=url)
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main())

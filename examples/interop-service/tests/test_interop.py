"""Interop tests of this example's services, with bullbridge's pytest plugin.

Copy this file into your project and change the paths and names below: the
Node modules are your own processor and producer; the Python parts are your
handlers and producer code. Run with plain ``pytest`` (after ``npm install``):
a private Redis is started for the session, each test gets a key prefix of its
own, and its Node side runs the ``bullmq`` from your ``node_modules``.
"""

from __future__ import annotations

from pathlib import Path

from billing import BILLING_QUEUE, EMAIL_QUEUE, HANDLERS, send_welcome

ROOT = Path(__file__).resolve().parents[1]
EMAIL_PROCESSOR = ROOT / "node" / "processor.js"  # module.exports = async job => ...
BILLING_PRODUCER = ROOT / "node" / "enqueue.js"  # exports.enqueueInvoice = async (queue, order) => queue.add(...)

ADA = {"email": "ada@example.com", "name": "Ada"}
ORDER = {
    "id": "A-1001",
    "email": "grace@example.com",
    "country": "DE",
    "amount": 12.5,
    "lines": [{"sku": "book", "qty": 2}],
}


# --- Python producer -> the Node email worker -----------------------------------------------


async def test_welcome_email_is_sent_by_the_node_worker(bullbridge_interop, bullbridge_node_worker) -> None:
    worker = await bullbridge_node_worker(EMAIL_QUEUE, EMAIL_PROCESSOR)
    job_id = await send_welcome(bullbridge_interop.python_producer(EMAIL_QUEUE), ADA)

    view = await bullbridge_interop.wait_for(EMAIL_QUEUE, job_id)
    view.assert_completed({"sent": True, "to": "ada@example.com", "body": "Welcome aboard, Ada!"})
    assert view.progress == 100
    assert view.logs == ("rendering welcome for ada@example.com",)
    # What the Node processor was called with: data and options as Node reads them.
    [received] = worker.received
    assert received.data == {"to": "ada@example.com", "name": "Ada", "template": "welcome"}
    assert received.opts["attempts"] == 5 and received.opts["backoff"] == {"type": "fixed", "delay": 2000}


async def test_a_bad_recipient_fails_in_node_with_a_clear_reason(bullbridge_interop, bullbridge_node_worker) -> None:
    await bullbridge_node_worker(EMAIL_QUEUE, EMAIL_PROCESSOR)
    job = await bullbridge_interop.python_producer(EMAIL_QUEUE).add("welcome", {"to": "nobody"})

    view = await bullbridge_interop.wait_for(EMAIL_QUEUE, job.id)
    view.assert_failed('invalid recipient: "nobody"')


# --- the Node billing API -> the Python billing worker ---------------------------------------


async def test_node_invoice_is_processed_by_python(
    bullbridge_interop, bullbridge_worker, bullbridge_node_producer
) -> None:
    worker = await bullbridge_worker(BILLING_QUEUE, HANDLERS)
    enqueue_invoice = bullbridge_node_producer(BILLING_PRODUCER, export="enqueueInvoice")
    produced = await enqueue_invoice(BILLING_QUEUE, ORDER)
    assert produced.id == "invoice-A-1001"

    # Node reads back what the Python handler returned.
    view = await bullbridge_interop.wait_for(BILLING_QUEUE, produced.id, seen_by="node")
    view.assert_completed({"invoice": "INV-A-1001", "net": 1250, "vat": 238, "total": 1488, "currency": "EUR"})
    assert worker.received[0].data["customer"] == {"email": "grace@example.com", "country": "DE"}


# --- contracts: each side records what it writes; the other side replays it -----------------


async def test_node_billing_producer_contract(
    bullbridge_interop, bullbridge_node_producer, bullbridge_contracts
) -> None:
    """Fails when the Node API changes what it enqueues (update with --bullbridge-update-contracts)."""
    enqueue_invoice = bullbridge_node_producer(BILLING_PRODUCER, export="enqueueInvoice")
    await enqueue_invoice(BILLING_QUEUE, ORDER)
    await enqueue_invoice(BILLING_QUEUE, {**ORDER, "id": "A-1002", "country": "FR", "currency": "USD"})
    recorded = await bullbridge_interop.record(BILLING_QUEUE, producer="node")
    bullbridge_contracts.check(recorded, "invoice-from-node")


async def test_python_billing_worker_accepts_the_node_contract(bullbridge_interop, bullbridge_contracts) -> None:
    """Fails when the Python handler stops accepting what the Node API sends - or changes the shape
    of what it returns, which the Node API reads back (keys and JSON types, pinned in a .results file)."""
    contract = bullbridge_contracts.load("invoice-from-node")
    replay = await bullbridge_interop.replay(contract, HANDLERS)
    replay.assert_all_completed()
    bullbridge_contracts.check(replay.results(shape=True), "invoice-from-node.results")


async def test_python_welcome_producer_contract(bullbridge_interop, bullbridge_contracts) -> None:
    """Fails when the Python side changes what it enqueues for the Node email worker."""
    await send_welcome(bullbridge_interop.python_producer(EMAIL_QUEUE), ADA)
    recorded = await bullbridge_interop.record(EMAIL_QUEUE, producer="python")
    bullbridge_contracts.check(recorded, "welcome-from-python")


async def test_node_email_worker_accepts_the_python_contract(bullbridge_interop, bullbridge_contracts) -> None:
    """Fails when the Node email processor stops accepting what Python sends."""
    contract = bullbridge_contracts.load("welcome-from-python")
    replay = await bullbridge_interop.replay_to_node(contract, EMAIL_PROCESSOR)
    replay.assert_all_completed()
    assert [r.data["to"] for r in replay.received] == ["ada@example.com"]

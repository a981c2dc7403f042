"""Contracts: recording what a producer writes, checking it against the committed
file, and replaying it through the other language's consumer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bullbridge.testing import Contract, ContractMismatch, ContractStore, Interop, RecordedJob
from tests.testing.conftest import write

JOB = RecordedJob(
    "billing",
    "invoice",
    {"id": "A-1", "cents": 1250, "lines": [{"sku": "b", "qty": 2}]},
    {"attempts": 3, "jobId": "invoice-A-1"},
)


def _contract(*jobs: RecordedJob) -> Contract:
    return Contract(tuple(jobs), "node", {"bullmq": "6.7.0"})


# --- diff, files, store ---------------------------------------------------------------------------


def test_diff_names_every_change_by_path() -> None:
    changed = RecordedJob(
        "billing",
        "invoice",
        {"id": "A-1", "amount": 12.5, "lines": [{"sku": "b", "qty": "2"}]},
        {"attempts": 5, "jobId": "invoice-A-1"},
    )
    assert _contract(JOB).diff(_contract(changed)) == [
        "job 0 (billing/invoice): data.cents is gone (was 1250)",
        'job 0 (billing/invoice): data.lines.0.qty was 2, now "2"',
        "job 0 (billing/invoice): data.amount is new: 12.5",
        "job 0 (billing/invoice): opts.attempts was 3, now 5",
    ]
    extra = RecordedJob("billing", "refund", {}, {})
    assert _contract(JOB).diff(_contract(JOB, extra)) == ["job 1 (billing/refund) is new: data {}, opts {}"]
    assert _contract(JOB, extra).diff(_contract(JOB)) == ["job 1 (billing/refund) is no longer written"]


def test_diff_ignores_globbed_paths_and_number_forms_but_not_bool_for_int() -> None:
    now = RecordedJob("billing", "invoice", {**JOB.data, "cents": 1250.0, "at": "2026-01-01"}, JOB.opts)
    assert _contract(JOB).diff(_contract(now), ignore=["data.at"]) == []
    flagged = RecordedJob("billing", "invoice", {**JOB.data, "cents": True}, JOB.opts)
    assert _contract(JOB).diff(_contract(flagged)) == ["job 0 (billing/invoice): data.cents was 1250, now true"]
    skus = RecordedJob("billing", "invoice", {**JOB.data, "lines": [{"sku": "z", "qty": 2}]}, JOB.opts)
    assert _contract(JOB).diff(_contract(skus), ignore=["data.lines.*.sku"]) == []


def test_files_round_trip_and_explain_a_missing_one(tmp_path: Path) -> None:
    path = _contract(JOB).save(tmp_path / "c" / "billing.json")
    assert Contract.load(path) == _contract(JOB)
    assert json.loads(path.read_text())["bullbridge_contract"] == 1
    with pytest.raises(FileNotFoundError, match="record it first"):
        Contract.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"jobs": []}')
    with pytest.raises(ValueError, match="not a bullbridge contract"):
        Contract.load(tmp_path / "bad.json")


def test_store_writes_new_contracts_compares_and_updates(tmp_path: Path) -> None:
    store = ContractStore(tmp_path)
    store.check(_contract(JOB), "billing")  # missing: written
    assert store.load("billing") == _contract(JOB)
    store.check(Contract((JOB,), "node", {"bullmq": "5.81.5"}), "billing")  # versions are not compared
    changed = RecordedJob("billing", "invoice", {**JOB.data, "cents": 99}, JOB.opts)
    with pytest.raises(ContractMismatch, match=r"data.cents was 1250, now 99\n.*--bullbridge-update-contracts"):
        store.check(_contract(changed), "billing")
    assert store.load("billing") == _contract(JOB), "a failed check does not touch the file"
    ContractStore(tmp_path, update=True).check(_contract(changed), "billing")
    assert store.load("billing") == _contract(changed)


# --- recording and replaying, in-process ------------------------------------------------------------


async def test_record_reads_what_both_languages_stored_in_order(redis_url: str) -> None:
    async with Interop(redis_url) as interop:
        producer = interop.python_producer("mixed")
        await producer.add("first", {"n": 1}, attempts=2)
        await interop.node_add("mixed", "second", {"n": 2}, {"delay": 60_000, "jobId": "later"})
        await producer.add("third", {"n": 3}, priority=4, job_id="p-3")
        await interop.node_add("mixed", "fourth", {"n": 4}, {"lifo": True})
        driver = await interop.node_driver()
        await driver.eval(
            "await queue(args.q).upsertJobScheduler('tick', { every: 60000 }, { name: 'tick' });", q="mixed"
        )
        contract = await interop.record("mixed", producer="mixed")
        assert [(j.name, j.data) for j in contract.jobs] == [
            ("first", {"n": 1}),
            ("second", {"n": 2}),
            ("third", {"n": 3}),
            ("fourth", {"n": 4}),
        ]
        assert contract.jobs[1].opts == {"delay": 60000, "jobId": "later", "attempts": 0}
        assert contract.jobs[2].opts["priority"] == 4 and contract.jobs[2].opts["jobId"] == "p-3"
        assert contract.jobs[3].opts["lifo"] is True


async def test_replay_runs_recorded_jobs_now_with_their_stored_options(redis_url: str) -> None:
    recorded = _contract(
        RecordedJob(
            "billing", "invoice", {"n": 1}, {"attempts": 2, "delay": 60000, "jobId": "inv-1", "removeOnComplete": True}
        ),
        RecordedJob("billing", "invoice", {"n": 2}, {"attempts": 0, "deduplication": {"id": "d"}, "de": {"id": "d"}}),
        RecordedJob("billing", "invoice", {"n": 3}, {"attempts": 0, "de": {"id": "d"}}),
    )
    seen: list[tuple[str, Any, dict[str, Any]]] = []

    async def invoice(job: Any) -> int:
        seen.append((job.id, job.data, job.opts))
        if job.data["n"] == 3:
            raise ValueError("three is not billable")
        return int(job.data["n"]) * 10

    async with Interop(redis_url) as interop:
        replay = await interop.replay(recorded, {"invoice": invoice}, timeout=5)
    assert [v.state for v in replay.views] == ["completed", "completed", "failed"]
    assert [v.returnvalue for v in replay.views[:2]] == [10, 20]
    assert not replay.views[0].exists, "removeOnComplete was honoured: the outcome came from the event stream"
    assert seen[0][0] == "inv-1" and seen[0][2] == {"attempts": 2, "jobId": "inv-1", "removeOnComplete": True}
    assert len(replay.received) == 3 and replay.received[2].data == {"n": 3}
    with pytest.raises(
        AssertionError,
        match=r"1 of 3 recorded job\(s\) not completed.*\n- billing/invoice "
        r"data=\{'n': 3\}: job billing:\d+ \(invoice\) is 'failed' as python "
        r"reads it; failedReason: ValueError: three is not billable",
    ):
        replay.assert_all_completed()


# --- the whole loop, as a user's project runs it ----------------------------------------------------

PRODUCER = """
    exports.enqueueInvoice = async (queue, order) =>
      queue.add('invoice', { orderId: order.id, cents: Math.round(order.total * 100) }, { attempts: 3 });
"""
PRODUCER_RENAMED = PRODUCER.replace("cents:", "amountCents:")

PROCESSOR = """
    module.exports = async job => {
      if (!job.data.to) throw new Error('no recipient');
      return 'sent to ' + job.data.to;
    };
"""

TESTS = """
    from pathlib import Path

    HERE = Path(__file__).parent

    async def invoice(job):
        return {"total": job.data["cents"]}

    def welcome_data(user):
        return {"to": user["email"]}        # the Python side's producer code

    async def test_node_records(bullbridge_interop, bullbridge_node_producer, bullbridge_contracts):
        enqueue = bullbridge_node_producer(HERE / "node" / "producer.js", export="enqueueInvoice")
        await enqueue("billing", {"id": "A-1", "total": 12.5})
        bullbridge_contracts.check(await bullbridge_interop.record("billing", producer="node"), "invoices")

    async def test_python_replays(bullbridge_interop, bullbridge_contracts):
        replay = await bullbridge_interop.replay(bullbridge_contracts.load("invoices"), {"invoice": invoice})
        replay.assert_all_completed()

    async def test_python_records(bullbridge_interop, bullbridge_contracts):
        await bullbridge_interop.python_producer("email").add("welcome", welcome_data({"email": "a@b.c"}))
        bullbridge_contracts.check(await bullbridge_interop.record("email", producer="python"), "welcome")

    async def test_node_replays(bullbridge_interop, bullbridge_contracts):
        replay = await bullbridge_interop.replay_to_node(bullbridge_contracts.load("welcome"),
                                                         HERE / "node" / "processor.js")
        replay.assert_all_completed()
        assert [v.returnvalue for v in replay.views] == ["sent to a@b.c"]
"""


def test_a_change_fails_on_the_side_that_changed(pytester: Any, inner: Any) -> None:
    producer = write(pytester.path / "node" / "producer.js", PRODUCER)
    write(pytester.path / "node" / "processor.js", PROCESSOR)
    tests = write(pytester.path / "test_contracts.py", TESTS)
    contracts = pytester.path / "invoices.json"

    inner("-q").assert_outcomes(passed=4)  # first run: contracts written, replays pass
    assert json.loads(contracts.read_text())["jobs"][0]["data"] == {"orderId": "A-1", "cents": 1250}
    inner("-q").assert_outcomes(passed=4)

    # The Node producer renames a field: its own recording test fails, naming the change.
    write(producer, PRODUCER_RENAMED)
    result = inner("-q", "-k", "node_records")
    result.assert_outcomes(failed=1, deselected=3)
    result.stdout.fnmatch_lines(
        [
            "*no longer match the contract*invoices.json*",
            "*data.cents is gone (was 1250)*",
            "*data.amountCents is new: 1250*",
        ]
    )
    # Accepted on purpose: now the Python consumer's replay fails, with the Python error.
    inner("-q", "-k", "node_records", "--bullbridge-update-contracts").assert_outcomes(passed=1, deselected=3)
    result = inner("-q", "-k", "python_replays")
    result.assert_outcomes(failed=1, deselected=3)
    result.stdout.fnmatch_lines(
        ["*1 of 1 recorded job(s) not completed by the consumer*", "*failedReason: KeyError: 'cents'*"]
    )

    # The Python producer drops a field: its recording test fails; once accepted, Node's replay fails.
    write(tests, TESTS.replace('{"to": user["email"]}', '{"email": user["email"]}'))
    inner("-q", "-k", "python_records").assert_outcomes(failed=1, deselected=3)
    inner("-q", "-k", "python_records", "--bullbridge-update-contracts").assert_outcomes(passed=1, deselected=3)
    result = inner("-q", "-k", "node_replays")
    result.assert_outcomes(failed=1, deselected=3)
    result.stdout.fnmatch_lines(["*failedReason: no recipient*"])

"""The testing toolkit from a user's project (issue 19): missing contracts under CI, one base for
every relative path, the project's own Node bullmq or a stop, waits that say which side they
read, pinned consumer results, and docs/interop.md naming every fixture and helper."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bullbridge.testing import Contract, ContractMismatch, ContractStore, RecordedJob
from bullbridge.testing.contracts import ConsumedJob, Results, shape_of
from tests.testing.conftest import OWN_NODE_MODULES, write

ROOT = Path(__file__).resolve().parents[2]

RECORDING = """
    async def test_welcome_contract(bullbridge_interop, bullbridge_producer, bullbridge_contracts):
        await bullbridge_producer("email").add("welcome", {"to": "ada@example.com"}, attempts=3)
        recorded = await bullbridge_interop.record("email", producer="python")
        bullbridge_contracts.check(recorded, "welcome")
"""


INI_STRICT = (
    "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\nbullbridge_strict_contracts = true\n"
)


# --- a missing contract under CI --------------------------------------------------------------


def test_under_ci_a_missing_contract_fails_with_the_command_that_records_it(
    pytester: Any, inner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(pytester.path / "test_rec.py", RECORDING)
    contract = pytester.path / "welcome.json"
    monkeypatch.setenv("CI", "true")
    result = inner("-q")
    result.assert_outcomes(failed=1)
    command = "pytest test_rec.py::test_welcome_contract --bullbridge-update-contracts"
    result.stdout.fnmatch_lines([f"*no contract at {contract}, and CI does not write one: record it with `{command}`*"])
    assert not contract.exists()
    # that command, as printed, records it (CI or not); then CI passes
    inner("-q", *command.split()[1:]).assert_outcomes(passed=1)
    assert Contract.load(contract).jobs[0].data == {"to": "ada@example.com"}
    inner("-q").assert_outcomes(passed=1)
    # the flag does the same without CI; outside CI a missing file is written, as before
    monkeypatch.delenv("CI")
    contract.unlink()
    inner("-q", "--bullbridge-strict-contracts").assert_outcomes(failed=1)
    pytester.makefile(".ini", pytest=INI_STRICT)  # or the ini option
    inner("-q").assert_outcomes(failed=1)
    pytester.makefile(".ini", pytest=INI_STRICT.replace("true", "false"))
    inner("-q").assert_outcomes(passed=1)
    assert contract.exists()


def test_the_store_alone_strict_or_not(tmp_path: Path) -> None:
    recorded = Contract((RecordedJob("email", "welcome", {"to": "a"}, {}),), "python")
    with pytest.raises(ContractMismatch, match=r"no contract at .*x\.json, and CI does not write one: record it"):
        ContractStore(tmp_path, strict=True).check(recorded, "x")
    assert ContractStore(tmp_path, strict=True, update=True).check(recorded, "x") == recorded  # the recording run
    assert ContractStore(tmp_path, strict=True).check(recorded, "x") == recorded


# --- one base for every relative path ---------------------------------------------------------

PROCESSOR = "module.exports = async (job) => ({ sent: job.data.to });\n"
PRODUCER = "exports.enqueue = async (queue, args) => queue.add('welcome', { to: args.to });\n"


def test_every_relative_path_starts_from_the_ini_file_s_folder(
    pytester: Any, inner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from a subfolder: the modules, the contracts folder and node_modules all resolve from pytest.ini's."""
    write(pytester.path / "node" / "processor.js", PROCESSOR)
    write(pytester.path / "node" / "producer.js", PRODUCER)
    (pytester.path / "js").mkdir()
    (pytester.path / "js" / "node_modules").symlink_to(OWN_NODE_MODULES)
    pytester.makefile(
        ".ini",
        pytest="[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "bullbridge_node_modules = js\nbullbridge_contracts = contracts\n",
    )
    write(
        pytester.path / "tests" / "test_paths.py",
        """
        async def test_relative(bullbridge_interop, bullbridge_node_worker, bullbridge_node_producer,
                                bullbridge_contracts):
            # the only Node bullmq is js/node_modules (no .git, no node_modules in the project's folder)
            await bullbridge_node_worker("email", "node/processor.js")
            produced = await bullbridge_node_producer("node/producer.js", export="enqueue")("email", {"to": "a@b"})
            (await bullbridge_interop.wait_for("email", produced.id)).assert_completed({"sent": "a@b"})
            assert bullbridge_contracts.path("welcome").parent.name == "contracts"

        async def test_missing_module_says_its_base(bullbridge_node_worker):
            await bullbridge_node_worker("email", "nodee/processor.js")
    """,
    )
    monkeypatch.chdir(pytester.path / "tests")
    result = inner("-q", node_modules=None)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            f"*no Node processor module at {pytester.path}/nodee/processor.js ('nodee/processor.js' is relative to "
            f"{pytester.path}, the ini file's folder)*"
        ]
    )


# --- the project's own Node bullmq, or a stop --------------------------------------------------

BOTH_SIDES = """
    async def test_python_only(bullbridge_interop, bullbridge_producer):
        job = await bullbridge_producer("q").add("x", {})
        assert (await bullbridge_interop.view("q", job.id)).state == "waiting"

    async def test_node_side(bullbridge_node):
        assert bullbridge_node.bullmq_version == "6.7.0"
"""


def test_no_node_bullmq_of_the_project_stops_and_names_the_one_it_would_have_used(pytester: Any, inner: Any) -> None:
    write(pytester.path / "test_sides.py", BOTH_SIDES)
    result = inner("-q", node_modules=None)
    # bullbridge's own checkout holds the only bullmq Node would find (walking up from driver.js):
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            f"*this project has no Node bullmq (no node_modules with bullmq in {pytester.path}/node_modules): "
            f"run `npm install bullmq` in {pytester.path}, or set bullbridge_node_modules in the ini file to your "
            f"Node project's folder; without this check the Node side would have run bullmq 6.7.0 from "
            f"{OWN_NODE_MODULES}, which is not this project's*"
        ]
    )


def test_the_project_s_own_node_modules_up_to_the_repository_root(pytester: Any, inner: Any) -> None:
    """pytest.ini in python/, node_modules at the repository's root (the folder with .git)."""
    (pytester.path / ".git").mkdir()
    (pytester.path / "node_modules").symlink_to(OWN_NODE_MODULES)
    service = pytester.path / "python"
    write(service / "pytest.ini", "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    write(service / "test_sides.py", BOTH_SIDES)
    inner("-q", str(service), node_modules=None).assert_outcomes(passed=2)


# --- waits say the side they read -------------------------------------------------------------


def test_a_wait_that_times_out_describes_the_job_as_the_side_asked_reads_it(pytester: Any, inner: Any) -> None:
    write(
        pytester.path / "test_wait.py",
        """
        async def test_node_side_wait(bullbridge_interop, bullbridge_node):
            job_id = await bullbridge_interop.node_add("nobody", "x", {}, {"attempts": 3})
            await bullbridge_interop.wait_for("nobody", job_id, timeout=0.3, seen_by="node")
    """,
    )
    result = inner("-q")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*did not finish within 0.3 s: job nobody:1 (x) is 'waiting' as node reads it*"])


# --- consumers' results pinned ----------------------------------------------------------------


def test_shape_of_keeps_keys_and_json_types() -> None:
    assert shape_of({"sent_to": "a", "ids": [3, 4], "ok": True, "at": None, "n": 1.5}) == {
        "at": "null",
        "ids": ["number"],
        "n": "number",
        "ok": "boolean",
        "sent_to": "string",
    }
    assert shape_of([]) == [] and shape_of("x") == "string"


def test_results_diff_by_path_and_the_store_checks_them(tmp_path: Path) -> None:
    before = Results((ConsumedJob("email", "welcome", "completed", {"sent_to": "string"}),), "node", shape=True)
    after = Results((ConsumedJob("email", "welcome", "completed", {"to": "string"}),), "node", shape=True)
    failed = Results((ConsumedJob("email", "welcome", "failed", failed_reason="boom"),), "node", shape=True)
    assert before.diff(after) == [
        'job 0 (email/welcome): returnvalue.sent_to is gone (was "string")',
        'job 0 (email/welcome): returnvalue.to is new: "string"',
    ]
    assert before.diff(failed) == [
        'job 0 (email/welcome): state was "completed", now "failed"',
        'job 0 (email/welcome): returnvalue is gone (was {"sent_to": "string"})',
        'job 0 (email/welcome): failedReason is new: "boom"',
    ]
    store = ContractStore(tmp_path)
    assert store.check(before, "email.results") == before
    assert (tmp_path / "email.results.json").exists() and store.load_results("email.results") == before
    with pytest.raises(ContractMismatch, match=r"what the consumer returns no longer matches .*email\.results\.json"):
        store.check(after, "email.results")


CONSUMER = """
    import os
    from bullbridge.testing import Contract, RecordedJob

    CONTRACT = Contract((RecordedJob("email", "welcome", {"to": "ada@example.com"}, {"attempts": 2}),), "node")

    async def welcome(job):
        if os.environ.get("RETURN_SHAPE") == "new":
            return {"recipient": job.data["to"]}
        return {"sent_to": job.data["to"], "message_id": os.urandom(4).hex()}

    async def test_python_consumer_results(bullbridge_interop, bullbridge_contracts):
        replay = await bullbridge_interop.replay(CONTRACT, {"welcome": welcome})
        replay.assert_all_completed()
        bullbridge_contracts.check(replay.results(shape=True), "welcome-consumed.results")

    async def test_node_consumer_results(bullbridge_interop, bullbridge_contracts):
        replay = await bullbridge_interop.replay_to_node(CONTRACT, "processor.js")
        bullbridge_contracts.check(replay.results(), "welcome-consumed-by-node.results",
                                   ignore=["returnvalue.at"])
"""


def test_a_consumer_that_changes_what_it_returns_fails_its_replay(
    pytester: Any, inner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(pytester.path / "test_consumer.py", CONSUMER)
    write(pytester.path / "processor.js", "module.exports = async (job) => ({ to: job.data.to, at: Date.now() });\n")
    inner("-q").assert_outcomes(passed=2)  # first run: the results files are written
    pinned = Results.load(pytester.path / "welcome-consumed.results.json")
    assert pinned.consumer == "python" and pinned.shape
    assert pinned.jobs[0].returnvalue == {"message_id": "string", "sent_to": "string"}
    by_node = Results.load(pytester.path / "welcome-consumed-by-node.results.json")
    assert by_node.consumer == "node" and by_node.jobs[0].returnvalue["to"] == "ada@example.com"
    inner("-q").assert_outcomes(passed=2)  # another message_id, another `at`: the same shape, ignored
    monkeypatch.setenv("RETURN_SHAPE", "new")
    result = inner("-q")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*what the consumer returns no longer matches *welcome-consumed.results.json:",
            '*job 0 (email/welcome): returnvalue.message_id is gone (was "string")',
        ]
    )


# --- docs/interop.md names every fixture and helper -------------------------------------------


def test_docs_interop_names_every_fixture_option_and_helper() -> None:
    import bullbridge.testing.plugin as plugin
    from bullbridge.testing import Interop, JobView, Replay
    from bullbridge.testing.interop import NodeWorker, Produced, PythonWorker

    docs = (ROOT / "docs" / "interop.md").read_text()
    fixtures = [name for name in vars(plugin) if name.startswith("bullbridge_")]
    assert len(fixtures) >= 9
    public = {
        cls.__name__: [n for n in vars(cls) if not n.startswith("_") and callable(getattr(cls, n, None))]
        for cls in (Interop, JobView, Replay, NodeWorker, PythonWorker)
    }
    missing = [f for f in fixtures if f"`{f}" not in docs]
    missing += [f"{cls}.{m}" for cls, names in public.items() for m in names if not re.search(rf"\.{m}\b", docs)]
    missing += [
        o
        for o in (
            "--bullbridge-redis",
            "--bullbridge-node-modules",
            "--bullbridge-update-contracts",
            "--bullbridge-strict-contracts",
            "--bullbridge-keep-keys",
            "bullbridge_timeout",
            "bullbridge_contracts",
            "bullbridge_strict_contracts",
        )
        if o not in docs
    ]
    missing += [p for p in ("ids", "views", "received", "errors", "results") if f".{p}" not in docs]
    assert not missing, f"docs/interop.md does not name: {missing}"
    assert Produced.__name__ in docs

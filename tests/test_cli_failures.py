"""Every ``bullbridge`` command against every way it can fail: one line on stderr, the
documented exit code, no traceback, no password (issue 18).

Each cell runs ``python -m bullbridge`` as an operator would. Every Redis URL carries
:data:`PASSWORD`, so every failure path is also a test that the password never reaches
the output. The cells run concurrently (threads around subprocesses) once per module;
the parametrised tests then check one cell each.

The failures: ``down`` is a server that accepts connections and never answers (a hung
or partitioned Redis: short timeouts in its URL keep the cell near 1 s), ``refused``
is a port nothing listens on, ``wrong-password`` a real ``redis-server --requirepass``
given another password, ``bad-url`` a URL whose port is not a number, ``port-in-use``
a port another socket holds, ``unknown-queue`` a queue name nothing created, and
``bad-module`` a MODULE:ATTR whose module raises on import.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from bullbridge.cli.failures import Exit
from bullbridge.testing.redis_server import PrivateRedis, free_port

PASSWORD = "Pa55-w0rd-not-for-logs"
REPO = Path(__file__).resolve().parents[1]
#: A log record of the CLI's text format: "2026-01-02 03:04:05,678 LEVEL logger: message".
LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
#: Short timeouts for the hung server (the product's own deadlines, made small for the test).
QUICK = "connect_timeout=0.5&command_timeout=0.5&retry_for=1"


@dataclass(frozen=True)
class Cell:
    command: str
    failure: str
    argv: tuple[str, ...]
    expected: Exit
    #: Words the failure line must contain (what failed).
    says: str


@dataclass(frozen=True)
class Outcome:
    status: int
    stdout: str
    stderr: str
    seconds: float


@dataclass(frozen=True)
class World:
    urls: dict[str, str]
    good: str
    busy_port: int
    folder: Path


def _redis_commands(url: str, folder: Path) -> dict[str, tuple[str, ...]]:
    """Each command that talks to Redis, pointed at ``url``."""
    free = str(free_port())
    return {
        "worker": ("worker", "goodmod:make", "--redis", url),
        "check": ("check", "--redis", url),
        "stats": ("stats", "--redis", url),
        "job": ("job", "realq", "1", "--redis", url),
        "queue pause": ("queue", "pause", "realq", "-y", "--redis", url),
        "migrate report": ("migrate", "report", "realq", "--redis", url),
        "doctor": ("doctor", "--redis", url),
        "dashboard": ("dashboard", "--redis", url, "--port", free),
        "metrics": ("metrics", "--redis", url, "--port", free),
        "schedule list": ("schedule", "list", "--redis", url),
        "schedule sync": ("schedule", "sync", "goodsched:SCHEDULES", "--redis", url),
    }


REDIS_FAILURES = {
    "down": (Exit.UNREACHABLE, "Redis"),
    "refused": (Exit.UNREACHABLE, "refused every connection"),
    "wrong-password": (Exit.AUTH, "refused the credentials"),
    "bad-url": (Exit.USAGE, "malformed Redis URL"),
}


def cells(world: World | None = None) -> list[Cell]:
    """The matrix (with placeholder URLs when ``world`` is None, for the test ids)."""
    urls = world.urls if world else dict.fromkeys(REDIS_FAILURES, "redis://x")
    good = world.good if world else "redis://x"
    busy = str(world.busy_port) if world else "1"
    folder = world.folder if world else Path(".")
    out = []
    for failure, (code, says) in REDIS_FAILURES.items():
        for command, argv in _redis_commands(urls[failure], folder).items():
            out.append(Cell(command, failure, argv, code, says))
    for command, argv in {
        "dashboard": ("dashboard", "--redis", good, "--port", busy),
        "metrics": ("metrics", "--redis", good, "--port", busy),
        "worker": ("worker", "goodmod:make", "--redis", good, "--health-port", busy),
    }.items():
        out.append(Cell(command, "port-in-use", argv, Exit.CANNOT_LISTEN, "cannot listen"))
    for command, argv in {
        "stats": ("stats", "nosuchq", "--redis", good),
        "job": ("job", "nosuchq", "1", "--redis", good),
        "queue retry": ("queue", "retry", "nosuchq", "-y", "--redis", good),
        "migrate report": ("migrate", "report", "nosuchq", "--redis", good),
        "dashboard": ("dashboard", "nosuchq", "--redis", good, "--port", str(free_port())),
        "metrics": ("metrics", "nosuchq", "--redis", good, "--port", str(free_port())),
        "schedule list": ("schedule", "list", "nosuchq", "--redis", good),
    }.items():
        out.append(
            Cell(command, "unknown-queue", argv, Exit.NO, "no queue 'nosuchq' under prefix 'bull' (known: 'realq')")
        )
    for command, argv in {
        "worker": ("worker", "badmod:make", "--redis", good),
        "schedule sync": ("schedule", "sync", "badmod:SCHEDULES", "--redis", good),
    }.items():
        out.append(Cell(command, "bad-module", argv, Exit.USER_CODE, "importing module 'badmod' failed at badmod.py:3"))
    return out


MODULES = {
    "goodmod.py": """
        from bullbridge import Worker

        def make():
            worker = Worker("gq")

            @worker.handler("x")
            async def x(job):
                return 1

            return worker
    """,
    "goodsched.py": """
        from bullbridge.scheduler import Schedule

        SCHEDULES = [Schedule(id="nightly", queue="realq", every=60_000)]
    """,
    "badmod.py": """
        import os

        raise RuntimeError("boom at import")
    """,
}


def run(argv: tuple[str, ...], folder: Path, *, timeout: float = 60.0, env: dict[str, str] | None = None) -> Outcome:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bullbridge", *argv],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )
    return Outcome(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("cli")
    for name, text in MODULES.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip())
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(128)  # accepts (in the kernel) and never answers: a hung server
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    with PrivateRedis(password=PASSWORD) as server:
        good = server.url
        seeded = run(("queue", "pause", "realq", "-y", "--redis", good), folder)
        assert seeded.status == Exit.NO  # no such queue yet: refused, nothing written
        _seed(good)
        urls = {
            "down": f"redis://:{PASSWORD}@127.0.0.1:{hung.getsockname()[1]}/0?{QUICK}",
            "refused": f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0",
            "wrong-password": server.bare_url.replace("redis://", "redis://:Wr0ng-pa55word@"),
            "bad-url": f"redis://:{PASSWORD}@127.0.0.1:notaport/0",
        }
        try:
            yield World(urls, good, busy.getsockname()[1], folder)
        finally:
            hung.close()
            busy.close()


def _seed(url: str) -> None:
    import asyncio

    from bullbridge import Queue

    async def add() -> None:
        async with Queue("realq", connection=url) as queue:
            await queue.add("x", {"n": 1})

    asyncio.run(add())


@pytest.fixture(scope="module")
def outcomes(world: World) -> dict[tuple[str, str], Outcome]:
    table = cells(world)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda cell: run(cell.argv, world.folder), table))
    return {(c.command, c.failure): r for c, r in zip(table, results)}


@pytest.mark.parametrize("cell", cells(), ids=lambda c: f"{c.command.replace(' ', '-')}[{c.failure}]")
def test_failure_is_one_line_with_its_exit_code(
    cell: Cell, outcomes: dict[tuple[str, str], Outcome], world: World
) -> None:
    outcome = outcomes[(cell.command, cell.failure)]
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    failure_lines = [line for line in lines if not LOG_RECORD.match(line)]
    assert len(failure_lines) == 1, outcome.stderr
    line = failure_lines[0]
    assert line.startswith(f"bullbridge {cell.command}: "), line
    assert cell.says in line, line
    assert outcome.status == cell.expected, (outcome.status, line)
    assert "Traceback" not in outcome.stderr + outcome.stdout
    assert PASSWORD not in outcome.stderr + outcome.stdout
    if cell.command == "worker":  # logs at INFO by default: no warning before its one failure line
        assert not [x for x in lines if " WARNING " in x or " ERROR " in x], outcome.stderr
    else:
        assert lines == failure_lines, outcome.stderr


def test_debug_shows_the_users_frame_first(world: World) -> None:
    outcome = run(("worker", "badmod:make", "--debug"), world.folder)
    assert outcome.status == Exit.USER_CODE
    trace = outcome.stderr.split("Traceback (most recent call last):\n", 1)[1]
    first_frame = trace.splitlines()[0]
    assert "badmod.py" in first_frame and "line 3" in first_frame, trace
    assert "importlib" not in trace and "bullbridge" not in trace.split("RuntimeError")[0], trace
    assert outcome.stderr.rstrip().splitlines()[-1].startswith("bullbridge worker: importing module 'badmod'")
    env_debug = run(("worker", "badmod:make"), world.folder, env={"BULLBRIDGE_DEBUG": "1"})
    assert "Traceback" in env_debug.stderr and env_debug.status == Exit.USER_CODE


def test_usage_errors_are_one_line_and_log_level_goes_anywhere(world: World) -> None:
    for argv in (("--log-level", "verbose", "stats"), ("stats", "--log-level", "verbose"), ("stats", "--nope")):
        outcome = run(argv, world.folder)
        assert outcome.status == Exit.USAGE
        assert len(outcome.stderr.strip().splitlines()) == 1 and "see bullbridge" in outcome.stderr, outcome.stderr
    after = run(("stats", "realq", "--redis", world.good, "--log-level", "debug"), world.folder)
    before = run(("--log-level", "DEBUG", "stats", "realq", "--redis", world.good), world.folder)
    for outcome in (after, before):
        assert outcome.status == 0 and " DEBUG " in outcome.stderr and PASSWORD not in outcome.stderr


def test_a_closed_pipe_ends_quietly(world: World) -> None:
    done = subprocess.run(
        f"{sys.executable} -m bullbridge stats --json --redis '{world.good}' | head -c 1",
        shell=True,
        cwd=world.folder,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.stdout == "[" and done.stderr == ""
    # A pipe closed before the first write: deterministic (with `| head -n 1` the whole list can fit
    # in the pipe's buffer before head exits, and then nothing is ever refused).
    listing = subprocess.Popen(
        [sys.executable, "-m", "bullbridge", "interop", "check", "--list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert listing.stdout is not None and listing.stderr is not None
    listing.stdout.close()
    stderr = listing.stderr.read().decode()
    assert listing.wait(timeout=60) == Exit.PIPE_CLOSED and stderr == "", stderr


def test_demo_without_node_bullmq_says_what_to_install(world: World, tmp_path: Path) -> None:
    empty = tmp_path / "node_modules"
    empty.mkdir()
    outcome = run(
        ("demo", "--jobs", "1"),
        world.folder,
        env={"BULLBRIDGE_REDIS_URL": world.good, "BULLBRIDGE_NODE_MODULES": str(empty), "NODE_PATH": ""},
    )
    assert outcome.status == Exit.MISSING, outcome.stderr
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1 and "npm install bullmq" in lines[0] and "--bullbridge-node-modules" not in lines[0], lines
    assert PASSWORD not in outcome.stdout + outcome.stderr


def test_help_lists_the_exit_codes() -> None:
    outcome = run(("--help",), REPO)
    text = " ".join(outcome.stdout.split())
    for code in Exit:
        assert f"{int(code)} " in text, code


# --- secrets: every command's output on the success paths too -------------------------------

SUCCESS = [
    ("stats",),
    ("stats", "realq", "--json"),
    ("job", "realq", "1"),
    ("job", "realq", "1", "--json"),
    ("queue", "pause", "realq", "-y"),
    ("queue", "resume", "realq", "-y", "--json"),
    ("migrate", "report", "realq"),
    ("migrate", "report", "realq", "--json"),
    ("doctor", "-v"),
    ("doctor", "--json"),
    ("check",),
    ("schedule", "sync", "goodsched:SCHEDULES"),
    ("schedule", "list", "--json"),
    ("worker", "goodmod:make", "--burst"),
    ("worker", "goodmod:make", "--burst", "--log-format", "json"),
    ("interop", "check", "--only", "plain_job"),
    ("demo", "--jobs", "3"),
]


def test_no_command_prints_the_password(world: World) -> None:
    """Every command, at DEBUG, on a Redis whose URL holds the password: not one byte of it out."""

    def one(argv: tuple[str, ...]) -> tuple[tuple[str, ...], Outcome]:
        redis = () if argv[0] == "demo" else ("--redis", world.good)
        env = {"BULLBRIDGE_REDIS_URL": world.good}
        return argv, run((*argv, *redis, "--log-level", "DEBUG"), world.folder, timeout=120, env=env)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, SUCCESS))
    for argv, outcome in results:
        assert outcome.status in (0, 1), (argv, outcome.stderr[-2000:])  # doctor/check may say "no"
        assert PASSWORD not in outcome.stdout + outcome.stderr, argv
        assert "Traceback" not in outcome.stderr, (argv, outcome.stderr[-2000:])
    by_name = dict(results)
    started = by_name[("worker", "goodmod:make", "--burst")].stderr
    assert "redis://:***@127.0.0.1" in started and "gq x1 (x)" in started, started
    assert "0 completed, 0 failed" in started
    records = [
        line for line in by_name[("worker", "goodmod:make", "--burst", "--log-format", "json")].stderr.splitlines()
    ]
    import json

    parsed = [json.loads(line) for line in records if line.startswith("{")]
    assert parsed and all({"time", "level", "logger", "message"} <= set(p) for p in parsed)


@pytest.mark.parametrize("command", ["dashboard", "metrics"])
def test_servers_print_their_url_once_listening_and_no_password(world: World, command: str) -> None:
    import signal
    import urllib.request

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bullbridge",
            command,
            "--redis",
            world.good,
            "--port",
            str(port),
            "--log-level",
            "DEBUG",
        ],
        cwd=world.folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        announce = proc.stdout.readline()  # printed only once the socket listens
        assert f"127.0.0.1:{port}" in announce, announce
        path = "/metrics" if command == "metrics" else "/api/queues/realq"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            body = response.read().decode()
        assert "realq" in body and PASSWORD not in body
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert PASSWORD not in announce + out + err and "Traceback" not in err, err[-2000:]


def test_control_characters_are_escaped_in_terminal_output(world: World) -> None:
    import asyncio

    import redis.asyncio as redis

    evil = "\x1b]0;pwned\x07\x9b2J"

    async def plant(value: int | None) -> None:
        client = redis.from_url(world.good)
        try:
            if value is None:
                await client.delete(f"bull:{evil}:id")
            else:
                await client.set(f"bull:{evil}:id", value)
        finally:
            await client.aclose()

    asyncio.run(plant(1))
    try:
        table = run(("stats", "--redis", world.good), world.folder)
        as_json = run(("stats", "--json", "--redis", world.good), world.folder)
        missing = run(("stats", evil + "x", "--redis", world.good), world.folder)
    finally:
        asyncio.run(plant(None))
    assert table.status == 0 and "\\x1b]0;pwned\\x07" in table.stdout
    for outcome in (table, as_json, missing):
        text = outcome.stdout + outcome.stderr
        assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text, text
    assert "\\u001b]0;pwned\\u0007\\u009b2J" in as_json.stdout
    assert missing.status == Exit.NO and "no queue" in missing.stderr

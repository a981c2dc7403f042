"""``make flakes``: run the whole suite N times from clean clones of HEAD, optionally under CPU load.

A submission lands only when the suite passes on a clean clone, so this runs
exactly that, several times: each run is ``git clone . <tmp>/run-K`` followed by
the clone's own ``make test``. Per run it records passed/failed/error counts,
wall time and the ids of the failing tests, then prints a table and writes it
to ``<tmp>/flakes-report.md`` (the path is printed last).

    python tests/flakes.py [--runs 10] [--load cpu] [--own-venv] [--keep] [-- PYTEST_ARGS...]

``--load cpu`` runs ``stress-ng --cpu <cores>`` for the whole session (Debian's
``stress-ng``; when it is not installed, one busy-looping Python process per
core stands in, and the report says so).

The virtualenv: by default the first clone bootstraps one (``make bootstrap``,
~1 min) and every later run uses it (``make test VENV=<run-1>/.venv``). All
clones are of the same commit, so the code the venv's editable install points
at is the same code as each clone's; ``node_modules`` is installed per clone
(``npm ci``, seconds from npm's cache). ``--own-venv`` bootstraps every clone
from scratch instead (+~1 min a run). The main checkout's ``.venv`` is never
used: its editable install points at the working tree, uncommitted changes and all.

Every run also writes the values the timing tests measured (tests/timing.py)
to ``<tmp>/timing.jsonl``.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"^=* ?(\d+ (?:passed|failed|errors?|skipped|xfailed|xpassed|deselected)\b.*) in [\d.]+s")
FAILED = re.compile(r"^(FAILED|ERROR) (\S+)")


@dataclass
class Run:
    number: int
    seconds: float = 0.0
    exit_code: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    failing: list[str] = field(default_factory=list)
    log: Path | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def parse(output: str, run: Run) -> None:
    for line in output.splitlines():
        found = SUMMARY.match(line)
        if found:
            for count, what in re.findall(r"(\d+) (\w+)", found.group(1)):
                run.counts[what.rstrip("s") if what == "errors" else what] = int(count)
        failed = FAILED.match(line)
        if failed and failed.group(2) not in run.failing:
            run.failing.append(failed.group(2))


def start_load(kind: str) -> tuple[list[subprocess.Popen[bytes]], str]:
    if not kind:
        return [], "none"
    if kind != "cpu":
        raise SystemExit(f"--load {kind!r}: only 'cpu' is known")
    cores = os.cpu_count() or 2
    stress = shutil.which("stress-ng")
    if stress:
        return [subprocess.Popen([stress, "--cpu", str(cores), "--quiet"])], f"stress-ng --cpu {cores}"
    print(
        "flakes: stress-ng is not installed (apt-get install stress-ng); "
        f"using {cores} busy-looping Python processes instead",
        file=sys.stderr,
    )
    spin = [sys.executable, "-c", "while True: pass"]
    return [subprocess.Popen(spin) for _ in range(cores)], f"{cores} busy Python loops (no stress-ng)"


def stop_load(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def one_run(number: int, work: Path, venv: Path | None, pytest_args: list[str]) -> Run:
    run = Run(number)
    clone = work / f"run-{number}"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    make = ["make", "-C", str(clone), "test"]
    if venv is not None:
        make.append(f"VENV={venv}")
        # Point the shared venv's editable install at this clone (else the run imports run 1's
        # bullbridge and finds run 1's node_modules), then touch the install stamp, which the
        # clone's newer files would otherwise make `make` redo in full.
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--no-deps",
                "--no-build-isolation",
                "-e",
                str(clone),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        (venv / ".installed").touch()
    if pytest_args:
        make.append(f"PYTEST_ARGS={shlex.join(pytest_args)}")
    env = dict(os.environ, BULLBRIDGE_TIMING_LOG=str(work / "timing.jsonl"))
    for var in ("BULLBRIDGE_REDIS_URL", "REDIS_URL"):  # each run starts its own private Redis
        env.pop(var, None)
    run.log = work / f"run-{number}.log"
    started = time.monotonic()
    with open(run.log, "w", encoding="utf-8") as log:
        done = subprocess.run(make, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    run.seconds = time.monotonic() - started
    run.exit_code = done.returncode
    parse(run.log.read_text(encoding="utf-8", errors="replace"), run)
    return run


def table(runs: list[Run], load: str, head: str, venv_note: str) -> str:
    kinds = ["passed", "failed", "error", "skipped", "xfailed", "xpassed"]
    lines = [
        f"# make flakes: {len(runs)} run(s) of `make test` on clean clones of {head}",
        "",
        f"- load: {load}",
        f"- virtualenv: {venv_note}",
        "",
        "| run | result | " + " | ".join(kinds) + " | wall time | failing tests |",
        "| --- | --- | " + " | ".join("---:" for _ in kinds) + " | ---: | --- |",
    ]
    for run in runs:
        counts = " | ".join(str(run.counts.get(k, 0)) for k in kinds)
        failing = ", ".join(f"`{t}`" for t in run.failing) or ("-" if run.ok else f"(exit {run.exit_code})")
        lines.append(f"| {run.number} | {'pass' if run.ok else 'FAIL'} | {counts} | {run.seconds:.0f} s | {failing} |")
    flaky: dict[str, int] = {}
    for run in runs:
        for test in run.failing:
            flaky[test] = flaky.get(test, 0) + 1
    lines += ["", f"**{sum(r.ok for r in runs)} of {len(runs)} runs passed.**"]
    if flaky:
        lines += ["", "| failing test | runs failed |", "| --- | ---: |"]
        lines += [f"| `{t}` | {n} of {len(runs)} |" for t, n in sorted(flaky.items(), key=lambda i: -i[1])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=int(os.environ.get("FLAKES_RUNS") or 10))
    parser.add_argument("--load", default=os.environ.get("FLAKES_LOAD", ""), help="'cpu' or empty")
    parser.add_argument(
        "--own-venv",
        action="store_true",
        default=bool(os.environ.get("FLAKES_OWN_VENV")),
        help="bootstrap a virtualenv in every clone (default: one for the session)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the clones (default: only logs and report)")
    parser.add_argument("pytest_args", nargs="*", help="after --: passed to pytest as PYTEST_ARGS")
    args = parser.parse_args(argv)

    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if dirty:
        print(f"flakes: uncommitted changes are NOT tested: each run clones HEAD ({head})", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="bullbridge-flakes-"))
    venv_note = "bootstrapped in every clone" if args.own_venv else "one for the session, bootstrapped by run 1"
    procs, load = start_load(args.load)
    runs: list[Run] = []
    try:
        for number in range(1, args.runs + 1):
            venv = None if args.own_venv or number == 1 else work / "run-1" / ".venv"
            run = one_run(number, work, venv, args.pytest_args)
            runs.append(run)
            print(
                f"flakes: run {number}/{args.runs}: {'pass' if run.ok else 'FAIL'} in {run.seconds:.0f} s "
                f"{run.counts} {' '.join(run.failing)}",
                flush=True,
            )
            if not args.keep and (args.own_venv or number > 1):
                shutil.rmtree(work / f"run-{number}", ignore_errors=True)
    finally:
        stop_load(procs)
        if not args.keep:
            shutil.rmtree(work / "run-1", ignore_errors=True)
    report = table(runs, load, head, venv_note)
    (work / "flakes-report.md").write_text(report, encoding="utf-8")
    print()
    print(report)
    print(f"report: {work / 'flakes-report.md'} (run logs and timing.jsonl beside it)")
    return 0 if runs and all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

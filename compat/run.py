"""Build the compatibility matrix: every interop scenario for every version pair.

``make compat`` (or ``.venv/bin/python compat/run.py``) reads ``compat/matrix.toml``
and, in a temporary directory that is removed afterwards:

1. installs each Node ``bullmq`` version with ``npm install bullmq@X ioredis@Y``
   into a ``node_modules`` of its own, loaded by a copy of ``interop/driver.js``
   through ``NODE_PATH`` (the copy sits outside the project so Node cannot find
   the project's own ``node_modules`` first);
2. uses the project's ``.venv`` for the pinned port version, and for any other
   a fresh venv with that ``bullmq`` plus bullbridge's other dependencies (at
   the versions ``requirements/dev.lock`` pins, where they fit) and bullbridge
   itself (``pip install --no-deps -e``);
3. for each pair, starts a private ``redis-server`` and runs
   ``python -m compat.scenarios`` in that venv against it (the scenarios of
   :mod:`bullbridge.conformance`, the ones ``bullbridge interop check`` runs);
4. writes ``compat/matrix.json`` and ``compat/MATRIX.md``: each scenario and
   direction per pair is *pass*, *known difference* (a failure listed in
   ``bullbridge.compat.KNOWN_DIFFERENCES``, with its one-line explanation) or
   *fail* (anything else, with the error).

Nothing outside the temporary directory and those two files is touched. The
exit status is 1 when a scenario failed unexplained, a known difference did not
reproduce, or a pair could not run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bullbridge.compat import KNOWN_DIFFERENCES, differences_for  # noqa: E402
from bullbridge.conformance import select  # noqa: E402
from bullbridge.testing.redis_server import PrivateRedis  # noqa: E402

log = logging.getLogger("bullbridge.compat.run")

HERE = ROOT / "compat"
MATRIX_TOML = HERE / "matrix.toml"
MATRIX_JSON = HERE / "matrix.json"
MATRIX_MD = HERE / "MATRIX.md"
DRIVER = ROOT / "interop" / "driver.js"
LOCK = ROOT / "requirements" / "dev.lock"
#: bullbridge's runtime dependencies besides the port (pyproject.toml).
OTHER_DEPS = ("redis", "orjson", "croniter", "hiredis", "msgpack")
PAIR_TIMEOUT = 900
#: Variables that would point a pair's run at another Redis or another node_modules.
ENV_DROPPED = ("BULLBRIDGE_REDIS_URL", "REDIS_URL", "NODE_PATH", "BULLBRIDGE_NODE_MODULES")


@dataclass
class Versions:
    node: list[str]
    ioredis: str
    python: list[str]
    pinned: str
    newest: str | None = None
    notes: list[str] = field(default_factory=list)


def run(
    cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    log.debug("$ %s", " ".join(cmd))
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        output = (proc.stderr or proc.stdout)[-1500:]
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}): {output}")
    return proc


def newest_port_version() -> str:
    """The newest ``bullmq`` release on PyPI (``pip index versions``)."""
    out = run([sys.executable, "-m", "pip", "index", "versions", "bullmq", "--disable-pip-version-check"]).stdout
    match = re.search(r"^bullmq \(([^)]+)\)", out, re.M)
    if not match:
        raise RuntimeError(f"cannot read the newest bullmq from pip: {out[:300]}")
    return match.group(1)


def installed_port_version() -> str:
    from importlib.metadata import version

    return version("bullmq")


def load_versions(args: argparse.Namespace) -> Versions:
    config = tomllib.loads(MATRIX_TOML.read_text())
    versions = Versions(
        node=list(args.node or config["node"]["versions"]),
        ioredis=config["node"]["ioredis"],
        python=[],
        pinned=config["python"]["pinned"],
    )
    wanted = list(args.python or config["python"]["versions"])
    for item in wanted:
        if item == "newest":
            try:
                versions.newest = newest_port_version()
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                versions.notes.append(f"newest port version unknown ({exc}); skipped")
                continue
            item = versions.newest
        if item not in versions.python:
            versions.python.append(item)
    if versions.newest and versions.newest == versions.pinned and "newest" in wanted:
        versions.notes.append(f"the newest bullmq on PyPI is the pinned {versions.pinned}: one Python column")
    return versions


# --- environments -------------------------------------------------------------------------------


def node_env(work: Path, version: str, ioredis: str) -> Path:
    """``npm install bullmq@version ioredis@...`` into ``work/node-<version>``; its node_modules."""
    target = work / f"node-{version}"
    target.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    run(
        [
            "npm",
            "install",
            "--prefix",
            str(target),
            "--no-save",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            f"bullmq@{version}",
            f"ioredis@{ioredis}",
        ]
    )
    log.info("node bullmq %s installed in %.1f s", version, time.monotonic() - started)
    return target / "node_modules"


def driver_copy(work: Path) -> Path:
    """``interop/driver.js`` copied where no ancestor holds a node_modules."""
    target = work / "driver" / "driver.js"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(DRIVER, target)
    return target


def lock_constraints(work: Path) -> Path:
    """requirements/dev.lock without the port, as a pip constraints file."""
    lines = [
        line
        for line in LOCK.read_text().splitlines()
        if line.strip() and not line.startswith("#") and not line.lower().startswith("bullmq==")
    ]
    path = work / "constraints.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def python_env(work: Path, version: str, *, fresh: bool) -> str:
    """The interpreter to run port ``version`` with: this one for the installed
    version (unless ``fresh``), else a new venv."""
    if version == installed_port_version() and not fresh:
        return sys.executable
    venv = work / f"py-{version}"
    started = time.monotonic()
    run([sys.executable, "-m", "venv", str(venv)])
    py = str(venv / "bin" / "python")
    pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    try:
        run([*pip, "-c", str(lock_constraints(work)), f"bullmq=={version}", *OTHER_DEPS])
    except RuntimeError as exc:
        log.warning("the dev.lock pins do not fit bullmq %s (%s); letting pip choose", version, str(exc)[-200:])
        run([*pip, f"bullmq=={version}", *OTHER_DEPS])
    run([*pip, "--no-deps", "-e", str(ROOT)])
    log.info("python port %s venv ready in %.1f s", version, time.monotonic() - started)
    return py


# --- one pair -------------------------------------------------------------------------------------


def run_pair(
    python: str, driver: Path, node_modules: Path, node_version: str, port_version: str, work: Path, only: list[str]
) -> dict[str, Any]:
    out = work / f"results-node{node_version}-py{port_version}.json"
    err = work / f"stderr-node{node_version}-py{port_version}.log"
    started = time.monotonic()
    with PrivateRedis() as redis:
        cmd = [
            python,
            "-m",
            "compat.scenarios",
            "--redis",
            redis.url,
            "--driver",
            str(driver),
            "--node-path",
            str(node_modules),
            "--expect-node",
            node_version,
            "--json",
            str(out),
        ]
        for item in only:
            cmd += ["--only", item]
        env = {k: v for k, v in os.environ.items() if k not in ENV_DROPPED}
        with err.open("w") as stderr:
            proc = subprocess.run(
                cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr, timeout=PAIR_TIMEOUT, check=False
            )
    seconds = round(time.monotonic() - started, 1)
    if proc.returncode != 0 or not out.exists():
        tail = err.read_text(errors="replace")[-1500:]
        return {
            "node": node_version,
            "python": port_version,
            "status": "error",
            "seconds": seconds,
            "error": f"scenario run exited {proc.returncode}: {tail}",
            "results": [],
        }
    report = json.loads(out.read_text())
    if report["python_port"] != port_version:
        return {
            "node": node_version,
            "python": port_version,
            "status": "error",
            "seconds": seconds,
            "error": f"the venv ran port {report['python_port']}, not {port_version}",
            "results": [],
        }
    return {
        "node": node_version,
        "python": port_version,
        "status": "ok",
        "seconds": seconds,
        "redis": report["redis"],
        "node_runtime": report["node"],
        "python_runtime": report["python"],
        "results": classify(report["results"], node_version, port_version),
    }


def classify(results: list[dict[str, Any]], node_version: str, port_version: str) -> list[dict[str, Any]]:
    """pass / known (a listed difference, with its explanation) / fail (with the error)."""
    known = {d.scenario: d for d in differences_for(node_version, port_version)}
    out = []
    for r in results:
        sid = f"{r['scenario']}[{r['direction']}]"
        diff = known.get(sid)
        entry: dict[str, Any] = {"scenario": sid, "seconds": r["seconds"]}
        if r["status"] == "pass":
            entry["status"] = "pass"
            if diff is not None:
                entry["stale_known_difference"] = diff.summary
        elif diff is not None:
            entry.update(status="known", explanation=diff.summary, unsafe=diff.unsafe, error=r["error"])
        else:
            entry.update(status="fail", error=r["error"])
        out.append(entry)
    return out


# --- output ---------------------------------------------------------------------------------------

MARK = {"pass": "✅ pass", "known": "⚠️ known difference", "fail": "❌ fail"}


def one_line(text: str | None, limit: int = 220) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def render_markdown(doc: dict[str, Any]) -> str:
    pairs = doc["pairs"]
    v = doc["versions"]
    lines = [
        "# Compatibility matrix",
        "",
        f"Generated by `make compat` (`compat/run.py`) on {doc['generated'][:10]}; do not edit by hand. "
        f"Redis {doc.get('redis', '?')}, Node.js {doc.get('node_runtime', '?')}, "
        f"Python {doc.get('python_runtime', '?')}.",
        "",
        "Each interop scenario (`bullbridge/conformance/`) runs both ways: **N->P** — Node produces or "
        "sets up, Python consumes or observes; **P->N** — the reverse. *Known difference*: a failure that "
        "`bullbridge.compat.KNOWN_DIFFERENCES` explains (the version-skew guard and `bullbridge doctor` "
        "warn about the unsafe ones); *fail*: anything else.",
        "",
        f"Node `bullmq`: {', '.join(v['node'])} (with ioredis {v['ioredis']}). Python port `bullmq`: "
        f"{', '.join(v['python'])} (pinned {v['pinned']}, newest on PyPI {v.get('newest') or 'unknown'}).",
    ]
    for note in v.get("notes", []):
        lines.append(f"Note: {note}.")
    lines += [
        "",
        "## Summary",
        "",
        "| Node | port | pass | known difference | fail | runtime |",
        "|---|---|---|---|---|---|",
    ]
    for p in pairs:
        counts = {s: sum(1 for r in p["results"] if r["status"] == s) for s in MARK}
        status = "" if p["status"] == "ok" else " (could not run)"
        lines.append(
            f"| {p['node']} | {p['python']}{status} | {counts['pass']} | {counts['known']} | "
            f"{counts['fail']} | {p['seconds']} s |"
        )
    header = "| scenario | dir | " + " | ".join(f"Node {p['node']} · port {p['python']}" for p in pairs) + " |"
    lines += ["", "## Scenarios", "", header, "|---|---|" + "---|" * len(pairs)]
    notes: dict[str, int] = {}
    note_text: list[str] = []
    by_pair = [{r["scenario"]: r for r in p["results"]} for p in pairs]
    for s in doc["scenarios"]:
        cells = []
        for results in by_pair:
            r = results.get(s["id"])
            if r is None:
                cells.append("—")
                continue
            cell = MARK[r["status"]]
            text = r.get("explanation") if r["status"] == "known" else r.get("error")
            if r["status"] != "pass":
                key = f"{r['status']}:{text}"
                if key not in notes:
                    notes[key] = len(notes) + 1
                    note_text.append(f"{notes[key]}. `{s['id']}` — {one_line(text)}")
                cell += f" [{notes[key]}]"
            cells.append(cell)
        lines.append(f"| {s['name']}: {s['title']} | {s['direction']} | " + " | ".join(cells) + " |")
    if note_text:
        lines += ["", "## Explanations", "", *note_text]
    errors = [p for p in pairs if p["status"] != "ok"]
    if errors:
        lines += ["", "## Pairs that could not run", ""]
        lines += [f"- Node {p['node']} · port {p['python']}: {one_line(p['error'], 400)}" for p in errors]
    stale = [(p, r) for p in pairs for r in p["results"] if r.get("stale_known_difference")]
    if stale:
        lines += ["", "## Known differences that did not reproduce", ""]
        lines += [
            f"- `{r['scenario']}` with Node {p['node']} · port {p['python']} passed: update "
            "`bullbridge.compat.KNOWN_DIFFERENCES`"
            for p, r in stale
        ]
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="compat/run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--node", action="append", metavar="VERSION", help="Node bullmq version (repeatable)")
    parser.add_argument(
        "--python", action="append", metavar="VERSION", help="port bullmq version or 'newest' (repeatable)"
    )
    parser.add_argument(
        "--only", action="append", default=[], metavar="SCENARIO", help="scenario name, id or group (repeatable)"
    )
    parser.add_argument(
        "--fresh-venv", action="store_true", help="build a venv even for the port version installed here"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--out", type=Path, default=HERE, help="where matrix.json and MATRIX.md go")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    try:
        scenarios = select(args.only)  # the same choice compat.scenarios makes in each pair's run
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    started = time.monotonic()
    versions = load_versions(args)
    work = Path(tempfile.mkdtemp(prefix="bullbridge-compat-"))
    log.info("matrix: node %s x port %s in %s", versions.node, versions.python, work)
    pairs: list[dict[str, Any]] = []
    try:
        driver = driver_copy(work)
        node_modules = {v: node_env(work, v, versions.ioredis) for v in versions.node}
        pythons = {v: python_env(work, v, fresh=args.fresh_venv) for v in versions.python}
        for port in versions.python:
            for node in versions.node:
                log.info("running node %s x port %s", node, port)
                pair = run_pair(pythons[port], driver, node_modules[node], node, port, work, args.only)
                counts = {s: sum(1 for r in pair["results"] if r["status"] == s) for s in MARK}
                log.info(
                    "node %s x port %s: %s in %s s %s", node, port, counts, pair["seconds"], pair.get("error") or ""
                )
                pairs.append(pair)
    finally:
        if args.keep:
            log.info("kept %s", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    ok = [p for p in pairs if p["status"] == "ok"]
    doc: dict[str, Any] = {
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 1),
        "redis": ok[0]["redis"] if ok else None,
        "node_runtime": ok[0]["node_runtime"] if ok else None,
        "python_runtime": ok[0]["python_runtime"] if ok else None,
        "versions": {
            "node": versions.node,
            "ioredis": versions.ioredis,
            "python": versions.python,
            "pinned": versions.pinned,
            "newest": versions.newest,
            "notes": versions.notes,
        },
        "scenarios": [{"id": s.id, "name": s.name, "direction": s.direction, "title": s.title} for s in scenarios],
        "known_differences": [
            {
                "scenario": d.scenario,
                "node": [list(d.node[0]), list(d.node[1])],
                "port": [list(d.port[0]), list(d.port[1])],
                "summary": d.summary,
                "unsafe": d.unsafe,
            }
            for d in KNOWN_DIFFERENCES
        ],
        "pairs": pairs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / MATRIX_JSON.name).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    (args.out / MATRIX_MD.name).write_text(render_markdown(doc))
    log.info("wrote %s and %s in %.0f s", args.out / MATRIX_MD.name, args.out / MATRIX_JSON.name, doc["seconds"])
    bad = [p for p in pairs if p["status"] != "ok"]
    bad += [r for p in pairs for r in p["results"] if r["status"] == "fail" or r.get("stale_known_difference")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

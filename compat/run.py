"""Build the compatibility matrix: every interop scenario for every version pair.

``make compat`` (or ``.venv/bin/python compat/run.py``) reads ``compat/matrix.toml``
and, in a temporary directory that is removed afterwards:

1. resolves ``newest:<major>`` (``npm view bullmq versions``; the newest 6.x) and
   installs each Node ``bullmq`` version with ``npm install bullmq@X ioredis@Y``
   into a ``node_modules`` of its own, loaded by a copy of ``interop/driver.js``
   through ``NODE_PATH`` (the copy sits outside the project so Node cannot find
   the project's own ``node_modules`` first);
2. uses the project's ``.venv`` for the pinned port version, and for any other
   a fresh venv with that ``bullmq`` plus bullbridge's other dependencies (at
   the versions ``requirements/dev.lock`` pins, where they fit) and bullbridge
   itself (``pip install --no-deps -e``);
3. for each pair - ``--jobs`` of them at once (2 by default) - starts a private
   ``redis-server`` and runs
   ``python -m compat.scenarios`` in that venv against it (the scenarios of
   :mod:`bullbridge.conformance`, the ones ``bullbridge interop check`` runs);
4. writes ``compat/matrix.json`` and ``compat/MATRIX.md``: each scenario and
   direction per pair is *pass*, *not applicable* (the Node version lacks a
   feature the scenario needs), *known difference* (a failure listed in
   ``bullbridge.compat.KNOWN_DIFFERENCES``, with its explanation, page and doctor
   check), *lost job* (a job in no state: never excused) or *fail* (anything
   else, with the error); the protocol epochs; the totals and the run time.

Nothing outside the temporary directory and those two files is touched. The
exit status is 1 when a scenario failed unexplained or lost a job, a known
difference did not reproduce, or a pair could not run.
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

from bullbridge.compat import EPOCHS, KNOWN_DIFFERENCES, differences_for  # noqa: E402
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
    #: What ``newest:<major>`` resolved to: the newest Node 6.x when make compat ran.
    newest_node: str | None = None
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


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version.split("-")[0])[:3])


def _stable(version: str) -> bool:
    return re.fullmatch(r"\d+\.\d+\.\d+", version) is not None


def newest_port_version(major: str | None = None) -> str:
    """The newest ``bullmq`` release on PyPI (``pip index versions``), of ``major`` when given."""
    out = run([sys.executable, "-m", "pip", "index", "versions", "bullmq", "--disable-pip-version-check"]).stdout
    match = re.search(r"^Available versions: (.+)$", out, re.M)
    if not match:
        raise RuntimeError(f"cannot read the bullmq versions from pip: {out[:300]}")
    found = [v.strip() for v in match.group(1).split(",") if _stable(v.strip())]
    if major is not None:
        found = [v for v in found if v.split(".")[0] == major]
    if not found:
        raise RuntimeError(f"no bullmq {major or ''}.x on PyPI")
    return max(found, key=_key)


def newest_node_version(major: str) -> str:
    """The newest npm ``bullmq`` ``major``.x (``npm view bullmq versions``)."""
    out = run(["npm", "view", "bullmq", "versions", "--json"], timeout=120).stdout
    found = [v for v in json.loads(out) if _stable(v) and v.split(".")[0] == major]
    if not found:
        raise RuntimeError(f"no bullmq {major}.x on npm")
    return max(found, key=_key)


def installed_port_version() -> str:
    from importlib.metadata import version

    return version("bullmq")


def _resolve_node(versions: Versions, items: list[str]) -> None:
    """``newest:<major>`` -> the newest npm release of that major (once, deduplicated)."""
    for item in items:
        if item.startswith("newest:"):
            major = item.split(":", 1)[1]
            try:
                item = versions.newest_node = newest_node_version(major)
            except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
                versions.notes.append(f"the newest Node bullmq {major}.x is unknown ({exc}); skipped")
                continue
            if item in versions.node:
                versions.notes.append(f"the newest Node bullmq {major}.x is {item}, already in the list")
                continue
        if item not in versions.node:
            versions.node.append(item)


def load_versions(args: argparse.Namespace) -> Versions:
    config = tomllib.loads(MATRIX_TOML.read_text())
    versions = Versions(node=[], ioredis=config["node"]["ioredis"], python=[], pinned=config["python"]["pinned"])
    _resolve_node(versions, list(args.node or config["node"]["versions"]))
    wanted = list(args.python or config["python"]["versions"])
    for item in wanted:
        if item.startswith("newest:"):
            major = item.split(":", 1)[1]
            try:
                item = newest_port_version(major)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                versions.notes.append(f"the newest port {major}.x is unknown ({exc}); skipped")
                continue
        elif item == "newest":
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
    """pass / n/a (the Node version lacks a feature) / lost (a job vanished: never excused) /
    known (a listed difference, with its explanation) / fail (with the error)."""
    known = {d.scenario: d for d in differences_for(node_version, port_version)}
    out = []
    for r in results:
        sid = f"{r['scenario']}[{r['direction']}]"
        diff = known.get(sid)
        entry: dict[str, Any] = {"scenario": sid, "seconds": r["seconds"]}
        if r["status"] in ("pass", "n/a"):
            entry["status"] = r["status"]
            if r["status"] == "n/a":
                entry["reason"] = r.get("note")
            if diff is not None and r["status"] == "pass":
                entry["stale_known_difference"] = diff.summary
        elif diff is not None and r["status"] == "fail":
            entry.update(
                status="known",
                explanation=diff.summary,
                doc=diff.doc,
                doctor=diff.doctor,
                unsafe=diff.unsafe,
                error=r["error"],
            )
        else:
            entry.update(status=r["status"] if r["status"] == "lost" else "fail", error=r["error"])
        out.append(entry)
    return out


# --- output ---------------------------------------------------------------------------------------

MARK = {"pass": "✅", "known": "⚠️", "fail": "❌", "lost": "💥 lost job", "n/a": "➖"}
LEGEND = (
    "✅ pass · ⚠️ known difference (explained below) · ❌ fail · 💥 lost job (never accepted) · "
    "➖ not applicable (the Node version lacks the feature; reason below)"
)


def one_line(text: str | None, limit: int = 220) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _counts(pair: dict[str, Any]) -> dict[str, int]:
    return {s: sum(1 for r in pair["results"] if r["status"] == s) for s in MARK}


def _header(doc: dict[str, Any]) -> list[str]:
    v = doc["versions"]
    lines = [
        "# Compatibility matrix",
        "",
        f"Generated by `make compat` (`compat/run.py`) on {doc['generated'][:10]} in {_duration(doc.get('seconds'))}; "
        f"do not edit by hand. Redis {doc.get('redis', '?')}, Node.js {doc.get('node_runtime', '?')}, "
        f"Python {doc.get('python_runtime', '?')}.",
        "",
        "Each interop scenario (`bullbridge/conformance/`) runs both ways: **N->P** — Node produces or "
        "sets up, Python consumes or observes; **P->N** — the reverse. *Known difference*: a failure that "
        "`bullbridge.compat.KNOWN_DIFFERENCES` explains (the version-skew guard and `bullbridge doctor` "
        "warn about the unsafe ones); *fail*: anything else; *lost job*: a job that ended in no state, "
        "which no entry can excuse; *not applicable*: the scenario needs a Node feature that version lacks.",
        "",
        f"Node `bullmq`: {', '.join(v['node'])} (with ioredis {v['ioredis']}; the newest 6.x when this ran: "
        f"{v.get('newest_node') or 'unknown'}). Python port `bullmq`: {', '.join(v['python'])} "
        f"(pinned {v['pinned']}, newest on PyPI {v.get('newest') or 'unknown'}).",
    ]
    lines += [f"Note: {note}." for note in v.get("notes", [])]
    return lines


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "?"
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"


def _summary(doc: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Summary",
        "",
        "| Node | port | pass | known difference | fail | lost job | not applicable | runtime |",
        "|---|---|---|---|---|---|---|---|",
    ]
    total = dict.fromkeys(MARK, 0)
    for p in doc["pairs"]:
        counts = _counts(p)
        total = {k: total[k] + counts[k] for k in total}
        status = "" if p["status"] == "ok" else " (could not run)"
        lines.append(
            f"| {p['node']} | {p['python']}{status} | {counts['pass']} | {counts['known']} | {counts['fail']} | "
            f"{counts['lost']} | {counts['n/a']} | {p['seconds']} s |"
        )
    lines.append(
        f"| **all {len(doc['pairs'])} pairs** | | **{total['pass']}** | **{total['known']}** | **{total['fail']}** | "
        f"**{total['lost']}** | **{total['n/a']}** | {_duration(doc.get('seconds'))} |"
    )
    return lines


def _epochs(doc: dict[str, Any]) -> list[str]:
    epochs = doc.get("epochs") or []
    if not epochs:
        return []
    lines = [
        "",
        "## Protocol epochs",
        "",
        "The Node versions are chosen by protocol change (`bullbridge.compat.EPOCHS`): one on each side of each.",
        "",
        "| since | change | before | after |",
        "|---|---|---|---|",
    ]
    lines += [f"| {e['since']} | **{e['name']}**: {e['change']} | {e['before']} | {e['after']} |" for e in epochs]
    return lines


def _cell(r: dict[str, Any] | None, sid: str, notes: dict[str, int], note_text: list[str]) -> str:
    if r is None:
        return "—"
    cell = MARK[r["status"]]
    if r["status"] == "pass":
        return cell
    if r["status"] == "n/a":
        # One note per missing feature, whichever Node version lacks it.
        need = re.sub(r"^Node bullmq \S+ (?:has no|lacks) ", "", str(r.get("reason")))
        text = f"not applicable: the Node version lacks {need}"
    elif r["status"] == "known":
        text = (
            f"{r.get('explanation')} — explained in [{r.get('doc')}](../{r.get('doc')}); "
            f"`bullbridge doctor` warns in its `{r.get('doctor')}` check"
        )
    else:
        text = r.get("error") or ""
    key = f"{r['status']}:{text}"
    if key not in notes:
        notes[key] = len(notes) + 1
        label = f"`{sid}` — " if r["status"] in ("fail", "lost") else ""
        note_text.append(f"{notes[key]}. {label}{one_line(text, 800)}")
    return f"{cell} [{notes[key]}]"


def render_markdown(doc: dict[str, Any]) -> str:
    pairs = doc["pairs"]
    lines = _header(doc) + _summary(doc) + _epochs(doc)
    header = "| scenario | dir | " + " | ".join(f"{p['node']}·{p['python']}" for p in pairs) + " |"
    lines += ["", "## Scenarios", "", LEGEND, "", header, "|---|---|" + "---|" * len(pairs)]
    notes: dict[str, int] = {}
    note_text: list[str] = []
    by_pair = [{r["scenario"]: r for r in p["results"]} for p in pairs]
    for s in doc["scenarios"]:
        cells = [_cell(results.get(s["id"]), s["id"], notes, note_text) for results in by_pair]
        lines.append(f"| {s['name']}: {s['title']} | {s['direction']} | " + " | ".join(cells) + " |")
    if note_text:
        lines += ["", "## Notes", "", *note_text]
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


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="compat/run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--node", action="append", metavar="VERSION", help="Node bullmq version or 'newest:6' (repeatable)"
    )
    parser.add_argument(
        "--python", action="append", metavar="VERSION", help="port bullmq version, 'newest' or 'newest:2' (repeatable)"
    )
    parser.add_argument(
        "--only", action="append", default=[], metavar="SCENARIO", help="scenario name, id or group (repeatable)"
    )
    parser.add_argument(
        "--fresh-venv", action="store_true", help="build a venv even for the port version installed here"
    )
    parser.add_argument(
        "--jobs", type=int, default=2, metavar="N", help="version pairs run at once, each on its own Redis (default 2)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--out", type=Path, default=HERE, help="where matrix.json and MATRIX.md go")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def _run_pairs(args: argparse.Namespace, versions: Versions, work: Path) -> list[dict[str, Any]]:
    """Every pair, ``args.jobs`` at a time (each its own Redis and processes), in matrix order."""
    from concurrent.futures import ThreadPoolExecutor

    driver = driver_copy(work)
    node_modules = {v: node_env(work, v, versions.ioredis) for v in versions.node}
    pythons = {v: python_env(work, v, fresh=args.fresh_venv) for v in versions.python}
    order = [(port, node) for port in versions.python for node in versions.node]

    def one(port: str, node: str) -> dict[str, Any]:
        log.info("running node %s x port %s", node, port)
        pair = run_pair(pythons[port], driver, node_modules[node], node, port, work, args.only)
        counts = {s: n for s, n in _counts(pair).items() if n}
        log.info("node %s x port %s: %s in %s s %s", node, port, counts, pair["seconds"], pair.get("error") or "")
        return pair

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        return list(pool.map(lambda pn: one(*pn), order))


def _document(versions: Versions, scenarios: list[Any], pairs: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    ok = [p for p in pairs if p["status"] == "ok"]
    return {
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "redis": ok[0]["redis"] if ok else None,
        "node_runtime": ok[0]["node_runtime"] if ok else None,
        "python_runtime": ok[0]["python_runtime"] if ok else None,
        "versions": {
            "node": versions.node,
            "ioredis": versions.ioredis,
            "python": versions.python,
            "pinned": versions.pinned,
            "newest": versions.newest,
            "newest_node": versions.newest_node,
            "notes": versions.notes,
        },
        "epochs": [
            {
                "since": ".".join(map(str, e.since)),
                "name": e.name,
                "change": e.change,
                "before": e.before,
                "after": e.after,
            }
            for e in EPOCHS
        ],
        "scenarios": [{"id": s.id, "name": s.name, "direction": s.direction, "title": s.title} for s in scenarios],
        "known_differences": [
            {
                "scenario": d.scenario,
                "node": [list(d.node[0]), list(d.node[1])],
                "port": [list(d.port[0]), list(d.port[1])],
                "summary": d.summary,
                "unsafe": d.unsafe,
                "doc": d.doc,
                "doctor": d.doctor,
            }
            for d in KNOWN_DIFFERENCES
        ],
        "pairs": pairs,
    }


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    try:
        scenarios = select(args.only)  # the same choice compat.scenarios makes in each pair's run
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    started = time.monotonic()
    versions = load_versions(args)
    work = Path(tempfile.mkdtemp(prefix="bullbridge-compat-"))
    log.info("matrix: node %s x port %s in %s", versions.node, versions.python, work)
    try:
        pairs = _run_pairs(args, versions, work)
    finally:
        if args.keep:
            log.info("kept %s", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    doc = _document(versions, scenarios, pairs, time.monotonic() - started)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / MATRIX_JSON.name).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    (args.out / MATRIX_MD.name).write_text(render_markdown(doc))
    log.info("wrote %s and %s in %.0f s", args.out / MATRIX_MD.name, args.out / MATRIX_JSON.name, doc["seconds"])
    bad = [p for p in pairs if p["status"] != "ok"]
    bad += [
        r for p in pairs for r in p["results"] if r["status"] in ("fail", "lost") or r.get("stale_known_difference")
    ]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""Where the user's Node ``bullmq`` is, and installing a given version for tests.

The Node side of an interop test must run the ``bullmq`` the user's services
pin, from their own ``node_modules``. :func:`resolve_node_modules` turns what
the user configured (a ``node_modules`` folder or the project folder holding
one) into the ``node_modules`` folder, and fails with a message that says what
to do when ``bullmq`` is not installed there; :func:`find_node_modules` looks
for one upwards from a folder, as Node's own resolution does.

:func:`install_bullmq` installs one ``bullmq`` version (with ``npm install``)
into a folder of its own, once: bullbridge's tests use it for an older BullMQ,
``bullbridge interop check --bullmq VERSION`` for the version a user names.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from bullbridge.errors import BullbridgeError

log = logging.getLogger("bullbridge.testing.npm")

ENV_NODE_MODULES = "BULLBRIDGE_NODE_MODULES"


class NodeModulesError(BullbridgeError):
    """The Node side cannot be set up: no ``bullmq`` where the user pointed, no npm..."""


def bullmq_version(node_modules: Path) -> str | None:
    """The version of ``node_modules/bullmq``, or None when it is not installed there."""
    manifest = node_modules / "bullmq" / "package.json"
    try:
        version = json.loads(manifest.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    return str(version)


def resolve_node_modules(path: str | os.PathLike[str], *, base: Path | None = None) -> Path:
    """The ``node_modules`` folder ``path`` names: the folder itself, or the
    ``node_modules`` inside a project folder (relative paths from ``base``).
    :class:`NodeModulesError` when ``bullmq`` is not installed there."""
    given = Path(os.path.expanduser(os.fspath(path)))
    if not given.is_absolute():
        given = (base or Path.cwd()) / given
    given = given.resolve()
    candidates = [given] if given.name == "node_modules" else [given / "node_modules", given]
    for candidate in candidates:
        if bullmq_version(candidate) is not None:
            return candidate
    where = given if given.name == "node_modules" else given / "node_modules"
    if not where.exists():
        hint = f"{where} does not exist: run `npm install` in {where.parent}"
    else:
        hint = f"there is no bullmq in {where}: run `npm install bullmq` in {where.parent}"
    raise NodeModulesError(f"cannot use {path} as the Node side's node_modules: {hint}")


def find_node_modules(start: Path) -> Path | None:
    """The nearest ``node_modules`` holding ``bullmq``, from ``start`` upwards."""
    here = start.resolve()
    for folder in (here, *here.parents):
        candidate = folder / "node_modules"
        if bullmq_version(candidate) is not None:
            return candidate
    return None


def default_cache_dir() -> Path:
    """Where :func:`install_bullmq` keeps versions by default (``$XDG_CACHE_HOME/bullbridge/node``)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "bullbridge" / "node"


_VERSION = re.compile(r"^[0-9A-Za-z.+\-]+$")


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` across processes (pytest-xdist workers), where flock exists."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(folder / ".bullbridge-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def install_bullmq(
    version: str, folder: Path | None = None, *, extra: tuple[str, ...] = (), timeout: float = 300.0
) -> Path:
    """Install npm ``bullmq@version`` (and ``extra`` packages, e.g. ``"ioredis@5.11.1"``)
    into ``folder`` (default: a folder per version in :func:`default_cache_dir`) and
    return its ``node_modules``. Does nothing when that version is already there;
    concurrent calls for one folder wait for each other."""
    if not _VERSION.match(version) or not all(_VERSION.match(p.rsplit("@", 1)[-1]) for p in extra):
        raise NodeModulesError(f"not an npm version: {version!r} {extra!r}")
    folder = (folder or default_cache_dir() / f"bullmq-{version}").resolve()
    node_modules = folder / "node_modules"
    with _locked(folder):
        if bullmq_version(node_modules) == version:
            return node_modules
        npm = shutil.which("npm")
        if npm is None:
            raise NodeModulesError("npm is not on PATH: install Node.js 20+ (it comes with npm)")
        manifest = folder / "package.json"
        if not manifest.exists():
            manifest.write_text(json.dumps({"name": "bullbridge-node-side", "private": True}) + "\n")
        command = [
            npm,
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--save-exact",
            f"bullmq@{version}",
            *extra,
        ]
        log.info("installing bullmq %s into %s", version, folder)
        try:
            done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise NodeModulesError(f"npm install bullmq@{version} did not finish in {timeout:g} s") from None
        if done.returncode != 0:
            output = (done.stderr or done.stdout).strip()[-800:]
            raise NodeModulesError(f"npm install bullmq@{version} failed: {output}")
        installed = bullmq_version(node_modules)
        if installed != version:
            raise NodeModulesError(f"npm installed bullmq {installed}, not {version}, in {folder}")
        return node_modules

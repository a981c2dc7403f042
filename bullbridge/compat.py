"""Which Node BullMQ versions are safe beside the running Python port: the
compatibility matrix's verdict, and a guard that reads each queue's Node version.

Node's ``Queue`` writes ``<prefix>:<queue>:meta`` field ``version`` as
``bullmq:<version>`` (the Python port never writes it). :func:`check_queue_versions`
reads it and logs one warning per queue, naming what breaks, when the matrix
found that Node version unsafe with the installed port.

:data:`KNOWN_DIFFERENCES` is the matrix's verdict in code. The package does not
read ``compat/matrix.json`` (it ships without it); ``tests/compat/test_table.py``
checks this table against that file, both ways: every scenario the matrix saw
fail is listed here for its version pair, and every entry here reproduced in
the matrix. Refresh both with ``make compat`` (see ``compat/README.md``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache

from bullbridge.connection.resp import RespClient, RespError
from bullbridge.keys import QueueKeys

log = logging.getLogger("bullbridge.compat")

Version = tuple[int, int, int]


@dataclass(frozen=True)
class KnownDifference:
    """A matrix scenario that fails for a range of Node and port versions.

    Ranges are ``[low, high)``. ``unsafe`` differences make the guard warn;
    the others are documented behaviour (shown in MATRIX.md only)."""

    scenario: str
    node: tuple[Version, Version]
    port: tuple[Version, Version]
    summary: str
    unsafe: bool = True

    def applies(self, node_version: Version, port_version: Version) -> bool:
        return (self.node[0] <= node_version < self.node[1]) and (self.port[0] <= port_version < self.port[1])


_NODE_5 = ((5, 0, 0), (6, 0, 0))
_PORT_3_4 = ((3, 4, 4), (3, 5, 0))

#: Measured with Node 5.81.5 and 6.7.0 against port 3.4.4 (compat/MATRIX.md);
#: earlier 5.x releases are assumed to behave as 5.81.5 (same paused-list design).
KNOWN_DIFFERENCES: tuple[KnownDifference, ...] = (
    KnownDifference(
        scenario="pause_resume[P->N]",
        node=_NODE_5,
        port=_PORT_3_4,
        summary="a job added from Python while Node paused the queue is lost when Node resumes it: Node 5 "
        "renames its 'paused' list over 'wait', and the port added the job to 'wait' "
        "(docs/port-differences.md#node5-paused)",
    ),
    KnownDifference(
        scenario="pause_resume_idle[P->N]",
        node=_NODE_5,
        port=_PORT_3_4,
        summary="after Node resumes a queue it paused while empty, a job added from Python meanwhile waits up to "
        "drainDelay (5 s) for an idle Node worker: Node 5's resume adds no marker for jobs left in 'wait'",
    ),
)

#: The Node and port versions the matrix ran.
TESTED_NODE: tuple[str, ...] = ("5.81.5", "6.7.0")
TESTED_PORT: tuple[str, ...] = ("3.4.4",)


def parse_version(text: str) -> Version | None:
    """``"6.7.0"`` / ``"v5.81.5"`` / ``"6.7.0-beta.1"`` -> ``(6, 7, 0)``; ``None`` when not a version."""
    parts: list[int] = []
    for piece in text.strip().lstrip("v").split(".")[:3]:
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            return None
        parts.append(int(digits))
    while len(parts) < 3:
        parts.append(0)
    return (parts[0], parts[1], parts[2])


def parse_meta_version(raw: str | bytes | None) -> tuple[str, str] | None:
    """``meta.version`` (``"bullmq:6.7.0"``) -> ``("bullmq", "6.7.0")``."""
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    lib, sep, version = text.rpartition(":")
    if not sep or not lib or not version:
        return None
    return lib, version


@cache
def port_version() -> str | None:
    """The installed Python port's version (``None`` when unknown)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bullmq")
    except PackageNotFoundError:  # pragma: no cover - bullmq is a dependency
        return None


def differences_for(node_version: str, port: str | None = None, *, unsafe_only: bool = False) -> list[KnownDifference]:
    """The known differences of Node BullMQ ``node_version`` beside port ``port``
    (the installed one by default)."""
    node = parse_version(node_version)
    port_v = parse_version(port or port_version() or "")
    if node is None or port_v is None:
        return []
    return [d for d in KNOWN_DIFFERENCES if d.applies(node, port_v) and (d.unsafe or not unsafe_only)]


def is_tested(node_version: str) -> bool:
    """Whether the matrix ran this Node major version."""
    node = parse_version(node_version)
    return node is not None and any((parse_version(v) or (0,))[0] == node[0] for v in TESTED_NODE)


def recommended_node(port: str | None = None) -> str | None:
    """The newest Node version the matrix ran with no unsafe difference beside port ``port``."""
    safe = [v for v in TESTED_NODE if not differences_for(v, port, unsafe_only=True)]
    return max(safe, key=lambda v: parse_version(v) or (0, 0, 0), default=None)


def describe(keys: QueueKeys, lib: str, node_version: str, diff: KnownDifference) -> str:
    return (
        f"queue {keys.name!r} (prefix {keys.prefix!r}) is used by Node {lib} {node_version}, which is unsafe "
        f"beside the Python port bullmq {port_version()}: {diff.summary} [compat scenario {diff.scenario}]"
    )


_warned: set[tuple[str, str]] = set()


async def check_queue_versions(client: RespClient, keys: QueueKeys) -> list[str]:
    """Read the queue's ``meta.version`` (written by Node) and warn - once per
    queue and version - when the matrix marks it unsafe with the installed port.

    Returns the warnings issued by this call (``[]`` when the queue is fine,
    has no Node version, was already warned about, or Redis could not say)."""
    try:
        raw = await client.execute("HGET", keys["meta"], "version")
    except RespError as exc:  # connection trouble is the caller's to report, as its own
        log.debug("cannot read the Node version of queue %s: %s", keys.name, exc)
        return []
    parsed = parse_meta_version(raw)
    if parsed is None:
        return []
    lib, node_version = parsed
    if lib != "bullmq":
        log.debug("queue %s is used by %s %s, which the matrix does not cover", keys.name, lib, node_version)
        return []
    key = (keys.qualified_name, node_version)
    if key in _warned:
        return []
    _warned.add(key)
    if not is_tested(node_version):
        log.info(
            "queue %s is used by Node bullmq %s; the compatibility matrix covers %s only",
            keys.name,
            node_version,
            ", ".join(TESTED_NODE),
        )
    messages = [describe(keys, lib, node_version, d) for d in differences_for(node_version, unsafe_only=True)]
    for message in messages:
        log.warning("%s", message)
    return messages

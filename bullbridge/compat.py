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

from bullbridge.connection.resp import RespClient, RespConnectionError, RespError
from bullbridge.keys import QueueKeys

log = logging.getLogger("bullbridge.compat")

Version = tuple[int, int, int]


@dataclass(frozen=True)
class KnownDifference:
    """A matrix scenario that fails for a range of Node and port versions.

    Ranges are ``[low, high)``. ``unsafe`` differences make the guard warn;
    the others are documented behaviour (shown in MATRIX.md only). ``doc`` is
    the page and anchor that explains it (a ``docs/`` page and heading), ``doctor``
    the ``bullbridge doctor`` check that reports it on a live deployment."""

    scenario: str
    node: tuple[Version, Version]
    port: tuple[Version, Version]
    summary: str
    unsafe: bool = True
    doc: str = "docs/compatibility.md#known-differences-and-what-node-itself-changed"
    doctor: str = "version-pairs"

    def applies(self, node_version: Version, port_version: Version) -> bool:
        return (self.node[0] <= node_version < self.node[1]) and (self.port[0] <= port_version < self.port[1])


@dataclass(frozen=True)
class Epoch:
    """A change of BullMQ's Redis protocol, and the matrix's Node versions on each side of it."""

    since: Version
    name: str
    change: str
    before: str
    after: str


#: The protocol changes between Node BullMQ 3.x and 6.x (their changelogs and
#: scripts), each with the versions compat/matrix.toml runs on either side.
EPOCHS: tuple[Epoch, ...] = (
    Epoch(
        (4, 0, 0),
        "prioritized set",
        "prioritized jobs move from the wait list (+ a 'priority' zset) to their own 'prioritized' zset",
        "3.15.8",
        "4.18.3",
    ),
    Epoch(
        (5, 0, 0),
        "marker key",
        "workers wake on a dedicated 'marker' zset instead of a '0:<delay>' marker job id in 'wait'",
        "4.18.3",
        "5.15.0",
    ),
    Epoch(
        (5, 16, 0),
        "job schedulers",
        "Queue.upsertJobScheduler ('repeat' hash per scheduler) beside legacy repeatable jobs",
        "5.15.0",
        "5.19.1",
    ),
    Epoch(
        (5, 17, 0),
        "deduplication",
        "the 'deduplication' option ('de:<id>' keys; 5.11-5.16 called it 'debounce')",
        "5.15.0",
        "5.19.1",
    ),
    Epoch((5, 20, 0), "meta.version", "Queue writes 'bullmq:<version>' to the queue's meta hash", "5.19.1", "5.20.0"),
    Epoch(
        (5, 49, 2),
        "lazy parent failure",
        "a child's failParentOnFailure marks the parent ('defa') and moves it to wait; the worker that "
        "fetches it fails it (before: the child's script moved the parent to failed)",
        "5.20.0",
        "5.81.5",
    ),
    Epoch(
        (5, 56, 0),
        "deduplication modes",
        "deduplication 'replace' and 'extend' (5.56), 'keepLastIfActive' (5.72); global rate limit (5.60)",
        "5.20.0",
        "5.81.5",
    ),
    Epoch(
        (6, 0, 0),
        "no paused list",
        "pausing sets meta.paused only (jobs stay in 'wait'); legacy repeatable jobs and Job#discard removed",
        "5.81.5",
        "6.0.0",
    ),
    Epoch(
        (6, 5, 0),
        "deferred parent release",
        "flows record completed children and release the parent at the end (releaseParentIfNoPendingDependencies)",
        "6.4.0",
        "6.7.0",
    ),
    Epoch(
        (6, 7, 0),
        "deduplication reschedule",
        "deduplication 'reschedule' re-delays the deduplicated job",
        "6.4.0",
        "6.7.0",
    ),
)


@dataclass(frozen=True)
class NodeFeature:
    """A Node BullMQ API or option some scenarios need, and the versions that have it (``[since, until)``)."""

    what: str
    since: Version = (0, 0, 0)
    until: Version = (999, 0, 0)

    def available(self, node_version: Version) -> bool:
        return self.since <= node_version < self.until

    def describe(self) -> str:
        if self.until[0] < 999:
            return f"{self.what} (Node bullmq < {'.'.join(map(str, self.until))})"
        return f"{self.what} (Node bullmq >= {'.'.join(map(str, self.since))})"


#: What the conformance scenarios need from the Node side, by name
#: (``@scenario(..., requires=("job-schedulers",))``): a scenario whose Node
#: version lacks one is *not applicable* there, not a failure.
NODE_FEATURES: dict[str, NodeFeature] = {
    "marker-key": NodeFeature("the marker key workers block on", since=(5, 0, 0)),
    "global-concurrency": NodeFeature("Queue.setGlobalConcurrency", since=(5, 9, 0)),
    "job-schedulers": NodeFeature("Queue.upsertJobScheduler", since=(5, 16, 0)),
    "job-scheduler-getter": NodeFeature("Queue.getJobScheduler", since=(5, 23, 0)),
    "deduplication": NodeFeature("the deduplication option", since=(5, 17, 0)),
    "meta-version": NodeFeature("meta.version written by Queue", since=(5, 20, 0)),
    "continue-parent-on-failure": NodeFeature("the continueParentOnFailure option", since=(5, 47, 0)),
    "dedup-replace-extend": NodeFeature("deduplication replace/extend", since=(5, 56, 0)),
    "global-rate-limit": NodeFeature("Queue.setGlobalRateLimit", since=(5, 60, 0)),
    "dedup-remove-key": NodeFeature("Job.removeDeduplicationKey", since=(5, 65, 0)),
    "dedup-keep-last-if-active": NodeFeature("deduplication keepLastIfActive", since=(5, 72, 0)),
    "dedup-reschedule": NodeFeature("deduplication reschedule", since=(6, 7, 0)),
    "deferred-parent-release": NodeFeature("a flow's deferred parent release", since=(6, 5, 0)),
    "legacy-repeat": NodeFeature("the repeat option (legacy repeatable jobs)", until=(6, 0, 0)),
    "discard": NodeFeature("Job.discard", until=(6, 0, 0)),
    "ignore-dependency-on-failure": NodeFeature("the ignoreDependencyOnFailure option", since=(5, 2, 0)),
    "remove-dependency-on-failure": NodeFeature("the removeDependencyOnFailure option", since=(4, 4, 0)),
    "rate-limit-ttl": NodeFeature("Queue.getRateLimitTtl", since=(4, 7, 0)),
    "promote-jobs": NodeFeature("Queue.promoteJobs", since=(4, 0, 0)),
    "update-data": NodeFeature("Job.updateData (3.x: Job.update)", since=(4, 0, 0)),
}


def missing_features(node_version: str, names: tuple[str, ...]) -> list[NodeFeature]:
    """The features among ``names`` that Node bullmq ``node_version`` does not have."""
    version = parse_version(node_version)
    if version is None:
        return []
    return [NODE_FEATURES[n] for n in names if not NODE_FEATURES[n].available(version)]


_PORT_3_4 = ((3, 4, 4), (3, 5, 0))
_PRE_4 = ((0, 0, 0), (4, 0, 0))
_PRE_5 = ((0, 0, 0), (5, 0, 0))
_PRE_5_DOC = "docs/port-differences.md#pre-5-protocol"

_ATTEMPTS = (
    "Node < 5.0 counts attempts in the job field 'attemptsMade' (failed ones only), the port's scripts "
    "in 'atm' (every finished attempt): each side reads the other's jobs with the wrong attempt count "
    "(the jobs themselves run and retry as they should)"
)
_MARKERS = (
    "Node < 5.0 wakes its workers with a '0:<delay>' marker job id in 'wait', the port with the "
    "'marker' key: a Python worker picks up a job Node < 5 delayed, promoted or resumed only at its next "
    "poll (up to 10 s late), and a Node < 5 worker does not run a job Python delayed"
)
_PRIORITIES = (
    "Node < 4.0 keeps prioritized jobs in 'wait' plus a 'priority' zset, the port in the 'prioritized' "
    "zset: neither side orders, counts or runs the other's prioritized jobs"
)


def _pre(
    scenarios: tuple[str, ...], node: tuple[Version, Version], summary: str, unsafe: bool
) -> list[KnownDifference]:
    return [KnownDifference(s, node, _PORT_3_4, summary, unsafe, doc=_PRE_5_DOC) for s in scenarios]


#: Measured against port 3.4.4 (compat/MATRIX.md). None loses a job: the Node 5
#: paused-list loss the first matrix found is gone (bullbridge.protocol).
KNOWN_DIFFERENCES: tuple[KnownDifference, ...] = (
    *_pre(
        (
            "return_value[N->P]",
            "failure_reason[N->P]",
            "unrecoverable[N->P]",
            "retries_backoff[N->P]",
            "retries_backoff[P->N]",
            "retry_job[N->P]",
            "move_to_delayed[P->N]",
        ),
        _PRE_5,
        _ATTEMPTS,
        unsafe=False,
    ),
    *_pre(
        (
            "delay[N->P]",
            "delay[P->N]",
            "promote[N->P]",
            "promote_jobs[N->P]",
            "change_delay[N->P]",
            "pause_by_producer_idle[N->P]",
            "pause_cross_idle[N->P]",
        ),
        _PRE_5,
        _MARKERS,
        unsafe=True,
    ),
    *_pre(
        (
            "priority_order[N->P]",
            "priority_order[P->N]",
            "job_counts[N->P]",
            "job_counts[P->N]",
            "job_state[N->P]",
            "job_state[P->N]",
            "change_priority[N->P]",
            "change_priority[P->N]",
        ),
        _PRE_4,
        _PRIORITIES,
        unsafe=True,
    ),
    KnownDifference(
        "flow_fail[N->P]",
        ((0, 0, 0), (5, 49, 2)),
        _PORT_3_4,
        "a child a Python worker fails with failParentOnFailure marks its parent to be failed by the worker "
        "that fetches it (Node >= 5.49.2's lazy parent failure); a Node < 5.49.2 worker runs that parent instead",
        doc="docs/port-differences.md#lazy-parent-failure",
    ),
    KnownDifference(
        "custom_id_parts[P->N]",
        ((0, 0, 0), (5, 58, 7)),
        _PORT_3_4,
        "bullbridge refuses a custom job id with ':' unless it has three parts (Node >= 5.58.7's rule); "
        "Node < 5.58.7 accepts any ':'",
        unsafe=False,
        doc="docs/port-differences.md#option-validation",
    ),
)

#: The Node and port versions the matrix ran (``make compat`` writes them to
#: compat/matrix.json; tests/compat/test_table.py keeps the two equal).
TESTED_NODE: tuple[str, ...] = (
    "3.15.8",
    "4.18.3",
    "5.15.0",
    "5.19.1",
    "5.20.0",
    "5.81.5",
    "6.0.0",
    "6.4.0",
    "6.7.0",
    "6.7.6",
)
TESTED_PORT: tuple[str, ...] = ("3.4.4",)
#: The Python port whose scripts bullbridge runs imitates this Node release:
#: port 3.4.4's Lua scripts are Node bullmq 6.4.0's, byte for byte.
PORT_PROTOCOL = {"3.4.4": "6.4.0"}


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
    """Whether the matrix ran exactly this Node version."""
    node = parse_version(node_version)
    return node is not None and any(parse_version(v) == node for v in TESTED_NODE)


def epoch_of(node_version: str) -> Epoch | None:
    """The newest protocol change Node bullmq ``node_version`` includes (None: older than all)."""
    node = parse_version(node_version)
    if node is None:
        return None
    passed = [e for e in EPOCHS if e.since <= node]
    return passed[-1] if passed else None


def recommended_node(port: str | None = None) -> str | None:
    """The newest Node version the matrix ran with no unsafe difference beside port ``port``."""
    safe = [v for v in TESTED_NODE if not differences_for(v, port, unsafe_only=True)]
    return max(safe, key=lambda v: parse_version(v) or (0, 0, 0), default=None)


PROVEN, KNOWN, UNSEEN = "proven", "known difference", "never seen"


@dataclass(frozen=True)
class PairVerdict:
    """What the matrix says about one Node ``bullmq`` version beside one port version."""

    node: str
    port: str
    verdict: str  # PROVEN | KNOWN | UNSEEN
    differences: tuple[KnownDifference, ...] = ()
    #: The tested Node versions nearest below and above (for UNSEEN).
    neighbours: tuple[str | None, str | None] = (None, None)

    def explain(self) -> str:
        if self.verdict == KNOWN:
            return "; ".join(f"{d.summary} ({d.doc})" for d in self.differences)
        if self.verdict == PROVEN:
            return "every scenario of compat/MATRIX.md passes (or does not apply)"
        low, high = self.neighbours
        same_epoch = low is not None and high is not None and epoch_of(low) == epoch_of(high)
        around = " and ".join(v for v in (low, high) if v) or "none"
        hint = " (same protocol epoch: expected to behave as they do)" if same_epoch else ""
        return f"the matrix never ran it; nearest tested versions: {around}{hint}"


def pair_verdict(node_version: str, port: str | None = None) -> PairVerdict:
    """Proven (the matrix ran this exact pair, nothing listed), a known difference
    (a listed one applies), or never seen - with the tested versions around it."""
    port_text = port or port_version() or "unknown"
    diffs = tuple(differences_for(node_version, port_text))
    if diffs:
        return PairVerdict(node_version, port_text, KNOWN, diffs)
    if is_tested(node_version) and port_text in TESTED_PORT:
        return PairVerdict(node_version, port_text, PROVEN)
    node = parse_version(node_version) or (0, 0, 0)
    ordered = sorted(TESTED_NODE, key=lambda v: parse_version(v) or (0, 0, 0))
    below = [v for v in ordered if (parse_version(v) or (0, 0, 0)) < node]
    above = [v for v in ordered if (parse_version(v) or (0, 0, 0)) > node]
    return PairVerdict(
        node_version, port_text, UNSEEN, neighbours=(below[-1] if below else None, above[0] if above else None)
    )


def describe(keys: QueueKeys, lib: str, node_version: str, diff: KnownDifference) -> str:
    return (
        f"queue {keys.name!r} (prefix {keys.prefix!r}) is used by Node {lib} {node_version}, which is unsafe "
        f"beside the Python port bullmq {port_version()}: {diff.summary} [compat scenario {diff.scenario}]"
    )


_warned: set[tuple[str, str]] = set()


@cache
def marker() -> str:
    """What bullbridge writes to a queue's ``meta.version``: ``bullbridge:<version>``
    (Node writes ``bullmq:<version>``, BullMQ Pro ``bullmq-pro:<version>``). The version
    comes from the installed distribution's metadata (importing the package here would
    make an import cycle)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"bullbridge:{version('bullbridge')}"
    except PackageNotFoundError:  # pragma: no cover - bullbridge runs installed
        return "bullbridge:unknown"


async def introduce(client: RespClient, keys: QueueKeys) -> bool:
    """Write bullbridge's :func:`marker` to ``meta.version`` when no library wrote one
    yet (``HSETNX``): a version Node wrote is what tells which Node protocol the
    fleet speaks (:mod:`bullbridge.protocol`), so bullbridge never replaces it.
    True when it wrote the field."""
    try:
        return bool(await client.execute("HSETNX", keys["meta"], "version", marker()))
    except (RespError, RespConnectionError) as exc:
        log.debug("cannot write queue %s's meta.version: %s", keys.name, exc)
        return False


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
    verdict = pair_verdict(node_version)
    if verdict.verdict == UNSEEN:
        log.info("queue %s is used by Node bullmq %s: %s", keys.name, node_version, verdict.explain())
    messages = [describe(keys, lib, node_version, d) for d in differences_for(node_version, unsafe_only=True)]
    for message in messages:
        log.warning("%s", message)
    return messages

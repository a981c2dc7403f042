"""``bullbridge doctor``: check a live BullMQ deployment and say how to fix it.

:func:`diagnose` connects to Redis (a plain server, a Sentinel master, or every
master of a Redis Cluster) and returns a :class:`DoctorReport`: one
:class:`Finding` per check, each with a severity and, when something is wrong,
an actionable fix. Reads only; it never writes a key.

==================  ==========================================================  ===========================
check               what is read                                                severities
==================  ==========================================================  ===========================
redis-version       ``INFO server``                                             error < 5.0, warning < 6.2
maxmemory-policy    ``INFO memory`` (``CONFIG GET`` when INFO hides it)         error unless ``noeviction``
persistence         ``INFO persistence`` and ``CONFIG GET save``                warning when off, error when
                                                                                the last save/write failed
clock-skew          ``TIME`` against this host's clock, minus half the RTT      warning above 1 s
cluster-hash-tag    queues found (``SCAN``) on a cluster without a ``{tag}``    error
queues              ``SCAN`` for ``<prefix>:*:meta`` / ``:id`` (the monitor's)  info (none found: warning)
node-version        each queue's ``meta.version`` against the matrix            warning when the matrix
                    (:mod:`bullbridge.compat`)                                  marks it unsafe
paused-layout       a queue paused in Node < 6's layout (a ``paused`` list)     warning when jobs sit in
                    that holds jobs in ``wait`` too                             ``wait``: Node 5's resume
                                                                                would overwrite them
version-pairs       every Node version (``meta.version``; Node workers          info: proven / never seen;
                    without one) beside the installed port, and which           warning: a known unsafe
                    languages' workers are connected (``CLIENT LIST``)          difference
workers             ``CLIENT LIST`` names, per queue and language (the          warning when jobs wait and
                    monitor's classification)                                   no worker is connected
stalled             jobs in ``active`` whose ``<id>:lock`` key is gone          warning
failed-jobs         ``ZCARD failed`` above a threshold (1,000 by default)       warning
==================  ==========================================================  ===========================

Exit status of the command (:attr:`DoctorReport.exit_code`): **0** when every
finding is ``ok`` or ``info``, **1** when the worst is a ``warning`` (works now,
but will bite: data loss on restart, a Node version with a known protocol
difference, stuck or piling jobs), **2** when there is an ``error`` (BullMQ
cannot work correctly: Redis too old, an evicting memory policy, queues that
cannot live on the cluster, failing saves, or no connection at all).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from bullbridge import compat
from bullbridge.clock import now as clock_now
from bullbridge.connection import (
    ConnectionSettings,
    ConnectionSource,
    RedisConnector,
    connect,
    parse_info,
    parse_version,
)
from bullbridge.connection.cluster import queue_keys_share_slot
from bullbridge.connection.replies import explain
from bullbridge.connection.resp import RespConnectionError, RespError
from bullbridge.connection.server import MIN_REDIS, RECOMMENDED_REDIS
from bullbridge.keys import QueueKeys
from bullbridge.monitor.discovery import discover_queues
from bullbridge.monitor.languages import NODE, PYTHON_PORT
from bullbridge.monitor.reader import Reader, integer, text
from bullbridge.monitor.workers import WorkerInfo, classify, count_by_language, parse_client_list
from bullbridge.redact import redact

log = logging.getLogger("bullbridge.doctor")

OK, INFO, WARNING, ERROR = "ok", "info", "warning", "error"
#: Every check's name, as findings carry it.
CHECKS = (
    "connection",
    "redis-version",
    "maxmemory-policy",
    "persistence",
    "clock-skew",
    "cluster-hash-tag",
    "queues",
    "queue",
    "node-version",
    "paused-layout",
    "version-pairs",
    "workers",
    "stalled",
    "failed-jobs",
)
SEVERITIES = (OK, INFO, WARNING, ERROR)
_RANK = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass(frozen=True)
class Finding:
    """One check's verdict. ``fix`` says what to do when it is a warning or an error."""

    check: str
    severity: str
    message: str
    fix: str | None = None
    queue: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class DoctorReport:
    """Every finding of one run, and the verdict (``worst``, ``exit_code``)."""

    json_properties: ClassVar[tuple[str, ...]] = ("worst", "exit_code")

    target: str
    prefix: str
    findings: list[Finding] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    #: Why Redis could not be reached at all (the CLI reports it as its failure).
    connection_error: BaseException | None = field(default=None, repr=False, compare=False, metadata={"json": None})

    @property
    def worst(self) -> str:
        return max((f.severity for f in self.findings), key=_RANK.__getitem__, default=OK)

    @property
    def exit_code(self) -> int:
        """0: nothing wrong (ok/info), 1: warnings, 2: errors."""
        return {OK: 0, INFO: 0, WARNING: 1, ERROR: 2}[self.worst]

    def by_check(self, check: str) -> list[Finding]:
        return [f for f in self.findings if f.check == check]

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)


@dataclass(frozen=True)
class DoctorSettings:
    prefix: str = "bull"
    #: Failed jobs in one queue above which they are "piling up".
    failed_threshold: int = 1000
    #: Clock difference (beyond the measuring error) worth a warning.
    skew_warning_ms: int = 1000
    #: Active jobs whose locks are checked per queue (the newest ones).
    max_active_checked: int = 10_000
    #: This host's clock in epoch seconds (tests give one that is off).
    clock: Callable[[], float] = clock_now
    command_timeout: float = 10.0
    #: How long to keep trying to reach Redis before reporting it unreachable.
    connect_retry: float = 3.0


# --- server checks (pure: INFO fields in, findings out) ---------------------------------------------


def check_version(info: Mapping[str, str]) -> Finding:
    version_text = info.get("redis_version") or info.get("valkey_version") or "0.0.0"
    version = parse_version(version_text)
    data = {"version": version_text}
    if version < MIN_REDIS:
        return Finding(
            "redis-version",
            ERROR,
            f"Redis {version_text} is too old: BullMQ needs Redis >= 5.0.0 "
            "(Node BullMQ refuses to start, the Python port does not check)",
            "upgrade Redis to 7.x (6.2 at least)",
            data=data,
        )
    if version < RECOMMENDED_REDIS:
        return Finding(
            "redis-version",
            WARNING,
            f"Redis {version_text} is older than 6.2.0, which BullMQ recommends (Node BullMQ warns at start)",
            "upgrade Redis to 7.x (6.2 at least)",
            data=data,
        )
    if version < (7, 0, 8):
        return Finding(
            "redis-version",
            INFO,
            f"Redis {version_text} is supported; from 7.0.8 workers can block "
            "for 1 ms instead of 2 ms between polls (nothing to fix)",
            data=data,
        )
    return Finding("redis-version", OK, f"Redis {version_text}", data=data)


def check_policy(policy: str | None) -> Finding:
    if policy is None:
        return Finding(
            "maxmemory-policy",
            INFO,
            "maxmemory-policy could not be read (INFO memory and CONFIG GET are restricted here)",
            "make sure the server's maxmemory-policy is noeviction",
        )
    if policy != "noeviction":
        return Finding(
            "maxmemory-policy",
            ERROR,
            f"maxmemory-policy is {policy}: when memory runs out Redis evicts keys, so jobs, locks and queue "
            "structures can vanish silently (BullMQ requires noeviction)",
            "CONFIG SET maxmemory-policy noeviction, and set `maxmemory-policy noeviction` in redis.conf (or your "
            "provider's parameter group); give Redis enough maxmemory instead",
            data={"policy": policy},
        )
    return Finding("maxmemory-policy", OK, "maxmemory-policy is noeviction", data={"policy": policy})


def check_persistence(info: Mapping[str, str], save: str | None) -> Finding:
    """AOF on: ok; RDB snapshots only: info; neither: warning; failing saves: error."""
    aof = info.get("aof_enabled") == "1"
    data: dict[str, Any] = {"aof": aof, "save": save}
    if info.get("rdb_last_bgsave_status") == "err" or info.get("aof_last_write_status") == "err":
        return Finding(
            "persistence",
            ERROR,
            "the last RDB save or AOF write failed: Redis may refuse writes (stop-writes-on-bgsave-error) "
            "and what it holds is not on disk",
            "read the Redis log; fix disk space or permissions",
            data=data,
        )
    if aof:
        return Finding(
            "persistence",
            OK,
            "AOF persistence is on: a restart keeps queued jobs (losing at most "
            "the last second with appendfsync everysec)",
            data=data,
        )
    if save is None:
        return Finding(
            "persistence",
            INFO,
            "AOF is off and the RDB save schedule could not be read (CONFIG is restricted here)",
            "check that the provider snapshots or replicates this Redis",
            data=data,
        )
    if save.strip():
        return Finding(
            "persistence",
            INFO,
            f"RDB snapshots only (save {save.strip()}): a crash loses every job added, moved or "
            "finished since the last snapshot",
            "for queues, turn AOF on: appendonly yes, appendfsync everysec (loses at most ~1 s)",
            data=data,
        )
    return Finding(
        "persistence",
        WARNING,
        "persistence is off (no AOF, no RDB snapshots): a Redis restart loses every queued, delayed "
        "and scheduled job, every lock, and the job schedulers",
        "CONFIG SET appendonly yes (and `appendonly yes`, `appendfsync everysec` in redis.conf), "
        "unless losing the queues on restart is acceptable",
        data=data,
    )


def check_skew(skew_ms: float, error_ms: float, threshold_ms: int) -> Finding:
    data = {"skewMs": round(skew_ms), "uncertaintyMs": round(error_ms)}
    direction = "ahead of" if skew_ms > 0 else "behind"
    if abs(skew_ms) - error_ms > threshold_ms:
        return Finding(
            "clock-skew",
            WARNING,
            f"Redis's clock is {abs(skew_ms) / 1000:.1f} s {direction} this host's: BullMQ clients stamp "
            "jobs with their own clock, so delays, backoffs, rate-limit windows and job schedulers run "
            "early or late by that much between hosts",
            "sync the clocks of every host running producers, workers and Redis with NTP (chrony / systemd-timesyncd)",
            data=data,
        )
    return Finding("clock-skew", OK, f"clocks agree within {max(abs(skew_ms), error_ms):.0f} ms", data=data)


# --- the live checks --------------------------------------------------------------------------------


@dataclass
class _Node:
    address: str
    reader: Reader
    connector: RedisConnector


def _aggregate(per_node: list[tuple[str, Finding]], cluster: bool) -> list[Finding]:
    """One finding per (check, severity, message); on a cluster, naming the nodes."""
    groups: dict[tuple[str, str, str], list[tuple[str, Finding]]] = {}
    for address, finding in per_node:
        groups.setdefault((finding.check, finding.severity, finding.message), []).append((address, finding))
    out = []
    for members in groups.values():
        first = members[0][1]
        if cluster:
            nodes = [a for a, _ in members]
            first = replace(
                first,
                message=f"{first.message} (node{'s' if len(nodes) > 1 else ''} {', '.join(nodes)})",
                data={**first.data, "nodes": nodes},
            )
        out.append(first)
    return out


async def _config_get(reader: Reader, name: str) -> str | None:
    try:
        reply = await reader.execute("CONFIG", "GET", name)
    except RespError:
        return None
    values = [text(v) for v in reply or []]
    return values[1] if len(values) >= 2 else None


async def _server_checks(node: _Node, settings: DoctorSettings) -> tuple[dict[str, str], list[Finding]]:
    info = parse_info(await node.reader.execute("INFO"))
    findings = [check_version(info)]
    policy = info.get("maxmemory_policy") or await _config_get(node.reader, "maxmemory-policy")
    findings.append(check_policy(policy))
    findings.append(check_persistence(info, await _config_get(node.reader, "save")))
    before = settings.clock()
    seconds, micros = await node.reader.execute("TIME")
    after = settings.clock()
    redis_ms = int(seconds) * 1000 + int(micros) / 1000
    findings.append(check_skew(redis_ms - (before + after) * 500, (after - before) * 500, settings.skew_warning_ms))
    return info, findings


async def _cluster_masters(reader: Reader) -> list[tuple[str, int]]:
    raw = text(await reader.execute("CLUSTER", "NODES")) or ""
    masters = []
    for line in raw.splitlines():
        parts = line.split()
        if len(parts) < 3 or "master" not in parts[2].split(",") or "fail" in parts[2]:
            continue
        address = parts[1].split("@", 1)[0]
        host, _, port = address.rpartition(":")
        if host and port.isdigit():
            masters.append((host, int(port)))
    return sorted(set(masters))


def _node_settings(settings: ConnectionSettings, host: str, port: int) -> ConnectionSettings:
    return replace(settings, cluster_nodes=(), sentinels=(), sentinel_master=None, host=host, port=port)


async def _queue_checks(
    node: _Node, queue: str, prefix: str, workers: list[WorkerInfo], settings: DoctorSettings
) -> list[Finding]:
    keys = QueueKeys(queue, prefix)
    findings: list[Finding] = []
    r = node.reader
    (wait, paused_list, prioritized, active, failed, version, paused, concurrency, rate_max, tail) = await r.pipeline(
        [
            ("LLEN", keys["wait"]),
            ("LLEN", keys["paused"]),
            ("ZCARD", keys["prioritized"]),
            ("LLEN", keys["active"]),
            ("ZCARD", keys["failed"]),
            ("HGET", keys["meta"], "version"),
            ("HGET", keys["meta"], "paused"),
            ("HGET", keys["meta"], "concurrency"),
            ("HGET", keys["meta"], "max"),
            ("LINDEX", keys["wait"], -1),
        ]
    )
    waiting = int(wait) + int(paused_list) + int(prioritized)
    is_paused = paused is not None

    findings.extend(_version_findings(queue, text(version)))
    findings.extend(_pre5_findings(queue, text(tail)))
    findings.extend(_layout_findings(queue, text(version), is_paused, int(wait), int(paused_list)))

    # Workers, per language.
    counts = count_by_language(workers)
    summary = ", ".join(f"{n} {lang}" for lang, n in counts.items()) or "none"
    findings.append(
        Finding(
            "workers",
            INFO,
            f"workers connected: {summary}" + (" (queue paused)" if is_paused else ""),
            queue=queue,
            data={"workers": counts, "waiting": waiting, "paused": is_paused},
        )
    )
    if waiting and not counts and not is_paused:
        findings.append(
            Finding(
                "workers",
                WARNING,
                f"{waiting} job(s) waiting and no worker connected to this queue",
                "start a worker for it (Node, or `bullbridge worker MODULE:ATTR`); if workers run, check they use "
                f"this Redis and prefix {prefix!r}",
                queue=queue,
                data={"waiting": waiting},
            )
        )
    if counts.get(PYTHON_PORT) and (concurrency is not None or rate_max is not None):
        findings.append(
            Finding(
                "workers",
                WARNING,
                "Python-port workers (bullmq.Worker, not bullbridge) serve a queue with a global "
                "rate limit or concurrency: they stop fetching after the first jobs (docs/port-differences.md#limits)",
                "run these workers with bullbridge.Worker",
                queue=queue,
            )
        )

    # Stalled: active without a lock (checked twice, so a job finishing meanwhile is not counted).
    if int(active):
        missing = await _unlocked(r, keys, settings.max_active_checked)
        if missing:
            missing = sorted(set(missing) & set(await _unlocked(r, keys, settings.max_active_checked)))
        if missing:
            stuck = "" if counts else " No worker is connected, so nothing will recover them until one starts."
            findings.append(
                Finding(
                    "stalled",
                    WARNING,
                    f"{len(missing)} active job(s) have no lock (their worker died or blocked its event loop): "
                    f"ids {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}.{stuck}",
                    "any worker's stalled check moves them back to wait (or fails them past maxStalledCount) "
                    "within its stalledInterval (30 s by default); keep a worker running, and find out why the "
                    "old one died",
                    queue=queue,
                    data={"count": len(missing), "ids": missing[:100]},
                )
            )

    # Failed jobs piling up.
    failed = int(failed)
    if failed > settings.failed_threshold:
        findings.append(
            Finding(
                "failed-jobs",
                WARNING,
                f"{failed} failed jobs are kept (threshold {settings.failed_threshold}): they use memory and nobody "
                "seems to retry or clean them",
                "look at why they fail (`bullbridge stats`, `bullbridge job`), retry them (`bullbridge queue retry "
                f"{queue}`) or delete old ones (`bullbridge queue clean {queue} --state failed --age 7d`), and set "
                "removeOnFail (Node) / remove_on_fail=KeepJobs(count=..., age=...) (Python) on new jobs",
                queue=queue,
                data={"failed": failed},
            )
        )
    elif failed:
        findings.append(
            Finding("failed-jobs", OK, f"{failed} failed job(s) kept", queue=queue, data={"failed": failed})
        )
    return findings


def _version_findings(queue: str, version: str | None) -> list[Finding]:
    """The queue's Node version (``meta.version``) against the matrix."""
    parsed = compat.parse_meta_version(version)
    if parsed is None:
        return []
    lib, node_version = parsed
    if lib != "bullmq":
        who = "bullbridge (no Node Queue has connected since it introduced itself)" if lib == "bullbridge" else lib
        return [
            Finding(
                "node-version",
                INFO,
                f"meta.version written by {who} {node_version}",
                queue=queue,
                data={"library": lib, "version": node_version},
            )
        ]
    verdict = compat.pair_verdict(node_version)
    unsafe = [d for d in verdict.differences if d.unsafe]
    out = [
        Finding(
            "node-version",
            WARNING,
            f"used by Node {lib} {node_version}, unsafe beside the Python port bullmq {compat.port_version()}: "
            f"{diff.summary} ({diff.doc})",
            _upgrade_hint(diff),
            queue=queue,
            data={"library": lib, "version": node_version, "scenario": diff.scenario},
        )
        for diff in unsafe
    ]
    if not unsafe:
        out.append(
            Finding(
                "node-version",
                INFO,
                f"used by Node {lib} {node_version}: {verdict.verdict} ({verdict.explain()})",
                queue=queue,
                data={"library": lib, "version": node_version, "verdict": verdict.verdict},
            )
        )
    return out


def _pre5_findings(queue: str, wait_tail: str | None) -> list[Finding]:
    """A ``0:<delay>`` job id at the tail of ``wait``: the marker a Node bullmq < 5.0
    service writes (5.0 moved markers to their own key). Node < 5.20 writes no
    meta.version, so this is how the doctor learns such a service is there."""
    if not wait_tail or not wait_tail.startswith("0:"):
        return []
    return [
        Finding(
            "version-pairs",
            WARNING,
            f"a Node bullmq < 5.0 service wrote a '0:' marker job id into this queue's wait list: it speaks the "
            f"pre-5 protocol beside the Python port bullmq {compat.port_version()} - attempts read differently, "
            "workers wake late, and a Python-delayed job is not run by it (docs/port-differences.md#pre-5-protocol)",
            "upgrade the Node services on this queue to bullmq 5.x (5.81.5) or 6.x",
            queue=queue,
            data={"node": "< 5.0", "port": compat.port_version(), "verdict": compat.KNOWN, "queues": [queue]},
        )
    ]


def _layout_findings(queue: str, version: str | None, paused: bool, wait: int, paused_list: int) -> list[Finding]:
    """A queue paused in Node < 6's layout (its jobs in a ``paused`` list) with jobs in ``wait``
    too - pushed there by a writer that keeps Node 6's layout (a Node 6 service, or the
    port's own Worker): a Node 5 resume renames ``paused`` over ``wait`` and loses them.
    bullbridge itself keeps the legacy layout (bullbridge.protocol)."""
    if not (paused and paused_list and wait):
        return []
    parsed = compat.parse_meta_version(version)
    return [
        Finding(
            "paused-layout",
            WARNING,
            f"paused with {paused_list} job(s) in Node < 6's 'paused' list and {wait} in 'wait': a Node 5 "
            f"resume renames 'paused' over 'wait' and loses those {wait} (meta.version "
            f"{':'.join(parsed) if parsed else 'none'}; docs/port-differences.md#node5-paused)",
            f"resume this queue from bullbridge (`bullbridge queue resume {queue}`) or a Node 6 service - "
            "they move the paused list back instead of renaming it - and upgrade the Node 5 services",
            queue=queue,
            data={"wait": wait, "paused": paused_list},
        )
    ]


def _upgrade_hint(diff: compat.KnownDifference) -> str:
    safe = compat.recommended_node()
    upgrade = (
        (f"upgrade this queue's Node services to bullmq {safe} (no unsafe difference in the compatibility matrix)")
        if safe
        else "see compat/MATRIX.md for a Node version without this difference"
    )
    return f"{upgrade}; until then avoid the case above [compat scenario {diff.scenario}]"


async def _unlocked(reader: Reader, keys: QueueKeys, limit: int) -> list[str]:
    ids = [text(raw) or "" for raw in await reader.execute("LRANGE", keys["active"], 0, limit - 1)]
    if not ids:
        return []
    exists = await reader.pipeline([("EXISTS", keys.lock(job_id)) for job_id in ids])
    return [job_id for job_id, present in zip(ids, exists) if not integer(present)]


async def _open_nodes(
    connector: RedisConnector, settings: DoctorSettings
) -> tuple[list[_Node], bool, dict[str, str], list[Finding]]:
    """The nodes to check (every master of a cluster), and the seed's INFO."""
    cs = connector.settings
    if cs.is_cluster:
        host, port = cs.cluster_nodes[0]
        seed_connector = connect(_node_settings(cs, host, port))
        seed = _Node(f"{host}:{port}", Reader(seed_connector, command_timeout=settings.command_timeout), seed_connector)
    else:
        seed = _Node(cs.describe(), Reader(connector, command_timeout=settings.command_timeout), connector)
    info, findings = await _server_checks(seed, settings)
    if info.get("cluster_enabled") != "1":
        return [seed], False, info, findings
    nodes: list[_Node] = []
    per_node: list[tuple[str, Finding]] = []
    for host, port in await _cluster_masters(seed.reader):
        address = f"{host}:{port}"
        if address == seed.address:
            nodes.append(seed)
            per_node.extend((address, f) for f in findings)
            continue
        node_connector = connect(_node_settings(cs, host, port))
        node = _Node(address, Reader(node_connector, command_timeout=settings.command_timeout), node_connector)
        nodes.append(node)
        _, node_findings = await _server_checks(node, settings)
        per_node.extend((address, f) for f in node_findings)
    if seed not in nodes:
        await _close([seed], connector)
    return nodes, True, info, _aggregate(per_node, cluster=True)


async def _close(nodes: Iterable[_Node], owner: RedisConnector) -> None:
    for node in nodes:
        await node.reader.close()
        if node.connector is not owner:
            await node.connector.close()


async def diagnose(connection: ConnectionSource | None = None, settings: DoctorSettings | None = None) -> DoctorReport:
    """Run every check against the deployment behind ``connection``."""
    settings = settings or DoctorSettings()
    connector = connection if isinstance(connection, RedisConnector) else connect(connection)
    if not isinstance(connection, RedisConnector) and connector.settings.retry_for > settings.connect_retry:
        connector = connect(replace(connector.settings, retry_for=settings.connect_retry))
    report = DoctorReport(connector.settings.describe(), settings.prefix)
    nodes: list[_Node] = []
    try:
        try:
            nodes, cluster, _, server_findings = await _open_nodes(connector, settings)
        except (RespConnectionError, RespError, OSError, TimeoutError) as exc:
            error = explain(exc, report.target) if isinstance(exc, RespError) else exc
            report.connection_error = error
            report.findings.append(
                Finding(
                    "connection",
                    ERROR,
                    f"cannot use Redis at {report.target}: {redact(error)}",
                    "check the URL (--redis / BULLBRIDGE_REDIS_URL), the network, and the password",
                )
            )
            return report
        report.nodes = [n.address for n in nodes]
        report.findings.extend(server_findings)
        await _check_queues(report, nodes, cluster, settings)
        return report
    finally:
        await _close(nodes, connector)
        if not isinstance(connection, RedisConnector):
            await connector.close()


async def _check_queues(report: DoctorReport, nodes: list[_Node], cluster: bool, settings: DoctorSettings) -> None:
    prefix = settings.prefix
    found = await asyncio.gather(*(discover_queues(n.reader, prefix) for n in nodes))
    home: dict[str, _Node] = {}
    for node, queues in zip(nodes, found):
        for queue in queues:
            home.setdefault(queue, node)
    report.queues = sorted(home)
    if not home:
        report.findings.append(
            Finding(
                "queues",
                WARNING,
                f"no BullMQ queue found under prefix {prefix!r}",
                "pass the prefix your services use (--prefix), or check this is the right Redis/db",
            )
        )
        return
    report.findings.append(
        Finding(
            "queues",
            INFO,
            f"{len(home)} queue(s) under prefix {prefix!r}: "
            f"{', '.join(report.queues[:20])}{' ...' if len(home) > 20 else ''}",
            data={"queues": report.queues},
        )
    )
    clients: list[dict[str, str]] = []
    for node in nodes:
        clients.extend(parse_client_list(text(await node.reader.execute("CLIENT", "LIST")) or ""))
    workers = classify(clients, report.queues, prefix)
    for queue in report.queues:
        if cluster and not queue_keys_share_slot(prefix, queue):
            report.findings.append(
                Finding(
                    "cluster-hash-tag",
                    ERROR,
                    f"queue {queue!r} lives on a Redis Cluster without a hash tag: its keys hash to different slots, "
                    "so BullMQ's scripts fail with CROSSSLOT (producers raise, workers spin on errors)",
                    f"recreate it with a hash tag in the queue name ('{{{queue}}}') or in the prefix "
                    f"('{{{prefix}}}'), in Node and Python alike, then move or drain the old keys",
                    queue=queue,
                )
            )
            continue
        try:
            report.findings.extend(await _queue_checks(home[queue], queue, prefix, workers.get(queue, []), settings))
        except RespError as exc:
            report.findings.append(
                Finding(
                    "queue",
                    WARNING,
                    f"could not check queue {queue!r}: {exc}",
                    "check its keys hold BullMQ's types (WRONGTYPE means something else writes under this prefix)",
                    queue=queue,
                )
            )
    report.findings.extend(_pair_findings(report.findings, workers))


def _pair_findings(findings: list[Finding], workers: Mapping[str, list[WorkerInfo]]) -> list[Finding]:
    """One finding per Node ``bullmq`` version on the deployment beside the installed
    port - proven by the matrix, a known difference, or never seen - naming its
    queues and the languages of the workers connected to them."""
    by_version: dict[str, set[str]] = {}
    for f in findings:
        if f.check == "node-version" and f.queue and f.data.get("library") == "bullmq":
            by_version.setdefault(str(f.data["version"]), set()).add(f.queue)
    versioned = set().union(*by_version.values()) if by_version else set()
    unversioned = sorted(q for q, ws in workers.items() if q not in versioned and count_by_language(ws).get(NODE))
    port = compat.port_version()
    out = []
    for version in sorted(by_version, key=lambda v: compat.parse_version(v) or (0, 0, 0)):
        queues = sorted(by_version[version])
        verdict = compat.pair_verdict(version)
        unsafe = any(d.unsafe for d in verdict.differences)
        out.append(
            Finding(
                "version-pairs",
                WARNING if unsafe else INFO,
                f"Node bullmq {version} x Python port bullmq {port} on {_some(queues)} "
                f"(workers: {_languages(workers, queues)}): {verdict.verdict} - {verdict.explain()}",
                _pair_fix(verdict),
                data={"node": version, "port": port, "verdict": verdict.verdict, "queues": queues},
            )
        )
    if unversioned:
        out.append(
            Finding(
                "version-pairs",
                INFO,
                f"Node workers of an unknown bullmq version on {_some(unversioned)} x Python port bullmq {port}: "
                f"{compat.UNSEEN} - no Node Queue wrote meta.version there (bullmq < 5.20 writes none)",
                "run `bullbridge interop check --bullmq <the version those services pin>`",
                data={"node": None, "port": port, "verdict": compat.UNSEEN, "queues": unversioned},
            )
        )
    return out


def _some(queues: list[str], limit: int = 5) -> str:
    shown = ", ".join(queues[:limit]) + (f" and {len(queues) - limit} more" if len(queues) > limit else "")
    return f"{len(queues)} queue(s): {shown}"


def _languages(workers: Mapping[str, list[WorkerInfo]], queues: list[str]) -> str:
    counts = count_by_language([w for q in queues for w in workers.get(q, [])])
    return ", ".join(f"{n} {lang}" for lang, n in counts.items()) or "none connected"


def _pair_fix(verdict: compat.PairVerdict) -> str | None:
    if verdict.verdict == compat.KNOWN:
        return _upgrade_hint(verdict.differences[0])
    if verdict.verdict == compat.UNSEEN:
        return f"check this exact pair before relying on it: `bullbridge interop check --bullmq {verdict.node}`"
    return None

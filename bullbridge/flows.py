"""Flows: a parent job that waits for children, possibly in other queues.

Node's ``FlowProducer``, on BullMQ's own scripts: the parent is added with
``addParentJob`` (state ``waiting-children``), every child with the
``add*Job`` script its options select, carrying the parent's key, and the
whole tree is sent in one ``MULTI``/``EXEC`` - atomic, and validated and
encoded before anything is sent. Workers of either language process the
children; when the last one completes, BullMQ's ``moveToFinished`` moves the
parent on, and the parent reads its children's results with Node's
``job.getChildrenValues()`` or Python's ``ActiveJob.children_values()`` /
:meth:`~bullbridge.queue.Queue.get_children_values`. A child's
``fail_parent_on_failure``, ``continue_parent_on_failure``,
``ignore_dependency_on_failure`` or ``remove_dependency_on_failure`` decides
what its final failure does to the parent, as in Node.

Semantics mirrored from Node 6.7's ``FlowProducer.add``: nodes without a
``job_id`` get a random UUID (with dashes, as Node's ``randomUUID()``; the port
uses dashless ones); per-queue defaults (Node's ``queuesOptions``) apply under
each node's own options; deduplication is refused on nodes with children (and,
as everywhere, beside a parent); a child cannot name its own parent; the root
may (``parent=Parent(...)``) to hang the flow under an existing job.

**Parent release.** Node 6.7 adds flow nodes with "deferred parent release"
and runs a ``releaseParentIfNoPendingDependencies`` script at the end of the
transaction; the Python port's scripts have neither. It matters in one case:
a child with a custom ``job_id`` that already exists and is *completed*. The
port's script then records its result in the parent and, seeing no pending
dependency yet, moves the parent out of ``waiting-children`` at once - before
the siblings queued after it in the same transaction are added, so the parent
would run before they finish. bullbridge orders each parent's children so that
already-completed ones are added last (after every pending sibling is in the
parent's dependency set): their script then releases the parent exactly when
Node's release script would. Which children are completed is read under
``WATCH`` on a dedicated connection and the transaction retried if one of them
changes meanwhile, so the order cannot go stale. Flows without custom child ids
(the common case) skip all this and go out on the shared connection.

The same read refuses, before anything is written, a custom-id child that
already belongs to another parent: the script would answer -7 ("parent cannot
be replaced") half way through the transaction (Node 6.7 then leaves the rest
of the flow added, without that child), or - when that other parent was
deleted - silently leave it out of the new parent (Node 6.7 re-attaches it).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from bullbridge import codec as codec_module
from bullbridge import scripts
from bullbridge.connection import ConnectionSource, RedisConnector, connect
from bullbridge.connection.resp import RespError
from bullbridge.errors import InvalidJobOptions, ScriptError
from bullbridge.job import EnqueuedJob
from bullbridge.keys import QueueKeys
from bullbridge.options import Deduplication, JobOptions, Parent
from bullbridge.queue.adding import NO_DATA, JobOptionsSource, PreparedJob, check_added, prepare_add
from bullbridge.queue.link import RedisLink

if TYPE_CHECKING:
    from bullbridge.telemetry import OtelTelemetry

log = logging.getLogger("bullbridge.flows")

#: How often a flow with custom child ids is retried when a watched child changes.
WATCH_RETRIES = 10


@dataclass(frozen=True)
class FlowJob:
    """One node of a flow: a job, and the children it waits for.

    ``opts`` are the node's options (``JobOptions`` or a mapping of snake_case
    names), validated here; ``prefix`` defaults to the FlowProducer's.
    """

    name: str
    queue: str
    data: Any = NO_DATA
    opts: JobOptionsSource = None
    children: Sequence[FlowJob] = ()
    prefix: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise InvalidJobOptions(f"flow job name must be a string, got {type(self.name).__name__}")
        if not isinstance(self.queue, str) or not self.queue or ":" in self.queue:
            raise InvalidJobOptions(f"flow job queue must be a queue name without ':', got {self.queue!r}")
        children = tuple(self.children)
        for child in children:
            if not isinstance(child, FlowJob):
                raise InvalidJobOptions(f"flow children must be FlowJob nodes, got {type(child).__name__}")
        object.__setattr__(self, "children", children)
        object.__setattr__(self, "opts", JobOptions.from_mapping(self.opts))


@dataclass(frozen=True)
class FlowNode:
    """What :meth:`FlowProducer.add` returns: each job added, with its children."""

    job: EnqueuedJob
    prefix: str
    children: tuple[FlowNode, ...] = ()

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def queue(self) -> str:
        return self.job.queue

    @property
    def key(self) -> str:
        """The job's hash key, as ``getChildrenValues`` names children."""
        return f"{self.prefix}:{self.job.queue}:{self.job.id}"

    def walk(self) -> Iterable[FlowNode]:
        """This node and every descendant, parents first."""
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass
class _Entry:
    """A prepared node and its prepared children (before ordering)."""

    job: PreparedJob
    prefix: str
    job_key: str
    completed_key: str
    job_id: str
    custom_child: bool
    children: list[_Entry] = field(default_factory=list)


class FlowProducer:
    """Adds flows (trees of jobs across queues) atomically.

    ``defaults`` maps a queue name to that queue's default job options
    (Node's ``queuesOptions[queue].defaultJobOptions``). ``telemetry`` (an
    :class:`~bullbridge.telemetry.OtelTelemetry`) traces each flow and stores
    every node's context with it, as Node's FlowProducer does.
    """

    def __init__(
        self,
        connection: ConnectionSource | None = None,
        *,
        prefix: str = "bull",
        defaults: Mapping[str, JobOptions | Mapping[str, Any]] | None = None,
        codec: codec_module.JsonCodec = codec_module.DEFAULT,
        timeout: float = 10.0,
        telemetry: OtelTelemetry | None = None,
    ) -> None:
        self.prefix = prefix
        self.codec = codec
        self.telemetry = telemetry
        self._defaults = {queue: JobOptions.defaults(opts) for queue, opts in (defaults or {}).items()}
        self._connector = connect(connection)
        # On Redis Cluster a flow is one MULTI, so its queues share the prefix's hash tag.
        self._link = RedisLink(
            self._connector,
            f"{prefix}:flow-producer",
            timeout,
            owns_connector=not isinstance(connection, RedisConnector),
            route_key=f"{prefix}:flow",
            owner="this FlowProducer",
            on_new_loop=self._new_loop,
        )
        self._scripts: dict[tuple[str, str], scripts.QueueScripts] = {}
        self._watch_lock = asyncio.Lock()

    @property
    def timeout(self) -> float:
        return self._link.timeout

    @property
    def connector(self) -> RedisConnector:
        """The connector this producer's connection comes from."""
        return self._link.connector

    async def __aenter__(self) -> FlowProducer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._link.close()

    def _new_loop(self) -> None:
        """Used from another event loop than before: the lock serialising watched
        flows belonged to the old one."""
        self._watch_lock = asyncio.Lock()

    # -- adding -----------------------------------------------------------------------

    async def add(self, flow: FlowJob) -> FlowNode:
        """Add one flow; returns the tree of added jobs (ids included)."""
        if self.telemetry is not None:  # span addFlow (bullbridge.telemetry)
            return (
                await self.telemetry.add_flow(
                    getattr(flow, "queue", ""), getattr(flow, "name", ""), lambda: self._add_bulk([flow])
                )
            )[0]
        return (await self._add_bulk([flow]))[0]

    async def add_bulk(self, flows: Iterable[FlowJob]) -> list[FlowNode]:
        """Add several flows in one transaction; all are validated first."""
        if self.telemetry is not None:  # span addBulkFlows (bullbridge.telemetry)
            flows = list(flows)
            return await self.telemetry.add_flows(
                [str(getattr(f, "name", "")) for f in flows], lambda: self._add_bulk(flows)
            )
        return await self._add_bulk(flows)

    async def _add_bulk(self, flows: Iterable[FlowJob]) -> list[FlowNode]:
        trees = [self._prepare(flow, None) for flow in flows]
        if not trees:
            return []
        ids = await self._send(trees)
        return [self._result(tree, ids) for tree in trees]

    # -- preparing --------------------------------------------------------------------

    def _queue_scripts(self, queue: str, prefix: str) -> scripts.QueueScripts:
        qs = self._scripts.get((queue, prefix))
        if qs is None:
            keys = QueueKeys(queue, prefix)
            self._connector.check_queue(prefix, queue)
            qs = self._scripts[(queue, prefix)] = scripts.QueueScripts(keys)
        return qs

    def _prepare(self, node: FlowJob, parent: Parent | None) -> _Entry:
        """Validate and encode a node and its subtree (Node's ``addNode``)."""
        if not isinstance(node, FlowJob):
            raise InvalidJobOptions(f"a flow is a FlowJob, got {type(node).__name__}")
        if self.telemetry is not None:  # span addNode, current while the subtree is prepared (bullbridge.telemetry)
            return self.telemetry.add_node(node.queue, node.name, lambda stamp: self._prepare_node(node, parent, stamp))
        return self._prepare_node(node, parent, None)

    def _prepare_node(
        self, node: FlowJob, parent: Parent | None, stamp: Callable[[JobOptions, str], JobOptions] | None
    ) -> _Entry:
        prefix = node.prefix or self.prefix
        qs = self._queue_scripts(node.queue, prefix)
        opts = JobOptions.from_mapping(node.opts).merged_over(self._defaults.get(node.queue))
        if parent is not None:
            if opts.parent is not None:
                raise InvalidJobOptions(
                    f"flow child {node.name!r} sets parent=...; a child's parent is the node it is listed under"
                )
            opts = replace(opts, parent=parent)
        dedup = opts.deduplication
        if isinstance(dedup, Deduplication):
            if node.children:
                raise InvalidJobOptions(
                    f"flow node {node.name!r}: deduplication cannot be used on flow nodes with children "
                    "(Node: 'Deduplication options cannot be used on flow nodes with children')"
                )
            if dedup.replace:
                raise InvalidJobOptions(
                    f"flow node {node.name!r}: deduplication replace is not available in flows "
                    "(Node's FlowJob options omit it)"
                )
        job_id = opts.job_id or str(uuid.uuid4())
        if stamp is not None:  # the addNode span's context, stored in tm
            opts = stamp(opts, job_id)
        job = prepare_add(
            qs, self.codec, node.name, node.data, opts, job_id=job_id, as_parent=bool(node.children), flow_node=True
        )
        entry = _Entry(
            job,
            prefix,
            qs.k.job(job_id),
            qs.k["completed"],
            job_id,
            custom_child=parent is not None and opts.job_id is not None,
        )
        me = Parent(job_id, node.queue, prefix)
        entry.children = [self._prepare(child, me) for child in node.children]
        return entry

    # -- sending ----------------------------------------------------------------------

    async def _send(self, trees: list[_Entry]) -> dict[int, str]:
        """Run every add script in one transaction; the ids, by entry identity."""
        self._link.follow_loop()  # before the watch lock, which belongs to one loop
        watched = [e for tree in trees for e in _walk(tree) if e.custom_child]
        if not watched:
            order = _ordered(trees, set())
            client = self._link.client()
            results = await self._link.call(
                client.execute_many([e.job.command() for e in order], transaction=True),
                f"adding a flow of {len(order)} jobs",
            )
            return self._ids(order, results)
        async with self._watch_lock:
            return await self._send_watched(trees, watched)

    async def _send_watched(self, trees: list[_Entry], watched: list[_Entry]) -> dict[int, str]:
        """WATCH the custom-id children, read which exist and are completed,
        order the inserts so completed ones come last among their siblings,
        and EXEC; retry when a watched child changed in between."""
        client = self._link.client("flow-watch")
        for attempt in range(WATCH_RETRIES):
            conn = await self._link.call(client.connection(), "connecting to add a flow")
            reads: list[tuple[Any, ...]] = [("WATCH", *(e.job_key for e in watched))]
            for e in watched:
                reads += [("ZSCORE", e.completed_key, e.job_id), ("HGET", e.job_key, "parentKey")]
            replies = await self._link.call(asyncio.gather(*conn.execute_many(reads)), "reading the children of a flow")
            completed: set[int] = set()
            for index, entry in enumerate(watched):
                score, parent_key = replies[1 + 2 * index], replies[2 + 2 * index]
                if parent_key is not None and parent_key.decode() != entry.job.parent_key:
                    await self._link.call(conn.execute("UNWATCH"), "adding a flow")
                    raise ScriptError(
                        f"job {entry.job_id!r} of queue {entry.job.queue!r} already exists as a child of "
                        f"{parent_key.decode()}: a job has one parent, so it cannot join this flow (Node: "
                        f"'The parent job cannot be replaced'); use another job_id",
                        -7,
                    )
                if score is not None:
                    completed.add(id(entry))
            order = _ordered(trees, completed)
            futures = conn.execute_many([("MULTI",), *(e.job.command() for e in order), ("EXEC",)])
            replies = await self._link.call(
                asyncio.gather(*futures, return_exceptions=True), f"adding a flow of {len(order)} jobs"
            )
            exec_reply = replies[-1]
            for reply in replies[:-1]:
                if isinstance(reply, BaseException) and not isinstance(reply, RespError):
                    raise reply
            if isinstance(exec_reply, BaseException):  # EXECABORT: raise the command Redis refused
                raise next((r for r in replies[:-1] if isinstance(r, RespError)), exec_reply)
            if exec_reply is not None:
                return self._ids(order, list(exec_reply))
            log.debug("a watched flow child changed (attempt %d); retrying", attempt + 1)
        raise ScriptError(f"could not add the flow: its custom-id children kept changing ({WATCH_RETRIES} attempts)")

    @staticmethod
    def _ids(order: list[_Entry], results: list[Any]) -> dict[int, str]:
        ids: dict[int, str] = {}
        for entry, result in zip(order, results):
            ids[id(entry)] = check_added(entry.job, result)
        return ids

    def _result(self, entry: _Entry, ids: dict[int, str]) -> FlowNode:
        job = EnqueuedJob(ids[id(entry)], entry.job.name, entry.job.queue, entry.job.timestamp)
        return FlowNode(job, entry.prefix, tuple(self._result(child, ids) for child in entry.children))


def _walk(entry: _Entry) -> Iterable[_Entry]:
    yield entry
    for child in entry.children:
        yield from _walk(child)


def _ordered(trees: list[_Entry], completed: set[int]) -> list[_Entry]:
    """Parents before their children (a child's script needs its parent's
    hash); among siblings, already-completed ones last (see module doc)."""
    out: list[_Entry] = []

    def visit(entry: _Entry) -> None:
        out.append(entry)
        for child in sorted(entry.children, key=lambda c: id(c) in completed):
            visit(child)

    for tree in trees:
        visit(tree)
    return out


__all__ = ["FlowJob", "FlowNode", "FlowProducer"]

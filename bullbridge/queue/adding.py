"""Preparing a job for BullMQ's add scripts: validated, encoded, no I/O yet.

Options are validated (:mod:`bullbridge.options`) and data encoded
(:mod:`bullbridge.codec`) before anything is sent: an invalid job raises at
the call site and writes nothing. The script is chosen as Node's
``Job.create`` chooses it (parent > delay > priority > standard);
:func:`check_added` turns its reply into the job's id or an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bullbridge import codec as codec_module
from bullbridge import scripts
from bullbridge.clock import now_ms
from bullbridge.connection.replies import explain
from bullbridge.connection.resp import Arg, RespError
from bullbridge.errors import InvalidJobOptions
from bullbridge.options import Deduplication, JobOptions, Parent

#: ``add("name")`` without data stores ``{}``, as Node does for ``undefined``;
#: an explicit ``None`` stores ``null``.
NO_DATA: Any = type("NoData", (), {"__repr__": lambda self: "NO_DATA"})()

JobOptionsSource = JobOptions | Mapping[str, Any] | None


#: The options of a job given none (no queue defaults either).
NO_OPTIONS = JobOptions()


@dataclass(frozen=True)
class JobSpec:
    """One job for :meth:`Queue.add_bulk <bullbridge.queue.Queue.add_bulk>`."""

    name: str
    data: Any = NO_DATA
    opts: JobOptionsSource = None


@dataclass(frozen=True)
class PreparedJob:
    """A job ready for its script: validated options, encoded data, no I/O yet."""

    name: str
    queue: str
    script: str
    keys: list[Arg]
    args: list[Arg]
    timestamp: int
    job_id: str | None
    parent_key: str | None = None
    #: Deduplication ``reschedule`` (Node 6.7): the delay to give a still delayed
    #: job this add was deduplicated against (None: no reschedule).
    reschedule_delay: int | None = None

    def command(self) -> tuple[Arg, ...]:
        """The ``EVALSHA`` command, for pipelines and transactions."""
        return scripts.evalsha_command(self.script, self.keys, self.args)


def prepare_add(
    qs: scripts.QueueScripts,
    json_codec: codec_module.JsonCodec,
    name: str,
    data: Any,
    opts: JobOptions,
    *,
    job_id: str | None = None,
    as_parent: bool = False,
    flow_node: bool = False,
) -> PreparedJob:
    """Validate and encode one job for BullMQ's add scripts, as Node's
    ``Job.create`` does: the script (parent > delay > priority > standard),
    its keys, and its arguments. For ``flow_node`` jobs (Node's FlowProducer),
    ``job_id`` is the id without being stored in ``opts``, and ``parent`` is
    stored last, as Node's FlowProducer stores it."""
    if not isinstance(name, str):
        raise InvalidJobOptions(f"job name must be a string, got {type(name).__name__}")
    opts.check_for_add()
    data_json = json_codec.encode({} if data is NO_DATA else data)
    if opts.size_limit is not None and len(data_json) > opts.size_limit:
        raise InvalidJobOptions(
            f"the size of job {name!r} ({len(data_json)} bytes of JSON) exceeds its size_limit of "
            f"{opts.size_limit} bytes (Node: 'The size of job {name} exceeds the limit {opts.size_limit} bytes')"
        )
    timestamp = opts.timestamp if isinstance(opts.timestamp, int) else now_ms()
    encoded = opts.to_bullmq(timestamp, parent_last=flow_node)
    parent = opts.parent if isinstance(opts.parent, Parent) else None
    dedup = opts.deduplication if isinstance(opts.deduplication, Deduplication) else None
    own_id = job_id or opts.job_id
    script, keys, args = qs.add_job(
        job_id=own_id or "",
        name=name,
        timestamp=timestamp,
        data_json=data_json,
        encoded_opts=encoded,
        parent_key=parent.key if parent else None,
        parent=opts.parent_data(),
        dedup_id=dedup.id if dedup else None,
        as_parent=as_parent,
    )
    reschedule = dedup.reschedule and not dedup.replace if dedup else False
    delay = encoded.get("delay") or 0
    return PreparedJob(
        name,
        qs.k.name,
        script,
        keys,
        args,
        timestamp,
        own_id,
        parent.key if parent else None,
        int(delay) if reschedule else None,
    )


def check_added(job: PreparedJob, result: Any) -> str:
    """The id an add script returned, or a :class:`ScriptError` for its error codes."""
    if isinstance(result, RespError):
        raise explain(result, None, f"adding job {job.name!r} to {job.queue!r}")
    scripts.check_code(result, "addJob", job_id=job.job_id or "", parent=job.parent_key or "")
    return result.decode() if isinstance(result, bytes) else str(result)


def bulk_spec(spec: JobSpec | tuple[Any, ...] | Mapping[str, Any]) -> tuple[str, Any, Any]:
    """``(name, data, opts)`` of one bulk job given as a JobSpec, a mapping or a tuple."""
    if isinstance(spec, JobSpec):
        return spec.name, spec.data, spec.opts
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"name", "data", "opts"}
        if unknown:
            raise InvalidJobOptions(f"unknown keys in bulk job {sorted(unknown)} (name, data, opts)")
        if "name" not in spec:
            raise InvalidJobOptions(f"a bulk job needs a name: {dict(spec)!r}")
        return spec["name"], spec.get("data", NO_DATA), spec.get("opts")
    if isinstance(spec, Sequence) and not isinstance(spec, str) and 1 <= len(spec) <= 3:
        padded = (*spec, NO_DATA, None)[:3] if len(spec) == 1 else (*spec, None)[:3]
        return padded[0], padded[1], padded[2]
    raise InvalidJobOptions(f"a bulk job is a JobSpec, a mapping or a (name, data, opts) tuple, got {spec!r}")

"""Counting and listing a queue's jobs, as Node's queue getters do.

* counts: BullMQ's ``getCounts`` script, one number per state, with Node 6's
  default set of states when none is named (``paused`` is not in it: Node 6
  pauses a queue with a flag in its ``meta`` hash and leaves jobs in ``wait``);
* job ids: BullMQ's ``getRanges`` script, ordered and de-duplicated as Node's
  ``getRanges`` orders them (list states read from the tail when ascending).

``waiting`` is every job ready to run: the ``wait`` list *and* the legacy
``paused`` list, where Node < 6 (and bullbridge beside it,
:mod:`bullbridge.protocol`) keeps the waiting jobs of a paused queue - Node 6's
"jobs in a paused queue are represented as waiting", whichever layout the
queue has. ``paused`` can still be asked for: the legacy list alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from bullbridge import scripts
from bullbridge.connection.resp import Arg, RespClient
from bullbridge.errors import ConfigurationError
from bullbridge.keys import QueueKeys

#: Node 6's ``sanitizeJobTypes`` default: every state a job can be in.
DEFAULT_TYPES = ("active", "completed", "delayed", "failed", "prioritized", "waiting", "waiting-children")
#: Every state name a count or a listing accepts (``paused`` holds jobs only on
#: queues a Node 5 worker paused).
KNOWN_TYPES = (*DEFAULT_TYPES, "paused", "wait")
#: States kept in lists (the rest are sorted sets).
_LIST_TYPES = frozenset({"wait", "paused", "active"})


def job_types(types: Iterable[str]) -> list[str]:
    """The states asked for, each once, in order; Node's default set when none."""
    chosen = list(dict.fromkeys(types)) or list(DEFAULT_TYPES)
    unknown = [t for t in chosen if t not in KNOWN_TYPES]
    if unknown:
        raise ConfigurationError(
            f"unknown job state(s) {', '.join(map(repr, unknown))} (one of {', '.join(KNOWN_TYPES)})"
        )
    return chosen


def _key_types(state: str) -> tuple[str, ...]:
    """The keys holding a state: ``waiting`` is ``wait`` and the legacy ``paused`` list."""
    return ("wait", "paused") if state == "waiting" else (state,)


def _kinds(types: Sequence[str]) -> list[str]:
    return [kind for t in types for kind in _key_types(t)]


def counts_command(keys: QueueKeys, types: Sequence[str]) -> tuple[Arg, ...]:
    """The ``getCounts`` command for ``types`` (Node's names), for a pipeline whose
    connection has the script loaded; read its reply with :func:`counts_from_reply`."""
    return scripts.evalsha_command("getCounts", [keys.base], _kinds(types))


async def counts(client: RespClient, keys: QueueKeys, types: Sequence[str]) -> dict[str, int]:
    """Jobs per state (``types`` in Node's names)."""
    reply = await scripts.run(client, "getCounts", [keys.base], _kinds(types))
    return counts_from_reply(types, reply)


def counts_from_reply(types: Sequence[str], reply: Sequence[Any]) -> dict[str, int]:
    numbers = iter(int(n or 0) for n in reply)
    return {state: sum(next(numbers, 0) for _ in _key_types(state)) for state in types}


async def job_ids(
    client: RespClient, keys: QueueKeys, types: Sequence[str], start: int, end: int, asc: bool
) -> list[str]:
    """Ids of the jobs in ``types``, ``start`` to ``end`` of each, each id once."""
    kinds = _kinds(types)
    if asc:  # the legacy paused list holds the older jobs: they come first
        kinds = [k for t in types for k in reversed(_key_types(t))]
    replies = await scripts.run(client, "getRanges", [keys.base], [start, end, "1" if asc else "0", *kinds])
    ids: dict[str, None] = {}
    for kind, reply in zip(kinds, replies or []):
        members = list(reply or [])
        if asc and kind in _LIST_TYPES:
            members.reverse()
        for raw in members:
            ids[raw.decode() if isinstance(raw, bytes) else str(raw)] = None
    return list(ids)

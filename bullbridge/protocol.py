"""Node BullMQ < 6's paused list, kept by every script bullbridge runs.

Node BullMQ up to 5.x pauses a queue by renaming its ``wait`` list to
``paused`` (and sets ``meta.paused``); while paused, its scripts push every
job that becomes ready into ``paused``, and its resume renames ``paused``
back over ``wait``. Node 6 - and the Python port's scripts, which are Node
6.4.0's - only set ``meta.paused`` and keep pushing into ``wait``. Beside a
Node 5 service that has the queue paused, a job those scripts put in ``wait``
is overwritten when Node 5 resumes: lost.

So bullbridge runs the port's scripts with Node 5's target list in front of
them: a prologue (BullMQ's own script text follows unchanged) that, when the
queue is paused *in the legacy layout*, points the script's ``wait`` key at
``paused`` - exactly what Node 5's ``getTargetQueueList`` returns there.

A queue is in the legacy layout unless a Node 6 service says otherwise: its
``meta.version`` names ``bullmq`` 6 or later (Node's ``Queue`` writes
``bullmq:<version>`` whenever it connects, so the newest Node to connect wins)
and no ``paused`` list exists (a Node < 6 pause leaves one). Node 4.x and 5.x
before 5.20 write no version at all, and bullbridge's own marker
(``bullbridge:<version>``, written only where no version is) says nothing
about the Node services beside it - so both count as legacy: the paused list
is the layout every BullMQ version reads (Node 6 and the port move it back to
``wait`` on resume). A running queue is never touched: the prologue is one
``HMGET`` of ``meta`` and changes nothing unless ``meta.paused`` is set.

Three more pieces complete it:

* ``pause``: on a legacy queue, pausing moves the waiting jobs to ``paused``
  first, as Node 5's pause does, so that a later Node 5 resume (a rename)
  finds them there instead of overwriting them;
* ``moveToFinished``: a parent released by its last child into a parent
  queue that is paused in the legacy layout goes to that queue's ``paused``
  list (the port's script writes the parent queue's ``wait``; the epilogue
  moves it, as Node 5's parent release targets ``paused``);
* resuming needs nothing: the port's resume already moves a legacy
  ``paused`` list back to ``wait`` (appending, never overwriting).

docs/port-differences.md#node5-paused has the whole story, compat/MATRIX.md
the scenarios (``pause_*``) that hold it in place against Node 4.x-6.x.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bullbridge.errors import PortVersionError

#: Lua: is the queue whose wait key is ``w`` and meta key ``m`` in the legacy
#: (Node < 6) layout? ``need_paused``: only while ``meta.paused`` is set.
_LEGACY_TEST = """
local function bbPausedKey(waitKey)
  return string.sub(waitKey, 1, -5) .. "paused"
end
local function bbLegacy(metaKey, pausedKey, needPaused)
  local state = redis.call("HMGET", metaKey, "paused", "version")
  if needPaused and not state[1] then return false end
  if redis.call("EXISTS", pausedKey) == 1 then return true end
  local major = state[2] and string.match(state[2], "^bullmq:(%d+)%.")
  if not major then return true end
  return tonumber(major) < 6
end
"""


@dataclass(frozen=True)
class Target:
    """Where a script's ``wait``, ``paused`` and ``meta`` keys are (1-based KEYS
    indexes; ``paused`` 0 when the script takes none: it is derived from ``wait``)."""

    wait: int
    meta: int
    paused: int = 0


#: The port's scripts that can push a job into their queue's ``wait`` list.
TARGETS: dict[str, Target] = {
    "addStandardJob": Target(wait=1, meta=3, paused=2),
    "retryJob": Target(wait=2, meta=5, paused=3),
    "moveStalledJobsToWait": Target(wait=2, meta=5, paused=6),
    "moveJobFromActiveToWait": Target(wait=2, meta=5, paused=4),
    "moveToActive": Target(wait=1, meta=9, paused=8),
    "moveToFinished": Target(wait=1, meta=9, paused=8),
    "moveToDelayed": Target(wait=9, meta=7),
    "promote": Target(wait=2, meta=4, paused=3),
    "moveJobsToWait": Target(wait=4, meta=6, paused=5),
    "reprocessJob": Target(wait=4, meta=5),
    "changePriority": Target(wait=1, meta=3, paused=2),
    "addJobScheduler": Target(wait=3, meta=5, paused=4),
    "updateJobScheduler": Target(wait=3, meta=5, paused=4),
}

_HEADER = "--[[ bullbridge: Node < 6's paused list (bullbridge/protocol.py); BullMQ's script follows ]]\n"


def _retarget(t: Target) -> str:
    paused = f"KEYS[{t.paused}]" if t.paused else f"bbPausedKey(KEYS[{t.wait}])"
    return (
        "do\n"
        f"{_LEGACY_TEST}"
        f"  local pausedKey = {paused}\n"
        f"  if bbLegacy(KEYS[{t.meta}], pausedKey, true) then KEYS[{t.wait}] = pausedKey end\n"
        "end\n"
    )


#: Node 5's pause, before the port's: the waiting jobs move to 'paused' (a rename,
#: or - when 'paused' already holds jobs - in front of them, oldest nearest the tail).
_PAUSE = f"""do
{_LEGACY_TEST}
  if ARGV[1] == "paused" and bbLegacy(KEYS[3], KEYS[2], false) then
    if redis.call("EXISTS", KEYS[2]) == 0 then
      if redis.call("EXISTS", KEYS[1]) == 1 then redis.call("RENAME", KEYS[1], KEYS[2]) end
    else
      while redis.call("LLEN", KEYS[1]) > 0 do
        local oldest = redis.call("LRANGE", KEYS[1], -1000, -1)
        local reversed = {{}}
        for i = #oldest, 1, -1 do reversed[#reversed + 1] = oldest[i] end
        redis.call("LPUSH", KEYS[2], unpack(reversed))
        redis.call("LTRIM", KEYS[1], 0, -(#oldest + 1))
      end
    end
  end
end
"""

#: Around moveToFinished: the finished job's parent queue, read before the script
#: runs (the job may be removed on completion) ...
_PARENT_BEFORE = """local bbParentQueue
do
  local parent = redis.call("HGET", KEYS[12], "parent")
  if parent then
    local ok, decoded = pcall(cjson.decode, parent)
    if ok and type(decoded) == "table" and type(decoded["queueKey"]) == "string" then
      bbParentQueue = decoded["queueKey"]
    end
  end
end
local function bbScript()
"""

#: ... and after it: a parent the script released into that queue's 'wait'
#: while the queue is paused in the legacy layout goes to 'paused' (at the tail:
#: Node 5 releases a parent with RPUSH, to run next).
_PARENT_AFTER = f"""end
local bbResult = bbScript()
if bbParentQueue then
{_LEGACY_TEST}
  local waitKey = bbParentQueue .. ":wait"
  local pausedKey = bbParentQueue .. ":paused"
  if redis.call("LLEN", waitKey) > 0 and bbLegacy(bbParentQueue .. ":meta", pausedKey, true) then
    while redis.call("LLEN", waitKey) > 0 do
      local jobs = redis.call("LRANGE", waitKey, 0, 999)
      redis.call("RPUSH", pausedKey, unpack(jobs))
      redis.call("LTRIM", waitKey, #jobs, -1)
    end
  end
end
return bbResult
"""


def _check_layout(name: str, source: bytes, target: Target) -> None:
    """The prologue rewrites ``KEYS[target.wait]``: make sure the installed port's script
    documents 'wait' and 'meta' at those places (port 3.4.x's layout), else refuse."""
    header = source.decode("utf-8", "replace").split("]]", 1)[0]
    for index, kind in ((target.wait, "wait"), (target.meta, "meta"), (target.paused, "paused")):
        if index and not re.search(rf"KEYS\[{index}\][^\n]*\b{kind}\b", header):
            from importlib.metadata import PackageNotFoundError, version

            try:
                installed = version("bullmq")
            except PackageNotFoundError:  # pragma: no cover - the scripts come from it
                installed = "unknown"
            raise PortVersionError(
                f"the installed Python port bullmq {installed} has another key layout for its {name} script "
                f"(KEYS[{index}] is not '{kind}'): bullbridge runs port 3.4.x's scripts, so install "
                "'bullmq>=3.4.4,<3.5' (as bullbridge's requirements say)"
            )


def adapt(name: str, source: bytes) -> bytes:
    """The port's script ``name`` with the legacy paused-list handling it needs
    (``source`` unchanged when it needs none); :class:`PortVersionError` when the
    installed port's script has another key layout than port 3.4.x's."""
    target = TARGETS.get(name)
    if name == "pause":
        _check_layout(name, source, Target(wait=1, meta=3, paused=2))
        return (_HEADER + _PAUSE).encode() + source
    if target is None:
        return source
    _check_layout(name, source, target)
    head = _HEADER + _retarget(target)
    if name == "moveToFinished":
        return (head + _PARENT_BEFORE).encode() + source + b"\n" + _PARENT_AFTER.encode()
    return head.encode() + source


def adapted(name: str) -> bool:
    """Whether bullbridge runs script ``name`` with a prologue."""
    return name == "pause" or name in TARGETS

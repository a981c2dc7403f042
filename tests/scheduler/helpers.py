"""Shared helpers for the scheduler tests: DST instants, Node-side next-run
computation (exactly as job-scheduler.js), polling, and a Python worker that
materialises scheduler iterations the way Node's worker does."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bullbridge.testing.node import NodeDriver


def dst_transitions(zone: str, years: range) -> list[int]:
    """Every instant (epoch ms) at which ``zone``'s UTC offset changes in ``years``."""
    tz = ZoneInfo(zone)
    out: list[int] = []
    t = datetime(years.start, 1, 1, tzinfo=UTC)
    end = datetime(years.stop, 1, 1, tzinfo=UTC)
    step = timedelta(hours=1)
    previous = t.astimezone(tz).utcoffset()
    while t < end:
        nxt = t + step
        offset = nxt.astimezone(tz).utcoffset()
        if offset != previous:
            lo, hi = t, nxt  # bisect to the second
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(tz).utcoffset() == previous:
                    lo = mid
                else:
                    hi = mid
            out.append(int(hi.timestamp()) * 1000)
            previous = offset
        t = nxt
    return out


def ms(text: str) -> int:
    """Epoch ms of an ISO-8601 instant."""
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def iso(value: int) -> str:
    return datetime.fromtimestamp(value / 1000, UTC).isoformat()


#: Node side of a parity case: ``upsertJobScheduler``'s pattern branch,
#: i.e. ``defaultRepeatStrategy(now, repeatOpts)`` then the ``< now`` clamp,
#: chained ``steps`` times (each run computes the next from its own start).
NODE_NEXT_MILLIS = r"""
const out = [];
for (const [pattern, tz, start, startDate, endDate, steps] of args.cases) {
  const opts = { pattern };
  if (tz) opts.tz = tz;
  if (startDate) opts.startDate = startDate;
  if (endDate) opts.endDate = endDate;
  let now = start;
  const seq = [];
  try {
    for (let i = 0; i < steps; i++) {
      let next = bullmq.defaultRepeatStrategy(now, opts);
      if (next === undefined) { seq.push(null); break; }
      if (next < now) next = now;
      seq.push(next);
      now = next;
    }
    out.push(seq);
  } catch (e) {
    out.push('error: ' + e.message);
  }
}
return out;
"""


async def node_next_millis(node: NodeDriver, cases: list[list[Any]]) -> list[Any]:
    """Run :data:`NODE_NEXT_MILLIS` over ``cases`` in chunks (one eval each)."""
    out: list[Any] = []
    for i in range(0, len(cases), 2000):
        out.extend(await node.eval(NODE_NEXT_MILLIS, cases=cases[i : i + 2000], timeout=60))
    return out


def scheduled_handler(
    worker_ref: list[Any], seen: list[tuple[str, str]], handler: Callable[[Any], Awaitable[Any]] | None = None
) -> Callable[[Any], Awaitable[Any]]:
    """A bullbridge handler that records what it ran. The next iteration is the
    engine's business (it calls schedule_next_iteration on fetch, as Node does):
    these tests fail if it stops doing so."""

    async def handle(job: Any) -> Any:
        seen.append((job.id, "python"))
        return await handler(job) if handler else job.id

    return handle


from bullbridge.testing.interop import eventually as wait_until  # noqa: E402,F401 - the one poll helper

NODE_ITERATE = r"""
// What Node's Worker does on fetching a scheduled job (worker.js nextJobFromJobData),
// applied to a job read by id: returns the id of the next iteration it adds.
const q = queue(args.queue);
const job = await q.getJob(args.jobId);
const js = await q.jobScheduler;
const next = await js.upsertJobScheduler(job.repeatJobKey, job.opts.repeat, job.name, job.data, job.opts,
  { override: false, producerId: job.id });
return next ? next.id : null;
"""

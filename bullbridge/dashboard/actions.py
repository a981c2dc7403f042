"""The dashboard's operator actions: their names, their dispatch, the note shown once one is done."""

from __future__ import annotations

from bullbridge.errors import ConfigurationError
from bullbridge.monitor.actions import ActionResult
from bullbridge.monitor.format import parse_duration_ms
from bullbridge.monitor.monitor import Monitor

ACTIONS = ("retry", "promote", "clean", "pause", "resume", "drain", "retry-job", "promote-job", "remove-job")


async def run_action(monitor: Monitor, queue: str, name: str, form: dict[str, str]) -> ActionResult:
    """Dispatch one dashboard action to :class:`~bullbridge.monitor.actions.QueueActions`."""
    actions = monitor.actions(queue)
    if name == "retry":
        return await actions.retry(form.get("state", "failed"))
    if name == "promote":
        return await actions.promote()
    if name == "clean":
        state = form.get("state", "completed")
        grace = parse_duration_ms(form.get("age", "1d"))
        return await actions.clean(state, grace_ms=grace, limit=int(form.get("limit", "0") or 0))
    if name == "pause":
        return await actions.pause()
    if name == "resume":
        return await actions.resume()
    if name == "drain":
        return await actions.drain(delayed=form.get("delayed") in ("1", "true", "on"))
    job_id = form.get("job", "")
    if not job_id:
        raise ConfigurationError("name the job: field 'job'")
    if name == "retry-job":
        return await actions.retry_job(job_id)
    if name == "promote-job":
        return await actions.promote_job(job_id)
    return await actions.remove_job(job_id)


def done_message(name: str, result: ActionResult) -> str:
    """What a form action did, for the page it lands on: ``retry: 3 job(s)``, ``queue paused``."""
    return f"queue {name}d" if name in ("pause", "resume") else f"{name}: {result.count:,} job(s)"

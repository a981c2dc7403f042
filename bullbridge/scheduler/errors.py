"""Errors of the scheduler package (all under :class:`bullbridge.errors.BullbridgeError`)."""

from __future__ import annotations

from bullbridge.errors import BullbridgeError


class SchedulerError(BullbridgeError):
    """Something about a job scheduler went wrong."""


class InvalidSchedule(SchedulerError, ValueError):
    """A schedule declaration Node BullMQ would reject or misread (bad pattern,
    unknown time zone, both or neither of pattern/every...)."""


class CronSyntaxError(InvalidSchedule):
    """A cron pattern that Node's cron-parser 5.10 refuses; the message is
    cron-parser's own where there is one."""


class CronRangeError(SchedulerError):
    """No fire time exists inside the schedule's start/end window, or the
    pattern can never match (cron-parser's "Out of the time span range" /
    "loop limit exceeded"). BullMQ then simply produces no further job."""


class LegacyRepeatableJob(SchedulerError):
    """A legacy (BullMQ < 6) repeatable job whose next iteration cannot be computed
    (its job has no repeat options). Others are continued as Node 5 continues them."""


class OwnershipConflict(SchedulerError):
    """A declared schedule's id is already used by a scheduler that this
    declaration does not own (created by Node, by hand, or by another
    declaration)."""

"""Cron and interval schedules shared with Node: BullMQ job schedulers declared in Python.

| module | job |
|---|---|
| ``zoned`` | luxon's wall-clock arithmetic on zoneinfo (what cron-parser walks with) |
| ``cron`` | cron-parser 5.10.3's parser and ``next()``, ported (Node's next run, DST included) |
| ``timing`` | BullMQ's next-run rules: pattern strategy, ``every`` alignment, simulated sequences |
| ``schedule`` | :class:`Schedule`: one declared scheduler, validated as Node would |
| ``declaration`` | :class:`Declaration`: schedules owned under one name; TOML and ``module:attr`` loading |
| ``records`` | :class:`SchedulerInfo`: a scheduler as stored (by either language); reads by id and by next run |
| ``ownership`` | bullbridge's ownership records beside BullMQ's keys |
| ``store`` | schedulers written and removed through BullMQ's scripts |
| ``sync`` | :func:`sync`: upsert what is declared, remove what this declaration no longer declares |
| ``iteration`` | :func:`schedule_next_iteration`: what a Node worker does when it fetches a scheduled job |
"""

from bullbridge.scheduler.declaration import Declaration, load_declaration
from bullbridge.scheduler.errors import (
    CronRangeError,
    CronSyntaxError,
    InvalidSchedule,
    LegacyRepeatableJob,
    OwnershipConflict,
    SchedulerError,
)
from bullbridge.scheduler.iteration import schedule_next_iteration
from bullbridge.scheduler.records import SchedulerInfo, SchedulerPage, read_scheduler_page, read_schedulers
from bullbridge.scheduler.schedule import Schedule
from bullbridge.scheduler.sync import SyncReport, sync
from bullbridge.scheduler.timing import Repeat, fire_sequence

__all__ = [
    "CronRangeError",
    "CronSyntaxError",
    "Declaration",
    "InvalidSchedule",
    "LegacyRepeatableJob",
    "OwnershipConflict",
    "Repeat",
    "Schedule",
    "SchedulerError",
    "SchedulerInfo",
    "SchedulerPage",
    "SyncReport",
    "fire_sequence",
    "load_declaration",
    "read_scheduler_page",
    "read_schedulers",
    "schedule_next_iteration",
    "sync",
]

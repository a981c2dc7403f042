"""What the whole layer shares: where Redis is, the queue names, the job defaults."""

from __future__ import annotations

import os

from bullbridge import Backoff, JobOptions

REDIS_URL = os.environ.get("BULLBRIDGE_REDIS_URL", "redis://localhost:6379")
#: BullMQ's key prefix (Node's ``prefix`` option): ``bull`` unless apps share a Redis.
PREFIX = os.environ.get("BULLBRIDGE_PREFIX", "bull")
TIMEZONE = "America/New_York"

EMAIL = "email"
IMAGES = "image-processing"
DATA_SYNC = "data-sync"
ANALYTICS = "analytics"
NOTIFICATIONS = "notifications"  # stays in Node: interop/layer15/workers.js
QUEUES = (EMAIL, IMAGES, DATA_SYNC, ANALYTICS, NOTIFICATIONS)

#: Every job the layer adds retries with exponential backoff: 1 s, then 2 s
#: (the Node producer uses the same options).
RETRY = JobOptions(attempts=3, backoff=Backoff.exponential(1000))

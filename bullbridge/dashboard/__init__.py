"""The bullbridge web dashboard (aiohttp): queues, jobs, schedulers, workers by language.

Nothing else in bullbridge imports this package; it needs ``aiohttp``.
``create_app(monitor)`` gives an aiohttp application (read-only unless
``allow_actions=True`` with a ``token``); ``bullbridge dashboard --port 8080``
serves one.
"""

from bullbridge.dashboard.actions import run_action
from bullbridge.dashboard.app import MONITOR_KEY, create_app

__all__ = ["MONITOR_KEY", "create_app", "run_action"]

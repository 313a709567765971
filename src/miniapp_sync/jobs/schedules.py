"""The deployment-wide default schedule (``--default-schedule``): a cron expression, or an interval.

An interval is turned into the cron expression that fires on its boundaries (``30m`` → every
half hour on :00 and :30), because both queues schedule by cron: the in-process queue's loop and
Procrastinate's periodic tasks, which fire once per tick whichever worker gets there first.
"""

from __future__ import annotations

import re
from typing import Final

from croniter import croniter

_INTERVAL: Final = re.compile(r"^\s*(\d+)\s*(m|min|h|d)\s*$", re.IGNORECASE)
_MINUTES: Final = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)
_HOURS: Final = (1, 2, 3, 4, 6, 8, 12)


def cron_for(text: str) -> str:
    """Return the cron expression of a default schedule (``6h``, ``30m``, ``1d`` or cron); raise ValueError."""
    match = _INTERVAL.match(text)
    if match is None:
        if croniter.is_valid(text):
            return text.strip()
        raise ValueError(f"expected an interval (30m, 6h, 1d) or a cron expression, found {text!r}")
    count, unit = int(match[1]), match[2].lower()
    if unit in ("m", "min") and count in _MINUTES:
        return "* * * * *" if count == 1 else f"*/{count} * * * *"
    if unit == "h" and count in _HOURS:
        return "0 * * * *" if count == 1 else f"0 */{count} * * *"
    if unit == "d" and count == 1:
        return "0 0 * * *"
    if unit == "h" and count == 24:
        return "0 0 * * *"
    allowed = "minutes dividing an hour (1-30), hours dividing a day (1-12), or 1d"
    raise ValueError(f"the interval {text!r} does not fall on cron ticks: use {allowed}, or a cron expression")

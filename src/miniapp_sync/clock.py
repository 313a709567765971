"""Time, behind one seam: nothing else in miniapp-sync reads the time or sleeps."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """What the runtime needs of time: a wall clock, a monotonic clock and sleep."""

    def now(self) -> float:
        """Return seconds since the epoch (wall time, for timestamps)."""

    def monotonic(self) -> float:
        """Return seconds on a clock that never goes back (for rates and timeouts)."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

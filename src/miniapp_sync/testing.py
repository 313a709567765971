"""Public test kit: a clock that tests move by hand, so nothing sleeps to test time."""

from __future__ import annotations

import asyncio


class FakeClock:
    """A Clock whose ``sleep()`` advances time instantly and records how long it was asked to wait."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._monotonic = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        """Move both clocks forward."""
        self._now += seconds
        self._monotonic += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)  # still yield, so concurrent tasks interleave as they would

"""How many detail requests to keep in flight (D10): enough to fill the rate budget, at most a cap.

By Little's law a provider answering in ``latency`` seconds serves ``rate`` requests a second
only with ``rate × latency`` requests in flight. Fewer leave budget unused (a fixed 8 in flight
fetched 20 ms details at ~330/s whatever the budget); more only wait in the rate limiter
holding connections open. So the number in flight follows the provider's observed latency
(``ProviderClient.latency``, measured after the limiter's grant, so waiting for the budget never
counts as slowness), with a quarter more and one extra for jitter, between 1 and ``cap``: the
operator's bound on connections to one provider (``sync --max-in-flight``).

One ``FanOut`` serves a whole resource run, so the details of the next page can start while the
last of this page's are still out, without ever exceeding the number chosen.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final

__all__ = ["DEFAULT_MAX_IN_FLIGHT", "FanOut", "in_flight_for"]

DEFAULT_MAX_IN_FLIGHT: Final = 64
# Before any answer was timed: a small start that the first answers correct within a round trip.
_UNMEASURED: Final = 4
_HEADROOM: Final = 1.25


def in_flight_for(rate: float, latency: float | None, cap: int) -> int:
    """Return how many requests to keep in flight to spend ``rate`` per second at ``latency``, within [1, cap]."""
    if latency is None:
        wanted = _UNMEASURED
    elif math.isinf(rate):
        wanted = cap
    else:
        wanted = math.ceil(rate * max(latency, 0.0) * _HEADROOM) + 1
    return max(1, min(cap, wanted))


class FanOut:
    """A gate that lets ``in_flight_for(rate, latency(), cap)`` callers through at a time, re-read as they leave."""

    def __init__(self, rate: float, latency: Callable[[], float | None], *, cap: int = DEFAULT_MAX_IN_FLIGHT) -> None:
        if cap < 1:
            raise ValueError(f"the in-flight cap must be at least 1, not {cap!r}")
        self.rate = rate
        self.cap = cap
        self._latency = latency
        self._in_flight = 0
        self._changed = asyncio.Condition()
        self.peak = 0  # most callers ever let through at once (for reports and tests)

    @property
    def target(self) -> int:
        """Return how many callers may be in flight now."""
        return in_flight_for(self.rate, self._latency(), self.cap)

    @property
    def in_flight(self) -> int:
        """Return how many callers are through the gate now."""
        return self._in_flight

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait until fewer than ``target`` callers are in flight; hold a place for the block."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._in_flight < self.target)
            self._in_flight += 1
            self.peak = max(self.peak, self._in_flight)
        try:
            yield
        finally:
            async with self._changed:
                self._in_flight -= 1
                # The latency behind ``target`` may have moved with this answer: let every waiter re-check.
                self._changed.notify_all()

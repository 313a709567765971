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

Waiters queue in arrival order and a leaving caller hands its place straight to as many of them
as ``target`` allows (re-read then). The gate used to be a Condition with ``notify_all``: every
answer woke every waiting worker (up to two pages' worth, ~100 at the 4/s of a store's budget)
only for all but one or two to sleep again. With hundreds of installations syncing in one
process that was most of the CPU a detail request cost (issue #17 item 5).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
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
        self._waiters: deque[asyncio.Future[None]] = deque()
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
        await self.enter()
        try:
            yield
        finally:
            self.leave()

    async def enter(self) -> None:
        """Wait until fewer than ``target`` callers are in flight; take a place (give it back with ``leave``)."""
        if not self._waiters and self._in_flight < self.target:
            self._in_flight += 1
        else:
            place: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(place)
            try:
                await place  # counted in ``_in_flight`` by whoever resolved it
            except asyncio.CancelledError:
                if place.done() and not place.cancelled():  # handed a place and cancelled at once: pass it on
                    self._in_flight -= 1
                elif place in self._waiters:  # a hand-on may already have dropped it as done
                    self._waiters.remove(place)
                self._hand_on()
                raise
        self.peak = max(self.peak, self._in_flight)

    def leave(self) -> None:
        """Give back a place taken with ``enter``."""
        self._in_flight -= 1
        # The latency behind ``target`` may have moved with this answer: re-read it as places are handed on.
        self._hand_on()

    def _hand_on(self) -> None:
        """Let the longest waiters through while there is room under ``target``."""
        if not self._waiters:
            return
        target = self.target
        while self._waiters and self._in_flight < target:
            place = self._waiters.popleft()
            if not place.done():
                self._in_flight += 1
                place.set_result(None)
